// The collector's dashboard: plain DOM, no build step. It reads the JSON API
// under /api and redraws every few seconds. The selected agent and the open
// run live in the URL's hash (#agent=...&run=...), so a link shows the same.
"use strict";

const REFRESH_MS = 3000;
const state = { agent: null, run: null, withSignals: false };

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function getJSON(path) {
  const response = await fetch(path, { headers: { accept: "application/json" } });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

const enc = encodeURIComponent;
const shortId = (id) => (id && id.length > 12 ? id.slice(0, 8) + "…" : id || "");
function when(ts) {
  if (ts === null || ts === undefined) return "";
  const d = new Date(ts * 1000);
  return d.toLocaleTimeString() + (Date.now() - d > 86400000 ? " " + d.toLocaleDateString() : "");
}

function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  state.agent = params.get("agent");
  state.run = params.get("run");
}
function writeHash() {
  const params = new URLSearchParams();
  if (state.agent) params.set("agent", state.agent);
  if (state.run) params.set("run", state.run);
  const text = params.toString();
  if (location.hash.slice(1) !== text) location.hash = text;
  else refresh();
}
function openRun(runId) { state.run = runId; writeHash(); }
function pickAgent(agentId) { state.agent = agentId; state.run = null; writeHash(); }

function badge(severity) { return el("span", { class: `badge ${severity}` }, severity); }

function signalCard(signal, withRunLink) {
  const x = signal.explanation || {};
  return el("div", { class: `signal ${signal.severity}`, "data-detector": signal.detector, "data-run-id": signal.run_id },
    el("div", { class: "head" },
      badge(signal.severity),
      el("span", { class: "detector" }, signal.detector),
      el("span", { class: "mono" }, signal.agent_id),
      signal.step_index !== null && signal.step_index !== undefined ? el("span", { class: "label" }, `step ${signal.step_index}`) : null,
      withRunLink ? el("a", { href: "#", onclick: (e) => { e.preventDefault(); openRun(signal.run_id); } }, `run ${shortId(signal.run_id)}`) : null,
      el("span", { class: "label" }, when(signal.created_at))),
    x.what ? el("p", {}, el("span", { class: "label" }, "What happened: "), x.what) : null,
    x.why ? el("p", {}, el("span", { class: "label" }, "Why it matters: "), x.why) : null,
    x.try ? el("p", {}, el("span", { class: "label" }, "What to try: "), x.try) : null);
}

function drawAgents(agents) {
  const list = document.getElementById("agents");
  const items = [el("li", { class: state.agent ? "" : "selected", onclick: () => pickAgent(null) }, "All agents")];
  for (const a of agents.items) {
    items.push(el("li", { class: a.agent_id === state.agent ? "selected" : "", "data-agent-id": a.agent_id, onclick: () => pickAgent(a.agent_id) },
      el("span", { class: "mono" }, a.agent_id),
      el("span", { class: "counts" }, `${a.runs} runs · ${a.signals || 0} signals` + (a.open_runs ? ` · ${a.open_runs} open` : ""))));
  }
  list.replaceChildren(...items);
}

function drawSignals(signals) {
  const box = document.getElementById("signals");
  document.getElementById("signals-scope").textContent = state.agent ? `of ${state.agent}` : "of all agents";
  if (!signals.items.length) { box.replaceChildren(el("p", { class: "empty" }, "No signals yet.")); return; }
  box.replaceChildren(...signals.items.map((s) => signalCard(s, true)));
}

function drawRuns(runs, deploys) {
  const rows = runs.items.map((r) => ({ at: r.last_seen, row: el("tr", { class: "run", "data-run-id": r.run_id, onclick: () => openRun(r.run_id) },
    el("td", { class: "mono", title: r.run_id }, shortId(r.run_id)),
    el("td", { class: "mono" }, r.agent_id),
    el("td", {}, r.status),
    el("td", {}, r.total_steps),
    el("td", {}, r.event_count),
    el("td", {}, r.signal_count ? el("span", { class: "badge HIGH" }, r.signal_count) : el("span", { class: "badge none" }, "0")),
    el("td", { class: r.end_type === "run.errored" ? "fail" : "" }, r.error_type || r.exit_reason || ""),
    el("td", {}, when(r.last_seen))) }));
  // Deploy markers sit between the runs, at the time they were recorded.
  const oldest = runs.items.length ? runs.items[runs.items.length - 1].last_seen : 0;
  for (const d of deploys.items) {
    if (d.at < oldest && runs.next_offset !== null) continue;
    rows.push({ at: d.at, row: el("tr", { class: "deploy", "data-deploy": d.version },
      el("td", { colspan: 8 }, `▲ deploy ${d.version} of ${d.agent_id} at ${when(d.at)}`)) });
  }
  rows.sort((a, b) => b.at - a.at);
  const body = document.querySelector("#runs tbody");
  if (!rows.length) body.replaceChildren(el("tr", { class: "empty" }, el("td", { colspan: 8 }, "No runs yet.")));
  else body.replaceChildren(...rows.map((r) => r.row));
}

