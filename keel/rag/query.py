"""Stage 1 of the RAG pipeline: normalise a question and read metadata filters out of it.

Pure functions, no I/O: the activity that calls them is a local activity, and the evaluation
harness calls them directly.

Filters come from two places. Explicit request fields always win; otherwise the question's own
words are read, conservatively, because a wrong filter silently hides the right passage:

- dates: an ISO date, a year or a month + year after a preposition that scopes it ("in 2023",
  "since March 2022", "before 2021", "between 2020 and 2022", "from 2021 to 2023"), and the
  relative "this year", "last year", "last month", "past/last N months|years";
- departments and document types: only values this tenant's documents actually carry (the
  vocabulary comes from the database), and only in a phrase that scopes the question to them
  ("the HR department", "Finance team", "according to Legal", "in the FAQ", "policy documents",
  "memos from ...").

A phrase read as a filter is removed from the text used for search, so "in 2023" neither has to
match the text of a passage nor drags the query vector towards passages that mention years.
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date

from keel.contracts.rag import ProcessedQuery, ProcessQueryInput, RagFilters

_SPACE = re.compile(r"\s+")
_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
_MONTHS.update({name.lower(): i for i, name in enumerate(calendar.month_abbr) if name})
_MONTH = "(?:" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_YEAR = r"(?:19|20)\d{2}"
# A point in time: ISO date, "March 2023", "2023".
_WHEN = rf"(?:{_YEAR}-\d{{2}}-\d{{2}}|{_MONTH}\s+{_YEAR}|{_YEAR})"
_RANGE = re.compile(
    rf"\b(?:between|from)\s+(?P<a>{_WHEN})\s+(?:and|to|through|until|-)\s+(?P<b>{_WHEN})\b",
    re.IGNORECASE,
)
# "from 2023" alone dates a document ("the report from 2023"); only "from 2023 on(wards)"
# opens a range.
_SINCE = re.compile(
    rf"\b(?:(?P<op>since|after|starting(?:\s+in)?|as\s+of)\s+(?P<a>{_WHEN})(?:\s+onwards?)?"
    rf"|from\s+(?P<b>{_WHEN})\s+(?:on|onwards?|forward)\b)",
    re.IGNORECASE,
)
_BEFORE = re.compile(
    rf"\b(?P<op>before|prior\s+to|until|through|up\s+to|by)\s+(?:the\s+end\s+of\s+)?(?P<a>{_WHEN})\b",
    re.IGNORECASE,
)
_IN = re.compile(
    rf"\b(?:in|during|for|dated|of|from|published\s+in)\s+(?P<a>{_WHEN})\b", re.IGNORECASE
)
# Two editions compared: "the 2023 and 2025 leave policies" needs both years.
_PAIR = re.compile(
    rf"\b(?P<a>{_YEAR})\s+(?:and|or|vs\.?|versus|to)\s+(?P<b>{_YEAR})\b", re.IGNORECASE
)
# A year used as an adjective names an edition: "the 2023 HR policy", "Legal's 2022 policy".
_EDITION = re.compile(rf"(?:\bthe|'s)\s+(?P<a>{_YEAR})\s+(?=[A-Za-z])", re.IGNORECASE)
_RELATIVE = re.compile(
    r"\b(?:in\s+|during\s+)?(?P<which>this|last|past|previous)\s+"
    r"(?:(?P<n>\d{1,2}|two|three|four|five|six|twelve)\s+)?(?P<unit>year|month)s?\b",
    re.IGNORECASE,
)
_NUMBER_WORDS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "twelve": 12}
# Words that make a department name a scope: "the HR department", "Finance team".
_DEPARTMENT_NOUNS = r"(?:department|dept\.?|team|group|division|office|org(?:anization)?)"
_DEPARTMENT_LEADS = r"(?:according\s+to|from|by|in|for|within|at|of)"
_DOC_NOUNS = r"(?:documents?|docs?|files?|pages?|entries|articles?)"


def normalise(question: str) -> str:
    """NFKC, collapsed whitespace, stripped; case and words are kept (they carry meaning)."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", question)).strip()


