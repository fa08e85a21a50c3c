"""Sections of a markdown-shaped text (markdown files, and HTML pages written as markdown):
where each heading starts and the path of headings it sits under, e.g.
"Profiles › Profile settings › strip"."""

from __future__ import annotations

import bisect
import re

SEPARATOR = " › "
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^[ \t]{0,3}(```|~~~)")
_INLINE_MARKUP = re.compile(r"[`*_]+")


class Sections:
    """The heading paths of a text, looked up by character offset."""

    def __init__(self, text: str) -> None:
        self.starts: list[int] = []
        self.paths: list[str] = []
        stack: list[tuple[int, str]] = []
        offset = 0
        in_code = False
        for line in text.split("\n"):
            if _FENCE.match(line):
                in_code = not in_code
            elif not in_code and (match := _HEADING.match(line)):
                level = len(match.group(1))
                name = _INLINE_MARKUP.sub("", match.group(2)).strip().rstrip("¶§#\u200b ")
                if name:
                    while stack and stack[-1][0] >= level:
                        stack.pop()
                    stack.append((level, name))
                    self.starts.append(offset)
                    self.paths.append(SEPARATOR.join(n for _, n in stack))
            offset += len(line) + 1

    def at(self, offset: int) -> str | None:
        """The path of headings in effect at `offset`, or None before the first heading."""
        i = bisect.bisect_right(self.starts, offset) - 1
        return self.paths[i] if i >= 0 else None


def under_title(section: str, title: str) -> str:
    """`section` without leading headings the title already says ("Profiles" under
    "Profiles - The Cargo Book"), so a source's header names each thing once."""
    parts = section.split(SEPARATOR)
    folded = title.casefold()
    while len(parts) > 1 and folded.startswith(parts[0].casefold()):
        parts.pop(0)
    if len(parts) == 1 and folded.startswith(parts[0].casefold()):
        return ""
    return SEPARATOR.join(parts)
