// Monitoring: a deployment's per-component throughput, latency percentiles and errors,
// drawn as small SVG charts from what the registry samples of its metrics (the last hour).

import { api, seg } from "./api.js";
import { card, empty, h, pageHeader, s } from "./dom.js";

const POLL_MS = 5000;
const WIDTH = 300;
const HEIGHT = 120;
const PAD = { left: 40, right: 8, top: 10, bottom: 20 };

const nice = (value) => {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 5, 10].map((m) => m * power).find((m) => m >= value);
};
const label = (value) => (value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2).replace(/\.?0+$/, "") || "0");

/** A line (or bar) chart of series [{name, kind, values: [[t, v|null]]}] over [t0, t1]. */
function chart(title, unit, series, t0, t1, bars = false) {
  const all = series.flatMap((x) => x.values.map(([, v]) => v)).filter((v) => v !== null);
  const top = nice(Math.max(0, ...all));
  const x = (t) => PAD.left + ((t - t0) / Math.max(t1 - t0, 1)) * (WIDTH - PAD.left - PAD.right);
  const y = (v) => HEIGHT - PAD.bottom - (v / top) * (HEIGHT - PAD.top - PAD.bottom);
  const last = series.map((line) => [line, line.values.filter(([, v]) => v !== null).at(-1)?.[1]]);
  const minutes = Math.max(1, Math.round((t1 - t0) / 60000));
  return h("figure", { class: "chart" },
    h("figcaption", {}, h("span", { class: "chart-title" }, title),
      h("span", { class: "chart-legend" }, last.map(([line, v]) => h("span", { class: `legend legend-${line.kind}` },
        `${line.name} ${v === undefined ? "—" : `${label(v)} ${unit}`}`)))),
    s("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, width: WIDTH, height: HEIGHT, role: "img", "aria-label": `${title} over the last ${minutes} min` },
      [0, 0.5, 1].map((f) => [
        s("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(top * f), y2: y(top * f), class: "grid" }),
        s("text", { x: PAD.left - 6, y: y(top * f) + 4, "text-anchor": "end", class: "axis" }, label(top * f)),
      ]),
      s("text", { x: PAD.left, y: HEIGHT - 4, class: "axis" }, `−${minutes} min`),
      s("text", { x: WIDTH - PAD.right, y: HEIGHT - 4, "text-anchor": "end", class: "axis" }, "now"),
      series.map((line) => (bars
        ? line.values.filter(([, v]) => v).map(([t, v]) => s("rect", { x: x(t) - 2, y: y(v), width: 4, height: HEIGHT - PAD.bottom - y(v), class: `bar-${line.kind}` }))
        : [s("polyline", { class: `line line-${line.kind}`, points: line.values.filter(([, v]) => v !== null).map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" ") }),
          line.values.filter(([, v]) => v !== null).slice(-1).map(([t, v]) => s("circle", { cx: x(t), cy: y(v), r: 3, class: `dot line-${line.kind}` }))]))));
}

function componentCard(component, points, t0, t1) {
  const of = (key) => points.map((p) => [p.t, p[key]]);
  const errors = points.reduce((sum, p) => sum + p.errors, 0);
  return h("section", { class: "card monitor-card", "data-component": component },
    h("h2", {}, component, errors ? h("span", { class: "badge badge-failed" }, `${errors} errors`) : null),
    h("div", { class: "charts" },
      chart("Throughput", "msg/s", [{ name: "written", kind: "a", values: of("throughput") }], t0, t1),
      chart("Algo call time", "ms", [
        { name: "p50", kind: "a", values: of("p50") }, { name: "p95", kind: "b", values: of("p95") }, { name: "p99", kind: "c", values: of("p99") },
      ], t0, t1),
      chart("Errors", "", [{ name: "errors", kind: "err", values: of("errors") }], t0, t1, true)));
}

export async function monitoringPage(owner, name, signal) {
  const first = await api(`/deployments/${seg(owner, name)}/metrics`);
  const body = h("div", { "data-testid": "monitoring" });
  const status = h("span", { class: "muted", role: "status", "data-testid": "samples" });
  const render = (data) => {
    const now = Date.now();
    const t0 = Math.min(now - 5 * 60000, ...data.components.flatMap((c) => c.points.map((p) => p.t)));
    status.textContent = `${data.samples} samples, every ${data.sampleSeconds} s`;
    body.replaceChildren(...[
      data.problem ? h("div", { class: "notice notice-failed", role: "alert" }, data.problem) : null,
      ...(data.components.length ? data.components.map((c) => componentCard(c.component, c.points, t0, now))
        : [card(null, empty("Collecting metrics", `The first points show ${data.sampleSeconds * 2} s after monitoring starts; they come from the algos' metrics.`))]),
    ].filter(Boolean));
  };
  render(first);
  const poll = async () => {
    if (signal.aborted) return;
    try { render(await api(`/deployments/${seg(owner, name)}/metrics`)); } catch (error) { status.textContent = error.message; }
    if (!signal.aborted) setTimeout(poll, POLL_MS);
  };
  setTimeout(poll, POLL_MS);
  return [pageHeader(`Monitoring ${name}`, [["Deployments", "#/deployments"], [name, `#/deployments/${seg(owner, name)}`]], [status]), body];
}