@dataclass
class _Found:
    filters: dict[str, object] = field(default_factory=dict)
    phrases: list[str] = field(default_factory=list)
    spans: list[tuple[int, int]] = field(default_factory=list)

    def take(self, match: re.Match[str], *, group: str | int = 0, strip: bool = True) -> None:
        self.phrases.append(match.group(group))
        if strip:
            self.spans.append(match.span(group))


def _point(text: str) -> tuple[date, date]:
    """The first and last day a point in time covers."""
    text = text.strip().lower().replace(".", "")
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        day = date.fromisoformat(text)
        return day, day
    parts = text.split()
    if len(parts) == 2:
        month, year = _MONTHS[parts[0]], int(parts[1])
        return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])
    year = int(parts[0])
    return date(year, 1, 1), date(year, 12, 31)


def _shift_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, 1)


def _relative(match: re.Match[str], today: date) -> tuple[date, date]:
    which = match.group("which").lower()
    unit = match.group("unit").lower()
    raw = match.group("n")
    count = 1 if raw is None else int(_NUMBER_WORDS.get(raw.lower(), raw) or 1)
    if unit == "year":
        if which == "this":
            return date(today.year, 1, 1), today
        if which in ("last", "previous") and raw is None:
            return date(today.year - 1, 1, 1), date(today.year - 1, 12, 31)
        return date(today.year - count, today.month, min(today.day, 28)), today
    if which == "this":
        return date(today.year, today.month, 1), today
    if which in ("last", "previous") and raw is None:
        start = _shift_months(today, -1)
        end = _shift_months(today, 0).toordinal() - 1
        return start, date.fromordinal(end)
    return _shift_months(today, -count), today


def _dates(text: str, today: date, found: _Found) -> None:
    """The first date phrase that scopes the question, most specific pattern first."""
    match = _RANGE.search(text) or _PAIR.search(text)
    if match:
        (a_start, a_end), (b_start, b_end) = _point(match.group("a")), _point(match.group("b"))
        found.filters.update(date_from=min(a_start, b_start), date_to=max(a_end, b_end))
        found.take(match)
        return
    match = _SINCE.search(text)
    if match:
        start, end = _point(match.group("a") or match.group("b"))
        after = (match.group("op") or "").lower() == "after"
        found.filters["date_from"] = date.fromordinal(end.toordinal() + 1) if after else start
        found.take(match)
        return
    match = _BEFORE.search(text)
    if match:
        start, end = _point(match.group("a"))
        strict = match.group("op").lower() in ("before", "prior to")
        found.filters["date_to"] = date.fromordinal(start.toordinal() - 1) if strict else end
        found.take(match)
        return
    match = _IN.search(text) or _EDITION.search(text)
    if match:
        start, end = _point(match.group("a"))
        found.filters.update(date_from=start, date_to=end)
        # "the 2023 HR policy" keeps "the HR policy" for search: only the year goes.
        found.take(match, group=0 if match.re is _IN else "a")
        return
    match = _RELATIVE.search(text)
    if match:
        start, end = _relative(match, today)
        found.filters.update(date_from=start, date_to=end)
        found.take(match)


def _alternatives(values: list[str]) -> str:
    # Longest first, so "Human Resources" wins over "Human".
    ordered = sorted({v for v in values if v.strip()}, key=len, reverse=True)
    return "|".join(re.escape(v) for v in ordered)


def _canonical(values: list[str], spelled: str) -> str:
    lowered = spelled.lower()
    return next(v for v in values if v.lower() == lowered)


def _type_spellings(vocabulary: list[str]) -> dict[str, str]:
    """Every way a document type is written (`release-notes`, `release notes`, plurals)."""
    spellings: dict[str, str] = {}
    for value in vocabulary:
        for spelled in {value, value.replace("_", " "), value.replace("-", " ")}:
            spellings[spelled.lower()] = value
            spellings[_plural(spelled.lower())] = value
    return spellings


