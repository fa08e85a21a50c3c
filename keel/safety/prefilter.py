r"""One pass over a text for a whole rule set: which rules can match it at all.

The safety layers scan every view of a text with dozens of patterns (the injection rules: 68
patterns over up to six views of each retrieved chunk), and Python's `re` reads the text once
per pattern: about 4 ms of rules for a 1,300-character chunk. Hyperscan compiles the set into
one automaton that reports, in a single pass, the rules that *may* match; only those are then
searched with `re`. So a verdict is exactly what the patterns say, just found sooner.

The automaton is built in Hyperscan's prefilter mode from loosened copies of the patterns
(bounded repeats `{m,n}` made `{m,}`, `\s` widened to Python's ASCII whitespace), and reads
ASCII texts only, where its `\w`, `\b` and `\d` mean what Python's do. So it can only report
more rules than match, never fewer: no rule that would match is skipped
(`tests/test_safety_prefilter.py` checks this over the red-team suite, its held-out set and a
corpus sample). A text with other characters, a pattern Hyperscan cannot take, a process
without the `hyperscan` package: every rule is searched, as before. Compiling takes seconds,
so it runs once per rule version on a background thread and is kept on disk
(`KEEL_CACHE_DIR`, default `~/.cache/keel`); until it is ready every rule is searched.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import platform
import re
import tempfile
import threading
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

log = logging.getLogger(__name__)

_BOUNDED = re.compile(r"(?<!\\)\{(\d+),(\d+)\}\??")
# Python's \s also matches the ASCII separators 0x1c-0x1f; Hyperscan's does not.
_SPACE_IN_CLASS = r"\s\x1c-\x1f"


class HasPattern(Protocol):
    @property
    def pattern(self) -> re.Pattern[str]: ...


R = TypeVar("R", bound=HasPattern)


def loosen(pattern: str) -> str:
    """`pattern` with each bounded repeat `{m,n}` made unbounded (`*`, `+` or `{m,}`): it
    matches every text the original matches, and Hyperscan compiles it far faster."""

    def open_up(match: re.Match[str]) -> str:
        low = match.group(1)
        return "*" if low == "0" else "+" if low == "1" else "{" + low + ",}"

    return _widen_spaces(_BOUNDED.sub(open_up, pattern))


def _widen_spaces(pattern: str) -> str:
    """Each `\\s` (in or out of a character class) also matching 0x1c-0x1f, as Python's
    does."""
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            pair = pattern[i : i + 2]
            if pair == "\\s":
                out.append(_SPACE_IN_CLASS if in_class else f"[{_SPACE_IN_CLASS}]")
            else:
                out.append(pair)
            i += 2
            continue
        if ch == "[" and not in_class:
            in_class = True
            out.append(ch)
            # A "]" first in a class (or after "^") is a literal.
            if pattern[i + 1 : i + 2] == "^":
                out.append("^")
                i += 1
            if pattern[i + 1 : i + 2] == "]":
                out.append("]")
                i += 1
        elif ch == "]" and in_class:
            in_class = False
            out.append(ch)
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def cache_dir() -> Path:
    """Where compiled rule sets are kept between processes."""
    return Path(os.environ.get("KEEL_CACHE_DIR") or Path.home() / ".cache" / "keel")


class RuleSet(Generic[R]):
    """A sequence of rules with a one-pass test of which may match a text.

    Args:
        rules: Rules with a compiled `pattern` (str patterns; their flags are honoured).
        name: Used in the cache file's name and in logs.
    """

    def __init__(self, rules: Sequence[R], *, name: str) -> None:
        self.rules = tuple(rules)
        self.name = name
        self._database: Any = None
        self._always: tuple[int, ...] = ()
        self._ready = threading.Event()
        self._started = False
        self._lock = threading.Lock()
        self._local = threading.local()  # one Hyperscan scratch per thread

    def candidates(self, text: str) -> Sequence[R]:
        """The rules that may match `text`, in their original order (all of them when the
        automaton is not ready or cannot read the text)."""
        if not self._ready.is_set():
            self._start()
            if not self._ready.is_set():
                return self.rules
        if self._database is None or not text.isascii():
            return self.rules
        data = text.encode("ascii")
        hits: set[int] = set(self._always)

        def found(rule_id: int, *_: Any) -> None:
            hits.add(rule_id)

        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = _scratch(self._database)
        self._database.scan(data, match_event_handler=found, scratch=scratch)
        return [self.rules[i] for i in sorted(hits)]

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the automaton is compiled (or known to be unavailable)."""
        self._start()
        return self._ready.wait(timeout)

    @property
    def accelerated(self) -> bool:
        """True when scans go through Hyperscan."""
        return self._ready.is_set() and self._database is not None

    def _start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
        threading.Thread(target=self._build, name=f"rules-{self.name}", daemon=True).start()

    def _build(self) -> None:
        try:
            self._database, self._always = _compile(self.rules, self.name)
        except Exception as exc:  # an optional speed-up: every rule is still searched
            log.warning("rule set %s: no Hyperscan prefilter (%s)", self.name, exc)
            self._database = None
        finally:
            self._ready.set()


