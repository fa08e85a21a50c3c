"""Parsing: every format, every failure kind, on small files kept in tests/data/ingest."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.text.parsing import ParseError, parse_document, parse_file

DATA = Path(__file__).parent / "data" / "ingest"
LIMIT = 1_000_000


def make_pdf(pages: list[str], info: dict[str, str] | None = None) -> bytes:
    """The smallest valid PDF: one Helvetica line per page ("" = a page with no text)."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        (
            f"<< /Type /Pages /Kids [{' '.join(f'{4 + 2 * i} 0 R' for i in range(len(pages)))}]"
            f" /Count {len(pages)} >>"
        ).encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for i, line in enumerate(pages):
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792]"
            b" /Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (5 + 2 * i)
        )
        stream = f"BT /F1 12 Tf 72 720 Td ({line}) Tj ET".encode() if line else b""
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    if info:
        objects.append(f"<< {' '.join(f'/{k} ({v})' for k, v in info.items())} >>".encode())
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    info_ref = f" /Info {len(objects)} 0 R" if info else ""
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R{info_ref} >>\n".encode()
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def failure(name: str, data: bytes, *, max_bytes: int = LIMIT) -> ParseError:
    with pytest.raises(ParseError) as caught:
        parse_file(name, data, max_bytes=max_bytes)
    return caught.value


# --- failures every format shares ---------------------------------------------------------


def test_empty_file_is_refused_by_name() -> None:
    err = failure("notes.txt", b"")
    assert (err.kind, err.reason, err.source) == ("empty", "empty file", "notes.txt")


def test_whitespace_only_file_has_no_text() -> None:
    assert failure("notes.txt", b"  \n\t\r\n ").kind == "empty"


def test_too_large_names_the_limit() -> None:
    err = failure("big.md", b"x" * 2049, max_bytes=2048)
    assert err.kind == "too_large"
    assert "2,048" in err.reason
    assert "2,049" in err.reason


@pytest.mark.parametrize("name", ["slides.pptx", "archive.tar.gz", "README", "data.json"])
def test_unsupported_extension_names_the_supported_ones(name: str) -> None:
    err = failure(name, b"anything")
    assert err.kind == "unsupported"
    for ext in (".txt", ".md", ".html", ".pdf", ".jsonl"):
        assert ext in err.reason


def test_extension_is_case_insensitive() -> None:
    assert parse_document("SHOUT.TXT", b"hello", max_bytes=LIMIT).format == "text"


def test_error_is_an_exception_carrying_its_fields() -> None:
    err = ParseError("bad", "malformed", source="a.md")
    assert str(err) == "a.md: bad"
    assert (err.reason, err.kind, err.source) == ("bad", "malformed", "a.md")


# --- plain text -----------------------------------------------------------------------


def test_text_is_normalised_but_keeps_indentation() -> None:
    raw = "\ufeffTitle line  \r\n\r\n\r\n\r\n    indented code\r\nnext\x07line\t\n\n".encode()
    doc = parse_document("docs/guide.txt", raw, max_bytes=LIMIT)
    assert doc.text == "Title line\n\n    indented code\nnextline"
    assert doc.title == "guide"
    assert doc.metadata == {"title": "guide"}
    assert doc.source == "docs/guide.txt"


def test_text_is_nfc_normalised() -> None:
    doc = parse_document("a.txt", "cafe\u0301".encode(), max_bytes=LIMIT)
    assert doc.text == "caf\u00e9"


def test_utf16_with_bom_is_text() -> None:
    doc = parse_document("a.txt", "\ufeffhello wörld".encode("utf-16-le"), max_bytes=LIMIT)
    assert doc.text == "hello wörld"


@pytest.mark.parametrize(
    ("data", "hint"),
    [
        (b"PK\x03\x04\x00\x00zipdata", "NUL"),
        (b"\x89PNG\r\n\x1a\n\xff\xd8\xff", "UTF-8"),
        ("naïve".encode("latin-1"), "UTF-8"),
    ],
)
def test_binary_or_undecodable_text_is_refused(data: bytes, hint: str) -> None:
    err = failure("renamed.txt", data)
    assert err.kind == "binary"
    assert hint in err.reason