def _department_documents(
    text: str, departments: list[str], doc_types: list[str], found: _Found
) -> None:
    """ "the Support runbooks", "the 2023 HR policy", "Legal's runbooks": a department right
    before a document type scopes both. (Nothing may stand between them: in "the IT password
    policy" the password policy need not be IT's.)"""
    if not departments or not doc_types:
        return
    spellings = _type_spellings(doc_types)
    names, types = _alternatives(departments), _alternatives(list(spellings))
    pattern = re.compile(
        rf"(?:\bthe\s+(?:{_YEAR}\s+)?(?P<a>{names})|\b(?P<b>{names})'s)\s+(?:{_YEAR}\s+)?"
        rf"(?P<t>{types})\b",
        re.IGNORECASE,
    )
    match = pattern.search(text)
    if match:
        found.filters["departments"] = [
            _canonical(departments, match.group("a") or match.group("b"))
        ]
        found.filters["doc_types"] = [spellings[match.group("t").lower()]]
        found.take(match, strip=False)


def _departments(text: str, vocabulary: list[str], found: _Found) -> None:
    if not vocabulary or "departments" in found.filters:
        return
    names = _alternatives(vocabulary)
    pattern = re.compile(
        rf"(?:\b(?:the\s+)?(?P<a>{names})(?:'s)?\s+{_DEPARTMENT_NOUNS}\b"
        rf"|\b{_DEPARTMENT_LEADS}\s+(?:the\s+)?(?P<b>{names})\b(?!\s+\w+\s+{_DOC_NOUNS}))",
        re.IGNORECASE,
    )
    picked: list[str] = []
    for match in pattern.finditer(text):
        name = _canonical(vocabulary, match.group("a") or match.group("b"))
        if name not in picked:
            picked.append(name)
            found.take(match, strip=False)
    if picked:
        found.filters["departments"] = picked


def _plural(word: str) -> str:
    if word.endswith("y") and not word.endswith(("ay", "ey", "oy", "uy")):
        return word[:-1] + "ies"
    return word + ("es" if word.endswith(("s", "x", "ch", "sh")) else "s")


def _doc_types(text: str, vocabulary: list[str], found: _Found) -> None:
    if not vocabulary or "doc_types" in found.filters:
        return
    spellings = _type_spellings(vocabulary)
    names = _alternatives(list(spellings))
    pattern = re.compile(
        rf"\b(?:in|from|among|across|within)\s+(?:the|our|any|all)?\s*(?P<a>{names})\b"
        rf"|\b(?P<b>{names})\s+{_DOC_NOUNS}\b"
        rf"|\b(?P<c>{names})\s+(?:from|by|of|in)\b",
        re.IGNORECASE,
    )
    picked: list[str] = []
    for match in pattern.finditer(text):
        spelled = (match.group("a") or match.group("b") or match.group("c")).lower()
        value = spellings[spelled]
        if value not in picked:
            picked.append(value)
            found.take(match, strip=False)
    if picked:
        found.filters["doc_types"] = picked


def _strip(text: str, spans: list[tuple[int, int]]) -> str:
    kept, at = [], 0
    for start, end in sorted(spans):
        if start >= at:
            kept.append(text[at:start])
            at = end
    kept.append(text[at:])
    stripped = _SPACE.sub(" ", " ".join(kept)).strip()
    stripped = re.sub(r"\s+([?.!,;:])", r"\1", stripped).lstrip(",;: ")
    # If the filters were the whole question, search with the question itself.
    return stripped if len(re.findall(r"\w+", stripped)) >= 2 else text


def process_query(request: ProcessQueryInput) -> ProcessedQuery:
    """Normalise the question, read filters from it, merge the explicit ones (which win).

    Args:
        request: the question, explicit filters, the tenant's vocabulary and today's date.

    Returns:
        The search text (filter phrases removed) and the filters to apply.
    """
    normalized = normalise(request.question)
    found = _Found()
    _dates(normalized, request.today, found)
    _department_documents(normalized, request.departments, request.doc_types, found)
    _departments(normalized, request.departments, found)
    _doc_types(normalized, request.doc_types, found)
    extracted = RagFilters.model_validate(found.filters)
    return ProcessedQuery(
        normalized=normalized,
        search_text=_strip(normalized, found.spans),
        filters=request.filters.merged(extracted),
        extracted=found.phrases,
    )
