"""`keel runs ...`: list and inspect runs, and decide pending escalations, through the API.

HTTP only (no database, no Temporal), like `keel ask`: it works against any Keel
deployment given a URL and a key.
"""

from __future__ import annotations

from typing import Any

import httpx
from rich.console import Console

DECISIONS = ("approve", "reject", "edit", "take_over")


class RunsCliError(Exception):
    """A failure to show the user as is (no traceback)."""


class RunsClient:
    """The run routes of one Keel API, for one API key."""

    def __init__(self, http: httpx.Client, api_url: str, api_key: str) -> None:
        self.http = http
        self.url = api_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"}

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(
                method, f"{self.url}{path}", headers=self.headers, **kwargs
            )
        except httpx.HTTPError as exc:
            raise RunsCliError(
                f"cannot reach the Keel API at {self.url} ({exc}); is `keel up` running?"
            ) from exc
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                message = f"{response.status_code} {error['type']}: {error['message']}"
            except (ValueError, KeyError, TypeError):
                message = f"{response.status_code}: {response.text[:300]}"
            raise RunsCliError(message)
        return response.json()

    def list(
        self, *, status: str | None = None, feature: str | None = None, limit: int = 20
    ) -> list[dict[str, Any]]:
        """The caller's runs, newest first."""
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        if feature:
            params["feature"] = feature
        runs: list[dict[str, Any]] = self._call("GET", "/v1/runs", params=params)["runs"]
        return runs

    def show(self, run_id: str) -> dict[str, Any]:
        """Status, progress (pending escalation included), result, cost, UI link."""
        run: dict[str, Any] = self._call("GET", f"/v1/runs/{run_id}")
        return run

    def decide(self, run_id: str, action: str, body: dict[str, Any]) -> dict[str, Any]:
        """Send an escalation decision (`approve`, `reject`, `edit`, `take_over`)."""
        if action not in DECISIONS:
            raise RunsCliError(f"unknown decision {action!r}; one of {', '.join(DECISIONS)}")
        accepted: dict[str, Any] = self._call(
            "POST", f"/v1/runs/{run_id}/signals/{action}", json=body
        )
        return accepted


def render_list(console: Console, runs: list[dict[str, Any]]) -> None:
    """One line per run; plain columns, so ids are never cut and lines can be grepped."""
    if not runs:
        console.print("no runs")
        return
    width = max(len(run["id"]) for run in runs)
    console.print(f"{'id':{width}}  {'kind':22} {'status':18} {'cost USD':>10}  started")
    for run in runs:
        console.print(
            f"{run['id']:{width}}  {run['kind']:22} {run['status']:18} "
            f"{run.get('cost_usd') or 0:>10.6f}  {str(run.get('started_at') or '')[:19]}",
            soft_wrap=True,
            highlight=False,
        )


def render_run(console: Console, run: dict[str, Any]) -> None:
    """A run for a person: status, cost, link, progress, the pending question and draft."""

    def say(text: str) -> None:
        console.print(text, soft_wrap=True)  # never break ids, links or drafts mid-line

    say(f"[bold]{run['id']}[/] ({run['kind']}): {run['status']}")
    say(f"cost      ${run.get('cost_usd') or 0:.6f}")
    say(f"temporal  {run['ui_url']}")
    progress = run.get("progress") or {}
    if progress:
        counts = ", ".join(
            f"{k} {progress[k]}"
            for k in ("round", "turns", "tool_calls", "done", "failed", "in_flight")
            if k in progress
        )
        say(f"progress  {progress.get('status', '')}: {counts}")
        for turn in (progress.get("recent_turns") or [])[-5:]:
            say(f"  #{turn['n']} {turn['role']} ({turn['kind']}): {turn['summary']}")
    pending = progress.get("pending_escalation")
    if pending:
        say(f"[bold yellow]waiting for a person[/] ({pending['reason']}, {pending['id']})")
        say(f"  question: {pending['question']}")
        if pending.get("draft"):
            say(f"  draft:    {pending['draft']}")
        say(
            f"  expires:  {pending['expires_at']} (then: {pending['on_timeout']}); "
            f"decide with `keel runs approve|reject {run['id']}`"
        )
    result = run.get("result")
    if isinstance(result, dict):
        say(f"result    {result.get('status', '')}")
        if result.get("answer"):
            say(result["answer"])
        elif result.get("detail"):
            say(result["detail"])
    if run.get("error"):
        say(f"[red]error[/] {run['error']['type']}: {run['error']['message']}")