function describe(event) {
  const p = event.payload || {};
  switch (event.event_type) {
    case "run.started": return [p.model ? `model ${p.model}` : "", p.tools && p.tools.length ? `tools: ${p.tools.join(", ")}` : ""].filter(Boolean).join(" · ");
    case "run.completed": return `exit: ${p.exit_reason || "completed"}` + (p.total_steps !== undefined ? ` · ${p.total_steps} steps` : "");
    case "run.errored": return `error: ${p.error_type || "?"}`;
    case "llm.called": return [p.model, p.prompt_tokens !== undefined ? `${p.prompt_tokens} prompt tokens` : ""].filter(Boolean).join(" · ");
    case "llm.responded": return [p.finish_reason ? `finish: ${p.finish_reason}` : "", p.completion_tokens !== undefined ? `${p.completion_tokens} tokens` : "",
      p.output_length !== undefined ? `${p.output_length} chars` : "", p.latency_ms !== undefined ? `${Math.round(p.latency_ms)} ms` : ""].filter(Boolean).join(" · ");
    case "tool.called": return `${p.tool_name}` + (p.args_hash ? ` · args ${String(p.args_hash).slice(0, 10)}` : "");
    case "tool.responded": return `${p.tool_name} · ${p.success === false ? "failed" : "ok"}` + (p.latency_ms !== undefined ? ` · ${Math.round(p.latency_ms)} ms` : "");
    case "retrieval.called": return `${p.index_name}`;
    case "retrieval.responded": return `${p.index_name} · ${p.result_count} results` + (p.top_score !== null && p.top_score !== undefined ? ` · top ${p.top_score}` : "");
    case "external.signal": return `${p.signal_name}` + (p.source ? ` from ${p.source}` : "");
    default: return "";
  }
}

async function drawRun() {
  const data = await getJSON(`/api/runs/${enc(state.run)}`);
  const run = data.run;
  const deploys = await getJSON(`/api/deploys?agent_id=${enc(run.agent_id)}&limit=20`);
  document.getElementById("run-title").replaceChildren("Run ", el("span", { class: "mono", "data-run-id": run.run_id }, run.run_id));
  const facts = [["Agent", run.agent_id], ["Version", run.agent_version], ["Status", run.status],
    ["Parent run", run.parent_run_id || "—"], ["Steps", run.total_steps], ["Events", run.event_count],
    ["Ended", run.error_type ? `errored (${run.error_type})` : run.exit_reason || "not yet"], ["Last seen", when(run.last_seen)]];
  document.getElementById("run-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  const flagged = new Set(data.signals.map((s) => s.step_index));
  document.getElementById("run-signals").replaceChildren(
    ...(data.signals.length ? data.signals.map((s) => signalCard(s, false))
      : [el("p", { class: "empty" }, run.status === "judged" ? "No signals: nothing went wrong that the detectors know of." : "Not judged yet: waiting for the run to end.")]));
  const rows = data.events.map((e) => ({ at: e.timestamp, row: el("li", { class: flagged.has(e.step_index) ? "flagged" : "", "data-event-type": e.event_type },
    el("span", { class: "step" }, e.step_index), el("span", { class: "kind" }, e.event_type),
    el("span", { class: e.payload && e.payload.success === false ? "fail" : "" }, describe(e))) }));
  const first = data.events.length ? data.events[0].timestamp : 0;
  const last = data.events.length ? data.events[data.events.length - 1].timestamp : 0;
  for (const d of deploys.items) {
    if (d.at >= first - 3600 && d.at <= last + 60) {
      rows.push({ at: d.at, row: el("li", { class: "deploy" }, el("span", { class: "step" }, "▲"), el("span", { class: "kind" }, "deploy"), el("span", {}, d.version)) });
    }
  }
  rows.sort((a, b) => a.at - b.at);
  document.getElementById("timeline").replaceChildren(...rows.map((r) => r.row));
}

async function refresh() {
  readHash();
  const status = document.getElementById("status");
  try {
    const scope = state.agent ? `/api/agents/${enc(state.agent)}` : "/api";
    const runsQuery = `limit=50${state.withSignals ? "&with_signals=true" : ""}`;
    const [agents, signals, runs, deploys] = await Promise.all([
      getJSON("/api/agents?limit=200"),
      getJSON(`${scope}/signals?limit=20`),
      getJSON(`${scope}/runs?${runsQuery}`),
      getJSON(`/api/deploys?limit=50${state.agent ? `&agent_id=${enc(state.agent)}` : ""}`),
    ]);
    drawAgents(agents);
    document.getElementById("overview").hidden = Boolean(state.run);
    document.getElementById("detail").hidden = !state.run;
    if (state.run) await drawRun();
    else { drawSignals(signals); drawRuns(runs, deploys); }
    status.className = "status";
    status.textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    status.className = "status down";
    status.textContent = `cannot reach the collector (${error.message}); retrying`;
  }
}

document.getElementById("with-signals").addEventListener("change", (e) => { state.withSignals = e.target.checked; refresh(); });
document.getElementById("back").addEventListener("click", (e) => { e.preventDefault(); state.run = null; writeHash(); });
window.addEventListener("hashchange", refresh);
refresh();
setInterval(refresh, REFRESH_MS);
