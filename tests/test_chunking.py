"""Chunking with all-MiniLM-L6-v2's own WordPiece tokenizer."""

from __future__ import annotations

import random

import pytest
from tokenizers import Tokenizer

from keel.embedding import load_tokenizer, minilm_tokenizer_path
from keel.text.chunking import Chunk, chunk_text, count_tokens

# A small vocabulary keeps generated prose readable and its token counts predictable.
VOCABULARY = (
    "orchestration durable workflow activity retry budget tenant embedding vector search "
    "rerank citation ledger escalation signal approve reject replay history worker queue "
    "the a of to and in is for on with as by at from that this it be are was"
)
WORDS = VOCABULARY.split()


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return load_tokenizer(minilm_tokenizer_path())


def prose(seed: int, paragraphs: int = 12) -> str:
    """Deterministic prose: paragraphs of sentences of common words, some with commas."""
    rng = random.Random(seed)
    paras = []
    for _ in range(paragraphs):
        sentences = []
        for _ in range(rng.randint(2, 9)):
            words = [rng.choice(WORDS) for _ in range(rng.randint(5, 30))]
            if len(words) > 10:
                words[5] += ","
            sentences.append(" ".join(words).capitalize() + rng.choice(".?!"))
        paras.append(" ".join(sentences))
    return "\n\n".join(paras)


def assert_covers(text: str, chunks: list[Chunk]) -> None:
    """Chunks are exact slices that, minus overlaps, leave out only whitespace."""
    stripped = text.strip()
    assert chunks[0].char_start == len(text) - len(text.lstrip())
    assert chunks[-1].char_end == len(text.rstrip())
    rebuilt = chunks[0].text
    for prev, nxt in zip(chunks, chunks[1:], strict=False):
        assert nxt.char_start > prev.char_start
        if nxt.char_start < prev.char_end:  # overlap: append only what is new
            rebuilt += text[prev.char_end : nxt.char_end]
        else:
            assert text[prev.char_end : nxt.char_start].strip() == ""
            rebuilt += text[prev.char_end : nxt.char_start] + nxt.text
    for chunk in chunks:
        assert chunk.text == text[chunk.char_start : chunk.char_end]
    assert rebuilt == stripped


@pytest.mark.parametrize("text", ["", " ", "\n\n\t  \r\n"])
def test_empty_or_whitespace_text_gives_no_chunks(text: str, tokenizer: Tokenizer) -> None:
    assert chunk_text(text, tokenizer) == []


def test_short_text_is_one_chunk_without_surrounding_whitespace(tokenizer: Tokenizer) -> None:
    text = "\n  Keel runs agents on Temporal.  \n"
    [chunk] = chunk_text(text, tokenizer)
    assert chunk.text == "Keel runs agents on Temporal."
    assert (chunk.position, chunk.token_start, chunk.char_start) == (0, 0, 3)
    assert chunk.token_count == count_tokens(chunk.text, tokenizer) == 6


