"""Layer 3: PII and secret detection, redaction with typed placeholders, and restoration.

Detection is regexes plus checksums, no model: card numbers must pass Luhn and carry a real
issuer prefix, IBANs must pass ISO 7064 mod-97, SSNs must avoid the never-issued ranges, UK
National Insurance numbers the excluded prefixes, generic secrets must look random (Shannon
entropy). The checksums are what keep order numbers and invoice ids out of the findings.

`redact` replaces each value with a typed, numbered placeholder (`[EMAIL_1]`; the same value
always gets the same placeholder). `restore_map` is the only way back, and it maps a
placeholder to its value only when that value was in the *user's own input*: a model answer
may quote someone else's phone number from a document, and restoring it would leak it.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from keel.contracts.safety import PiiFinding, PiiPolicy, PiiType, SafetyVerdict
from keel.safety.common import allow

# --- checksums ----------------------------------------------------------------------------


def luhn_valid(number: str) -> bool:
    """Luhn (mod-10) check of a string of digits (separators ignored)."""
    digits = [int(d) for d in re.sub(r"\D", "", number)]
    if len(digits) < 2:
        return False
    total = 0
    for i, digit in enumerate(reversed(digits)):
        if i % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def card_brand(number: str) -> str | None:
    """The issuer of a card number by its prefix and length, or None for no known issuer."""
    d = re.sub(r"\D", "", number)
    n = len(d)
    two, four, six = int(d[:2]), int(d[:4]), int(d[:6])
    if d[0] == "4" and n in (13, 16, 19):
        return "visa"
    if (51 <= two <= 55 or 2221 <= four <= 2720) and n == 16:
        return "mastercard"
    if two in (34, 37) and n == 15:
        return "amex"
    if (four == 6011 or two == 65 or 644 <= int(d[:3]) <= 649 or 622126 <= six <= 622925) and (
        16 <= n <= 19
    ):
        return "discover"
    if 3528 <= four <= 3589 and 16 <= n <= 19:
        return "jcb"
    if (two in (36, 38, 39) or 300 <= int(d[:3]) <= 305) and 14 <= n <= 19:
        return "diners"
    if two == 62 and 16 <= n <= 19:
        return "unionpay"
    if (two == 50 or 56 <= two <= 69) and 12 <= n <= 19:
        return "maestro"
    return None


# ISO 13616 lengths of the countries seen most; others are accepted at 15-34 characters.
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AT": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "CH": 21, "CY": 28,
    "CZ": 24, "DE": 22, "DK": 18, "EE": 20, "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GR": 27,
    "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IS": 26, "IT": 27, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MT": 31, "NL": 18, "NO": 15, "PL": 28, "PT": 25, "QA": 29, "RO": 24,
    "SA": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TR": 26, "UA": 29,
}  # fmt: skip


def iban_valid(iban: str) -> bool:
    """ISO 7064 mod-97-10 check of an IBAN (spaces ignored), with the country's length."""
    compact = re.sub(r"\s", "", iban).upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}", compact):
        return False
    expected = IBAN_LENGTHS.get(compact[:2])
    if expected is not None and len(compact) != expected:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def shannon_entropy(value: str) -> float:
    """Bits per character of `value`: random API keys score ~4-6, words ~2.5-3.5."""
    if not value:
        return 0.0
    counts = Counter(value)
    return -sum(c / len(value) * math.log2(c / len(value)) for c in counts.values())


# --- detectors ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Detector:
    type: PiiType
    pattern: re.Pattern[str]
    group: int = 0
    check: Callable[[str], bool] | None = None


def _phone_ok(value: str) -> bool:
    digits = re.sub(r"\D", "", value)
    return 9 <= len(digits) <= 15 and len(set(digits)) > 2


def _card_ok(value: str) -> bool:
    digits = re.sub(r"\D", "", value)
    groups = re.split(r"[ -]", value)
    # Separators, when present, must be consistent: "4111 1111 1111 1111" or "3782-822463-10005".
    if len(groups) > 1 and len({len(g) for g in groups[1:-1]}) > 2:
        return False
    return 12 <= len(digits) <= 19 and luhn_valid(digits) and card_brand(digits) is not None


_PLACEHOLDER_VALUE = re.compile(
    r"^(?:<[^>]*>|\$\{?[A-Z_]+\}?|%[a-z_]+%|x{4,}|\*{3,}|\.{3,}|your[_-].*|changeme|"
    r"example|redacted|null|none|true|false|\[.*\])$",
    re.IGNORECASE,
)


def _generic_secret_ok(value: str) -> bool:
    if _PLACEHOLDER_VALUE.match(value) or len(value) < 8:
        return False
    kinds = sum(bool(re.search(p, value)) for p in (r"[a-z]", r"[A-Z]", r"\d", r"[^A-Za-z0-9]"))
    return shannon_entropy(value) >= 3.0 and kinds >= 2


def _password_ok(value: str) -> bool:
    return len(value) >= 6 and not _PLACEHOLDER_VALUE.match(value) and shannon_entropy(value) >= 2.0


