// The dashboard's pages and their live updates. Three pages, chosen by the
// URL's hash: agents and runs (#agent=...&range=24h: the chart over time
// and the runs, paged), a run (#run=...: its facts, signals and waterfall)
// and signals (#view=signals&agent=&type=&severity=&since=). Every few
// seconds the shown page asks the JSON API again and redraws only what
// changed, so new runs appear without a reload.
"use strict";

(function () {
  const { el, enc, getJSON } = DT;
  const REFRESH_MS = 3000;
  const RUNS_PAGE = 25;
  const SIGNALS_PAGE = 20;
  const LATEST_SIGNALS = 3;
  const SPANS = { "1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400 };
  const DETECTORS = ["TOOL_LOOP", "TOOL_THRASHING", "RETRY_STORM", "CASCADING_TOOL_FAILURE", "LLM_TRUNCATION_LOOP",
    "EMPTY_LLM_RESPONSE", "CONTEXT_BLOAT", "SLOW_STEP", "TOOL_AVOIDANCE", "GOAL_ABANDONMENT", "RAG_EMPTY_RETRIEVAL",
    "STEP_COUNT_INFLATION", "FIRST_STEP_FAILURE", "REASONING_STALL", "PROMPT_INJECTION_SIGNAL"];
  const drawn = new Map(); // what each part shows now, to skip redrawing the same
  let knownAgents = [];
  let agentsOffset = 0; // the agents list pages on its own, newest activity first
  const AGENTS_PAGE = 30;

  function changed(part, value) {
    const text = JSON.stringify(value);
    if (drawn.get(part) === text) return false;
    drawn.set(part, text);
    return true;
  }

  function show(page) {
    for (const id of ["overview", "detail", "signals-page"]) document.getElementById(id).hidden = id !== page;
    document.getElementById("nav-runs").className = page === "signals-page" ? "" : "current";
    document.getElementById("nav-signals").className = page === "signals-page" ? "current" : "";
  }

  function drawAgents(h, agents) {
    knownAgents = agents.items.map((a) => a.agent_id);
    if (!changed("agents", [agents, h.agent])) return;
    const items = [el("li", { class: h.agent ? "" : "selected" }, DT.link({}, "All agents"))];
    for (const a of agents.items) {
      items.push(el("li", { class: a.agent_id === h.agent ? "selected" : "", "data-agent-id": a.agent_id },
        DT.link({ agent: a.agent_id }, a.agent_id, { class: "mono" }),
        el("span", { class: "counts" }, `${a.runs} runs · ${a.signals || 0} signals` + (a.open_runs ? ` · ${a.open_runs} open` : ""))));
    }
    document.getElementById("agents").replaceChildren(...items);
    DT.pager(document.getElementById("agents-pager"), agents, (offset) => { agentsOffset = offset; DT.refresh(true); },
      ["← more recent", "less recent →"]);
  }

  function drawRuns(h, runs) {
    document.getElementById("runs-scope").textContent = h.agent ? `of ${h.agent}` : "of all agents";
    const rows = runs.items.map((r) => el("tr", { class: "run", "data-run-id": r.run_id },
      el("td", { class: "mono", title: r.run_id }, DT.link({ run: r.run_id }, DT.shortId(r.run_id))),
      el("td", { class: "mono" }, r.agent_id),
      el("td", {}, r.status),
      el("td", {}, r.total_steps),
      el("td", {}, r.event_count),
      el("td", {}, r.signal_count ? el("span", { class: "badge HIGH" }, `${r.signal_count} signal${r.signal_count > 1 ? "s" : ""}`)
        : el("span", { class: "badge none" }, "none")),
      el("td", { class: r.end_type === "run.errored" ? "fail" : "" }, r.end_type === "run.errored" ? `✗ ${r.error_type || "error"}` : r.exit_reason || ""),
      el("td", {}, DT.when(r.last_seen))));
    const body = document.querySelector("#runs tbody");
    body.replaceChildren(...(rows.length ? rows : [el("tr", { class: "empty" }, el("td", { colspan: 8 }, "No runs yet."))]));
    DT.pager(document.getElementById("runs-pager"), runs, (offset) => DT.go({ ...h, offset }));
  }

  // The agents listing (runs, signals, open runs, last seen of each) changes
  // whenever anything arrives: while it stays the same, the chart and the
  // lists are asked again only every STALE_MS (the chart's window moves).
  const STALE_MS = 30000;
  let lastFetch = 0;
  function unchanged(quiet) {
    if (quiet && Date.now() - lastFetch < STALE_MS) return true;
    lastFetch = Date.now();
    return false;
  }

  async function overview(h, quiet) {
    show("overview");
    if (unchanged(quiet)) return;
    const range = SPANS[h.range] ? h.range : "24h";
    const scope = h.agent ? `/api/agents/${enc(h.agent)}` : "/api";
    const [timeline, runs, latest] = await Promise.all([
      getJSON(`/api/timeline?range=${range}${h.agent ? `&agent_id=${enc(h.agent)}` : ""}`),
      getJSON(`${scope}/runs?limit=${RUNS_PAGE}&offset=${Number(h.offset) || 0}${h.with_signals ? "&with_signals=true" : ""}`),
      getJSON(`${scope}/signals?limit=${LATEST_SIGNALS}`),
    ]);
    if (changed("latest", [latest, h.agent])) {
      document.getElementById("latest-scope").textContent = `of ${h.agent || "all agents"}`;
      document.getElementById("all-signals").setAttribute("href", `#${new URLSearchParams({ view: "signals", ...(h.agent ? { agent: h.agent } : {}) })}`);
      document.getElementById("latest-signals").replaceChildren(...(latest.items.length ? latest.items.map((s) => DT.signalCard(s, true))
        : [el("p", { class: "empty" }, "No signals yet.")]));
    }
    for (const b of document.querySelectorAll(".range-picker button")) b.setAttribute("aria-pressed", String(b.dataset.range === range));
    document.getElementById("with-signals").checked = Boolean(h.with_signals);
    document.getElementById("chart-scope").textContent = `${h.agent || "all agents"}, last ${range}`;
    if (changed("timeline", timeline) || !DT.chart) {
      DT.drawChart(document.getElementById("chart"), document.getElementById("chart-note"), document.getElementById("marker-list"), timeline);
    }
    if (changed("runs", [runs, h])) drawRuns(h, runs);
  }

  async function runPage(h, quiet) {
    show("detail");
    if (unchanged(quiet)) return;
    let data;
    try {
      data = await getJSON(`/api/runs/${enc(h.run)}`);
    } catch (error) {
      if (error.status !== 404) throw error;
      // A link to a run this collector does not have (another database).
      document.getElementById("run-title").replaceChildren(`No run ${h.run} in this collector.`);
      for (const id of ["run-facts", "waterfall", "waterfall-pager", "run-signals"]) document.getElementById(id).replaceChildren();
      drawn.delete("run");
      return;
    }
    if (!changed("run", [data, h.step, h.flag, h.woffset])) return;
    const run = data.run;
    document.getElementById("run-title").replaceChildren("Run ", el("span", { class: "mono", "data-run-id": run.run_id }, run.run_id));
    const facts = [["Agent", DT.link({ agent: run.agent_id }, run.agent_id)], ["Version", run.agent_version], ["Status", run.status],
      ["Parent run", run.parent_run_id ? DT.link({ run: run.parent_run_id }, run.parent_run_id) : "—"],
      ["Child runs", String((data.children || []).length)], ["Steps", run.total_steps], ["Events", run.event_count],
      ["Took", DT.duration((run.last_ts - run.first_ts) * 1000)],
      ["Ended", run.error_type ? `✗ errored (${run.error_type})` : run.exit_reason || "not yet"], ["Last seen", DT.when(run.last_seen)]];
    document.getElementById("run-facts").replaceChildren(...facts.map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, v))));
    // The child runs' signals too: a crew's trouble is usually in a member.
    const ofChildren = (data.children || []).flatMap((c) => c.signals);
    document.getElementById("run-signals").replaceChildren(
      ...data.signals.map((s) => DT.signalCard(s, false)),
      ...ofChildren.map((s) => DT.signalCard(s, true)),
      ...(data.signals.length || ofChildren.length ? []
        : [el("p", { class: "empty" }, run.status === "judged" ? "No signals: nothing went wrong that the detectors know of." : "Not judged yet: waiting for the run to end.")]));
    const focus = { run: h.step !== undefined ? h.run : null, step: h.step, flag: h.flag };
    const offset = h.woffset !== undefined ? Number(h.woffset) : undefined;
    const listing = DT.drawWaterfall(document.getElementById("waterfall"), data, focus, offset);
    DT.pager(document.getElementById("waterfall-pager"), listing, (woffset) => DT.go({ ...h, woffset }), ["← earlier steps", "later steps →"]);
    const target = document.querySelector(".wf-row.focus");
    if (target && drawn.get("focused") !== location.hash) {
      drawn.set("focused", location.hash);
      target.scrollIntoView({ block: "center" });
    }
  }

  function fillSelect(select, values, current) {
    const options = [...new Set([...values, ...(current ? [current] : [])])];
    const first = select.options[0];
    select.replaceChildren(first, ...options.map((v) => el("option", { value: v }, v)));
    select.value = current || "";
  }

  async function signalsPage(h, quiet) {
    show("signals-page");
    if (unchanged(quiet)) return;
    const query = new URLSearchParams({ limit: SIGNALS_PAGE, offset: Number(h.offset) || 0 });
    if (h.agent) query.set("agent_id", h.agent);
    if (h.type) query.set("type", h.type);
    if (h.severity) query.set("severity", h.severity);
    // Whole seconds, so polling inside one second asks the same.
    if (SPANS[h.since]) query.set("since", String(Math.floor(Date.now() / 1000) - SPANS[h.since]));
    const signals = await getJSON(`/api/signals?${query}`);
    const form = document.getElementById("signal-filters");
    if (changed("filters", [knownAgents, h])) {
      fillSelect(form.elements.agent, knownAgents, h.agent);
      fillSelect(form.elements.type, [...DETECTORS, ...signals.items.map((s) => s.detector)], h.type);
      form.elements.severity.value = h.severity || "";
      form.elements.since.value = SPANS[h.since] ? h.since : "";
    }
    if (!changed("signals", [signals, h])) return;
    document.getElementById("signals-count").textContent = `${signals.total} found`;
    document.getElementById("signal-list").replaceChildren(...(signals.items.length ? signals.items.map((s) => DT.signalCard(s, true))
      : [el("p", { class: "empty" }, "No signals match these filters.")]));
    DT.pager(document.getElementById("signals-pager"), signals, (offset) => DT.go({ ...h, offset }));
  }

  let running = null;
  let again = false; // a new hash while a refresh was on its way
  DT.refresh = function refresh(force) {
    if (running) {
      again = again || force;
      return running;
    }
    if (force) drawn.clear();
    running = (async () => {
      const h = DT.readHash();
      const status = document.getElementById("status");
      try {
        const agents = await getJSON(`/api/agents?limit=${AGENTS_PAGE}&offset=${agentsOffset}`);
        const quiet = !changed("activity", agents.items);
        drawAgents(h, agents);
        if (h.run) await runPage(h, quiet);
        else if (h.view === "signals") await signalsPage(h, quiet);
        else await overview(h, quiet);
        status.className = "status";
        status.textContent = `live · updated ${new Date().toLocaleTimeString()}`;
      } catch (error) {
        status.className = "status down";
        status.textContent = error.message.startsWith("signed out") ? error.message
          : `cannot reach the collector (${error.message}); retrying`;
      } finally {
        running = null;
        if (again) { again = false; DT.refresh(true); }
      }
    })();
    return running;
  };

  for (const button of document.querySelectorAll(".range-picker button")) {
    button.addEventListener("click", () => DT.go({ ...DT.readHash(), range: button.dataset.range, offset: null }));
  }
  document.getElementById("with-signals").addEventListener("change", (e) => DT.go({ ...DT.readHash(), with_signals: e.target.checked ? "1" : null, offset: null }));
  document.getElementById("signal-filters").addEventListener("change", (e) => {
    const form = e.currentTarget;
    DT.go({ view: "signals", agent: form.elements.agent.value, type: form.elements.type.value,
      severity: form.elements.severity.value, since: form.elements.since.value });
  });
  window.addEventListener("hashchange", () => DT.refresh(true));
  DT.refresh(true);
  setInterval(() => DT.refresh(false), REFRESH_MS);
})();