# --- markdown -------------------------------------------------------------------------


def test_markdown_front_matter_becomes_metadata() -> None:
    doc = parse_document("handbook.md", (DATA / "handbook.md").read_bytes(), max_bytes=LIMIT)
    assert doc.format == "markdown"
    assert doc.title == "Travel Expense Policy"
    assert doc.metadata == {
        "title": "Travel Expense Policy",
        "date": "2024-03-15",  # YAML dates become ISO strings: metadata must be JSON-safe
        "department": "Finance",
        "doc_type": "policy",
        "tags": ["travel", "expenses"],
    }
    # The markdown itself is kept (headings, lists, code), minus the front matter.
    assert doc.text.startswith("# Travel expenses\n\nEmployees book travel")
    assert "portal.\nReceipts" in doc.text  # trailing spaces gone
    assert "EUR.\n\n## Per diem" in doc.text  # blank-line runs collapsed to one
    assert "- Hotels: up to 150 EUR per night" in doc.text
    assert "title:" not in doc.text


def test_markdown_title_from_first_heading_outside_code() -> None:
    md = b"Intro line.\n\n```\n# a comment\n```\n\n#  Real Title  #\n\nBody.\n"
    assert parse_document("x.md", md, max_bytes=LIMIT).title == "Real Title"


def test_markdown_setext_title_and_fallback_to_file_name() -> None:
    assert parse_document("x.md", b"Big Title\n=====\n\ntext", max_bytes=LIMIT).title == "Big Title"
    assert parse_document("notes.markdown", b"## Only h2\n\ntext", max_bytes=LIMIT).title == "notes"


def test_markdown_invalid_front_matter_is_malformed() -> None:
    err = failure("bad.md", b"---\ntitle: [unclosed\n---\n\nBody\n")
    assert err.kind == "malformed"
    assert "front matter" in err.reason


def test_markdown_leading_rule_is_not_front_matter() -> None:
    doc = parse_document("x.md", b"---\nJust a line\n---\n\nBody", max_bytes=LIMIT)
    assert doc.text.startswith("---\nJust a line")
    assert doc.metadata == {"title": "x"}


# --- HTML ------------------------------------------------------------------------------


def test_html_keeps_visible_text_only() -> None:
    raw = (DATA / "release-notes.html").read_bytes()
    doc = parse_document("release-notes.html", raw, max_bytes=LIMIT)
    assert doc.format == "html"
    assert doc.title == "Release Notes 4.2"
    assert doc.text == (
        "Version 4.2\n\n"
        "The scheduler now retries failed jobs with exponential backoff.\n\n"
        "Faster uploads\nCafé & bakery mode"
    )
    for hidden in ("tracking", "font-family", "JavaScript", "Hidden template"):
        assert hidden not in doc.text
    assert doc.metadata == {
        "author": "Platform Team",
        "department": "Engineering",
        "language": "en",
        "title": "Release Notes 4.2",
    }


def test_html_legacy_charset_is_honoured() -> None:
    raw = (
        '<html><head><meta charset="windows-1252"><title>Café</title></head>'
        "<body><p>naïve résumé</p></body></html>"
    ).encode("cp1252")
    doc = parse_document("old.htm", raw, max_bytes=LIMIT)
    assert (doc.title, doc.text) == ("Café", "naïve résumé")


def test_html_without_title_falls_back_to_h1_then_name() -> None:
    assert parse_document("p.html", b"<h1>Heading</h1><p>x</p>", max_bytes=LIMIT).title == "Heading"
    assert parse_document("page.html", b"<p>x</p>", max_bytes=LIMIT).title == "page"


def test_html_with_only_scripts_has_no_text() -> None:
    assert failure("app.html", b"<html><script>var a = 1;</script></html>").kind == "empty"


# --- PDF -------------------------------------------------------------------------------


