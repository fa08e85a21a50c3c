"""HTML as text: the visible text of a page, blocks as lines, its title and meta fields."""

from __future__ import annotations

import re
from typing import Any

from selectolax.lexbor import LexborHTMLParser

from keel.text.document import ParsedDocument, ParseError, normalize, stem

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


def parse_html(name: str, data: bytes) -> ParsedDocument:
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
    title = normalize(title_node.text(), collapse_spaces=True) if title_node else ""
    title = title.replace("\n", " ") or stem(name)
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
        text = normalize(flat, collapse_spaces=True)
    return ParsedDocument(source=name, format="html", text=text, title=title, metadata=metadata)
