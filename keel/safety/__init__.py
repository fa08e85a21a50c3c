"""Keel's safety layers: pure, deterministic functions, no I/O, no Temporal.

Five layers, one entry point each, every one returning a `SafetyVerdict`:

1. `validate_input` — encoding, control/invisible characters, size and output-size limits;
2. `detect_injection` — direct and indirect prompt injection and jailbreaks;
3. `detect_pii` (with `redact`, `restore_map`, `restore`) — PII and secrets;
4. `moderate_input` / `moderate_output` — harmful requests; leaks, secrets, foreign data;
5. `check_grounding` — share of the answer supported by the retrieved context.

Plus `check_tool_call` for tool arguments, and the combinations a workflow calls:
`check_input`, `check_document` and `check_output`. Activities wrap these; they hold no
client, so they are equally safe to call from tests, the CLI and the red-team runner.
"""

from keel.safety.grounding import check_grounding, grounded_share
from keel.safety.injection import detect_injection
from keel.safety.moderation import moderate_input, moderate_output
from keel.safety.pii import detect_pii, find_pii, redact, restore, restore_map
from keel.safety.policy import check_document, check_input, check_output
from keel.safety.tools import check_tool_call
from keel.safety.validation import validate_input

__all__ = [
    "check_document",
    "check_grounding",
    "check_input",
    "check_output",
    "check_tool_call",
    "detect_injection",
    "detect_pii",
    "find_pii",
    "grounded_share",
    "moderate_input",
    "moderate_output",
    "redact",
    "restore",
    "restore_map",
    "validate_input",
]
