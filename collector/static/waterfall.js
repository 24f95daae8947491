// The run page's waterfall: one row per model call, tool call and
// retrieval on a shared time axis (the bar starts when the call was made
// and is as long as its measured latency), child runs nested under the step
// that was running when they started, each with a bar of its own, and
// every step a signal is about marked with the signal's name. Kind and
// failure are written in each row (LLM / TOOL / RETR, ✗ failed), colour only
// repeats them.
"use strict";

(function () {
  const el = DT.el;
  const KINDS = { llm: "LLM", tool: "TOOL", retrieval: "RETR" };
  const PAGE_ROWS = 200;

  function latencyOf(step) {
    const p = step.responded || {};
    if (typeof p.latency_ms === "number") return p.latency_ms;
    if (step.end !== null) return Math.max(0, (step.end - step.start) * 1000);
    return null;
  }

  // Pairs each *.called with the *.responded of the same kind and step.
  function stepsOf(events) {
    const open = new Map();
    const steps = [];
    for (const e of events) {
      const [kind, phase] = e.event_type.split(".");
      const p = e.payload || {};
      if (KINDS[kind] && phase === "called") {
        const step = { type: "call", kind, step: e.step_index, start: e.timestamp, end: null, called: p, responded: null };
        open.set(`${kind}:${e.step_index}`, step);
        steps.push(step);
      } else if (KINDS[kind] && phase === "responded") {
        const step = open.get(`${kind}:${e.step_index}`);
        if (step && step.responded === null) { step.responded = p; step.end = e.timestamp; continue; }
        // An answer without its call: drawn ending when it arrived.
        const ms = typeof p.latency_ms === "number" ? p.latency_ms : 0;
        steps.push({ type: "call", kind, step: e.step_index, start: e.timestamp - ms / 1000, end: e.timestamp, called: {}, responded: p });
      } else if (e.event_type === "external.signal" || e.event_type === "run.errored") {
        steps.push({ type: "event", kind: e.event_type, step: e.step_index, start: e.timestamp, payload: p });
      }
    }
    return steps;
  }

  function nameOf(step) {
    const p = { ...step.called, ...(step.responded || {}) };
    if (step.kind === "llm") return p.model || "model";
    if (step.kind === "tool") return p.tool_name || "tool";
    return p.index_name || "retrieval";
  }

  function hover(step) {
    const p = { ...step.called, ...(step.responded || {}) };
    const parts = [`step ${step.step}`, `${KINDS[step.kind]} ${nameOf(step)}`];
    if (step.kind === "llm") {
      if (p.prompt_tokens !== undefined) parts.push(`${p.prompt_tokens} prompt tokens`);
      if (p.completion_tokens !== undefined) parts.push(`${p.completion_tokens} completion tokens`);
      if (p.finish_reason) parts.push(`finish reason: ${p.finish_reason}`);
      if (p.output_length !== undefined) parts.push(`${p.output_length} chars out`);
    } else if (step.kind === "tool") {
      if (step.responded) parts.push(p.success === false ? "failed" : "succeeded");
      if (p.output_length !== undefined) parts.push(`${p.output_length} chars out`);
      if (p.args_hash) parts.push(`args ${String(p.args_hash).slice(0, 12)}`);
    } else {
      if (p.result_count !== undefined) parts.push(`${p.result_count} results`);
      if (p.top_score !== undefined && p.top_score !== null) parts.push(`top score ${p.top_score}`);
    }
    const ms = latencyOf(step);
    parts.push(ms === null ? "no answer recorded" : `latency ${DT.duration(ms)}`);
    return parts.join(" · ");
  }

  function place(bar, start, ms, scale) {
    bar.style.left = `${scale.left(start)}%`;
    bar.style.width = `${Math.max(0, Math.min(100 - scale.left(start), ms === null ? 0 : scale.width(ms)))}%`;
  }

  function runRow(item, depth, scale) {
    const run = item.run;
    const ended = run.end_type === "run.errored" ? `errored (${run.error_type || "?"})` : run.exit_reason || run.status;
    const bar = el("div", { class: "wf-bar" });
    place(bar, run.first_ts, (run.last_ts - run.first_ts) * 1000, scale);
    const title = `${run.agent_id} · run ${run.run_id} · ${run.total_steps} steps · ${ended}`;
    return el("div", { class: `wf-row run d${Math.min(depth, 6)}`, "data-run-id": run.run_id, "data-depth": depth, title },
      el("div", { class: "wf-label" },
        depth ? el("span", { class: "tree" }, "└ ") : null,
        depth ? DT.link({ run: run.run_id }, run.agent_id, { class: "mono" }) : el("span", { class: "mono" }, run.agent_id),
        el("span", { class: "label" }, ` run ${DT.shortId(run.run_id)} · ${ended}`)),
      el("div", { class: "wf-track" }, bar),
      el("div", { class: "wf-value" }, DT.duration((run.last_ts - run.first_ts) * 1000)));
  }

  function stepRow(item, step, depth, scale, focus) {
    const flags = item.flags.get(step.step) || [];
    const failed = step.type === "call" && step.responded && (step.responded.success === false || step.responded.finish_reason === "error");
    const bar = el("div", { class: "wf-bar" });
    const classes = ["wf-row", step.type === "call" ? "step" : "event", `k-${step.kind.replace(".", "-")}`, `d${Math.min(depth, 6)}`];
    if (failed) classes.push("failed");
    if (flags.length) classes.push("flagged");
    // A signal's link marks every step of that signal; a step's link, the step.
    if (focus.run === item.run.run_id && (focus.flag ? flags.includes(focus.flag) : String(step.step) === focus.step)) classes.push("focus");
    if (step.type === "event") {
      const p = step.payload;
      const live = step.kind === "external.signal" && p.source === "dunetrace";
      if (live) classes.push("live");
      place(bar, step.start, null, scale);
      const text = step.kind === "run.errored" ? `✗ run errored: ${p.error_type || "?"}`
        : `${live ? "● LIVE " : ""}signal ${p.signal_name || "?"}${p.source ? ` from ${p.source}` : ""}`;
      return el("div", { class: classes.join(" "), "data-run-id": item.run.run_id, "data-step": step.step, title: text },
        el("div", { class: "wf-label" }, el("span", { class: "step-no" }, step.step), el("span", { class: "name" }, text)),
        el("div", { class: "wf-track" }, bar), el("div", { class: "wf-value" }, ""));
    }
    const ms = latencyOf(step);
    place(bar, step.start, ms, scale);
    return el("div", { class: classes.join(" "), "data-run-id": item.run.run_id, "data-step": step.step,
      "data-kind": step.kind, "data-latency-ms": ms === null ? "" : ms, title: hover(step) },
    el("div", { class: "wf-label" },
      el("span", { class: "step-no" }, step.step),
      el("span", { class: "kind" }, KINDS[step.kind]),
      el("span", { class: "name" }, nameOf(step)),
      failed ? el("span", { class: "fail-tag" }, "✗ failed") : null,
      ...flags.map((f) => el("span", { class: "flag-tag" }, `⚑ ${f}`))),
    el("div", { class: "wf-track" }, bar),
    el("div", { class: "wf-value" }, ms === null ? "no answer" : DT.duration(ms)));
  }

  // The steps a signal is about: its evidence's list; else, for evidence
  // that names a span (first_step..last_step, as TOOL_THRASHING and
  // CONTEXT_BLOAT do), every call of the first step's kind inside it.
  function stepsAbout(signal, steps) {
    const e = signal.evidence || {};
    if (!Array.isArray(e.steps) && Number.isInteger(e.first_step) && Number.isInteger(e.last_step)) {
      const first = steps.find((x) => x.type === "call" && x.step === e.first_step);
      const inside = steps.filter((x) => x.type === "call" && x.step >= e.first_step && x.step <= e.last_step
        && (!first || x.kind === first.kind)).map((x) => x.step);
      if (inside.length) return inside;
    }
    return DT.signalSteps(signal);
  }

  // Root first, each child under the last step of its parent that had
  // started by the time the child started.
  function rows(data, focus) {
    const items = [{ run: data.run, events: data.events, signals: data.signals }, ...(data.children || [])];
    const byParent = new Map();
    let t0 = Infinity;
    let t1 = -Infinity;
    for (const item of items) {
      item.steps = stepsOf(item.events);
      item.flags = new Map();
      for (const s of item.signals) for (const n of stepsAbout(s, item.steps)) item.flags.set(n, [...(item.flags.get(n) || []), s.detector]);
      if (item !== items[0]) byParent.set(item.run.parent_run_id, [...(byParent.get(item.run.parent_run_id) || []), item]);
      t0 = Math.min(t0, item.run.first_ts);
      t1 = Math.max(t1, item.run.last_ts);
      for (const s of item.steps) {
        t0 = Math.min(t0, s.start);
        t1 = Math.max(t1, s.start + (s.type === "call" ? (latencyOf(s) || 0) / 1000 : 0));
      }
    }
    const span = Math.max(t1 - t0, 1e-6);
    const scale = { t0, span, left: (t) => ((t - t0) / span) * 100, width: (ms) => (ms / 1000 / span) * 100 };
    const out = [];
    const visit = (item, depth) => {
      out.push(() => runRow(item, depth, scale));
      const kids = (byParent.get(item.run.run_id) || []).slice();
      for (const step of item.steps) {
        while (kids.length && kids[0].run.first_ts < step.start) visit(kids.shift(), depth + 1);
        out.push(() => stepRow(item, step, depth, scale, focus));
      }
      for (const kid of kids) visit(kid, depth + 1);
    };
    visit(items[0], 0);
    return { out, scale };
  }

  function axis(scale) {
    const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => {
      const tick = el("span", { class: "tick" }, DT.duration(f * scale.span * 1000) || "0");
      tick.style.left = `${f * 100}%`;
      return tick;
    });
    return el("div", { class: "wf-row axis" }, el("div", { class: "wf-label label" }, "time from the run's start →"),
      el("div", { class: "wf-track" }, ...ticks), el("div", { class: "wf-value label" }, "latency"));
  }

  // Draws one page of rows; returns the listing the pager shows.
  DT.drawWaterfall = function drawWaterfall(box, data, focus, offset) {
    const { out, scale } = rows(data, focus);
    let start = offset || 0;
    if (focus.step !== undefined && offset === undefined) {
      // Open the page that holds the step a signal link points at.
      const at = out.findIndex((make) => { const r = make(); return r.dataset.step === String(focus.step) && r.dataset.runId === (focus.run || data.run.run_id); });
      if (at >= 0) start = Math.floor(at / PAGE_ROWS) * PAGE_ROWS;
    }
    const shown = out.slice(start, start + PAGE_ROWS).map((make) => make());
    box.replaceChildren(axis(scale), ...shown);
    box.dataset.rows = String(out.length);
    return { items: shown, total: out.length, limit: PAGE_ROWS, offset: start,
      next_offset: start + PAGE_ROWS < out.length ? start + PAGE_ROWS : null };
  };
})();
