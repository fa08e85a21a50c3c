"""Turn uploaded files into plain text plus metadata, the first stage of ingestion.

Pure functions: bytes in, `ParsedDocument`s out, no Temporal, no database. The ingest
activity calls `parse_file` once per file and turns a `ParseError` into a per-file reason,
so one bad file never sinks a job. Formats are chosen by extension, never sniffed, so the
same file always parses the same way:

- ``.txt``: UTF-8 (a BOM is honoured); NUL bytes or undecodable bytes mean "binary".
- ``.md``/``.markdown``: YAML front matter becomes metadata; the markdown is kept as is.
- ``.html``/``.htm``: visible text only (selectolax's lexbor engine, the fastest parser we
  measured, C with no Python dependencies); blocks become lines.
- ``.pdf``: the text layer, via pypdf; a scan without one is refused rather than indexed
  as nothing.
- ``.jsonl``: one document per line (``{"text": ..., **metadata}``), each named
  ``<name>#L<line>``; a bad line is reported on its own and the others go on.
"""

from __future__ import annotations

import io
import json
import re
import unicodedata
from collections.abc import Callable
from datetime import date, datetime
from pathlib import PurePosixPath
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field
from pypdf import PdfReader
from selectolax.lexbor import LexborHTMLParser

Format = Literal["text", "markdown", "html", "pdf", "jsonl"]
ParseErrorKind = Literal["empty", "too_large", "binary", "unsupported", "malformed"]

FORMATS: dict[str, Format] = {
    ".txt": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
    ".jsonl": "jsonl",
}
SUPPORTED_EXTENSIONS: tuple[str, ...] = tuple(FORMATS)


class ParseError(Exception):
    """A file (or one JSON Lines line) that cannot become a document.

    Attributes:
        reason: What is wrong, written for the person who uploaded the file.
        kind: One of "empty", "too_large", "binary", "unsupported", "malformed", so a job
            can count and report failures without parsing messages.
        source: The file name, or ``name#L<line>`` for a JSON Lines line.
    """

    def __init__(self, reason: str, kind: ParseErrorKind, *, source: str | None = None) -> None:
        super().__init__(f"{source}: {reason}" if source else reason)
        self.reason = reason
        self.kind: ParseErrorKind = kind
        self.source = source


class ParsedDocument(BaseModel):
    """One document's text and metadata, ready for chunking.

    Attributes:
        source: The file name, or ``name#L<line>`` for a JSON Lines record.
        format: Which parser produced it.
        text: Normalised text (markdown keeps its markup).
        title: From the document itself, else the file name without its extension, so
            context assembly always has something to cite.
        metadata: JSON-safe fields: ``title`` plus whatever the document declares (front
            matter, ``<meta>`` tags, PDF info, JSON fields), e.g. ``date``, ``department``,
            ``doc_type``. Dates are ISO 8601 strings.
    """

    model_config = ConfigDict(frozen=True)

    source: str
    format: Format
    text: str
    title: str
    metadata: dict[str, Any] = Field(default_factory=dict)


def parse_file(
    name: str,
    data: bytes,
    *,
    max_bytes: int,
    errors: list[ParseError] | None = None,
) -> list[ParsedDocument]:
    """Parse one uploaded file into its documents (several for JSON Lines, else one).

    Args:
        name: The file name; its extension picks the format.
        data: The file's bytes.
        max_bytes: Largest accepted file; checked before any parsing.
        errors: Where JSON Lines line failures go. When given, bad lines are appended here
            (each with ``source="name#L<n>"``) and the good lines are still returned; when
            None, the first bad line raises.

    Returns:
        The documents, in file order.

    Raises:
        ParseError: The whole file is unusable (unsupported, empty, too large, binary,
            malformed, or no text).
    """
    fmt = FORMATS.get(PurePosixPath(name).suffix.lower())
    if fmt is None:
        raise ParseError(
            f"unsupported file type; supported: {', '.join(SUPPORTED_EXTENSIONS)}",
            "unsupported",
            source=name,
        )
    if not data:
        raise ParseError("empty file", "empty", source=name)
    if len(data) > max_bytes:
        raise ParseError(
            f"file is {len(data):,} bytes, over the limit of max_bytes={max_bytes:,}",
            "too_large",
            source=name,
        )
    if fmt == "jsonl":
        return _parse_jsonl(name, data, errors)
    doc = _PARSERS[fmt](name, data)
    if not doc.text.strip():
        raise ParseError("no text in file", "empty", source=name)
    return [doc]


