// A pipeline version's graph, drawn as SVG from its spec: every component a box with its
// ports, every pipe an arrow from an output port to an input port, labelled with the
// content type that flows on it. Layered left to right by longest path from the inputs,
// unless the version keeps a layout placed by hand (its `algorail.io/layout` annotation).

import { s } from "./dom.js";

const JSON_TYPE = "application/json";
const NODE_WIDTH = 190;
const COLUMN_GAP = 150;
const ROW_GAP = 28;
const HEADER = 46;
const PORT_ROW = 22;
const MARGIN = 24;
const MIN_SCALE = 0.5;
export const LAYOUT_ANNOTATION = "algorail.io/layout";
export { NODE_WIDTH };

/** The hand-placed positions a document keeps ({name: [x, y]}), or {} (laid out by itself). */
export function layoutOf(document) {
  try {
    const kept = JSON.parse(document?.metadata?.annotations?.[LAYOUT_ANNOTATION] || "{}");
    return kept && typeof kept === "object" && !Array.isArray(kept) ? kept : {};
  } catch {
    return {};
  }
}

const port = (p, fallback) => ({ name: p?.name ?? fallback, contentType: p?.contentType ?? JSON_TYPE });
/** Declared ports, or the one implicit port a pipe names by the component's name alone. */
const ports = (list, fallback) => (list?.length ? list.map((p) => port(p, fallback))
  : [{ ...port(null, fallback), implicit: true }]);

/** The components of a spec, each with its kind, input ports and output ports. */
export function components(spec) {
  return [
    ...(spec.endpoints || []).map((e) => ({
      name: e.name, kind: "endpoint", inputs: [],
      outputs: e.paths.map((p) => port(p)), detail: "endpoint",
    })),
    ...(spec.externalInputs || []).map((x) => ({
      name: x.name, kind: "external", inputs: [], outputs: [port({ name: "out", contentType: x.contentType })],
      detail: x.topic || x.pipeline || "external input",
    })),
    ...(spec.dataSources || []).map((d) => ({
      name: d.name, kind: "source", inputs: [], outputs: ports(d.outputs, "out"), detail: d.connector,
    })),
    ...(spec.algos || []).map((a) => ({
      name: a.name, kind: "algo", inputs: ports(a.inputs, "in"), outputs: ports(a.outputs, "out"),
      detail: a.ref || a.runtime,
    })),
    ...(spec.dataSinks || []).map((d) => ({
      name: d.name, kind: "sink", inputs: ports(d.inputs, "in"), outputs: [], detail: d.connector,
    })),
    ...(spec.hooks || []).map((k) => ({
      name: k.name, kind: "hook", inputs: [{ ...port({ name: "in" }), implicit: true }], outputs: [], detail: k.type,
    })),
  ];
}

function endpointOf(reference, byName, side) {
  const dot = reference.indexOf(".");
  const name = dot < 0 ? reference : reference.slice(0, dot);
  const node = byName.get(name);
  if (!node) return null;
  const list = side === "from" ? node.outputs : node.inputs;
  const index = dot < 0 ? 0 : list.findIndex((p) => p.name === reference.slice(dot + 1));
  return { node, index: Math.max(index, 0), port: list[Math.max(index, 0)] };
}

/** Pipes resolved to their two ends; a pipe naming no known component is left out. */
export function edges(spec, nodes) {
  const byName = new Map(nodes.map((n) => [n.name, n]));
  return (spec.pipes || []).flatMap((pipe) => {
    const from = endpointOf(pipe.from, byName, "from");
    const to = endpointOf(pipe.to, byName, "to");
    if (!from || !to) return [];
    return [{ pipe, from, to, contentType: from.port?.contentType ?? JSON_TYPE }];
  });
}

function layout(nodes, links, placed = {}) {
  const rank = new Map(nodes.map((n) => [n.name, 0]));
  for (let round = 0; round < nodes.length; round += 1) {  // bounded: cycles stop growing here
    let moved = false;
    for (const { from, to } of links) {
      const next = rank.get(from.node.name) + 1;
      if (from.node !== to.node && next > rank.get(to.node.name) && next < nodes.length) {
        rank.set(to.node.name, next);
        moved = true;
      }
    }
    if (!moved) break;
  }
  const columns = [];
  for (const node of nodes) (columns[rank.get(node.name)] ||= []).push(node);
  const centre = new Map();
  let height = 0;
  columns.forEach((column, index) => {
    if (index > 0) {  // order by where the inputs come from, to keep arrows from crossing
      const pull = (n) => {
        const ys = links.filter((l) => l.to.node === n && centre.has(l.from.node.name))
          .map((l) => centre.get(l.from.node.name));
        return ys.length ? ys.reduce((a, b) => a + b) / ys.length : Infinity;
      };
      column.sort((a, b) => pull(a) - pull(b));
    }
    let y = MARGIN;
    for (const node of column) {
      node.x = MARGIN + index * (NODE_WIDTH + COLUMN_GAP);
      node.y = y;
      node.height = HEADER + Math.max(node.inputs.length, node.outputs.length, 1) * PORT_ROW + 8;
      centre.set(node.name, y + node.height / 2);
      y += node.height + ROW_GAP;
    }
    height = Math.max(height, y);
  });
  let width = MARGIN * 2 + columns.length * NODE_WIDTH + (columns.length - 1) * COLUMN_GAP;
  for (const node of nodes) {
    const at = placed[node.name];
    if (Array.isArray(at) && at.length === 2 && at.every(Number.isFinite)) {
      [node.x, node.y] = at.map((v) => Math.max(0, Math.round(v)));
    }
    width = Math.max(width, node.x + NODE_WIDTH + MARGIN);
    height = Math.max(height, node.y + node.height + MARGIN);
  }
  return { width, height };
}

