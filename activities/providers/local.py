"""An offline provider that answers by extracting sentences: no key, no network, no model.

It is what runs when no provider key is configured (tests, `make up`, demos). It does not
generate text; it picks sentences out of the sources it is given, cites them, and says
plainly when none of them answers the question.

Prompt layout it reads (the RAG stage builds it with `format_sources`)::

    [Source 1] Title, date, department
    First sentence of the source. Second sentence.

    [Source 2] Another title
    Its text.

    Question: the user's question

The sources may sit in the system prompt or in any user message; the question is the text
after the last `Question:` label of the last user message, or, without a label, that whole
message minus its sources.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from keel.contracts.llm import LlmRequest, LlmResponse, Usage
from keel.rag.prompt import NOT_ENOUGH_INFORMATION

MODEL = "local-extractive"
# Rough English average; real tokenizers differ by model. Only used for budgets and ledgers,
# where the local provider's price is zero anyway.
TOKENS_PER_WORD = 1.3

_HEADER = re.compile(r"^\[Source (\d+)\][ \t]*(.*)$", re.MULTILINE)
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_QUESTION_LABEL = re.compile(r"^[ \t]*question[ \t]*:", re.IGNORECASE | re.MULTILINE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"[a-z0-9]+")
# Function words carry no topic; "many", "much", "get", "tell", "please" are here because
# questions are phrased with them and sources rarely repeat them.
_STOPWORD_TEXT = """
a about above after again against all also am an and any are as at be because been before
being below between both but by can could did do does doing down during each few for from
further had has have having he her here hers herself him himself his how i if in into is it
its itself just me more most my myself no nor not of off on once only or other our ours
ourselves out over own same she should so some such than that the their theirs them
themselves then there these they this those through to too under until up very was we were
what when where which while who whom why will with would you your yours yourself yourselves
tell please many much get
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def format_sources(sources: list[tuple[str, str]]) -> str:
    """Render `(title, text)` pairs as the numbered sources the models are asked to cite.

    Each source is a header line `[Source n] title` (n from 1, the title on one line) followed
    by its text; sources are separated by one blank line. Blank lines inside a text are
    dropped, so a blank line always ends a source, and a text line that starts with
    `[Source ` is indented by a space so it can never be read as a header.

    Args:
        sources: `(title, text)` in citation order; put date and department in the title.

    Returns:
        The block to place in the prompt.
    """
    blocks = []
    for number, (title, text) in enumerate(sources, start=1):
        lines = []
        for raw in text.splitlines():
            line = raw.rstrip()  # indentation stays: code blocks depend on it
            if line.strip():
                lines.append(" " + line if line.startswith("[Source ") else line)
        header = f"[Source {number}] {' '.join(title.split())}".rstrip()
        blocks.append("\n".join([header, *lines]))
    return "\n\n".join(blocks)


@dataclass(frozen=True)
class Source:
    """One numbered source read back from a prompt."""

    number: int
    title: str
    text: str


def parse_sources(text: str) -> list[Source]:
    """Read back the sources written by `format_sources` (the inverse, up to whitespace).

    A source's text ends at the first blank line, the next header, or a `Question:` line.

    Args:
        text: any prompt text.

    Returns:
        The sources in order of appearance.
    """
    headers = list(_HEADER.finditer(text))
    sources = []
    for i, header in enumerate(headers):
        end = headers[i + 1].start() if i + 1 < len(headers) else len(text)
        body = text[header.end() : end].lstrip("\r\n")
        body = _BLANK_LINE.split(body, maxsplit=1)[0]
        label = _QUESTION_LABEL.search(body)
        if label is not None:
            body = body[: label.start()]
        sources.append(Source(int(header.group(1)), header.group(2).strip(), body.strip()))
    return sources


def approx_tokens(text: str) -> int:
    """Approximate token count: words times 1.3, rounded up. Not a real tokenizer."""
    return math.ceil(len(text.split()) * TOKENS_PER_WORD)


def _stem(word: str) -> str:
    # Just enough folding for plurals ("policies"/"policy", "days"/"day"); applied to
    # question and sources alike, so a crude stem still matches itself.
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def content_terms(text: str) -> set[str]:
    """Lowercased, stemmed words of `text` without stopwords."""
    return {_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOPWORDS}


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def _first_sentence(text: str, max_words: int = 40) -> str:
    sentences = _sentences(text)
    if not sentences:
        return ""
    words = sentences[0].split()
    return " ".join(words[:max_words]) + (" ..." if len(words) > max_words else "")


def extract_question(message: str) -> str:
    """The question in a user message: after the last `Question:` label, else the message
    without its sources.

    Args:
        message: the last user message.

    Returns:
        The question text, stripped.
    """
    labels = list(_QUESTION_LABEL.finditer(message))
    if labels:
        tail = message[labels[-1].end() :]
        return _HEADER.split(tail, maxsplit=1)[0].strip()
    headers = list(_HEADER.finditer(message))
    if not headers:
        return message.strip()
    kept = [message[: headers[0].start()]]
    # Whatever follows the last source's text (after its blank line) is the question.
    after_last = _BLANK_LINE.split(message[headers[-1].end() :].lstrip("\r\n"), maxsplit=1)
    if len(after_last) > 1:
        kept.append(after_last[1])
    return "\n".join(kept).strip()


