"""Small mixed-format corpora for ingestion tests and the bench, and their expected chunks.

The expected counts come from `parse_file` + `chunk_text` called directly, not from the
ingestion code, so a test compares the pipeline with an independent computation.
"""

from __future__ import annotations

import json
import random
from functools import lru_cache
from typing import Any

from tokenizers import Tokenizer

from activities.staging import StagedFile, stage_files
from api.routes.ingest import new_job_id
from keel.auth import ensure_tenant
from keel.clients import Clients
from keel.contracts.ingest import IngestJob, IngestOptions
from keel.embedding import load_tokenizer, minilm_tokenizer_path
from keel.settings import Settings
from keel.text.chunking import chunk_text
from keel.text.parsing import ParseError, parse_file
from tests.test_parsing import make_pdf
from workflows.common import run_attributes
from workflows.ingest import IngestWorkflow

TOPICS = [
    ("Finance", "expense reports", "receipts are scanned and attached within thirty days"),
    ("HR", "parental leave", "employees may take up to sixteen weeks of paid leave"),
    ("Engineering", "deploy windows", "production deploys happen on weekday mornings"),
    ("Support", "refund requests", "refunds are issued within fourteen days of approval"),
    ("Legal", "contract review", "contracts above fifty thousand euros need two signatures"),
    ("Security", "badge access", "lost badges must be reported to the front desk at once"),
    ("Facilities", "meeting rooms", "rooms are booked through the calendar for two hours max"),
    ("Sales", "discount approval", "discounts above twenty percent need a director's approval"),
]
WORDS = (
    "river lantern copper meadow orbit velvet harbor quartz saddle timber falcon glacier "
    "pepper canyon marble violet anchor beacon cedar dune ember fjord grove heron island "
    "jasper kelp lotus mango nectar oasis pebble quill raven sierra tundra umber willow"
).split()


def _sentences(rng: random.Random, index: int, count: int) -> str:
    department, topic, rule = TOPICS[index % len(TOPICS)]
    marker = " ".join(rng.sample(WORDS, 3))
    parts = [f"Document {index} of {department} about {topic}: {rule}."]
    parts += [f"Note {k} mentions {marker} for item {index}-{k}." for k in range(count - 1)]
    return " ".join(parts)


def mixed_corpus(files: int, *, seed: int = 7) -> dict[str, bytes]:
    """`files` small files cycling through txt, md, html, pdf and jsonl (3 records each)."""
    rng = random.Random(seed)
    out: dict[str, bytes] = {}
    for i in range(files):
        body = _sentences(rng, i, 1 + i % 3)
        department = TOPICS[i % len(TOPICS)][0]
        kind = i % 5
        if kind == 0:
            out[f"notes/note-{i:04d}.txt"] = body.encode()
        elif kind == 1:
            front = f"---\ntitle: Policy {i}\ndepartment: {department}\ndoc_type: policy\n"
            front += f"date: 2024-{1 + i % 12:02d}-15\n---\n\n"
            out[f"policies/policy-{i:04d}.md"] = (front + f"# Policy {i}\n\n{body}\n").encode()
        elif kind == 2:
            html = (
                f"<html><head><title>Page {i}</title>"
                f'<meta name="department" content="{department}"></head>'
                f"<body><h1>Page {i}</h1><p>{body}</p></body></html>"
            )
            out[f"site/page-{i:04d}.html"] = html.encode()
        elif kind == 3:
            out[f"reports/report-{i:04d}.pdf"] = make_pdf([body], {"Title": f"Report {i}"})
        else:
            lines = [
                json.dumps({"text": f"{body} Record {k}.", "department": department, "k": k})
                for k in range(3)
            ]
            out[f"faq/faq-{i:04d}.jsonl"] = ("\n".join(lines) + "\n").encode()
    return out


def long_text(tokens: int, *, seed: int = 3) -> str:
    """Ordinary prose of at least `tokens` word pieces (several chunks' worth)."""
    rng = random.Random(seed)
    tokenizer = _tokenizer()
    sentences: list[str] = []
    # Word pieces never span whitespace, so the joined text's count is the sum of its parts'.
    counted = 0
    while counted < tokens:
        sentences.append(_sentences(rng, len(sentences), 2))
        counted += len(tokenizer.encode(sentences[-1], add_special_tokens=False).ids)
    return " ".join(sentences)


@lru_cache(maxsize=1)
def _tokenizer() -> Tokenizer:
    return load_tokenizer(minilm_tokenizer_path())


def expected_chunks(
    files: dict[str, bytes], *, target: int = 512, overlap: int = 50, max_bytes: int = 10**9
) -> dict[str, int]:
    """Chunks each document (by source) should get, from parse_file + chunk_text directly."""
    tokenizer = load_tokenizer(minilm_tokenizer_path())
    out: dict[str, int] = {}
    for name, data in files.items():
        try:
            docs = parse_file(name, data, max_bytes=max_bytes, errors=[])
        except ParseError:
            continue
        for doc in docs:
            cut = chunk_text(doc.text, tokenizer, target_tokens=target, overlap_tokens=overlap)
            out[doc.source] = len(cut)
    return out


def expected(files: dict[str, bytes], **kwargs: int) -> tuple[int, int]:
    """(documents, chunks) the corpus should produce."""
    per_source = expected_chunks(files, **kwargs)
    return len(per_source), sum(per_source.values())


async def start_job(
    clients: Clients, settings: Settings, tenant: str, files: dict[str, bytes], **options: Any
) -> str:
    """Stage `files` and start IngestWorkflow directly (options the API does not expose,
    such as batch sizes, are set here); returns the job id."""
    tid = await ensure_tenant(clients.engine, tenant)
    job_id = new_job_id()
    await stage_files(
        clients.engine,
        tenant_id=tid,
        job_id=job_id,
        files=[StagedFile(name=n, data=d, path=None, size=len(d)) for n, d in files.items()],
    )
    await clients.temporal.start_workflow(
        IngestWorkflow.run,
        IngestJob(
            job_id=job_id,
            tenant=tenant,
            tenant_id=str(tid),
            gpu_queue=settings.task_queue_gpu,
            options=IngestOptions(**options),
        ),
        id=job_id,
        task_queue=settings.task_queue_cpu,
        search_attributes=run_attributes(tenant, "ingest"),
    )
    return job_id
