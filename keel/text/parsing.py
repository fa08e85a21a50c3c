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

import json
import re
from collections.abc import Callable
from datetime import date, datetime
from pathlib import PurePosixPath
from typing import Any

import yaml

from keel.text.document import (
    Format,
    ParsedDocument,
    ParseError,
    decode,
    normalize,
    stem,
)
from keel.text.html import parse_html
from keel.text.pdf import parse_pdf

__all__ = [
    "FORMATS",
    "SUPPORTED_EXTENSIONS",
    "ParseError",
    "ParsedDocument",
    "parse_document",
    "parse_file",
]

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


def _parse_text(name: str, data: bytes) -> ParsedDocument:
    text = normalize(decode(data, source=name), collapse_spaces=False)
    title = stem(name)
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
    raw = decode(data, source=name).replace("\r\n", "\n").replace("\r", "\n")
    metadata, body = _front_matter(raw, source=name)
    text = normalize(body, collapse_spaces=False)
    declared = metadata.get("title")
    title = str(declared).strip() if declared else (_first_heading(text) or stem(name))
    metadata["title"] = title
    return ParsedDocument(source=name, format="markdown", text=text, title=title, metadata=metadata)


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
    text = normalize(text, collapse_spaces=False)
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
    title = str(declared).strip() if declared else f"{stem(name)} line {lineno}"
    metadata["title"] = title
    return ParsedDocument(source=source, format="jsonl", text=text, title=title, metadata=metadata)


_PARSERS: dict[Format, Callable[[str, bytes], ParsedDocument]] = {
    "text": _parse_text,
    "markdown": _parse_markdown,
    "html": parse_html,
    "pdf": parse_pdf,
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
