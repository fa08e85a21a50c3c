// Keel's cost dashboard: sign in with an API key, fetch /v1/dashboard/data, draw it.
// Every string from the server goes into the page as text (textContent), never as markup.
"use strict";

const KEY = "keel-dashboard-key"; // sessionStorage: gone when the tab closes
const COLORS = ["#2563eb", "#16a34a", "#f59e0b", "#db2777", "#7c3aed", "#0891b2",
  "#dc2626", "#65a30d", "#ea580c", "#475569"];
const LAYER_NAMES = { exact: "exact", semantic: "semantic", provider: "provider prompt cache" };

const $ = (id) => document.getElementById(id);

function usd(value) {
  if (value === 0) return "$0";
  return "$" + (Math.abs(value) >= 1 ? value.toFixed(2) : String(+value.toPrecision(3)));
}

function setState(state) {
  document.body.dataset.state = state;
  $("signin").hidden = state === "ready" || state === "loading";
  $("board").hidden = state !== "ready";
  $("who").hidden = state !== "ready";
}

function draw(id, config) {
  const canvas = $(id);
  const old = Chart.getChart(canvas);
  if (old) old.destroy();
  config.options = Object.assign({
    animation: false, // drawn at once: nothing to wait for, in a browser or in a test
    responsive: true,
    maintainAspectRatio: false,
  }, config.options || {});
  return new Chart(canvas, config);
}

function stackedDays(id, days, series) {
  draw(id, {
    type: "bar",
    data: {
      labels: days.map((day) => day.slice(5)),
      datasets: series.map((s, i) => ({
        label: s.name, data: s.usd, backgroundColor: COLORS[i % COLORS.length],
      })),
    },
    options: {
      scales: { x: { stacked: true }, y: { stacked: true, ticks: { callback: usd } } },
      plugins: { tooltip: { callbacks: { label: (c) => `${c.dataset.label}: ${usd(c.raw)}` } } },
    },
  });
}

function budgetChart(budget) {
  $("nobudget").hidden = budget !== null;
  $("budget").parentElement.hidden = budget === null;
  if (budget === null) return;
  const flat = (value) => budget.days.map(() => value);
  const line = (label, data, color, dash) => ({
    label, data, borderColor: color, backgroundColor: color, borderDash: dash,
    pointRadius: dash.length ? 0 : 3, tension: 0,
  });
  draw("budget", {
    type: "line",
    data: {
      labels: budget.days.map((day) => day.slice(5)),
      datasets: [
        line("spent this month", budget.spent_usd, "#2563eb", []),
        line(`${Math.round(budget.soft_ratio * 100)} % alert`,
          flat(budget.soft_ratio * budget.limit_usd), "#f59e0b", [6, 4]),
        line("100 % limit", flat(budget.limit_usd), "#dc2626", [6, 4]),
      ],
    },
    options: {
      scales: { y: { beginAtZero: true, ticks: { callback: usd } } },
      plugins: {
        legend: { labels: { usePointStyle: true, pointStyle: "line" } },
        tooltip: { callbacks: { label: (c) => `${c.dataset.label}: ${usd(c.raw)}` } },
      },
    },
  });
}

function cacheChart(cache) {
  draw("cache", {
    type: "bar",
    data: {
      labels: cache.map((c) => LAYER_NAMES[c.layer] || c.layer),
      datasets: [{
        label: "hit rate", data: cache.map((c) => +(c.rate * 100).toFixed(2)),
        backgroundColor: cache.map((_, i) => COLORS[i % COLORS.length]),
      }],
    },
    options: {
      scales: { y: { beginAtZero: true, max: 100, ticks: { callback: (v) => `${v} %` } } },
      plugins: { legend: { display: false } },
    },
  });
}

function cell(row, value, className) {
  const td = row.insertCell();
  td.textContent = value;
  if (className) td.className = className;
  return td;
}

function runsTable(runs) {
  const body = $("runs").tBodies[0];
  body.replaceChildren();
  for (const run of runs) {
    const row = body.insertRow();
    const first = cell(row, "");
    if (run.ui_url && /^https?:\/\//.test(run.ui_url)) {
      const link = document.createElement("a");
      link.href = run.ui_url;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      link.textContent = run.id;
      first.append(link);
    } else {
      first.textContent = run.id;
      const note = document.createElement("span");
      note.className = "note";
      note.textContent = " (served by the API, no workflow)";
      first.append(note);
    }
    cell(row, run.feature);
    cell(row, run.models.join(", "));
    cell(row, run.calls, "num");
    cell(row, usd(run.cost_usd), "num");
    cell(row, run.last_at.slice(0, 19).replace("T", " "));
  }
  if (!runs.length) cell(body.insertRow(), "No runs in this period.").colSpan = 6;
}

function render(data) {
  $("tenant").textContent = `tenant ${data.tenant}`;
  $("total").textContent = usd(data.total_usd);
  $("answered").textContent = data.answered;
  // Answered without a provider call: the provider's prompt cache only makes a call cheaper.
  const hits = data.cache.filter((c) => c.layer !== "provider").reduce((n, c) => n + c.hits, 0);
  $("hitrate").textContent = data.answered ? `${Math.round(100 * hits / data.answered)} %` : "–";
  $("budgetpct").textContent = data.budget
    ? `${data.budget.status.percent.toFixed(1)} % of ${usd(data.budget.limit_usd)}` : "none set";
  stackedDays("spend-feature", data.days, data.by_feature);
  stackedDays("spend-model", data.days, data.by_model);
  budgetChart(data.budget);
  cacheChart(data.cache);
  runsTable(data.costliest_runs);
}

async function load() {
  const key = sessionStorage.getItem(KEY);
  if (!key) return setState("signed-out");
  setState("loading");
  const response = await fetch(`/v1/dashboard/data?days=${$("days").value}`, {
    headers: { Authorization: `Bearer ${key}` }, cache: "no-store",
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    if (response.status === 401) sessionStorage.removeItem(KEY);
    $("error").textContent = (body.error && body.error.message) || `HTTP ${response.status}`;
    return setState("error");
  }
  $("error").textContent = "";
  setState("ready");
  render(body);
}

function failed(error) {
  $("error").textContent = String(error);
  setState("error");
}

document.addEventListener("DOMContentLoaded", () => {
  $("signin").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY, $("key").value.trim());
    $("key").value = "";
    load().catch(failed);
  });
  $("signout").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    setState("signed-out");
  });
  $("days").addEventListener("change", () => load().catch(failed));
  load().catch(failed);
});