def _scratch(database: Any) -> Any:
    import hyperscan

    return hyperscan.Scratch(database)


def _compile(rules: Sequence[HasPattern], name: str) -> tuple[Any, tuple[int, ...]]:
    import hyperscan

    flags = (
        hyperscan.HS_FLAG_PREFILTER | hyperscan.HS_FLAG_SINGLEMATCH | hyperscan.HS_FLAG_ALLOWEMPTY
    )
    expressions: list[bytes] = []
    rule_flags: list[int] = []
    for rule in rules:
        extra = 0
        if rule.pattern.flags & re.DOTALL:
            extra |= hyperscan.HS_FLAG_DOTALL
        if rule.pattern.flags & re.IGNORECASE:
            extra |= hyperscan.HS_FLAG_CASELESS
        if rule.pattern.flags & re.MULTILINE:
            extra |= hyperscan.HS_FLAG_MULTILINE
        expressions.append(loosen(rule.pattern.pattern).encode())
        rule_flags.append(flags | extra)
    digest = hashlib.sha256(f"{version('hyperscan')}|{platform.machine()}".encode())
    for expression, flag in zip(expressions, rule_flags, strict=True):
        digest.update(expression + b"\0" + str(flag).encode() + b"\0")
    path = cache_dir() / f"rules-{name}-{digest.hexdigest()[:20]}.hsdb"
    path.parent.mkdir(parents=True, exist_ok=True)
    # One process compiles; the others (workers starting together) wait for its file.
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        loaded = _load(hyperscan, path)
        if loaded is not None:
            return loaded
        return _compile_and_store(hyperscan, path, expressions, rule_flags)


def _load(hyperscan: Any, path: Path) -> tuple[Any, tuple[int, ...]] | None:
    if not path.exists():
        return None
    try:
        head, blob = path.read_bytes().split(b"\n", 1)
        always = tuple(int(i) for i in head.split(b",") if i)
        return hyperscan.loadb(blob, hyperscan.HS_MODE_BLOCK), always
    except Exception:  # another CPU or a torn file: compile again
        path.unlink(missing_ok=True)
        return None


def _compile_and_store(
    hyperscan: Any, path: Path, expressions: list[bytes], rule_flags: list[int]
) -> tuple[Any, tuple[int, ...]]:
    usable = list(range(len(expressions)))
    try:
        database = _database(hyperscan, expressions, rule_flags, usable)
    except hyperscan.error:
        # Some pattern Hyperscan cannot take: find which (one at a time), search it always.
        usable = [i for i in usable if _compiles(hyperscan, expressions[i], rule_flags[i])]
        database = _database(hyperscan, expressions, rule_flags, usable)
    always = tuple(i for i in range(len(expressions)) if i not in set(usable))
    head = ",".join(str(i) for i in always).encode()
    _store(path, head + b"\n" + hyperscan.dumpb(database))
    return database, always


def _database(hyperscan: Any, expressions: list[bytes], flags: list[int], ids: list[int]) -> Any:
    database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    database.compile(
        expressions=[expressions[i] for i in ids],
        ids=ids,
        elements=len(ids),
        flags=[flags[i] for i in ids],
    )
    return database


def _compiles(hyperscan: Any, expression: bytes, flags: int) -> bool:
    """Whether Hyperscan takes `expression` alone."""
    try:
        _database(hyperscan, [expression], [flags], [0])
    except hyperscan.error:
        return False
    return True


def _store(path: Path, blob: bytes) -> None:
    try:
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as tmp:
            tmp.write(blob)
        os.replace(tmp.name, path)
    except OSError as exc:  # a read-only home: compile again next time
        log.info("rule set cache not written (%s)", exc)
