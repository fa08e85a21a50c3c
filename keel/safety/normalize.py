"""Undo the tricks that hide an attack from a pattern: unicode, leetspeak, spacing, encodings.

Every detector scans what a model would *understand*, not the bytes it was given: a model
reads "1gn0r3 all pr3v10us 1nstruct10ns", a zero-width-split "ign\u200bore", or a base64 blob
it is told to decode just as well as plain English. So detectors scan a few *views* of each
text: the NFKC-normalised text, its de-leeted and de-spaced form, and the text of every
encoded fragment that decodes to readable language. The views are for scanning only; no
layer ever returns them in place of what the user wrote.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import html
import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import unquote

# Invisible characters with honest uses (ZWJ joins emoji, ZWNJ is needed in Persian, LRM/RLM
# mark direction in mixed scripts): stripped before scanning, flagged, never fatal alone.
INVISIBLE = frozenset(
    [0x00AD, 0x034F, 0x061C, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180E, 0x3164, 0xFEFF, 0xFFA0]
    + list(range(0x200B, 0x2010))  # ZWSP, ZWNJ, ZWJ, LRM, RLM
    + list(range(0x2060, 0x2065))  # word joiner, invisible operators
    + list(range(0xFE00, 0xFE10))  # variation selectors
    + list(range(0xE0100, 0xE01F0))  # supplementary variation selectors (payload smuggling)
)
# Embeddings, overrides and isolates reorder what a reviewer sees ("Trojan Source").
BIDI_CONTROLS = frozenset([*range(0x202A, 0x202F), *range(0x2066, 0x206A)])
# Unicode "tags" mirror ASCII invisibly: U+E0041 renders as nothing but a model may read "A".
TAG_RANGE = range(0xE0000, 0xE0080)

# Cyrillic and Greek letters that look Latin, for the scanning view only.
_CONFUSABLES = str.maketrans(
    "аеорсухіјѕԁɡкмнтвАВЕКМНОРСТУХІЈЅαβεικμνορτυχΑΒΕΖΗΙΚΜΝΟΡΤΥΧ",
    "aeopcyxijsdgkmhtbABEKMHOPCTYXIJSabeikmvoptuxABEZHIKMNOPTYX",
)
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b",
                       "9": "g", "@": "a", "$": "s", "!": "i", "|": "l", "+": "t"})  # fmt: skip
_LEET_WORD = re.compile(r"[a-z0-9@$!|+]*[a-z][a-z0-9@$!|+]*")
_HAS_LEET = re.compile(r"[0-9@$!|+]")
# Three or more single letters separated by one space, dot, dash, underscore or star.
_SPACED = re.compile(r"\b(?:[a-z][ ._*\-]){2,}[a-z]\b")
_WS = re.compile(r"[ \t\f\v]+")

_B64 = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")
_B32 = re.compile(r"\b[A-Z2-7]{16,}={0,6}")
_HEX = re.compile(r"\b(?:0x)?((?:[0-9a-fA-F]{2}){8,})\b")
_HEX_ESCAPED = re.compile(r"(?:\\x[0-9a-fA-F]{2}){4,}")
_BINARY = re.compile(r"(?:[01]{8}[ ]?){4,}")
_PERCENT = re.compile(r"%[0-9a-fA-F]{2}")
_UNICODE_ESCAPED = re.compile(r"(?:\\u[0-9a-fA-F]{4}){3,}")
_ENTITY = re.compile(r"&#x?[0-9a-fA-F]+;")
_ASCII85 = re.compile(r"<~(.+?)~>", re.DOTALL)
_BASE85 = re.compile(r"[0-9A-Za-z!#$%&()*+\-;<=>?@^_`{|}~]{40,}")
_MORSE = re.compile(r"(?:[.\-]{1,7}(?: / | {1,3}|/)){5,}[.\-]{1,7}")
_MORSE_TABLE = {
    ".-": "a", "-...": "b", "-.-.": "c", "-..": "d", ".": "e", "..-.": "f", "--.": "g",
    "....": "h", "..": "i", ".---": "j", "-.-": "k", ".-..": "l", "--": "m", "-.": "n",
    "---": "o", ".--.": "p", "--.-": "q", ".-.": "r", "...": "s", "-": "t", "..-": "u",
    "...-": "v", ".--": "w", "-..-": "x", "-.--": "y", "--..": "z", "-----": "0",
    ".----": "1", "..---": "2", "...--": "3", "....-": "4", ".....": "5", "-....": "6",
    "--...": "7", "---..": "8", "----.": "9",
}  # fmt: skip
_WORDLIKE = re.compile(r"[A-Za-z]{2,}")


@dataclass(frozen=True)
class View:
    """One way of reading a text: `kind` says how it was derived ("text", "base64", ...)."""

    kind: str
    text: str


def decode_tags(text: str) -> str:
    """Map Unicode tag characters back to the ASCII they mirror (the "ASCII smuggling" trick)."""
    return "".join(
        chr(ord(ch) - 0xE0000) if 0xE0020 <= ord(ch) <= 0xE007E else ch
        for ch in text
        if not (ord(ch) in TAG_RANGE and not 0xE0020 <= ord(ch) <= 0xE007E)
    )


def strip_invisible(text: str) -> str:
    """Drop zero-width, bidi-control and variation-selector characters."""
    return "".join(ch for ch in text if ord(ch) not in INVISIBLE and ord(ch) not in BIDI_CONTROLS)


def _fold(text: str) -> str:
    """Tags decoded, invisibles dropped, NFKC, accents and lookalikes folded, lowercase."""
    if text.isascii():
        return text.lower()  # every step below leaves ASCII as it is
    text = unicodedata.normalize("NFKC", strip_invisible(decode_tags(text)))
    # Accents carry no attack meaning and vary between copies ("règles" / "regles").
    text = "".join(
        ch for ch in unicodedata.normalize("NFD", text) if unicodedata.category(ch) != "Mn"
    )
    return text.translate(_CONFUSABLES).lower()


def normalize(text: str) -> str:
    """The base scanning view: tags decoded, invisibles dropped, NFKC, accents and lookalikes
    folded, lowercase, runs of spaces collapsed.

    NFKC folds fullwidth and mathematical letters ("𝐢𝐠𝐧𝐨𝐫𝐞") to ASCII; the confusables table
    folds the Cyrillic and Greek letters NFKC leaves alone.
    """
    return _WS.sub(" ", _fold(text))


def deleet(text: str) -> str:
    """Read digits and symbols inside words as the letters they imitate ("1gn0r3" -> "ignore").

    Only words that mix letters with look-alike symbols are touched, so "2024" and "$5" stay.
    """

    def fix(match: re.Match[str]) -> str:
        word = match.group(0)
        return word.translate(_LEET) if _HAS_LEET.search(word) else word

    return _LEET_WORD.sub(fix, text)


def despace(text: str) -> str:
    """Join letters spelled out one by one ("i g n o r e" -> "ignore").

    Runs of two or more spaces separate the spelled-out words ("r e v e a l  y o u r"), so
    this must see the text before its spaces are collapsed.
    """
    words = re.split(r"[ \t]{2,}", text)
    return " ".join(_SPACED.sub(lambda m: re.sub(r"[ ._*\-]", "", m.group(0)), w) for w in words)


def _readable(raw: bytes) -> str | None:
    """Decoded bytes as text when they read like language, else None (hashes, images)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if len(text) < 4:
        return None
    printable = sum(ch.isprintable() or ch in "\n\t" for ch in text) / len(text)
    letters = sum(ch.isalpha() or ch == " " for ch in text) / len(text)
    if printable < 0.95 or letters < 0.6 or not _WORDLIKE.search(text):
        return None
    return text


