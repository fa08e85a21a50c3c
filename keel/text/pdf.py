"""PDF as text: the text layer (pypdf) and the document information dictionary."""

from __future__ import annotations

import io
import re
from datetime import date
from typing import Any

from pypdf import PdfReader

from keel.text.document import ParsedDocument, ParseError, normalize, stem

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


def parse_pdf(name: str, data: bytes) -> ParsedDocument:
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
    text = normalize("\n\n".join(pages), collapse_spaces=True)
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
    title = metadata.get("title") or stem(name)
    metadata["title"] = title
    return ParsedDocument(source=name, format="pdf", text=text, title=title, metadata=metadata)