def test_pdf_text_layer_and_info() -> None:
    raw = make_pdf(
        ["Quarterly revenue grew by 12 percent.", "Costs stayed flat."],
        {"Title": "Q3 Report", "Author": "Finance", "CreationDate": "D:20240131120000Z"},
    )
    doc = parse_document("q3.pdf", raw, max_bytes=LIMIT)
    assert doc.format == "pdf"
    assert doc.text == "Quarterly revenue grew by 12 percent.\n\nCosts stayed flat."
    assert doc.title == "Q3 Report"
    assert doc.metadata == {
        "pages": 2,
        "title": "Q3 Report",
        "author": "Finance",
        "date": "2024-01-31",
    }


def test_pdf_without_text_layer_is_refused() -> None:
    err = failure("scan.pdf", make_pdf(["", ""]))
    assert err.kind == "empty"
    assert "text layer" in err.reason


@pytest.mark.parametrize(
    "data", [b"%PDF-1.4\nnot really a pdf", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, b"%PDF-"]
)
def test_malformed_pdf_is_refused(data: bytes) -> None:
    err = failure("broken.pdf", data)
    assert err.kind == "malformed"
    assert "PDF" in err.reason


# --- JSON Lines ------------------------------------------------------------------------


def test_jsonl_gives_one_document_per_line_and_reports_bad_lines() -> None:
    errors: list[ParseError] = []
    docs = parse_file(
        "faq.jsonl", (DATA / "faq.jsonl").read_bytes(), max_bytes=LIMIT, errors=errors
    )
    assert [d.source for d in docs] == ["faq.jsonl#L1", "faq.jsonl#L3", "faq.jsonl#L8"]
    assert [d.text for d in docs] == [
        "Refunds are issued within 14 days.",
        "Shipping is free above 50 EUR.",
        "Returns need the original packaging.",
    ]
    assert docs[0].title == "Refunds"
    assert docs[0].metadata == {"title": "Refunds", "department": "Support", "date": "2024-05-01"}
    assert docs[1].metadata == {"doc_type": "faq", "tags": ["shipping"], "title": "faq line 3"}
    assert all(d.format == "jsonl" for d in docs)
    assert [(e.source, e.kind) for e in errors] == [
        ("faq.jsonl#L4", "malformed"),
        ("faq.jsonl#L5", "malformed"),
        ("faq.jsonl#L6", "malformed"),
        ("faq.jsonl#L7", "empty"),
    ]
    assert "invalid JSON" in errors[0].reason
    assert "not a JSON object" in errors[1].reason
    assert '"text"' in errors[2].reason


def test_jsonl_without_error_list_raises_on_first_bad_line() -> None:
    err = failure("faq.jsonl", (DATA / "faq.jsonl").read_bytes())
    assert (err.source, err.kind) == ("faq.jsonl#L4", "malformed")


def test_jsonl_bad_utf8_line_is_isolated() -> None:
    errors: list[ParseError] = []
    data = b'{"text": "ok"}\n{"text": "caf\xe9"}\n'
    docs = parse_file("x.jsonl", data, max_bytes=LIMIT, errors=errors)
    assert [d.source for d in docs] == ["x.jsonl#L1"]
    assert [(e.source, e.kind) for e in errors] == [("x.jsonl#L2", "malformed")]


def test_jsonl_nested_metadata_is_merged() -> None:
    line = b'{"text": "t", "metadata": {"department": "Legal", "title": "T"}, "title": "Top"}'
    [doc] = parse_file("x.jsonl", line, max_bytes=LIMIT)
    assert doc.metadata == {"department": "Legal", "title": "Top"}


def test_jsonl_of_blank_lines_is_empty() -> None:
    assert failure("x.jsonl", b"\n  \n\n").kind == "empty"


def test_parse_document_refuses_a_multi_record_file() -> None:
    with pytest.raises(ParseError) as caught:
        parse_document("faq.jsonl", b'{"text": "a"}\n{"text": "b"}\n', max_bytes=LIMIT)
    assert "parse_file" in caught.value.reason


def test_parsed_document_is_json_serialisable() -> None:
    doc = parse_document("handbook.md", (DATA / "handbook.md").read_bytes(), max_bytes=LIMIT)
    assert type(doc).model_validate_json(doc.model_dump_json()) == doc
