"""The cost dashboard in a real browser: real model calls fill the ledger, then headless
chromium signs in with the tenant's key and the charts must show that tenant's numbers, and
only them.

Set `KEEL_DASHBOARD_SCREENSHOT=docs/dashboard.png` to keep a screenshot of the page.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from temporalio.worker import Worker

from keel.clients import Clients
from keel.settings import Settings
from tests.conftest import Caller, serve_api
from tests.support.browser import headless_chromium, missing_browser
from tests.support.provider_harness import ProviderHarness

pytestmark = pytest.mark.timeout(180)

CHARTS = ("spend-feature", "spend-model", "budget", "cache")
# Per chart: its data as Chart.js holds it, and what the canvas shows at the centre of the
# first dataset's largest bar (or point) next to the colour it should have been drawn in.
READ_CHARTS = """
const out = {};
for (const id of arguments[0]) {
  const chart = Chart.getChart(id);
  if (!chart) { out[id] = null; continue; }
  const first = chart.data.datasets[0];
  const top = first.data.indexOf(Math.max(...first.data));
  const at = chart.getDatasetMeta(0).data[top].getCenterPoint();
  const ratio = chart.currentDevicePixelRatio;
  const px = chart.canvas.getContext("2d").getImageData(
    Math.round(at.x * ratio), Math.round(at.y * ratio), 1, 1).data;
  out[id] = {
    labels: chart.data.labels,
    datasets: chart.data.datasets.map((d) => ({label: d.label, data: d.data})),
    drawn: [px[0], px[1], px[2]],
    colour: [].concat(first.backgroundColor)[Array.isArray(first.backgroundColor) ? top : 0],
  };
}
out.tenant = document.getElementById("tenant").textContent;
out.runs = [...document.querySelectorAll("#runs tbody tr")].map((tr) => ({
  id: tr.cells[0].firstChild.textContent,
  href: tr.querySelector("a") ? tr.querySelector("a").href : null,
}));
return out;
"""


def call(question: str, feature: str, **extra: Any) -> dict[str, Any]:
    wait = extra.pop("wait_seconds", 30)
    return {
        "call": {"messages": [{"role": "user", "content": question}], "max_tokens": 64, **extra},
        "feature": feature,
        "wait_seconds": wait,
    }


async def spend(http: httpx.AsyncClient, who: Caller, body: dict[str, Any]) -> dict[str, Any]:
    """One real model call through the gateway; its result (cost, model, cache layer)."""
    response = await http.post("/v1/model-calls", json=body, headers=who.headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["result"]
    assert result["ok"], result
    return result


async def spend_in_a_workflow(http: httpx.AsyncClient, who: Caller, body: dict[str, Any]) -> str:
    """A call sent off the happy path (`wait_seconds: 0`): a durable run; its id when done."""
    started = await http.post("/v1/model-calls", json=body, headers=who.headers)
    assert started.status_code == 202, started.text
    run_id: str = started.json()["id"]
    for _ in range(200):
        run = (await http.get(f"/v1/runs/{run_id}", headers=who.headers)).json()
        if run["status"] != "running":
            assert run["status"] == "completed", run
            return run_id
        await asyncio.sleep(0.1)
    raise AssertionError(f"{run_id} still running")


async def seed_history(clients: Clients, who: Caller) -> None:
    """Earlier days' spend, as the ledger would hold it, so the charts have days to compare
    (today's rows are the real calls); and a monthly budget with its alert at 70 %."""
    async with clients.engine.begin() as conn:
        tenant_id = (
            await conn.execute(text("SELECT id FROM tenants WHERE name = :n"), {"n": who.tenant})
        ).scalar_one()
        for days_ago, feature, model, cost in [
            (1, "summaries", "claude-haiku-4-5", 0.041),
            (2, "support", "gpt-4o-mini", 0.012),
            (3, "summaries", "claude-haiku-4-5", 0.066),
            (6, "support", "claude-haiku-4-5", 0.029),
        ]:
            await conn.execute(
                text(
                    "INSERT INTO llm_calls (call_key, created_at, tenant_id, feature, provider, "
                    "model, cost_usd) VALUES (:k, :at, :t, :f, 'seed', :m, :c)"
                ),
                {
                    "k": f"seed-{uuid.uuid4()}",
                    "at": datetime.now(UTC) - timedelta(days=days_ago),
                    "t": tenant_id,
                    "f": feature,
                    "m": model,
                    "c": cost,
                },
            )
        await conn.execute(
            text("INSERT INTO budgets (tenant_id, limit_usd) VALUES (:t, 0.30)"), {"t": tenant_id}
        )


def read_dashboard(url: str, key: str, screenshot: str | None = None) -> dict[str, Any]:
    """Sign in on the page with `key` and read back what its charts hold and drew."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with headless_chromium(height=1110 if screenshot else 1000) as browser:
        browser.get(f"{url}/dashboard")
        assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-state") in (
            "signed-out",
            "loading",
        )
        browser.find_element(By.ID, "key").send_keys(key)
        browser.find_element(By.CSS_SELECTOR, "#signin button").click()
        WebDriverWait(browser, 20).until(
            lambda b: (
                b.find_element(By.TAG_NAME, "body").get_attribute("data-state")
                in ("ready", "error")
            )
        )
        error = browser.find_element(By.ID, "error").text
        assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "ready", (
            error
        )
        if screenshot:
            browser.save_screenshot(screenshot)
        page: dict[str, Any] = browser.execute_script(READ_CHARTS, list(CHARTS))
        return page


def hex_rgb(colour: str) -> list[int]:
    return [int(colour[i : i + 2], 16) for i in (1, 3, 5)]


def series(chart: dict[str, Any]) -> dict[str, list[float]]:
    return {d["label"]: d["data"] for d in chart["datasets"]}


@pytest.mark.skipif(missing_browser() is not None, reason=missing_browser() or "")
async def test_dashboard_draws_the_tenants_own_numbers(
    clients: Clients,
    gw_settings: Settings,
    gw_workers: list[Worker],
    harness: ProviderHarness,
    caller: Caller,
    other_caller: Caller,
) -> None:
    # Bigger prompts than the harness's default, so the sums are worth a chart.
    harness.input_tokens, harness.output_tokens = 20_000, 1_500
    with serve_api(gw_settings) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            summary = call("Summarise: Keel runs durable agent workflows.", "summaries")
            first = await spend(http, caller, summary)
            again = await spend(http, caller, summary)
            harness.cached_tokens = 8_000  # the provider's own prompt cache, on one call
            pinned = await spend(
                http, caller, call("Where is my refund?", "support", model="gpt-4o-mini")
            )
            harness.cached_tokens = 0
            run_id = await spend_in_a_workflow(
                http,
                caller,
                call("Escalate: refund overdue", "support", cache=False, wait_seconds=0),
            )
            await spend(http, other_caller, call("Another tenant's secret", "secret-feature"))
            await seed_history(clients, caller)

            assert (await http.get("/v1/dashboard/data")).status_code == 401
            data = (await http.get("/v1/dashboard/data", headers=caller.headers)).json()
            costs = (await http.get("/v1/costs", headers=caller.headers)).json()
            mine = await asyncio.to_thread(
                read_dashboard, url, caller.key, os.environ.get("KEEL_DASHBOARD_SCREENSHOT")
            )
            theirs = await asyncio.to_thread(read_dashboard, url, other_caller.key)

    assert (first["cache_layer"], again["cache_layer"]) == ("none", "exact")
    assert pinned["cache_layer"] == "provider" and pinned["model"] == "gpt-4o-mini"
    today = datetime.now(UTC).date().isoformat()
    support_today = sum(
        r["cost_usd"] for r in costs["rows"] if r["day"] == today and r["feature"] == "support"
    )
    assert support_today > pinned["cost_usd"] > 0  # the workflow's call is in it too

    # The page shows what the JSON route says, and that is the tenant's ledger.
    assert data["days"][-1] == today and len(data["days"]) == 30
    assert data["total_usd"] == pytest.approx(costs["total_usd"])
    assert mine["tenant"] == f"tenant {caller.tenant}"
    by_feature = series(mine["spend-feature"])
    assert mine["spend-feature"]["labels"] == [day[5:] for day in data["days"]]
    assert by_feature["summaries"][-1] == pytest.approx(first["cost_usd"])  # the hit costs 0
    assert by_feature["summaries"][-2] == pytest.approx(0.041)
    assert by_feature["summaries"][-4] == pytest.approx(0.066)
    assert by_feature["support"][-1] == pytest.approx(support_today)
    by_model = series(mine["spend-model"])
    assert by_model["gpt-4o-mini"][-3] == pytest.approx(0.012)
    assert by_model["claude-haiku-4-5"][-7] == pytest.approx(0.029)
    assert "secret-feature" not in by_feature

    budget = series(mine["budget"])
    spent = budget["spent this month"]
    assert spent[-1] == pytest.approx(costs["month_budget"]["spent_usd"])
    assert budget["70 % alert"] == [pytest.approx(0.21)] * len(spent)
    assert budget["100 % limit"] == [0.3] * len(spent)

    # 4 calls answered today (1 exact hit, 1 provider prompt-cache hit) and 4 seeded rows.
    assert series(mine["cache"])["hit rate"] == [12.5, 0, 12.5]

    # The costliest runs link to the Temporal UI when a workflow ran them.
    runs = {row["id"]: row["href"] for row in mine["runs"]}
    ns = gw_settings.temporal_namespace
    assert runs[run_id] == f"{gw_settings.temporal_ui}/namespaces/{ns}/workflows/{run_id}"
    served = [href for wid, href in runs.items() if wid != run_id]  # by the API: no workflow
    assert len(served) == 3 and set(served) == {None}

    # Each chart was drawn: its largest value's bar (or point) is on the canvas in its colour.
    for chart in CHARTS:
        assert mine[chart]["drawn"] == hex_rgb(mine[chart]["colour"]), chart

    # Another tenant's key shows that tenant's spend and nothing of this one's.
    assert theirs["tenant"] == f"tenant {other_caller.tenant}"
    assert set(series(theirs["spend-feature"])) == {"secret-feature"}
    assert theirs["budget"] is None  # it has none; this tenant's is not shown
    assert len(theirs["runs"]) == 1 and theirs["runs"][0]["id"] not in runs