def _b64(token: str) -> str | None:
    padded = token + "=" * (-len(token) % 4)
    try:
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        return None
    return _readable(raw)


def _b32(token: str) -> str | None:
    padded = token + "=" * (-len(token) % 8)
    try:
        return _readable(base64.b32decode(padded))
    except (binascii.Error, ValueError):
        return None


def _morse(fragment: str) -> str | None:
    words = re.split(r"\s*/\s*|\s{3,}", fragment.strip())
    out = []
    for word in words:
        letters = [_MORSE_TABLE.get(code) for code in word.split()]
        if not letters or any(letter is None for letter in letters):
            return None
        out.append("".join(letter for letter in letters if letter))
    return " ".join(out)


def _fragments(text: str) -> list[View]:  # noqa: C901 - one short branch per encoding
    """Text hidden in encoded fragments of `text`, one view per fragment that decodes."""
    found: list[View] = []
    for match in _B64.finditer(text):
        token = match.group(0)
        # Long plain words ("internationalization") are valid base64 alphabet; real payloads
        # mix case or digits, so a lowercase-only token is not worth decoding.
        if token.isalpha() and (token.islower() or token.isupper()):
            continue
        decoded = _b64(token)
        if decoded:
            found.append(View("base64", decoded))
    for match in _B32.finditer(text):
        decoded = _b32(match.group(0))
        if decoded:
            found.append(View("base32", decoded))
    for match in _HEX.finditer(text):
        decoded = _readable(bytes.fromhex(match.group(1)))
        if decoded:
            found.append(View("hex", decoded))
    for match in _HEX_ESCAPED.finditer(text):
        decoded = _readable(bytes.fromhex(match.group(0).replace("\\x", "")))
        if decoded:
            found.append(View("hex", decoded))
    for match in _BINARY.finditer(text):
        bits = match.group(0).replace(" ", "")
        raw = int(bits, 2).to_bytes(len(bits) // 8, "big")
        decoded = _readable(raw)
        if decoded:
            found.append(View("binary", decoded))
    if len(_PERCENT.findall(text)) >= 3:
        found.append(View("url", unquote(text)))
    for match in _UNICODE_ESCAPED.finditer(text):
        found.append(View("unicode_escape", codecs.decode(match.group(0), "unicode_escape")))
    if len(_ENTITY.findall(text)) >= 3:
        found.append(View("html_entities", html.unescape(text)))
    for match in _ASCII85.finditer(text):
        try:
            decoded = _readable(base64.a85decode(match.group(0), adobe=True))
        except ValueError:
            decoded = None
        if decoded:
            found.append(View("ascii85", decoded))
    for match in _BASE85.finditer(text):
        try:
            decoded = _readable(base64.b85decode(match.group(0)))
        except ValueError:
            decoded = None
        if decoded:
            found.append(View("base85", decoded))
    for match in _MORSE.finditer(text):
        decoded = _morse(match.group(0))
        if decoded and len(decoded) >= 8:
            found.append(View("morse", decoded))
    return found


def views(text: str, *, decode: bool = True, depth: int = 2) -> list[View]:
    """Every view of `text` a detector should scan, the plain normalised one first.

    Args:
        text: What was received, unmodified.
        decode: Also decode embedded base64/base32/hex/binary/url/escape/ascii85/morse
            fragments and read the whole text as rot13 and reversed.
        depth: How many layers of encoding to peel (base64 of base64 is one trick).

    Returns:
        Views, deduplicated, each already normalised (lowercase, NFKC, no invisibles).
    """
    base = normalize(text)
    out = [View("text", base)]
    leet = _WS.sub(" ", despace(deleet(_fold(text))))
    if leet != base:
        out.append(View("deleet", leet))
    if decode:
        # rot13 and reversal are cheap and leave no marker to look for, so every text gets them;
        # only the rules read these views (the classifier would see gibberish).
        out.append(View("rot13", codecs.decode(base, "rot13")))
        out.append(View("reversed", base[::-1]))
        pending = [(text, depth)]
        while pending:
            current, left = pending.pop()
            for view in _fragments(current):
                norm = View(view.kind, normalize(view.text))
                out.append(norm)
                if left > 1:
                    pending.append((view.text, left - 1))
    seen: set[str] = set()
    unique = []
    for view in out:
        if view.text not in seen:
            seen.add(view.text)
            unique.append(view)
    return unique