@pytest.mark.parametrize(("target", "overlap"), [(512, 50), (128, 20), (64, 0), (254, 32)])
def test_limits_coverage_and_overlap(target: int, overlap: int, tokenizer: Tokenizer) -> None:
    text = prose(seed=target, paragraphs=30)
    chunks = chunk_text(text, tokenizer, target_tokens=target, overlap_tokens=overlap)
    assert len(chunks) > 3
    assert [c.position for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert 0 < chunk.token_count <= target
        # Cuts fall between words, so the chunk re-tokenizes to the same count.
        assert count_tokens(chunk.text, tokenizer) == chunk.token_count
    for prev, nxt in zip(chunks, chunks[1:], strict=False):
        shared = prev.token_start + prev.token_count - nxt.token_start
        assert overlap // 2 <= shared <= overlap
        assert prev.token_count >= target // 2
    assert_covers(text, chunks)


def test_chunks_end_at_sentence_ends_and_overlaps_start_sentences(tokenizer: Tokenizer) -> None:
    text = prose(seed=7, paragraphs=40)
    target, overlap = 200, 30
    chunks = chunk_text(text, tokenizer, target_tokens=target, overlap_tokens=overlap)
    assert all(chunk.text[-1] in ".?!" for chunk in chunks)
    # A continuation starts a sentence whenever one starts in its allowed overlap range.
    offsets = tokenizer.encode(text, add_special_tokens=False).offsets
    starts_sentence = [i > 0 and text[offsets[i - 1][1] - 1] in ".?!" for i in range(len(offsets))]
    checked = 0
    for prev, nxt in zip(chunks, chunks[1:], strict=False):
        end = prev.token_start + prev.token_count
        if any(starts_sentence[end - overlap : end - overlap // 2 + 1]):
            assert starts_sentence[nxt.token_start]
            checked += 1
    assert checked >= 5


def test_markdown_cuts_before_headings(tokenizer: Tokenizer) -> None:
    rng = random.Random(5)
    sections = [
        f"## Section {i}\n\n"
        + " ".join(
            " ".join(rng.choice(WORDS) for _ in range(8)).capitalize() + "." for _ in range(3)
        )
        for i in range(40)
    ]
    text = "\n\n".join(sections)
    chunks = chunk_text(text, tokenizer, target_tokens=300, overlap_tokens=0)
    assert len(chunks) > 3
    assert all(c.text.startswith("## Section") for c in chunks)
    assert_covers(text, chunks)


def test_same_text_same_chunks(tokenizer: Tokenizer) -> None:
    text = prose(seed=3, paragraphs=25)
    first = chunk_text(text, tokenizer, target_tokens=100, overlap_tokens=10)
    again = chunk_text(text, tokenizer, target_tokens=100, overlap_tokens=10)
    assert first == again


def test_unbroken_run_is_cut_inside_words_as_a_last_resort(tokenizer: Tokenizer) -> None:
    blob = "".join(
        random.Random(1).choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(4000)
    )
    text = f"Checksum follows. {blob} End of record."
    chunks = chunk_text(text, tokenizer, target_tokens=128, overlap_tokens=16)
    assert all(c.token_count <= 128 for c in chunks)
    assert sum(c.token_count for c in chunks) >= count_tokens(text, tokenizer)
    assert_covers(text, chunks)


def test_offsets_are_characters_for_any_script(tokenizer: Tokenizer) -> None:
    text = " ".join(
        ["Café naïve résumé — 東京は日本の首都です。", "Emoji 🚀 stay put.", "Ελληνικά κείμενα."]
        * 60
    )
    chunks = chunk_text(text, tokenizer, target_tokens=64, overlap_tokens=8)
    assert len(chunks) > 5
    assert all(c.token_count <= 64 for c in chunks)
    assert_covers(text, chunks)


def test_configured_tokenizer_is_neither_obeyed_nor_changed() -> None:
    # The file as shipped truncates at 128 and pads to 128.
    shipped = Tokenizer.from_file(str(minilm_tokenizer_path()))
    assert shipped.truncation is not None
    text = prose(seed=11, paragraphs=10)
    chunks = chunk_text(text, shipped, target_tokens=400, overlap_tokens=0)
    assert sum(c.token_count for c in chunks) > 400
    assert_covers(text, chunks)
    assert shipped.truncation is not None and shipped.padding is not None


@pytest.mark.parametrize(("target", "overlap"), [(0, 0), (100, 50), (100, -1), (1, 1)])
def test_bad_sizes_are_refused(target: int, overlap: int, tokenizer: Tokenizer) -> None:
    with pytest.raises(ValueError, match="tokens"):
        chunk_text("some text", tokenizer, target_tokens=target, overlap_tokens=overlap)


def test_tiny_target_still_progresses(tokenizer: Tokenizer) -> None:
    text = "one two three four five"
    chunks = chunk_text(text, tokenizer, target_tokens=1, overlap_tokens=0)
    assert [c.text for c in chunks] == text.split()