/** How a pipe names this port: `component.port`, or the component for an implicit port. */
export const reference = (node, p) => (p.implicit ? node.name : `${node.name}.${p.name}`);
const portY = (node, index) => node.y + HEADER + index * PORT_ROW + PORT_ROW / 2;
const clip = (text, max) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

function drawNode(node) {
  return s("g", { class: `node node-${node.kind}`, "data-component": node.name },
    s("title", {}, `${node.kind} ${node.name}${node.detail ? ` (${node.detail})` : ""}`),
    s("rect", { x: node.x, y: node.y, width: NODE_WIDTH, height: node.height, rx: 8, class: "node-box" }),
    s("rect", { x: node.x, y: node.y, width: 4, height: node.height, rx: 2, class: "node-stripe" }),
    s("text", { x: node.x + 14, y: node.y + 18, class: "node-kind" }, node.kind.toUpperCase()),
    s("text", { x: node.x + 14, y: node.y + 36, class: "node-name" }, clip(node.name, 24)),
    node.inputs.map((p, i) => [
      s("circle", { cx: node.x, cy: portY(node, i), r: 5, class: "port port-in", "data-side": "in", "data-ref": reference(node, p) },
        s("title", {}, `${reference(node, p)} accepts ${p.contentType}`)),
      s("text", { x: node.x + 12, y: portY(node, i) + 4, class: "port-name" }, clip(p.name, 14)),
    ]),
    node.outputs.map((p, i) => [
      s("circle", { cx: node.x + NODE_WIDTH, cy: portY(node, i), r: 5, class: "port port-out", "data-side": "out", "data-ref": reference(node, p) },
        s("title", {}, `${reference(node, p)} produces ${p.contentType}`)),
      s("text", { x: node.x + NODE_WIDTH - 12, y: portY(node, i) + 4, class: "port-name", "text-anchor": "end" },
        clip(p.name, 14)),
    ]));
}

function drawEdge(link) {
  const x1 = link.from.node.x + NODE_WIDTH;
  const y1 = portY(link.from.node, link.from.index);
  const x2 = link.to.node.x;
  const y2 = portY(link.to.node, link.to.index);
  const bend = Math.max(Math.abs(x2 - x1) / 2, 60);
  const path = `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2 - 6},${y2}`;
  const label = link.contentType;
  const width = label.length * 6.4 + 12;
  const mx = (x1 + x2) / 2;
  const my = (y1 + y2) / 2;
  return s("g", { class: "edge", "data-pipe": `${link.pipe.from} -> ${link.pipe.to}` },
    s("title", {}, `${link.pipe.from} → ${link.pipe.to} (${label})`),
    s("path", { d: path, "marker-end": "url(#arrow)" }),
    s("rect", { x: mx - width / 2, y: my - 9, width, height: 18, rx: 9, class: "edge-label-box" }),
    s("text", { x: mx, y: my + 4, "text-anchor": "middle", class: "edge-label" }, label));
}

/** The SVG of a spec; `placed` ({name: [x, y]}) overrides where those components go. */
export function pipelineGraph(spec, title, placed = {}) {
  const nodes = components(spec);
  const links = edges(spec, nodes);
  const { width, height } = layout(nodes, links, placed);
  const svg = s("svg", {
    class: "graph", role: "img", "aria-label": title, width, height, viewBox: `0 0 ${width} ${height}`,
  },
  s("defs", {}, s("marker", {
    id: "arrow", viewBox: "0 0 10 10", refX: 4, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto",
  }, s("path", { d: "M0,0 L10,5 L0,10 z", class: "arrow-head" }))),
  links.map(drawEdge),
  nodes.map(drawNode));
  // a wide graph is shrunk to fit its frame, but never below MIN_SCALE (then it scrolls),
  // so the boxes of a long pipeline stay readable
  svg.style.maxWidth = `max(100%, ${Math.round(width * MIN_SCALE)}px)`;
  return svg;
}
