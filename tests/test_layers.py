"""The layers' one direction of dependency, read from the modules' own imports.

    keel/ (ground floor: settings, contracts, store, guards, safety, rag, text)   agents/ (data)
      ^
    activities/ (adapters: hold clients, call the core)      workflows/ (orchestration)
      ^                                                          ^
    api/ (HTTP)     worker.py (process entry)     keel/app/ (top floor: CLI, dev stack, eval)

A module may import its own layer and the layers below it. `workflows/` may name activity
classes (for `execute_activity_method` references) but nothing else of `activities/`. And no
workflow calls an activity or a child workflow by a string literal: a typo or a missing
registration would fail only at run time. (The agent loop's tool dispatch names a tool's
activity from the tool registry, `agents/`, which is data checked by its own tests.)
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# What each layer may import (first dotted parts; "keel" excludes "keel.app").
ALLOWED: dict[str, set[str]] = {
    "keel": {"keel", "agents"},
    "agents": {"keel", "agents"},
    "activities": {"keel", "agents", "activities"},
    "workflows": {"keel", "agents", "workflows", "activities"},
    "api": {"keel", "agents", "activities", "workflows", "api"},
    "keel.app": {"keel", "keel.app", "agents", "activities", "workflows", "api", "worker"},
    "worker": {"keel", "agents", "activities", "workflows", "worker"},
}
OURS = {"keel", "agents", "activities", "workflows", "api", "worker"}
STRING_CALLS = {
    "execute_activity",
    "execute_local_activity",
    "start_activity",
    "start_local_activity",
    "execute_child_workflow",
    "start_child_workflow",
}


def _layer(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    if parts[0] == "keel" and len(parts) > 1 and parts[1] == "app":
        return "keel.app"
    return parts[0]


def _imported(module: str) -> str | None:
    head = module.split(".")
    if head[0] not in OURS:
        return None
    if head[0] == "keel" and len(head) > 1 and head[1] == "app":
        return "keel.app"
    return head[0]


def _sources() -> list[Path]:
    found = [REPO / "worker.py"]
    for top in ("keel", "agents", "activities", "workflows", "api"):
        found += sorted((REPO / top).rglob("*.py"))
    return found


def _imports(tree: ast.AST) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
    return out


def test_no_module_imports_a_layer_above_its_own() -> None:
    wrong = []
    for path in _sources():
        layer = _layer(path)
        for line, module in _imports(ast.parse(path.read_text())):
            target = _imported(module)
            if target is not None and target not in ALLOWED[layer]:
                wrong.append(f"{path.relative_to(REPO)}:{line} ({layer}) imports {module}")
    assert not wrong, "imports pointing up a layer:\n" + "\n".join(wrong)


def test_workflows_use_only_activity_classes_from_activities() -> None:
    wrong = []
    for path in sorted((REPO / "workflows").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("activities"):
                names = [a.name for a in node.names]
                if not all(n.endswith("Activities") or n.endswith("_step") for n in names):
                    wrong.append(f"{path.relative_to(REPO)}:{node.lineno} imports {names}")
    assert not wrong, "workflows import more than activity classes:\n" + "\n".join(wrong)


def test_no_new_workflow_call_names_its_target_by_a_string() -> None:
    found = set()
    for path in sorted((REPO / "workflows").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in STRING_CALLS
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                found.add((str(path.relative_to(REPO)), node.args[0].value))
    assert not found, f"calls by string (use a method or class reference): {sorted(found)}"