class LocalExtractiveProvider:
    """Extractive answers with `[Source n]` citations, computed locally and deterministically.

    Scoring: the question and every source sentence become sets of content terms (lowercase,
    stopwords dropped, plurals folded). Each term weighs its smoothed IDF over the context's
    sentences, `1 + ln((N + 1) / (df + 1))`, so rare words count more; a question term the
    context never uses keeps the top weight, which is what makes an unanswerable question
    score low. A sentence's score is the weight of the question terms it contains divided by
    the weight of all question terms (0..1). Sentences scoring at least `min_overlap` are
    kept, best first (ties: earlier source, earlier sentence), at most `max_sentences`;
    if none qualifies the answer is `NOT_ENOUGH_INFORMATION`.

    Without sources in the prompt it is not a chatbot: it answers with the first sentence of
    the last user message (at most 40 words), so pipelines run end to end offline.

    Usage is approximate (`approx_tokens`, words times 1.3) and nothing is cached.
    """

    name: str = "local"

    def __init__(self, *, min_overlap: float = 0.5, max_sentences: int = 3) -> None:
        """Configure the extractor.

        Args:
            min_overlap: the IDF-weighted share of the question's content terms a sentence
                must contain to be quoted; 0.5 means "at least half of what the question asks
                about, by weight".
            max_sentences: how many sentences an answer quotes at most (at least 1).

        Raises:
            ValueError: `min_overlap` outside (0, 1] or `max_sentences` below 1.
        """
        if not 0.0 < min_overlap <= 1.0:
            raise ValueError("min_overlap must be in (0, 1]")
        if max_sentences < 1:
            raise ValueError("max_sentences must be at least 1")
        self.min_overlap = min_overlap
        self.max_sentences = max_sentences

    async def complete(
        self,
        request: LlmRequest,
        on_text: Callable[[str], Awaitable[None]] | None = None,
    ) -> LlmResponse:
        """Answer `request` without a model (handed to `on_text` whole: it exists at once).

        Args:
            request: the provider-neutral request; `model` and `temperature` are ignored,
                `stop` and `max_tokens` truncate the answer like a model would stop.

        Returns:
            A response whose `model` is always `local-extractive`.
        """
        started = time.perf_counter()
        user_turns = [m.content for m in request.messages if m.role == "user"]
        last_user = user_turns[-1] if user_turns else ""
        sources = _unique(parse_sources("\n\n".join([request.system, *user_turns])))
        if sources:
            text = self.answer(extract_question(last_user), sources)
        else:
            text = _first_sentence(last_user)
        text, stop_reason = _truncate(text, request)
        if on_text is not None:
            await on_text(text)
        prompt = "\n".join([request.system, *(m.content for m in request.messages)])
        return LlmResponse(
            text=text,
            model=MODEL,
            provider=self.name,
            usage=Usage(input_tokens=approx_tokens(prompt), output_tokens=approx_tokens(text)),
            stop_reason=stop_reason,
            latency_ms=(time.perf_counter() - started) * 1000.0,
        )

    def answer(self, question: str, sources: list[Source]) -> str:
        """Pick the sentences that answer `question`, each followed by its citation.

        Args:
            question: the question text.
            sources: the numbered sources to quote from.

        Returns:
            One to `max_sentences` sentences with `[Source n]` after each, or
            `NOT_ENOUGH_INFORMATION`.
        """
        asked = content_terms(question)
        candidates = [
            (source.number, position, sentence, content_terms(sentence))
            for source in sources
            for position, sentence in enumerate(_sentences(source.text))
        ]
        if not asked or not candidates:
            return NOT_ENOUGH_INFORMATION
        df = Counter(term for *_, terms in candidates for term in terms)
        n = len(candidates)
        weight = {t: 1.0 + math.log((n + 1) / (df[t] + 1)) for t in asked}
        total = sum(weight.values())
        scored = []
        for number, position, sentence, terms in candidates:
            score = sum(weight[t] for t in asked & terms) / total
            if score >= self.min_overlap:
                scored.append((-score, number, position, sentence))
        scored.sort()
        picked: list[str] = []
        seen: set[str] = set()
        for _, number, _, sentence in scored:
            if sentence in seen:
                continue
            seen.add(sentence)
            picked.append(f"{sentence} [Source {number}]")
            if len(picked) == self.max_sentences:
                break
        return " ".join(picked) if picked else NOT_ENOUGH_INFORMATION

    async def aclose(self) -> None:
        """Nothing to close; here so every provider can be shut down the same way."""


def _unique(sources: list[Source]) -> list[Source]:
    # The same numbered block can appear in the system prompt and a message; first wins.
    seen: dict[int, Source] = {}
    for source in sources:
        seen.setdefault(source.number, source)
    return list(seen.values())


def _truncate(text: str, request: LlmRequest) -> tuple[str, str]:
    stop_reason = "end_turn"
    cuts = [i for i in (text.find(s) for s in request.stop if s) if i >= 0]
    if cuts:
        text, stop_reason = text[: min(cuts)].rstrip(), "stop_sequence"
    words = text.split()
    max_words = max(int(request.max_tokens / TOKENS_PER_WORD), 1)
    if len(words) > max_words:
        text, stop_reason = " ".join(words[:max_words]), "max_tokens"
    return text, stop_reason
