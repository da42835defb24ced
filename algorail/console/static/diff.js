// Two versions of a pipeline side by side: their graphs with the components and pipes
// added, changed and removed marked, and a line diff of their YAML.

import { api, seg } from "./api.js";
import { card, empty, h, pageHeader, tabs } from "./dom.js";
import { pipelineGraph } from "./graph.js";
import { toYaml } from "./yaml.js";

const LISTS = ["endpoints", "externalInputs", "dataSources", "algos", "dataSinks", "hooks"];

/** The lines of `a` and `b` as [" " | "-" | "+", line], by longest common subsequence. */
export function lineDiff(a, b) {
  const n = a.length;
  const m = b.length;
  const common = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i -= 1) {
    for (let j = m - 1; j >= 0; j -= 1) {
      common[i][j] = a[i] === b[j] ? common[i + 1][j + 1] + 1 : Math.max(common[i + 1][j], common[i][j + 1]);
    }
  }
  const out = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) { out.push([" ", a[i]]); i += 1; j += 1; }
    else if (j < m && (i === n || common[i][j + 1] >= common[i + 1][j])) { out.push(["+", b[j]]); j += 1; }
    else { out.push(["-", a[i]]); i += 1; }
  }
  return out;
}

const byName = (spec) => new Map(LISTS.flatMap((key) => (spec[key] || []).map((c) => [c.name, JSON.stringify(c)])));
const pipes = (spec) => new Set((spec.pipes || []).map((p) => `${p.from} -> ${p.to}`));

/** What changed between two specs: component names and pipes, each added/removed/changed. */
export function specChanges(a, b) {
  const [ca, cb] = [byName(a), byName(b)];
  const [pa, pb] = [pipes(a), pipes(b)];
  return {
    added: [...cb.keys()].filter((k) => !ca.has(k)),
    removed: [...ca.keys()].filter((k) => !cb.has(k)),
    changed: [...cb.keys()].filter((k) => ca.has(k) && ca.get(k) !== cb.get(k)),
    pipesAdded: [...pb].filter((p) => !pa.has(p)),
    pipesRemoved: [...pa].filter((p) => !pb.has(p)),
  };
}

function marked(spec, title, marks) {
  const svg = pipelineGraph(spec, title);
  svg.querySelectorAll("g.node").forEach((g) => {
    const mark = marks.components.get(g.dataset.component);
    if (mark) g.classList.add(`diff-${mark}`);
  });
  svg.querySelectorAll("g.edge").forEach((g) => {
    const mark = marks.pipes.get(g.dataset.pipe);
    if (mark) g.classList.add(`diff-${mark}`);
  });
  return h("div", { class: "graph-wrap" }, svg);
}

export async function diffPage(owner, name, from, to) {
  const load = (version) => api(`/pipelines/${seg(owner, name)}/versions/${seg(version)}`);
  const [a, b] = await Promise.all([load(from), load(to)]);
  const [sa, sb] = [a.document.spec || {}, b.document.spec || {}];
  const changes = specChanges(sa, sb);
  const lines = lineDiff(toYaml(a.document).split("\n"), toYaml(b.document).split("\n"));
  const changedLines = lines.filter(([mark]) => mark !== " ").length;
  const summary = [
    [changes.added, "added", "component"], [changes.removed, "removed", "component"], [changes.changed, "changed", "component"],
    [changes.pipesAdded, "added", "pipe"], [changes.pipesRemoved, "removed", "pipe"],
  ].filter(([list]) => list.length);
  const mapOf = (pairs) => new Map(pairs.flatMap(([list, mark]) => list.map((x) => [x, mark])));
  const graphs = h("div", { class: "diff-graphs" },
    h("div", {}, h("h3", { class: "diff-side" }, `${from}`, h("span", { class: "muted" }, " before")),
      marked(sa, `Graph of ${from}`, { components: mapOf([[changes.removed, "removed"], [changes.changed, "changed"]]), pipes: mapOf([[changes.pipesRemoved, "removed"]]) })),
    h("div", {}, h("h3", { class: "diff-side" }, `${to}`, h("span", { class: "muted" }, " after")),
      marked(sb, `Graph of ${to}`, { components: mapOf([[changes.added, "added"], [changes.changed, "changed"]]), pipes: mapOf([[changes.pipesAdded, "added"]]) })));
  const yaml = changedLines ? h("pre", { class: "code diff-yaml", "data-testid": "yaml-diff", tabindex: "0" },
    lines.map(([mark, line]) => h("span", { class: `diff-line diff-line-${{ " ": "same", "-": "del", "+": "add" }[mark]}` }, `${mark} ${line}\n`)))
    : empty("The documents are the same", "Only the version differs.");
  return [
    pageHeader(`${name}: ${from} → ${to}`, [["Pipelines", "#/pipelines"], [name, `#/pipelines/${seg(owner, name)}`]]),
    card(null, summary.length ? h("ul", { class: "diff-summary", "data-testid": "diff-summary" }, summary.map(([list, mark, what]) =>
      h("li", {}, h("span", { class: `badge diff-badge-${mark}` }, `${list.length} ${what}${list.length > 1 ? "s" : ""} ${mark}`), " ", h("span", { class: "mono" }, list.join(", ")))))
      : h("p", { class: "muted", "data-testid": "diff-summary" }, "No component or pipe differs.")),
    card(null, tabs([["Graph", graphs], ["YAML", yaml]])),
  ];
}
