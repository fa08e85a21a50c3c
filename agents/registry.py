"""Roles and teams by name: each role is one module of this package, each team a declaration.

`role_spec` turns a role module (PROMPT, Output, TOOLS, TIER, ...) into the `RoleSpec` a run
carries; `resolve_team` turns a `TeamDecl` into a `TeamSpec`. Nothing here performs I/O.
"""

from __future__ import annotations

from types import ModuleType
from typing import cast

from pydantic import BaseModel

from agents import analyst, critic, extractor, planner, researcher
from keel.contracts.agents import AgentLimits, RoleKind, RoleSpec, TeamDecl, TeamSpec, ToolName
from keel.contracts.guards import Tier

ROLES: dict[str, ModuleType] = {
    "planner": planner,
    "researcher": researcher,
    "analyst": analyst,
    "critic": critic,
    "extractor": extractor,
}

# Teams are declared, not coded: a name, roles by name, limits.
TEAMS: dict[str, TeamDecl] = {
    "research": TeamDecl(
        name="research",
        planner="planner",
        specialists=["researcher", "analyst"],
        critic="critic",
    ),
    "analysis": TeamDecl(
        name="analysis",
        planner="planner",
        specialists=["analyst"],
        critic="critic",
        limits=AgentLimits(max_turns=20, max_tool_calls=20),
    ),
}


class UnknownRole(ValueError):
    """A team names a role that has no module in `agents/`."""


def role_spec(name: str) -> RoleSpec:
    """The `RoleSpec` of role `name`."""
    module = ROLES.get(name)
    if module is None:
        raise UnknownRole(f"unknown role {name!r}; known roles: {sorted(ROLES)}")
    return RoleSpec(
        name=name,
        kind=cast(RoleKind, module.KIND),
        prompt=module.PROMPT,
        tools=cast(list[ToolName], list(module.TOOLS)),
        tier=cast(Tier, module.TIER),
        max_tokens=module.MAX_TOKENS,
        description=module.DESCRIPTION,
    )


def output_model(name: str) -> type[BaseModel]:
    """The pydantic model role `name` answers with."""
    module = ROLES.get(name)
    if module is None:
        raise UnknownRole(f"unknown role {name!r}")
    return cast(type[BaseModel], module.Output)


def resolve_team(decl: TeamDecl, limits: AgentLimits | None = None) -> TeamSpec:
    """The runnable team for a declaration; `limits` replaces the declared limits."""
    return TeamSpec(
        name=decl.name,
        planner=role_spec(decl.planner),
        specialists=[role_spec(s) for s in decl.specialists],
        critic=role_spec(decl.critic),
        limits=limits or decl.limits,
    )
