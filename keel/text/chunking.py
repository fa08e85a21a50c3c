"""Token-aware chunking with the embedder's own tokenizer.

Chunks are measured in the word pieces the embedder reads (all-MiniLM-L6-v2's WordPiece
for the default embedder), not in characters or words, so a "512-token chunk" means the
same thing here and at embedding time.

How a text is cut:
- it is tokenized once (no special tokens, no truncation) and every chunk is a run of
  whole tokens, sliced out of the original text by the tokens' character offsets, so a
  chunk's text is exactly the source text between its first and last token: nothing is
  rewritten, and only the whitespace between chunks belongs to none;
- a chunk never holds more than ``target_tokens`` tokens; within the second half of that
  budget it ends at the strongest boundary found (before a markdown heading > paragraph >
  sentence > line > clause > word > between sub-word pieces), the latest such boundary,
  so chunks are as full as the text's own structure allows;
- the next chunk repeats between ``overlap_tokens / 2`` and ``overlap_tokens`` tokens of
  the previous one, starting at the strongest boundary in that range (a sentence start if
  there is one) and, among equals, at the one nearest ``overlap_tokens``.

The result depends only on the text, the tokenizer and the two sizes: re-ingesting a
document reproduces its chunks exactly, which keeps upserts idempotent.
"""

from __future__ import annotations

from enum import IntEnum

from pydantic import BaseModel, ConfigDict
from tokenizers import Tokenizer

# Characters that end a sentence, and those that may close it after the mark (`."`, `?)`).
_SENTENCE_ENDS = frozenset(".!?…。！？")
_CLOSERS = frozenset("\"')]}»”’")
_CLAUSE_ENDS = frozenset(",;:—–")


class Boundary(IntEnum):
    """How good a place to cut the gap before a token is; higher is better."""

    INSIDE_WORD = 0  # between word pieces ("embed" | "##ding"): last resort
    TOUCHING = 1  # no space, e.g. before punctuation ("end" | ".")
    WORD = 2
    CLAUSE = 3
    # A single line break ranks below a sentence end: in hard-wrapped prose it is only a
    # wrap, while a list item or table row usually ends at one anyway.
    LINE = 4
    SENTENCE = 5
    PARAGRAPH = 6
    HEADING = 7  # a line break before a markdown heading: a new section starts


class Chunk(BaseModel):
    """A contiguous run of tokens of a text.

    Attributes:
        text: ``source_text[char_start:char_end]``, unaltered.
        position: Index of the chunk in its text, from 0.
        token_start: Index of the chunk's first token among the text's tokens.
        token_count: Tokens in the chunk, without special tokens (CLS/SEP).
        char_start: Offset of the chunk's first character in the source text.
        char_end: Offset just past the chunk's last character.
    """

    model_config = ConfigDict(frozen=True)

    text: str
    position: int
    token_start: int
    token_count: int
    char_start: int
    char_end: int


