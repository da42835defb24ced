// The read-only console of `algorail dev`: its one pipeline's graph with each
// component's live state, its runs as they happen and each run's hops. No login: dev mode
// serves it on its own gateway, from the plan it runs (GET /v1/dev).

import { api } from "./api.js";
import { badge, card, h, pageHeader, table } from "./dom.js";
import { components, pipelineGraph } from "./graph.js";
import { liveRuns, runDetail } from "./runs.js";

const STATE_EVERY_MS = 2000;

/** The spec shape the graph draws, rebuilt from a compiled plan: a pipe per input. */
export function specFromPlan(plan) {
  const endpoints = new Map();
  for (const r of plan.routes) {
    if (!endpoints.has(r.endpoint)) endpoints.set(r.endpoint, { name: r.endpoint, paths: [] });
    endpoints.get(r.endpoint).paths.push({ name: r.path, contentType: r.content_type });
  }
  const port = (i) => ({ name: i.name, contentType: i.content_type });
  const outputs = (map, types = {}) => Object.keys(map).map((name) => ({ name, ...(types[name] ? { contentType: types[name] } : {}) }));
  const pipes = [];
  const feed = (name, inputs, implicit = false) => inputs.forEach((i) => { if (i.source) pipes.push({ from: i.source, to: implicit ? name : `${name}.${i.name}` }); });
  plan.runners.forEach((r) => feed(r.component, [...r.inputs, ...(r.triggers || [])]));
  plan.connectors.filter((c) => c.kind === "sink").forEach((c) => feed(c.name, c.inputs));
  plan.hooks.forEach((k) => feed(k.name, k.inputs, true));
  return {
    endpoints: [...endpoints.values()],
    algos: plan.runners.map((r) => ({ name: r.component, runtime: r.runtime, inputs: r.inputs.map(port), outputs: outputs(r.outputs, r.output_content_types) })),
    dataSources: plan.connectors.filter((c) => c.kind === "source").map((c) => ({ name: c.name, connector: c.connector, outputs: outputs(c.outputs) })),
    dataSinks: plan.connectors.filter((c) => c.kind === "sink").map((c) => ({ name: c.name, connector: c.connector, inputs: c.inputs.map(port) })),
    hooks: plan.hooks.map((k) => ({ name: k.name, type: k.type })),
    pipes,
  };
}

export const devTitle = (info) => `${info.plan.owner}/${info.plan.pipeline}:${info.plan.version}`;

/** The graph, each component outlined by its state, refreshed every 2 s. */
export async function devPipelinePage(info, signal) {
  const spec = specFromPlan(info.plan);
  const graph = pipelineGraph(spec, `Graph of ${devTitle(info)}`);
  const list = h("div", { "data-testid": "component-states" });
  const show = (states) => {
    const byName = new Map(states.map((s) => [s.component, s.state]));
    graph.querySelectorAll("g.node").forEach((g) => {
      const state = byName.get(g.dataset.component) || "unknown";
      g.dataset.state = state;
      g.classList.toggle("state-failed", state.startsWith("failed") || state === "exited");
      g.classList.toggle("state-running", state === "running");
    });
    list.replaceChildren(table([
      ["Component", (c) => h("span", { class: "strong" }, c.name)],
      ["Kind", (c) => c.kind],
      ["State", (c) => badge(byName.get(c.name) || "unknown")],
    ], components(spec), "Component states"));
  };
  show(await api("/dev/components"));
  const poll = async () => {
    if (signal.aborted) return;
    try { show(await api("/dev/components")); } catch { list.prepend(h("div", { class: "notice notice-failed", role: "alert" }, "algorail dev is not answering.")); return; }
    setTimeout(poll, STATE_EVERY_MS);
  };
  setTimeout(poll, STATE_EVERY_MS);
  return [
    pageHeader(devTitle(info)),
    info.plan.description ? h("p", { class: "lead" }, info.plan.description) : null,
    card(null, h("div", { class: "graph-wrap", "data-testid": "graph" }, graph)),
    card("Components", list),
  ];
}

export function devRunsPage(info, signal) {
  const names = components(specFromPlan(info.plan)).map((c) => c.name);
  const { view, live, reconnect } = liveRuns("/dev/runs", (runId) => `#/runs/${encodeURIComponent(runId)}`, names, signal);
  return [pageHeader(`Runs of ${info.plan.deployment}`, [], [live, reconnect]), view];
}

export const devRunPage = (info, runId) => runDetail(`/dev/runs/${encodeURIComponent(runId)}`, runId, [["Runs", "#/runs"]]);