_KEY_NAME = (
    r"(?:api[_-]?key|apikey|secret(?:[_-]?key)?|access[_-]?token|auth[_-]?token|bearer|"
    r"refresh[_-]?token|client[_-]?secret|private[_-]?key|signing[_-]?key|token)"
)
_STREET = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|"
    r"Terrace|Close|Crescent|Square|Sq|Parkway|Pkwy|Highway|Hwy|Circle|Cir|Row|Gardens|Mews)"
)

DETECTORS: tuple[_Detector, ...] = (
    _Detector(
        "SECRET",
        re.compile(
            r"-----BEGIN (?:[A-Z ]+ )?PRIVATE KEY-----[\s\S]+?-----END (?:[A-Z ]+ )?PRIVATE "
            r"KEY-----"
        ),  # fmt: skip
    ),
    _Detector(
        "SECRET", re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)[A-Z0-9]{16}\b")
    ),
    _Detector(
        "SECRET",
        re.compile(r"(?i:aws_?secret_?access_?key)[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9/+=]{40})"),
        group=1,
    ),
    _Detector(
        "SECRET",
        re.compile(r"\bsk-(?:proj-|ant-(?:api\d\d-)?|svcacct-|admin-)?[A-Za-z0-9_-]{20,}"),
    ),
    _Detector("SECRET", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_\w{22,255})")),
    _Detector("SECRET", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    _Detector("SECRET", re.compile(r"\bAIza[0-9A-Za-z_-]{35}")),
    _Detector("SECRET", re.compile(r"\b(?:sk|rk)_(?:live|test)_[0-9a-zA-Z]{16,}")),
    _Detector("SECRET", re.compile(r"\bglpat-[A-Za-z0-9_-]{20}")),
    _Detector("SECRET", re.compile(r"\bhf_[A-Za-z0-9]{30,}")),
    _Detector(
        "SECRET", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
    ),
    # A password inside a connection string: postgres://user:PASSWORD@host.
    _Detector(
        "SECRET",
        re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s:/@]+:([^\s:/@]{3,})@"),
        group=1,
        check=lambda v: not _PLACEHOLDER_VALUE.match(v),
    ),
    _Detector(
        "SECRET",
        re.compile(rf"(?i:\b{_KEY_NAME})[\"']?\s*(?:[:=]|=>|\s+is\s+)\s*[\"']?([^\s\"',;]{{8,}})"),
        group=1,
        check=_generic_secret_ok,
    ),
    _Detector(
        "SECRET",
        re.compile(
            r"(?i:\b(?:password|passwd|pwd|passcode|pin code))[\"']?\s*(?:[:=]|=>|\s+is\s+)"
            r"\s*[\"']?([^\s\"',;]{6,})"
        ),  # fmt: skip
        group=1,
        check=_password_ok,
    ),
    _Detector("CARD", re.compile(r"(?<![\d-])(?:\d[ -]?){11,18}\d(?![\d-])"), check=_card_ok),
    _Detector(
        "IBAN",
        re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b"),
        check=iban_valid,
    ),
    _Detector(
        "SSN",
        re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}(?![\d-])"),
    ),
    _Detector(
        "SSN",
        re.compile(
            r"(?i:\b(?:ssn|social security(?: number| no\.?| #)?)\s*(?:#|:|is|no\.?)?\s*)"
            r"((?!000|666|9\d\d)\d{3}(?!00)\d{2}(?!0000)\d{4})\b"
        ),  # fmt: skip
        group=1,
    ),
    _Detector(
        "NATIONAL_ID",
        re.compile(
            r"\b(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?"
            r"\d{2} ?[A-D]\b"
        ),  # fmt: skip
    ),
    _Detector(
        "EMAIL",
        re.compile(r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}\b"),
    ),
    _Detector(
        "ADDRESS",
        re.compile(
            rf"\b\d{{1,6}}[A-Za-z]?,?\s+(?:[A-Z][a-z]+\.?\s+){{1,4}}{_STREET}\b\.?"
            r"(?:,?\s+(?:Apt|Apartment|Suite|Unit|Ste|Flat|#)\.?\s*[\w-]+)?"
            r"(?:,\s*[A-Z][a-z]+(?:\s[A-Z][a-z]+){0,2})?"
            r"(?:,?\s*(?:[A-Z]{2}\s+\d{5}(?:-\d{4})?|[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}))?"
        ),
    ),
    _Detector(
        "PHONE",
        re.compile(
            r"(?<![\w+])(?:\+\d{1,3}[\s.-]?(?:\(\d{1,4}\)[\s.-]?)?\d{1,4}(?:[\s.-]?\d{2,4}){1,4}"
            r"|\(\d{3}\)\s?\d{3}[\s.-]\d{4}|\d{3}[.-]\d{3}[.-]\d{4}|\d{3} \d{3} \d{4}"
            r"|0\d{2,4}[\s-]?\d{3,4}[\s-]?\d{3,4})(?![\w-])"
        ),
        check=_phone_ok,
    ),
)
_PRIORITY: dict[PiiType, int] = {
    "SECRET": 0, "CARD": 1, "IBAN": 2, "SSN": 3, "NATIONAL_ID": 4, "EMAIL": 5, "ADDRESS": 6,
    "PHONE": 7,
}  # fmt: skip


