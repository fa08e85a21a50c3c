"""Following a run's server-sent events (`GET /v1/runs/{id}/events`) from the CLI.

Reconnects with `Last-Event-ID` when the connection drops, so nothing is missed or shown
twice; returns the `final` event's data.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

Handler = Callable[[str, dict[str, Any]], None]


class EventsError(Exception):
    """The events could not be read (the run is not there, or the API refused)."""


def follow(
    http: httpx.Client,
    url: str,
    run_id: str,
    headers: dict[str, str],
    on_event: Handler,
    *,
    reconnects: int = 5,
) -> dict[str, Any]:
    """Call `on_event(kind, data)` for each event until `final`, whose data is returned."""
    cursor = ""
    for _ in range(reconnects + 1):
        sent = {**headers, **({"Last-Event-ID": cursor} if cursor else {})}
        try:
            with http.stream("GET", f"{url}/v1/runs/{run_id}/events", headers=sent) as response:
                if response.status_code != 200:
                    response.read()
                    raise EventsError(f"{response.status_code}: {response.text[:300]}")
                fields: dict[str, str] = {}
                for line in response.iter_lines():
                    if line.startswith(":"):
                        continue
                    if line:
                        name, _, value = line.partition(": ")
                        fields[name] = value
                        continue
                    if "event" in fields:
                        cursor = fields.get("id", cursor)
                        data = json.loads(fields.get("data") or "{}")
                        if fields["event"] == "final":
                            return data if isinstance(data, dict) else {"value": data}
                        on_event(fields["event"], data)
                    fields = {}
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.ReadTimeout):
            continue  # dropped: reconnect after the last event seen
    raise EventsError(f"the events of run {run_id} kept dropping ({reconnects} reconnects)")
