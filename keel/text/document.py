"""What parsing produces (`ParsedDocument`, `ParseError`) and the text hygiene every format
shares: decoding, control characters, whitespace."""

from __future__ import annotations

import re
import unicodedata
from pathlib import PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Format = Literal["text", "markdown", "html", "pdf", "jsonl"]
ParseErrorKind = Literal["empty", "too_large", "binary", "unsupported", "malformed"]


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


# C0/C1 controls other than tab and newline: they carry no meaning in prose and confuse
# tokenizers and full-text search alike.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_BLANK_RUNS = re.compile(r"\n{3,}")
_SPACES = re.compile(r"[^\S\n]+")


def normalize(text: str, *, collapse_spaces: bool) -> str:
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


def decode(data: bytes, *, source: str) -> str:
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


def stem(name: str) -> str:
    return PurePosixPath(name.split("#", 1)[0]).stem or name
