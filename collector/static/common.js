// What every page of the dashboard shares: building DOM nodes (never HTML
// strings: the page's Content-Security-Policy allows no inline script or
// style), reading the JSON API, the state kept in the URL's hash, formats,
// signal cards and pagers. Everything hangs off window.DT.
"use strict";

window.DT = window.DT || {};

DT.el = function el(tag, attrs, ...children) {
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
};

DT.getJSON = async function getJSON(path) {
  const response = await fetch(path, { headers: { accept: "application/json" } });
  // Signed out of a collector with sign-in: said in the status line (a
  // reload shows the sign-in page); never reloaded by itself, in a loop.
  if (response.status === 401 || response.status === 403 || response.redirected) {
    throw new Error("signed out: reload the page to sign in");
  }
  if (!response.ok) {
    const error = new Error(`${path}: HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return response.json();
};

DT.enc = encodeURIComponent;
DT.shortId = (id) => (id && id.length > 12 ? id.slice(0, 8) + "…" : id || "");

DT.when = function when(ts) {
  if (ts === null || ts === undefined) return "";
  const d = new Date(ts * 1000);
  return d.toLocaleTimeString() + (Date.now() - d > 86400000 ? " " + d.toLocaleDateString() : "");
};

// Latency as measured: a tool that answers in 2 µs shows "2 µs", not "0 ms".
DT.duration = function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "";
  if (ms === 0) return "0";
  const us = ms * 1000;
  if (ms < 1) return `${us < 1 ? us.toFixed(2) : us < 10 ? us.toFixed(1) : Math.round(us)} µs`;
  if (ms < 1000) return `${ms < 10 ? ms.toFixed(2) : ms < 100 ? ms.toFixed(1) : Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
};

// The URL's hash holds what is shown: view=signals, agent, run, step,
// range, offset and the signal filters; a link shows the same page.
DT.readHash = function readHash() {
  return Object.fromEntries(new URLSearchParams(location.hash.slice(1)));
};
DT.go = function go(params) {
  const clean = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "" && value !== false) clean.set(key, value);
  }
  const text = clean.toString();
  if (location.hash.slice(1) !== text) location.hash = text;
  else DT.refresh(true);
};
DT.link = function link(params, text, attrs) {
  const clean = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value !== null && value !== undefined && value !== "") clean.set(key, value);
  return DT.el("a", { href: "#" + clean.toString(), ...(attrs || {}) }, text);
};

DT.badge = (severity) => DT.el("span", { class: `badge ${severity}` }, severity);

// The steps a signal is about: every call of a loop (evidence.steps), else
// the one step it names.
DT.signalSteps = function signalSteps(signal) {
  const e = signal.evidence || {};
  const steps = Array.isArray(e.steps) ? e.steps.filter(Number.isInteger) : [];
  if (!steps.length && Number.isInteger(signal.step_index)) steps.push(signal.step_index);
  return steps;
};

DT.signalCard = function signalCard(signal, withRunLink) {
  const el = DT.el;
  const x = signal.explanation || {};
  const steps = DT.signalSteps(signal);
  const origin = signal.live
    ? el("span", { class: "tag live", title: "sent by the SDK while the run was going" }, "● LIVE, found during the run")
    : el("span", { class: "tag", title: "found by the collector's detectors once the run ended" }, "found after the run");
  const stepsLink = steps.length
    ? DT.link({ run: signal.run_id, step: steps[0], flag: signal.detector },
      steps.length === 1 ? `step ${steps[0]}` : `steps ${steps.join(", ")}`, { class: "steps-link" })
    : null;
  return el("div", { class: `signal ${signal.severity}${signal.live ? " is-live" : ""}`, "data-detector": signal.detector,
    "data-run-id": signal.run_id, "data-live": signal.live ? "true" : "false" },
  el("div", { class: "head" },
    DT.badge(signal.severity),
    el("span", { class: "detector" }, signal.detector),
    el("span", { class: "mono" }, signal.agent_id),
    origin,
    stepsLink,
    withRunLink ? DT.link({ run: signal.run_id }, `run ${DT.shortId(signal.run_id)}`) : null,
    el("span", { class: "label" }, DT.when(signal.created_at))),
  x.what ? el("p", {}, el("span", { class: "label" }, "What happened: "), x.what) : null,
  // In a list of many, why and what to try open on a click (the list stays
  // scannable); on a run's page they are open.
  x.why || x.try ? el("details", { open: !withRunLink },
    el("summary", { class: "label" }, "Why it matters, what to try"),
    x.why ? el("p", {}, el("span", { class: "label" }, "Why it matters: "), x.why) : null,
    x.try ? el("p", {}, el("span", { class: "label" }, "What to try: "), x.try) : null) : null);
};

// "1–50 of 230" with previous / next: lists page instead of growing.
DT.pager = function pager(box, listing, onOffset, labels) {
  const [back, forward] = labels || ["← newer", "older →"];
  const el = DT.el;
  if (!listing.total || (listing.offset === 0 && listing.next_offset === null)) {
    box.replaceChildren(listing.total ? el("span", { class: "label" }, `${listing.total} in all`) : "");
    return;
  }
  const first = listing.offset + 1;
  const last = listing.offset + listing.items.length;
  box.replaceChildren(
    el("button", { type: "button", class: "prev", disabled: listing.offset === 0,
      onclick: () => onOffset(Math.max(0, listing.offset - listing.limit)) }, back),
    el("span", { class: "label" }, `${first}–${last} of ${listing.total}`),
    el("button", { type: "button", class: "next", disabled: listing.next_offset === null,
      onclick: () => onOffset(listing.next_offset) }, forward));
};
