"""What each role is sent: system prompt (stable, so providers can cache it) and messages.

Per-call material (task, findings, feedback, tool results) goes in the messages, never in
the system prompt, so the system prompt of a role stays byte-identical for a whole run.
"""

from __future__ import annotations

from agents.protocol import clip
from agents.tools import describe
from keel.contracts.agents import Finding, PlanStep, RoleSpec, TeamSpec
from keel.contracts.llm import ChatMessage

FINDING_CHARS = 2_000
DRAFT_CHARS = 8_000


def planner_system(team: TeamSpec) -> str:
    roster = "\n".join(
        f"- {s.name}: {s.description} (tools: {', '.join(s.tools) or 'none'})"
        for s in team.specialists
    )
    return f"{team.planner.prompt}\n\nSpecialists of this team:\n{roster}"


def specialist_system(role: RoleSpec) -> str:
    return f"{role.prompt}\n\n{describe(list(role.tools))}"


def _context(task: str, instructions: str, history: list[str]) -> list[str]:
    parts = [f"Task: {task}"]
    if instructions:
        parts.append(f"Instructions from a person: {instructions}")
    if history:
        parts.append("Earlier rounds:\n" + "\n".join(f"- {h}" for h in history))
    return parts


def planner_messages(
    task: str, instructions: str, history: list[str], feedback: str
) -> list[ChatMessage]:
    parts = _context(task, instructions, history)
    if feedback:
        parts.append(f"Feedback on the last draft: {feedback}")
    parts.append("Plan the next steps.")
    return [ChatMessage(role="user", content="\n\n".join(parts))]


def specialist_messages(
    task: str,
    instructions: str,
    feedback: str,
    step: PlanStep,
    findings: list[Finding],
    scratch: list[ChatMessage],
) -> list[ChatMessage]:
    parts = _context(task, instructions, [])
    if feedback:
        # Specialists see the critic's last word too: a planner may pass it on badly.
        parts.append(f"Feedback on the last draft: {feedback}")
    if findings:
        parts.append(
            "Findings so far:\n"
            + "\n".join(f"[{f.agent}] {clip(f.text, FINDING_CHARS)}" for f in findings)
        )
    parts.append(f"Your step: {step.instruction}")
    return [ChatMessage(role="user", content="\n\n".join(parts)), *scratch]


def critic_messages(
    task: str, instructions: str, draft: str, findings: list[Finding]
) -> list[ChatMessage]:
    parts = _context(task, instructions, [])
    if findings:
        parts.append(
            "Findings:\n"
            + "\n".join(f"[{f.agent}] {clip(f.text, FINDING_CHARS)}" for f in findings)
        )
    parts.append(f"Draft to review:\n{clip(draft, DRAFT_CHARS)}")
    return [ChatMessage(role="user", content="\n\n".join(parts))]


def tool_result_message(tool: str, ok: bool, text: str) -> ChatMessage:
    label = "Tool result" if ok else "Tool error"
    return ChatMessage(role="user", content=f"{label} ({tool}):\n{text}")


def extractor_messages(instructions: str, title: str, text: str) -> list[ChatMessage]:
    parts = []
    if instructions:
        parts.append(f"Instructions: {instructions}")
    parts.append(f"Document: {title}\n{text}" if title else f"Document:\n{text}")
    return [ChatMessage(role="user", content="\n\n".join(parts))]


def repair_message(problem: str) -> ChatMessage:
    return ChatMessage(
        role="user",
        content=f"Your reply could not be used ({problem}). Reply again with the JSON object "
        "only, exactly in the requested shape.",
    )