def parse_document(name: str, data: bytes, *, max_bytes: int) -> ParsedDocument:
    """Parse a file that holds exactly one document (every format but JSON Lines).

    Args:
        name: The file name; its extension picks the format.
        data: The file's bytes.
        max_bytes: Largest accepted file.

    Returns:
        The document.

    Raises:
        ParseError: As `parse_file`; also for a JSON Lines file of more than one record.
    """
    docs = parse_file(name, data, max_bytes=max_bytes)
    if len(docs) != 1:
        raise ParseError(f"holds {len(docs)} documents; use parse_file", "unsupported", source=name)
    return docs[0]


# --- text ------------------------------------------------------------------------------

# C0/C1 controls other than tab and newline: they carry no meaning in prose and confuse
# tokenizers and full-text search alike.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_BLANK_RUNS = re.compile(r"\n{3,}")
_SPACES = re.compile(r"[^\S\n]+")


def _normalize(text: str, *, collapse_spaces: bool) -> str:
    """NFC, LF line ends, no trailing spaces, at most one blank line in a row.

    `collapse_spaces` is for extracted text (HTML, PDF) whose spacing is layout, not
    content; typed text (plain, markdown) keeps its indentation because code blocks and
    lists depend on it.
    """
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _CONTROL.sub("", text)
    if collapse_spaces:
        lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    else:
        lines = (line.rstrip() for line in text.split("\n"))
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip("\n")


def _decode(data: bytes, *, source: str) -> str:
    """UTF-8 (or BOM-marked UTF-16) text, or a "binary" error."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise ParseError("invalid UTF-16 text", "binary", source=source) from exc
    if b"\x00" in data:
        # Text never holds NUL; it is the surest sign of a binary file renamed .txt.
        raise ParseError("binary content (NUL bytes); expected UTF-8 text", "binary", source=source)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ParseError(
            f"not valid UTF-8 (byte {exc.start}); expected UTF-8 text", "binary", source=source
        ) from exc


def _stem(name: str) -> str:
    return PurePosixPath(name.split("#", 1)[0]).stem or name


def _parse_text(name: str, data: bytes) -> ParsedDocument:
    text = _normalize(_decode(data, source=name), collapse_spaces=False)
    title = _stem(name)
    return ParsedDocument(
        source=name, format="text", text=text, title=title, metadata={"title": title}
    )


# --- markdown --------------------------------------------------------------------------

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
_H1 = re.compile(r"^\s{0,3}#[ \t]+(.+?)[ \t#]*$")


def _json_safe(value: Any) -> Any:
    """YAML and PDF values made JSON-safe: metadata travels in payloads and jsonb columns."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _front_matter(text: str, *, source: str) -> tuple[dict[str, Any], str]:
    match = _FRONT_MATTER.match(text)
    if match is None:
        return {}, text
    try:
        loaded = yaml.safe_load(match.group(1))
    except yaml.YAMLError as exc:
        raise ParseError(f"invalid YAML front matter: {exc}", "malformed", source=source) from exc
    if loaded is None:
        return {}, text[match.end() :]
    if not isinstance(loaded, dict):
        # `---\nSome line\n---` is also a thematic break or a setext heading: a scalar
        # here means it was never front matter, so keep it as text.
        return {}, text
    return _json_safe(loaded), text[match.end() :]


def _first_heading(markdown: str) -> str | None:
    in_fence = False
    previous = ""
    for line in markdown.split("\n"):
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence:
            if match := _H1.match(line):
                return match.group(1).strip()
            if previous.strip() and re.fullmatch(r"\s{0,3}=+\s*", line):
                return previous.strip()  # setext: "Title\n====="
        previous = "" if in_fence else line
    return None


