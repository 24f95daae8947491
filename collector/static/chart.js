// The agent page's chart over time, drawn by uPlot (vendored from npm, see
// uPlot.LICENSE): runs per bucket as bars, the error rate and each
// detector's rate as lines, and a vertical line per deploy or version
// change. Lines differ by dash pattern and name as well as colour, and the
// markers carry their version as text, so the chart reads without colour.
"use strict";

(function () {
  const el = DT.el;
  const PALETTE = [
    ["#c53030", [1, 0]], ["#7b1fa2", [8, 4]], ["#b7791f", [2, 3]], ["#2f855a", [12, 3, 3, 3]],
    ["#2b6cb0", [4, 4]], ["#d53f8c", [1, 0]], ["#4a5568", [8, 4]], ["#dd6b20", [2, 3]],
  ];
  const HEIGHT = 260;
  // The x range of the chart on screen; a live update moves it with time.
  let shown = [0, 1];

  function seriesFor(timeline) {
    const series = [
      {},
      { label: "Runs", scale: "runs", width: 1, stroke: "#1f6feb", fill: "rgba(31,111,235,0.25)",
        paths: uPlot.paths.bars({ size: [0.7, 48] }), points: { show: false } },
      { label: "Error rate %", scale: "pct", width: 2, stroke: "#1d232a", dash: [10, 4],
        points: { show: true, size: 7, fill: "#1d232a" } },
    ];
    Object.keys(timeline.detectors).forEach((name, i) => {
      const [stroke, dash] = PALETTE[i % PALETTE.length];
      series.push({ label: `${name} %`, scale: "pct", width: 2, stroke, dash,
        points: { show: true, size: 7, fill: stroke } });
    });
    return series;
  }

  function dataFor(timeline) {
    // An empty bucket draws no bar (a zero-height bar is a stray line at 0).
    const runs = timeline.runs.map((n) => (n ? n : null));
    return [timeline.buckets, runs, timeline.error_rate, ...Object.values(timeline.detectors)];
  }

  function markerText(m) {
    const what = m.kind === "deploy" ? "deploy" : m.meta && m.meta.first_run ? "first run of version" : "new version";
    const meta = m.meta && Object.keys(m.meta).length ? ` · ${JSON.stringify(m.meta)}` : "";
    return `${what} ${m.version} of ${m.agent_id} at ${DT.when(m.at)}${meta}`;
  }

  // Called after each redraw: a dashed vertical line per marker on the
  // canvas, and over it a DOM label that shows version and meta on hover
  // (title) and to keyboard users (focus).
  function drawMarkers(u) {
    const markers = u.dtMarkers || [];
    const { ctx, bbox } = u;
    ctx.save();
    ctx.lineWidth = 2 * uPlot.pxRatio;
    ctx.setLineDash([5 * uPlot.pxRatio, 3 * uPlot.pxRatio]);
    ctx.strokeStyle = "#1f6feb";
    for (const m of markers) {
      const x = Math.round(u.valToPos(m.at, "x", true));
      ctx.beginPath();
      ctx.moveTo(x, bbox.top);
      ctx.lineTo(x, bbox.top + bbox.height);
      ctx.stroke();
    }
    ctx.restore();
    // Markers close together (a deploy and the version it brought) stack
    // their labels instead of covering each other.
    let previous = -Infinity;
    let row = 0;
    const labels = markers.map((m) => {
      const short = m.version.length > 10 ? m.version.slice(0, 8) + "…" : m.version;
      const text = el("span", { class: "marker-text" }, `${m.kind === "deploy" ? "▲" : "△"} ${short}`);
      const label = el("div", { class: `marker ${m.kind}`, tabindex: "0", title: markerText(m),
        "data-version": m.version, "data-kind": m.kind, "aria-label": markerText(m) }, text);
      const x = u.valToPos(m.at, "x");
      row = x - previous < 90 ? (row + 1) % 6 : 0;
      previous = x;
      label.style.left = `${x}px`;
      text.style.top = `${2 + row * 17}px`;
      if (x > u.over.clientWidth - 90) label.classList.add("flip");
      return label;
    });
    for (const old of u.over.querySelectorAll(".marker")) old.remove();
    u.over.append(...labels);
  }

  function summary(timeline) {
    const parts = [`${timeline.total_runs} run${timeline.total_runs === 1 ? "" : "s"}`];
    const errored = timeline.errored.reduce((a, b) => a + b, 0);
    parts.push(`${errored} errored`);
    for (const [name, rates] of Object.entries(timeline.detectors)) {
      const hits = rates.reduce((sum, r, i) => sum + (r ? Math.round((r * timeline.runs[i]) / 100) : 0), 0);
      parts.push(`${name} in ${hits}`);
    }
    return parts.join(" · ") + (timeline.truncated ? " (only the newest runs of this window are counted)" : "");
  }

  // Draws the timeline into box, reusing the chart while its series stay
  // the same (a live update then only moves bars and lines).
  DT.drawChart = function drawChart(box, note, list, timeline) {
    shown = [timeline.start, timeline.end];
    const key = [timeline.range, timeline.agent_id, ...Object.keys(timeline.detectors)].join("|");
    let u = DT.chart;
    if (!u || u.dtKey !== key || !box.contains(u.root)) {
      if (u) u.destroy();
      box.replaceChildren();
      const opts = {
        width: Math.max(280, box.clientWidth),
        height: HEIGHT,
        scales: {
          x: { time: true, range: () => shown },
          runs: { range: (_u, _min, max) => [0, Math.max(1, max)] },
          pct: { range: [0, 100] },
        },
        axes: [
          {},
          { scale: "runs", label: "runs", size: 50 },
          { scale: "pct", side: 1, label: "% of runs", grid: { show: false }, size: 50 },
        ],
        series: seriesFor(timeline),
        hooks: { draw: [drawMarkers] },
      };
      u = new uPlot(opts, dataFor(timeline), box);
      u.dtKey = key;
      DT.chart = u;
      if (!DT.chartResize) {
        DT.chartResize = new ResizeObserver(() => {
          if (DT.chart && box.clientWidth) DT.chart.setSize({ width: Math.max(280, box.clientWidth), height: HEIGHT });
        });
        DT.chartResize.observe(box);
      }
    }
    u.dtMarkers = timeline.markers;
    u.setData(dataFor(timeline));
    box.dataset.series = String(u.series.length - 1);
    box.dataset.markers = String(timeline.markers.length);
    note.textContent = summary(timeline);
    list.replaceChildren(...timeline.markers.map((m) => el("li", { class: m.kind }, markerText(m))));
  };
})();