class _Tokens:
    """A tokenized text with lazily classified gaps between tokens."""

    def __init__(self, text: str, tokenizer: Tokenizer) -> None:
        encoding = tokenizer.encode(text, add_special_tokens=False)
        self.text = text
        self.tokens: list[str] = encoding.tokens
        self.offsets: list[tuple[int, int]] = encoding.offsets
        self._kinds: dict[int, Boundary] = {}

    def __len__(self) -> int:
        return len(self.tokens)

    def boundary(self, i: int) -> Boundary:
        """Classify the gap before token `i` (0 < i < len)."""
        kind = self._kinds.get(i)
        if kind is None:
            kind = self._kinds[i] = self._classify(i)
        return kind

    def _classify(self, i: int) -> Boundary:
        prev_end = self.offsets[i - 1][1]
        gap = self.text[prev_end : self.offsets[i][0]]
        if not gap:
            # WordPiece marks continuations with "##"; other tokenizers never do, and
            # then every touching pair is treated as a plain (weak) boundary.
            return Boundary.INSIDE_WORD if self.tokens[i].startswith("##") else Boundary.TOUCHING
        newlines = gap.count("\n")
        if newlines and self.text.startswith("#", self.offsets[i][0]):
            return Boundary.HEADING
        if newlines >= 2:
            return Boundary.PARAGRAPH
        last = self.text[prev_end - 1 : prev_end]
        if self._ends_sentence(i - 1):
            return Boundary.SENTENCE
        if newlines:
            return Boundary.LINE
        return Boundary.CLAUSE if last in _CLAUSE_ENDS else Boundary.WORD

    def _ends_sentence(self, j: int) -> bool:
        """Whether token `j` ends a sentence: `.`, or a closer right after one (`."`)."""
        start, end = self.offsets[j]
        last = self.text[end - 1 : end]
        if last in _SENTENCE_ENDS:
            return not self._is_list_marker(j)
        if last in _CLOSERS and j >= 1 and self.offsets[j - 1][1] == start:
            before_end = self.offsets[j - 1][1]
            return self.text[before_end - 1 : before_end] in _SENTENCE_ENDS
        return False

    def _is_list_marker(self, j: int) -> bool:
        """`1.` at the start of a line numbers a list item; it ends no sentence."""
        if j < 1 or self.offsets[j - 1][1] != self.offsets[j][0]:
            return False
        number_start = self.offsets[j - 1][0]
        line_start = self.text.rfind("\n", 0, number_start) + 1
        return self.tokens[j - 1].isdigit() and not self.text[line_start:number_start].strip()

    def best_end(self, start: int, target: int) -> int:
        """Strongest, then latest, cut in the second half of the budget after `start`."""
        lo = start + max(1, target // 2)
        best, best_kind = start + target, self.boundary(start + target)
        for i in range(start + target - 1, lo - 1, -1):
            kind = self.boundary(i)
            if kind > best_kind:
                best, best_kind = i, kind
        return best

    def next_start(self, start: int, end: int, overlap: int) -> int:
        """Where the chunk after [start, end) begins: `overlap` / 2 to `overlap` tokens back."""
        if overlap <= 0:
            return end
        lo = max(start + 1, end - overlap)
        hi = max(lo, end - overlap // 2)
        # Earliest of the strongest boundaries: the overlap stays close to the requested
        # size, and starts a sentence where one starts nearby.
        best, best_kind = lo, self.boundary(lo)
        for i in range(lo + 1, hi + 1):
            kind = self.boundary(i)
            if kind > best_kind:
                best, best_kind = i, kind
        return best


def chunk_text(
    text: str,
    tokenizer: Tokenizer,
    *,
    target_tokens: int = 512,
    overlap_tokens: int = 50,
) -> list[Chunk]:
    """Split `text` into overlapping chunks of at most `target_tokens` tokens.

    Args:
        text: The document text.
        tokenizer: The embedder's tokenizer. Truncation and padding settings are ignored
            (a configured tokenizer is copied, not changed, since callers may share it).
        target_tokens: Most tokens in a chunk, special tokens not counted.
        overlap_tokens: Tokens the next chunk repeats from the end of the previous one,
            at most; must be less than half of `target_tokens`.

    Returns:
        The chunks in text order; none for an empty or whitespace-only text.

    Raises:
        ValueError: Sizes out of range.
    """
    if target_tokens < 1:
        raise ValueError(f"target_tokens must be at least 1, got {target_tokens}")
    if overlap_tokens < 0 or (overlap_tokens and overlap_tokens >= target_tokens // 2):
        # Chunks end no earlier than half the budget; a smaller overlap guarantees
        # every chunk moves the start forward.
        raise ValueError(
            f"overlap_tokens must be >= 0 and < target_tokens // 2 "
            f"({target_tokens // 2}), got {overlap_tokens}"
        )
    toks = _Tokens(text, _plain(tokenizer))
    chunks: list[Chunk] = []
    start = 0
    while start < len(toks):
        end = (
            len(toks) if len(toks) - start <= target_tokens else toks.best_end(start, target_tokens)
        )
        char_start, char_end = toks.offsets[start][0], toks.offsets[end - 1][1]
        chunks.append(
            Chunk(
                text=text[char_start:char_end],
                position=len(chunks),
                token_start=start,
                token_count=end - start,
                char_start=char_start,
                char_end=char_end,
            )
        )
        if end == len(toks):
            break
        start = toks.next_start(start, end, overlap_tokens)
    return chunks


def count_tokens(text: str, tokenizer: Tokenizer) -> int:
    """Tokens in `text` as `chunk_text` counts them (no special tokens, no truncation).

    Args:
        text: Any text.
        tokenizer: The embedder's tokenizer.

    Returns:
        The token count.
    """
    return len(_plain(tokenizer).encode(text, add_special_tokens=False).ids)


def _plain(tokenizer: Tokenizer) -> Tokenizer:
    """`tokenizer` without truncation or padding, copied only if it had either."""
    if tokenizer.truncation is None and tokenizer.padding is None:
        return tokenizer
    copy = Tokenizer.from_str(tokenizer.to_str())
    copy.no_truncation()
    copy.no_padding()
    return copy
