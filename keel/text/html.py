"""HTML as text: a page's main content as markdown, its title and meta fields.

Pages published by documentation sites (mdBook, Sphinx, MkDocs, Docusaurus) carry as much
chrome as content: a table of contents in a sidebar, theme pickers, "keyboard shortcuts"
help, headers and footers. For a page with such chrome (a ``nav``, ``aside``, ``header`` or
``footer`` element, or a navigation/banner/contentinfo role) trafilatura picks the main
content and writes it as markdown: headings as ``#`` lines (the chunker cuts before them and
ingestion turns them into each chunk's section), code blocks fenced with their line breaks,
tables as pipe tables. A page without chrome has nothing to remove; trafilatura is tuned for
real pages and drops headings of bare ones, so those keep every visible block, as does a page
where trafilatura finds no main content.
"""

from __future__ import annotations

import re
from typing import Any

import trafilatura
from selectolax.lexbor import LexborHTMLParser
from trafilatura.settings import use_config

from keel.text.document import ParsedDocument, ParseError, normalize, stem

_DROP_TAGS = ["script", "style", "noscript", "template", "svg", "iframe", "object", "canvas"]
# Permalink anchors that documentation generators append to headings ("¶", "#").
_PERMALINKS = "a.headerlink,a.hash-link,a.anchor-link,a.anchorjs-link"
_CHROME = (
    "nav,aside,header,footer,[role=navigation],[role=banner],[role=contentinfo],"
    "[role=complementary]"
)
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
_FENCE = re.compile(r"^\s*(```|~~~)")
_SPACES = re.compile(r"[^\S\n]+")
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


def _extractor_config() -> Any:
    config = use_config()
    # Short pages are still pages; and the default timeout uses SIGALRM, which only the
    # main thread may set (parsing runs in activity threads).
    config.set("DEFAULT", "MIN_EXTRACTED_SIZE", "1")
    config.set("DEFAULT", "MIN_OUTPUT_SIZE", "1")
    config.set("DEFAULT", "EXTRACTION_TIMEOUT", "0")
    return config


_CONFIG = _extractor_config()


def parse_html(name: str, data: bytes) -> ParsedDocument:
    if b"\x00" in data:
        raise ParseError("binary content (NUL bytes); expected HTML", "binary", source=name)
    try:
        tree = LexborHTMLParser(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        # Legacy pages declare their charset in <meta>; lexbor honours it.
        tree = LexborHTMLParser(data, encoding=True)
    metadata = _meta_fields(tree)
    title_node = tree.css_first("title") or tree.css_first("h1")
    title = normalize(title_node.text(), collapse_spaces=True) if title_node else ""
    title = title.replace("\n", " ") or stem(name)
    metadata["title"] = title

    tree.strip_tags(_DROP_TAGS)
    for node in tree.css(_PERMALINKS):
        node.decompose()
    text = ""
    if tree.body is not None and tree.body.css_first(_CHROME) is not None:
        text = main_content(tree.html or "")
    if not text:
        text = visible_text(tree)
    return ParsedDocument(source=name, format="html", text=text, title=title, metadata=metadata)


def main_content(html: str) -> str:
    """The page's main content as markdown (trafilatura), or "" where it finds none."""
    found = trafilatura.extract(
        html,
        output_format="markdown",
        include_formatting=True,
        include_tables=True,
        include_links=False,
        include_images=False,
        include_comments=False,
        favor_recall=True,
        config=_CONFIG,
    )
    return _tidy(found) if found else ""


def visible_text(tree: LexborHTMLParser) -> str:
    """Every visible block of the page's body, one per line (scripts already stripped)."""
    body = tree.body
    if body is None:
        return ""
    for selector, mark in ((_PARAGRAPH_TAGS, _PARA_MARK), (_LINE_TAGS, _LINE_MARK)):
        for node in body.css(selector):
            node.insert_before(mark)
            node.insert_after(mark)
    flat = re.sub(r"\s+", " ", body.text())
    flat = _MARKS.sub(lambda m: "\n\n" if _PARA_MARK in m.group() else "\n", flat)
    return normalize(flat, collapse_spaces=True)


def _tidy(markdown: str) -> str:
    """Layout spaces collapsed outside code blocks; code keeps its indentation."""
    lines: list[str] = []
    in_code = False
    for line in markdown.split("\n"):
        if _FENCE.match(line):
            in_code = not in_code
            lines.append(line.strip())
        elif in_code:
            lines.append(line)
        else:
            lines.append(_SPACES.sub(" ", line).strip())
    return normalize("\n".join(lines), collapse_spaces=False)


def _meta_fields(tree: LexborHTMLParser) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    for meta in tree.css("meta[content]"):
        key = (meta.attributes.get("name") or meta.attributes.get("property") or "").lower()
        content = (meta.attributes.get("content") or "").strip()
        if key in _META_FIELDS and content:
            metadata.setdefault(_META_FIELDS[key], content)
    html = tree.css_first("html")
    if html is not None and (lang := html.attributes.get("lang")):
        metadata["language"] = lang
    return metadata
