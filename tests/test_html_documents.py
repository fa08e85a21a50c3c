"""Documentation-site HTML (mdBook, Sphinx, MkDocs, Docusaurus) becomes its main content as
markdown, and its headings become each chunk's section: in the chunk's metadata, and in the
header the model sees above the source.

Two fixtures are real pages as their generators wrote them (tests/data/html/README.md says
where they come from); two are built in the shape MkDocs Material and Docusaurus emit.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from selectolax.lexbor import LexborHTMLParser
from sqlalchemy import text
from temporalio.worker import Worker

from activities.rag.context import fetch_sources
from keel.auth import ensure_tenant
from keel.clients import Clients
from keel.rag.prompt import header
from keel.text.html import visible_text
from keel.text.parsing import parse_document
from keel.text.sections import Sections, under_title
from tests.conftest import Caller
from tests.test_ingest import ingest

HTML = Path(__file__).parent / "data" / "html"
LIMIT = 5_000_000

CARGO = "mdbook-cargo-profiles.html"
IDLE = "sphinx-idle-help.html"
MKDOCS = "mkdocs-material-backups.html"
DOCUSAURUS = "docusaurus-webhooks.html"

# What each page's chrome says (navigation, theme pickers, help overlays, footers): present
# in the page's visible text, absent from what Keel keeps.
CHROME = {
    CARGO: ["Keyboard shortcuts", "Press ? to show this help", "Coal", "Navy", "Ayu"],
    IDLE: ["Theme Auto Light Dark", "Previous topic", "Report a Bug", "Show Source", "¶"],
    MKDOCS: ["Switch to dark mode", "Initializing search", "Table of contents", "Made with"],
    DOCUSAURUS: ["Switch between dark and light mode", "Collapse sidebar", "On this page"],
}


def parsed(name: str) -> str:
    return parse_document(name, (HTML / name).read_bytes(), max_bytes=LIMIT).text


def before(name: str) -> str:
    """What Keel kept before: every visible block of the body."""
    tree = LexborHTMLParser((HTML / name).read_text())
    tree.strip_tags(["script", "style", "noscript", "template", "svg"])
    return visible_text(tree)


@pytest.mark.parametrize("name", sorted(CHROME))
def test_site_chrome_is_dropped_and_the_content_kept(name: str) -> None:
    old, new = before(name), parsed(name)
    for boilerplate in CHROME[name]:
        assert boilerplate in old, f"fixture {name} should show {boilerplate!r}"
        assert boilerplate not in new, f"{boilerplate!r} kept from {name}"


def test_mdbook_page_before_and_after() -> None:
    old, new = before(CARGO), parsed(CARGO)
    # The sidebar's table of contents of the whole book came first; now the page does.
    assert old.index("Keyboard shortcuts") < old.index("Profiles provide a way")
    assert new.startswith("# Profiles\n\nProfiles provide a way to alter the compiler settings")
    # Code blocks were one flattened line; now they are fenced with their line breaks and
    # their alignment.
    assert "[profile.dev] opt-level = 1 # Use slightly better optimizations." in old
    assert (
        "```\n[profile.dev]\n"
        "opt-level = 1               # Use slightly better optimizations.\n"
        "overflow-checks = false     # Disable integer overflow checks.\n```"
    ) in new
    assert "### strip\n\nThe `strip` option controls the `-C strip` flag" in new


def test_sphinx_and_built_pages_keep_headings_and_code() -> None:
    idle = parsed(IDLE)
    assert idle.startswith("# IDLE\n")
    assert "## Startup and Code Execution\n" in idle
    mkdocs = parsed(MKDOCS)
    assert "```\n[retention]\ndaily = 14\nweekly = 8\n# monthly snapshots are off" in mkdocs
    assert "harbor restore --snapshot 2026-11-30T02:30Z \\\n    --bucket invoices" in mkdocs
    docusaurus = parsed(DOCUSAURUS)
    assert (
        "def verify(body: bytes, header: str, secret: bytes) -> bool:\n"
        "    expected = hmac.new(secret, body, hashlib.sha256).hexdigest()\n"
    ) in docusaurus
    assert "Copy code to clipboard" not in docusaurus


def test_sections_follow_heading_levels_and_skip_code() -> None:
    doc = parsed(CARGO)
    sections = Sections(doc)
    assert sections.at(doc.index("The `strip` option")) == "Profiles › Profile settings › strip"
    assert sections.at(doc.index("Profiles provide")) == "Profiles"
    # `# ...` inside the TOML example is a comment, not a heading.
    assert not any(path.endswith("...") for path in sections.paths)
    assert Sections("no headings here").at(5) is None
    assert Sections(parsed(MKDOCS)).paths == [
        "Backups",
        "Backups › Snapshot schedule",
        "Backups › Restoring a bucket",
    ]
    assert under_title("Profiles › Profile settings › strip", "Profiles - The Cargo Book") == (
        "Profile settings › strip"
    )
    assert under_title("Webhooks", "Webhooks | Ledgerline Docs") == ""


def test_pages_without_chrome_keep_every_block() -> None:
    doc = parse_document(
        "notes.html",
        b"<html><body><h1>Notes</h1><p>One <b>bold</b> line.</p><ul><li>a</li></ul></body></html>",
        max_bytes=LIMIT,
    )
    assert doc.text == "Notes\n\nOne bold line.\n\na"


@pytest.mark.timeout(180)
async def test_ingested_pages_carry_sections_into_chunks_and_context(
    api: httpx.AsyncClient, clients: Clients, caller: Caller, workers: list[Worker]
) -> None:
    files = {name: (HTML / name).read_bytes() for name in (CARGO, MKDOCS, DOCUSAURUS)}
    result = await ingest(api, clients, caller, files)
    assert (result.documents_stored, result.documents_failed) == (3, 0)
    tenant = await ensure_tenant(clients.engine, caller.tenant)
    async with clients.engine.connect() as conn:
        found = (
            await conn.execute(
                text(
                    "SELECT id, metadata->>'section' FROM chunks WHERE tenant_id = :t "
                    "AND text LIKE :needle ORDER BY id"
                ),
                {"t": tenant, "needle": "%Possible string values of `strip`%"},
            )
        ).all()
        leaked = await conn.scalar(
            text("SELECT count(*) FROM chunks WHERE tenant_id = :t AND text LIKE :c"),
            {"t": tenant, "c": "%Keyboard shortcuts%"},
        )
    assert found and leaked == 0
    chunk_id, section = found[0]
    # The chunk starts at or after the strip heading, or under an earlier setting's heading.
    assert section.startswith("Profiles › Profile settings › ")
    [(ref, body)] = await fetch_sources(clients.engine, tenant, [chunk_id])
    assert ref.section == section
    assert header(ref) == f"Profiles - The Cargo Book › {under_title(section, ref.title)}"
    assert '```\n[package]\n# ...\n[profile.release]\nstrip = "debuginfo"\n```' in body

    answer = await api.post(
        "/v1/rag/query",
        json={"question": "How often are Harbor webhook deliveries retried?"},
        headers=caller.headers,
    )
    assert answer.status_code == 200, answer.text
    sources = answer.json()["result"]["sources"]
    # The small page is one chunk, under its first heading.
    assert sources[0]["title"] == "Webhooks | Ledgerline Docs"
    assert sources[0]["section"] == "Webhooks"