def canonical(kind: PiiType, value: str) -> str:
    """A form of `value` that compares equal however it was written ("+1 (555)..." vs "555...")."""
    if kind in ("PHONE", "CARD", "SSN"):
        digits = re.sub(r"\D", "", value)
        # Compare phone numbers on their national part, so "+44 20..." matches "020...".
        return digits[-9:] if kind == "PHONE" else digits
    if kind in ("IBAN", "NATIONAL_ID"):
        return re.sub(r"\s", "", value).upper()
    if kind in ("EMAIL", "ADDRESS"):
        return re.sub(r"\s+", " ", value).strip().lower()
    return value


def find_pii(text: str, types: Iterable[PiiType] | None = None) -> list[PiiFinding]:
    """Every PII value and secret in `text`, in reading order, non-overlapping.

    Where two detectors claim overlapping text the more specific wins (a secret over a card
    over a phone number), so a card number is never also reported as a phone number.
    Placeholders are numbered per type in order of first appearance; repeated values share one.
    """
    wanted = set(types) if types is not None else set(_PRIORITY)
    spans: list[tuple[int, int, int, PiiType]] = []
    for detector in DETECTORS:
        if detector.type not in wanted:
            continue
        for match in detector.pattern.finditer(text):
            value = match.group(detector.group)
            if not value or (detector.check is not None and not detector.check(value)):
                continue
            spans.append(
                (_PRIORITY[detector.type], match.start(detector.group), match.end(detector.group),
                 detector.type)
            )  # fmt: skip
    accepted: list[tuple[int, int, PiiType]] = []
    for _, start, end, kind in sorted(spans):
        if all(end <= s or start >= e for s, e, _ in accepted):
            accepted.append((start, end, kind))
    accepted.sort()
    numbers: dict[tuple[PiiType, str], str] = {}
    per_type: Counter[str] = Counter()
    findings = []
    for start, end, kind in accepted:
        value = text[start:end]
        key = (kind, canonical(kind, value))
        if key not in numbers:
            per_type[kind] += 1
            numbers[key] = f"[{kind}_{per_type[kind]}]"
        findings.append(
            PiiFinding(type=kind, value=value, start=start, end=end, placeholder=numbers[key])
        )
    return findings


def redact(text: str, types: Iterable[PiiType] | None = None) -> tuple[str, list[PiiFinding]]:
    """Replace every PII value in `text` with its typed placeholder.

    Returns:
        The redacted text and the findings (with offsets into the *original* text).
    """
    findings = find_pii(text, types)
    out: list[str] = []
    cursor = 0
    for finding in findings:
        out.append(text[cursor : finding.start])
        out.append(finding.placeholder)
        cursor = finding.end
    out.append(text[cursor:])
    return "".join(out), findings


def restore_map(findings: Iterable[PiiFinding], user_input: str) -> dict[str, str]:
    """Placeholder -> value, for the values the user wrote themselves, and only those.

    A value counts as the user's when it (or its canonical form: digits of a phone number,
    lowercase email) occurs in `user_input`. Everything else stays a placeholder forever.
    """
    own = {(f.type, canonical(f.type, f.value)) for f in find_pii(user_input)}
    mapping: dict[str, str] = {}
    for finding in findings:
        if (finding.type, canonical(finding.type, finding.value)) in own:
            mapping[finding.placeholder] = finding.value
    return mapping


def restore(text: str, mapping: dict[str, str]) -> str:
    """Put restorable values back in place of their placeholders; leave any other as is."""
    if not mapping:
        return text
    pattern = re.compile("|".join(re.escape(k) for k in sorted(mapping, key=len, reverse=True)))
    return pattern.sub(lambda m: mapping[m.group(0)], text)


def detect_pii(text: str, policy: PiiPolicy | None = None) -> SafetyVerdict:
    """Find PII in user input and apply the policy's action (by default: redact it).

    Returns:
        A verdict of layer `pii` with one `TYPE` signal per type found (`EMAIL`, `CARD`...)
        and, for `redact`, the text with placeholders in `redacted_text`.
    """
    policy = policy or PiiPolicy()
    if not policy.enabled:
        return allow("pii", "disabled")
    redacted, findings = redact(text, policy.types)
    if not findings:
        return allow("pii", "no personal data found")
    counts = Counter(f.type for f in findings)
    return SafetyVerdict(
        layer="pii",
        action=policy.input_action,
        score=1.0 if counts.get("SECRET") else 0.5,
        signals=sorted(counts),
        redacted_text=redacted if policy.input_action == "redact" else None,
        reason="found " + ", ".join(f"{n} {t}" for t, n in sorted(counts.items())),
    )
