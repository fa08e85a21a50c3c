"""Chunks longer than the model's window: embedded as overlapping windows of word pieces,
pooled into the chunk's vector, and kept for reranking (the best window per question)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from keel.embedding import Embedder, Vectors, normalize_rows
from keel.text.chunking import chunk_text


@dataclass(frozen=True)
class Window:
    """One embedded run of a chunk's tokens.

    Attributes:
        position: Index of the window in its chunk, from 0.
        text: ``chunk_text[char_start:char_end]``.
        token_start: First token of the window among the chunk's tokens.
        token_end: Just past the window's last token.
        char_start: Offset of the window's first character in the chunk text.
        char_end: Offset just past its last character.
        vector: Unit-length float32 embedding of `text`.
    """

    position: int
    text: str
    token_start: int
    token_end: int
    char_start: int
    char_end: int
    vector: Vectors

    @property
    def token_count(self) -> int:
        """Tokens in the window, special tokens not counted."""
        return self.token_end - self.token_start


def embed_windows(embedder: Embedder, text: str, *, overlap_tokens: int = 32) -> list[Window]:
    """Embed one chunk as windows that together read all of its tokens.

    Args:
        embedder: Any embedder; its `window_tokens` sets the window size.
        text: The chunk's text.
        overlap_tokens: Tokens shared by neighbouring windows, at most.

    Returns:
        The windows in order; none for an empty or whitespace-only text.
    """
    return embed_windows_batch(embedder, [text], overlap_tokens=overlap_tokens)[0]


def embed_windows_batch(
    embedder: Embedder, texts: Sequence[str], *, overlap_tokens: int = 32
) -> list[list[Window]]:
    """`embed_windows` for many chunks with one `embed` call, so batches stay full.

    Args:
        embedder: Any embedder.
        texts: Chunk texts.
        overlap_tokens: Tokens shared by neighbouring windows, at most.

    Returns:
        Each chunk's windows, in input order.
    """
    content = embedder.window_tokens - 2  # CLS and SEP take two of the model's positions
    plans = [
        chunk_text(text, embedder.tokenizer, target_tokens=content, overlap_tokens=overlap_tokens)
        for text in texts
    ]
    vectors = embedder.embed([span.text for plan in plans for span in plan])
    result: list[list[Window]] = []
    row = 0
    for plan in plans:
        result.append(
            [
                Window(
                    position=span.position,
                    text=span.text,
                    token_start=span.token_start,
                    token_end=span.token_start + span.token_count,
                    char_start=span.char_start,
                    char_end=span.char_end,
                    vector=vectors[row + k],
                )
                for k, span in enumerate(plan)
            ]
        )
        row += len(plan)
    return result


def pool(windows: Sequence[Window]) -> Vectors:
    """One summary vector for a chunk: its windows' mean, weighted by tokens, unit length.

    Weighting by tokens keeps a short tail window from counting as much as a full one.

    Args:
        windows: A chunk's windows (from `embed_windows`).

    Returns:
        A (dim,) float32 unit vector.

    Raises:
        ValueError: No windows (an empty chunk has no vector).
    """
    if not windows:
        raise ValueError("cannot pool zero windows")
    weights = np.array([max(w.token_count, 1) for w in windows], dtype=np.float32)
    mean = (np.stack([w.vector for w in windows]) * weights[:, None]).sum(axis=0)
    summary: Vectors = normalize_rows(mean[None, :])[0]
    return summary


def best_window(query: Vectors, windows: Sequence[Window]) -> tuple[float, Window]:
    """The window that matches `query` best, and its cosine: how search scores a chunk.

    Args:
        query: A (dim,) unit vector from the same embedder.
        windows: A chunk's windows.

    Returns:
        (score, window).

    Raises:
        ValueError: No windows.
    """
    if not windows:
        raise ValueError("no windows to score")
    scores = np.stack([w.vector for w in windows]) @ query
    top = int(np.argmax(scores))
    return float(scores[top]), windows[top]