def _parse_markdown(name: str, data: bytes) -> ParsedDocument:
    raw = _decode(data, source=name).replace("\r\n", "\n").replace("\r", "\n")
    metadata, body = _front_matter(raw, source=name)
    text = _normalize(body, collapse_spaces=False)
    declared = metadata.get("title")
    title = str(declared).strip() if declared else (_first_heading(text) or _stem(name))
    metadata["title"] = title
    return ParsedDocument(source=name, format="markdown", text=text, title=title, metadata=metadata)


# --- HTML ------------------------------------------------------------------------------

_DROP_TAGS = ["script", "style", "noscript", "template", "svg", "iframe", "object", "canvas"]
# Blocks that start a new paragraph, and those that only start a new line: the chunker
# prefers to cut at paragraph breaks, so keep the page's own structure visible to it.
_PARAGRAPH_TAGS = (
    "address,article,aside,blockquote,details,dl,fieldset,figure,footer,form,h1,h2,h3,h4,h5,"
    "h6,header,hr,main,nav,ol,p,pre,section,table,ul"
)
_LINE_TAGS = "br,caption,dd,div,dt,figcaption,li,summary,td,th,tr"
# Private-use characters mark block edges while all source whitespace (layout only) is
# collapsed; they then become line breaks.
_PARA_MARK = "\ue000"
_LINE_MARK = "\ue001"
_MARKS = re.compile("(?: ?[\ue000\ue001])+ ?")
_META_FIELDS = {
    "author": "author",
    "description": "description",
    "keywords": "keywords",
    "date": "date",
    "department": "department",
    "doc_type": "doc_type",
    "doc-type": "doc_type",
    "dc.date": "date",
    "dcterms.created": "date",
    "article:published_time": "date",
}


