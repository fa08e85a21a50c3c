"""Tool-call screening: arguments an agent (or an injected instruction) passes to a tool.

An agent's tools are where an injection turns into damage, so their arguments are checked
for the payloads public scanners fire (garak's SQL, shell, Python-exec and XSS payloads):
destructive or injected SQL, shell metacharacters and reverse shells, code execution,
markup that runs script, and URLs that reach the host's own network (SSRF against cloud
metadata at 169.254.169.254 is the classic) or leave the tenant's allow-list.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from keel.contracts.safety import SafetyVerdict, ToolPolicy
from keel.safety.common import MEDIUM, STRONG, WEAK, Rule, allow, noisy_or, rule
from keel.safety.normalize import normalize

SQL_RULES: tuple[Rule, ...] = (
    rule(
        "sql:stacked_write",
        r";\s*(?:drop|delete|truncate|alter|insert|update|grant|revoke|"
        r"create|exec|execute|shutdown|attach|copy)\b",
        STRONG,
    ),  # fmt: skip
    rule("sql:drop", r"\b(?:drop|truncate)\s+(?:table|database|schema|index|view|user)\b", STRONG),
    rule(
        "sql:tautology",
        r"['\"]\s*(?:or|\|\|)\s*['\"]?\w+['\"]?\s*=\s*['\"]?\w+|\bor\s+1\s*=\s*1\b|"
        r"['\"]\s*or\s+['\"]?[a-z0-9]+['\"]?\s*(?:--|#)",
        STRONG,
    ),  # fmt: skip
    rule("sql:union", r"\bunion\s+(?:all\s+)?select\b", STRONG),
    rule("sql:boolean", r"\(\s*(\d+)\s*=\s*\1\s*\)|\b(?:and|or|where)\s+(\d+)\s*=\s*\2\b", STRONG),
    rule("sql:comment_cut", r"['\"]\s*\)?\s*;?\s*(?:--|#|/\*)", MEDIUM),
    rule(
        "sql:system",
        r"\b(?:xp_cmdshell|sp_executesql|pg_sleep|sleep\s*\(\s*\d|benchmark\s*\(|"
        r"waitfor\s+delay|load_file\s*\(|into\s+(?:out|dump)file|information_schema|pg_catalog|"
        r"sqlite_master|pg_shadow|mysql\.user|lo_import)",
        STRONG,
    ),  # fmt: skip
    rule(
        "sql:delete_all",
        r"\bdelete\s+from\s+\w+\s*(?:;|$)|\bupdate\s+\w+\s+set\b(?![^;]*\bwhere\b)",
        STRONG,
    ),  # fmt: skip
    rule(
        "sql:write",
        r"^\s*(?:insert\s+into|update\s+\w+\s+set|delete\s+from|alter\s+table|"
        r"create\s+(?:table|user|role)|grant\s)",
        MEDIUM,
    ),  # fmt: skip
)
SHELL_RULES: tuple[Rule, ...] = (
    rule(
        "shell:substitution",
        r"\$\([^)]*\)|`[^`]*\b(?:rm|curl|wget|nc|bash|sh|cat|touch|id|"
        r"whoami|chmod|ls|pwd|uname|env|printenv|ps|netstat|ifconfig|hostname|echo|sudo|"
        r"kill)\b[^`]*`",
        STRONG,
    ),  # fmt: skip
    rule(
        "shell:chained",
        r"(?:;|&&|\|\||\|)\s*(?:rm|curl|wget|nc|ncat|netcat|bash|sh|zsh|python3?|"
        r"perl|ruby|php|chmod|chown|mkfifo|dd|shutdown|reboot|kill|touch|cat\s+/etc|powershell|"
        r"cmd(?:\.exe)?)\b",
        STRONG,
    ),  # fmt: skip
    rule(
        "shell:destructive",
        r"\brm\s+-[a-z]*r[a-z]*f?\s+(?:/|~|\*|\.)|\bmkfs\b|:\(\)\s*\{\s*:\|:&\s*\};:|"
        r"\bdd\s+if=/dev/(?:zero|random)",
        STRONG,
    ),  # fmt: skip
    rule(
        "shell:reverse",
        r"/dev/tcp/|\bnc\s+(?:-[a-z]*e|.*\s-e\s)|\bbash\s+-i\b|\bmkfifo\b|"
        r"\bsocat\b.*exec|powershell\s+(?:-[a-z]+\s+)*-e(?:nc|ncodedcommand)?\b",
        STRONG,
    ),  # fmt: skip
    rule("shell:pipe_to_shell", r"\b(?:curl|wget)\b[^|\n]*\|\s*(?:sudo\s+)?(?:ba|z)?sh\b", STRONG),
    rule(
        "shell:sensitive_file",
        r"/etc/(?:passwd|shadow|sudoers)|\.ssh/(?:id_rsa|authorized_keys)|"
        r"\.aws/credentials|\.env\b|/proc/self/environ|c:\\windows\\system32",
        MEDIUM,
    ),  # fmt: skip
    rule("shell:traversal", r"(?:\.\./){2,}|(?:\.\.\\){2,}|%2e%2e%2f", MEDIUM),
)
CODE_RULES: tuple[Rule, ...] = (
    rule(
        "code:exec",
        r"__import__\s*\(|\bos\.(?:system|popen|exec\w*)\s*\(|\bsubprocess\.|"
        r"\b(?:eval|exec)\s*\(|\bruntime\.getruntime\(\)\.exec|\bsystem\s*[\"'(]|@\{\[|"
        r"\bchild_process\b|\brequire\s*\(\s*['\"]child_process",
        STRONG,
    ),  # fmt: skip
    rule(
        "code:template",
        r"\{\{[^}]*(?:__class__|__globals__|__subclasses__|config|self\.|"
        r"request\.application|lipsum|cycler)[^}]*\}\}|\$\{jndi:|#\{[^}]*runtime",
        STRONG,
    ),  # fmt: skip
    rule(
        "markup:script",
        r"<\s*script\b|javascript\s*:|\bon(?:error|load|mouseover|click|focus|"
        r"toggle)\s*=|data:text/html|document\.cookie|<\s*iframe\b|<\s*svg[^>]*on\w+\s*=|"
        r"expression\s*\(|vbscript\s*:",
        STRONG,
    ),  # fmt: skip
    rule(
        "code:imports",
        r"\bimport\s+(?:os|subprocess|socket|pty|shutil|ctypes)\b|\bfrom\s+"
        r"(?:os|subprocess|socket|pty|shutil)\s+import\b",
        STRONG,
    ),  # fmt: skip
    rule("code:network", r"\bimport\s+(?:requests|urllib|http\.client|httpx|paramiko)\b", MEDIUM),
    rule("code:file_write", r"\bopen\s*\([^)]*,\s*['\"](?:w|a|wb|ab|w\+|a\+)['\"]", MEDIUM),
    rule("markup:js_call", r"(?:^|[.;\s(])(?:alert|confirm|prompt)\s*\(", MEDIUM),
    rule(
        "markup:img_beacon", r"<\s*img[^>]+src\s*=\s*['\"]?https?://[^'\" >]+\?[^'\" >]*=", MEDIUM
    ),
    rule("test:eicar", r"x5o!p%@ap\[4\\pzx54\(p\^\)7cc\)7\}\$eicar", STRONG),
)
_URL = re.compile(r"\b(?:https?|ftp|file|gopher|dict|ldap|sftp|tftp|jar|netdoc)://[^\s\"'<>)]+",
                  re.IGNORECASE)  # fmt: skip
_INTERNAL_NAMES = re.compile(
    r"(?:^|\.)(?:localhost|metadata(?:\.google)?\.internal|metadata|internal|local|corp|lan|"
    r"intranet|home\.arpa|svc\.cluster\.local|cluster\.local)$"
)
_ODD_SCHEMES = ("file", "gopher", "dict", "ldap", "tftp", "jar", "netdoc")
_WEIGHTS = {"url:private_network": STRONG, "url:scheme": STRONG, "url:not_allowed": STRONG,
            "url:credentials": MEDIUM, "url:exfil_params": WEAK}  # fmt: skip


def _host_private(host: str) -> bool:
    host = host.strip("[]").lower()
    if _INTERNAL_NAMES.search(host):
        return True
    try:
        # Decimal and hex spellings ("2130706433", "0x7f.1") are how SSRF filters get dodged.
        address = ipaddress.ip_address(
            int(host, 0) if re.fullmatch(r"0x[0-9a-f]+|\d+", host) else host
        )
    except ValueError:
        return False
    return (
        address.is_private or address.is_loopback or address.is_link_local or address.is_reserved
        or address.is_unspecified or address.is_multicast
    )  # fmt: skip


def url_signals(text: str, policy: ToolPolicy) -> list[str]:
    """Signals for every URL in `text` that a fetch tool must not reach."""
    signals: set[str] = set()
    for match in _URL.finditer(text):
        parts = urlsplit(match.group(0))
        host = (parts.hostname or "").lower()
        if parts.scheme.lower() in _ODD_SCHEMES:
            signals.add("url:scheme")
        if policy.block_private_network and host and _host_private(host):
            signals.add("url:private_network")
        if parts.username or parts.password:
            signals.add("url:credentials")
        allowed = policy.allowed_hosts
        if allowed and host and not any(host == h or host.endswith("." + h) for h in allowed):
            signals.add("url:not_allowed")
        if re.search(r"[?&][\w-]+=(?:\{|%7b|\$\{|<)", parts.query + "&" + parts.path, re.I):
            signals.add("url:exfil_params")
    return sorted(signals)


def _flatten(arguments: str | Mapping[str, Any]) -> str:
    if isinstance(arguments, str):
        return arguments
    return json.dumps(arguments, ensure_ascii=False)


def check_tool_call(
    arguments: str | Mapping[str, Any],
    *,
    tool: str = "",
    policy: ToolPolicy | None = None,
) -> SafetyVerdict:
    """Screen the arguments of one tool call before the tool runs.

    Args:
        arguments: The raw argument string, or the arguments as a mapping (JSON-encoded for
            the scan, so nested values are covered).
        tool: The tool's name, quoted in the reason.
        policy: Allow-list and actions; the defaults when None.

    Returns:
        A verdict of layer `tool` whose signals name each payload class found
        (`sql:union`, `shell:reverse`, `url:private_network`...).
    """
    policy = policy or ToolPolicy()
    if not policy.enabled:
        return allow("tool", "disabled")
    raw = _flatten(arguments)
    text = normalize(raw)
    rules = SQL_RULES + SHELL_RULES + CODE_RULES
    hits = {r.name: r.weight for r in rules if r.pattern.search(text)}
    if not policy.block_sql_writes:
        hits = {k: w for k, w in hits.items() if k not in ("sql:write", "sql:delete_all")}
    for signal in url_signals(raw, policy):
        hits[signal] = _WEIGHTS[signal]
    score = round(noisy_or(hits.values()), 4)
    signals = sorted(hits, key=lambda k: -hits[k])
    if score < 0.5:
        return SafetyVerdict(
            layer="tool", action="allow", score=score, signals=signals, reason="arguments look safe"
        )
    name = f" to {tool}" if tool else ""
    return SafetyVerdict(
        layer="tool",
        action=policy.action,
        score=score,
        signals=signals,
        reason=f"unsafe arguments{name}: " + ", ".join(signals),
    )