def _parse_html(name: str, data: bytes) -> ParsedDocument:
    if b"\x00" in data:
        raise ParseError("binary content (NUL bytes); expected HTML", "binary", source=name)
    try:
        tree = LexborHTMLParser(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        # Legacy pages declare their charset in <meta>; lexbor honours it.
        tree = LexborHTMLParser(data, encoding=True)
    metadata: dict[str, Any] = {}
    for meta in tree.css("meta[content]"):
        key = (meta.attributes.get("name") or meta.attributes.get("property") or "").lower()
        content = (meta.attributes.get("content") or "").strip()
        if key in _META_FIELDS and content:
            metadata.setdefault(_META_FIELDS[key], content)
    html = tree.css_first("html")
    if html is not None and (lang := html.attributes.get("lang")):
        metadata["language"] = lang
    title_node = tree.css_first("title") or tree.css_first("h1")
    title = _normalize(title_node.text(), collapse_spaces=True) if title_node else ""
    title = title.replace("\n", " ") or _stem(name)
    metadata["title"] = title

    tree.strip_tags(_DROP_TAGS)
    body = tree.body
    text = ""
    if body is not None:
        for selector, mark in ((_PARAGRAPH_TAGS, _PARA_MARK), (_LINE_TAGS, _LINE_MARK)):
            for node in body.css(selector):
                node.insert_before(mark)
                node.insert_after(mark)
        flat = re.sub(r"\s+", " ", body.text())
        flat = _MARKS.sub(lambda m: "\n\n" if _PARA_MARK in m.group() else "\n", flat)
        text = _normalize(flat, collapse_spaces=True)
    return ParsedDocument(source=name, format="html", text=text, title=title, metadata=metadata)


# --- PDF -------------------------------------------------------------------------------

_PDF_INFO = {
    "/Title": "title",
    "/Author": "author",
    "/Subject": "subject",
    "/Keywords": "keywords",
}


def _pdf_date(raw: Any) -> str | None:
    """``D:20240131...`` → ``2024-01-31``; anything unparseable is dropped, not guessed."""
    match = re.match(r"D:(\d{4})(\d{2})?(\d{2})?", str(raw))
    if match is None:
        return None
    year, month, day = match.group(1), match.group(2) or "01", match.group(3) or "01"
    try:
        return date(int(year), int(month), int(day)).isoformat()
    except ValueError:
        return None


def _parse_pdf(name: str, data: bytes) -> ParsedDocument:
    try:
        reader = PdfReader(io.BytesIO(data))
        locked = reader.is_encrypted and not reader.decrypt("")
        pages = [] if locked else [page.extract_text() or "" for page in reader.pages]
        meta = None if locked else reader.metadata
        # Indexing (not dict()) resolves indirect references to their values.
        info: dict[str, Any] = {key: meta[key] for key in meta} if meta else {}
    except Exception as exc:  # pypdf raises many exception types on broken files
        raise ParseError(f"malformed PDF: {exc}", "malformed", source=name) from exc
    if locked:
        raise ParseError("PDF is password-protected", "malformed", source=name)
    text = _normalize("\n\n".join(pages), collapse_spaces=True)
    if not text:
        raise ParseError(
            "PDF has no text layer (scanned images?); it needs OCR first", "empty", source=name
        )
    metadata: dict[str, Any] = {"pages": len(pages)}
    for key, field in _PDF_INFO.items():
        value = info.get(key)
        if value and str(value).strip():
            metadata[field] = str(value).strip()
    if created := _pdf_date(info.get("/CreationDate", "")):
        metadata["date"] = created
    title = metadata.get("title") or _stem(name)
    metadata["title"] = title
    return ParsedDocument(source=name, format="pdf", text=text, title=title, metadata=metadata)


# --- JSON Lines ------------------------------------------------------------------------


def _jsonl_record(name: str, lineno: int, raw: bytes) -> ParsedDocument:
    source = f"{name}#L{lineno}"
    try:
        record = json.loads(raw.decode("utf-8-sig" if lineno == 1 else "utf-8"))
    except UnicodeDecodeError as exc:
        raise ParseError("line is not valid UTF-8", "malformed", source=source) from exc
    except json.JSONDecodeError as exc:
        raise ParseError(f"invalid JSON: {exc.msg}", "malformed", source=source) from exc
    if not isinstance(record, dict):
        raise ParseError("line is not a JSON object", "malformed", source=source)
    text = record.get("text")
    if not isinstance(text, str):
        raise ParseError('missing string field "text"', "malformed", source=source)
    text = _normalize(text, collapse_spaces=False)
    if not text:
        raise ParseError('"text" is empty', "empty", source=source)
    # Both shapes are common: fields beside "text", or under "metadata"; beside wins.
    nested = record.get("metadata")
    fields = dict(nested) if isinstance(nested, dict) else {}
    fields.update((k, v) for k, v in record.items() if k != "text" and k != "metadata")
    if nested is not None and not isinstance(nested, dict):
        fields["metadata"] = nested
    metadata = _json_safe(fields)
    declared = metadata.get("title")
    title = str(declared).strip() if declared else f"{_stem(name)} line {lineno}"
    metadata["title"] = title
    return ParsedDocument(source=source, format="jsonl", text=text, title=title, metadata=metadata)


_PARSERS: dict[Format, Callable[[str, bytes], ParsedDocument]] = {
    "text": _parse_text,
    "markdown": _parse_markdown,
    "html": _parse_html,
    "pdf": _parse_pdf,
}


def _parse_jsonl(name: str, data: bytes, errors: list[ParseError] | None) -> list[ParsedDocument]:
    if b"\x00" in data:
        raise ParseError("binary content (NUL bytes); expected JSON Lines", "binary", source=name)
    docs: list[ParsedDocument] = []
    seen_line = False
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        seen_line = True
        try:
            docs.append(_jsonl_record(name, lineno, raw))
        except ParseError as exc:
            if errors is None:
                raise
            errors.append(exc)
    if not seen_line:
        raise ParseError("empty file", "empty", source=name)
    return docs
