// The designer: a pipeline built on a canvas. Components come from the palette (the algo
// repository, the registry's connector and hook plugins); a pipe is drawn from an output
// port to an input port and is refused while dragging when the registry's validator
// (POST /v1/validate, the rules of `algorail validate`) finds it breaks a rule. The YAML
// view and the canvas are one document: editing either redraws the other. Every change is
// validated; problems are listed and their component highlighted. Saving pushes a new
// version. A Seldon manifest can be imported (the registry converts it). Components can be
// moved by hand (drag a box, or the arrow keys on a focused one); the positions are kept in
// the version's `algorail.io/layout` annotation and drawn from it when it is opened again.

import { api, ApiError, seg } from "./api.js";
import { card, h, pageHeader, tabs } from "./dom.js";
import { components, LAYOUT_ANNOTATION, layoutOf, pipelineGraph } from "./graph.js";
import { objectFields } from "./schemaform.js";
import { toYaml } from "./yaml.js";

const KINDS = { endpoint: "endpoints", algo: "algos", source: "dataSources", sink: "dataSinks", hook: "hooks" };
const VALIDATE_DELAY_MS = 250;
const KEY_STEP = 20; // how far an arrow key moves a component
const JOIN_TYPES = ["inner", "outer", "any"];

/** Where an event is in the SVG's own coordinates. */
function svgPoint(svg, event) {
  const p = svg.createSVGPoint();
  p.x = event.clientX; p.y = event.clientY;
  return p.matrixTransform(svg.getScreenCTM().inverse());
}

const blank = (owner) => ({
  apiVersion: "algorail.io/v1", kind: "Pipeline",
  metadata: { owner, name: "new-pipeline", version: "1.0.0" },
  spec: { endpoints: [], algos: [], pipes: [] },
});

const clone = (value) => JSON.parse(JSON.stringify(value));
const nextPatch = (version) => version.replace(/^(\d+)\.(\d+)\.(\d+).*$/, (_, a, b, c) => `${a}.${b}.${Number(c) + 1}`);
/** The name inside a problem's component label ("algo 'upper'" -> "upper"). */
const componentName = (label) => label?.match(/'([^']+)'/)?.[1] ?? null;
const pipeText = (from, to) => `pipe ${from} -> ${to}`;
const portsText = (list) => (list || []).map((p) => (p.contentType && p.contentType !== "application/json" ? `${p.name}:${p.contentType}` : p.name)).join(", ");
const parsePorts = (text) => text.split(",").map((t) => t.trim()).filter(Boolean).map((t) => {
  const [name, ...type] = t.split(":");
  return type.length ? { name: name.trim(), contentType: type.join(":").trim() } : { name: name.trim() };
});

async function palette() {
  const [algos, plugins] = await Promise.all([api("/algos"), api("/plugins")]);
  return { algos, connectors: plugins.connectors, hookTypes: plugins.hookTypes };
}

/** The designer, blank or starting from a stored version (which is never changed). */
export async function designerPage(...args) {
  const [owner, name, version] = args.length > 1 ? args : [];
  const whoami = await api("/whoami");
  const start = owner ? clone((await api(`/pipelines/${seg(owner, name)}/versions/${seg(version)}`)).document) : blank(whoami.owner);
  if (owner) start.metadata = { ...start.metadata, version: nextPatch(start.metadata.version) };
  const offer = await palette();
  return designer(start, offer, owner ? `${name} ${version}` : null);
}

function designer(startDoc, offer, from) {
  let doc = startDoc;
  let selected = null;
  let problems = [];
  let validateTimer = null;
  let generation = 0;

  const canvas = h("div", { class: "canvas", "data-testid": "canvas", tabindex: "-1" });
  const yamlArea = h("textarea", { class: "yaml-editor", "aria-label": "Pipeline YAML", spellcheck: "false", "data-testid": "yaml-editor" });
  const problemList = h("div", { class: "problems", "data-testid": "problems", role: "status" });
  const inspector = h("div", { class: "inspector", "data-testid": "inspector" });
  const refusal = h("div", { class: "refusal", role: "alert", "data-testid": "refusal", hidden: true });
  const hint = h("div", { class: "drag-hint", hidden: true });
  const saveAnswer = h("div", { class: "save-answer", role: "status", "data-testid": "save-answer" });
  const metaName = h("input", { id: "meta-name", type: "text", spellcheck: "false" });
  const metaVersion = h("input", { id: "meta-version", type: "text", spellcheck: "false", class: "mono" });

  const spec = () => (doc.spec ||= {});
  const list = (kind) => (spec()[KINDS[kind]] ||= []);
  const allNames = () => new Set(components(spec()).map((c) => c.name));
  const unique = (base) => {
    const taken = allNames();
    const clean = base.replace(/[^a-z0-9-]/g, "-").replace(/^-+|-+$/g, "") || "component";
    if (!taken.has(clean)) return clean;
    for (let i = 2; ; i += 1) if (!taken.has(`${clean}-${i}`)) return `${clean}-${i}`;
  };

  // ---- the document, and what shows it ----

  function change(next, { fromYaml = false } = {}) {
    doc = next;
    refusal.hidden = true;
    draw();
    if (!fromYaml) yamlArea.value = toYaml(doc);
    metaName.value = doc.metadata?.name ?? "";
    metaVersion.value = doc.metadata?.version ?? "";
    inspect();
    clearTimeout(validateTimer);
    validateTimer = setTimeout(() => validate({ document: doc }), VALIDATE_DELAY_MS);
  }

  async function validate(body) {
    const mine = ++generation;
    try {
      const answer = await api("/validate", { method: "POST", body });
      if (mine !== generation) return null;
      showProblems(answer.problems);
      return answer;
    } catch (error) {
      if (mine === generation) problemList.replaceChildren(h("div", { class: "problem" }, error.message));
      return null;
    }
  }

  function showProblems(found) {
    problems = found;
    problemList.replaceChildren(found.length
      ? h("ul", { class: "problem-list" }, found.map((p) => {
        const target = componentName(p.component);
        return h("li", {}, h("button", {
          type: "button", class: "problem", onclick: () => { if (target) select(target); },
        }, h("span", { class: "rule" }, p.rule), p.component ? h("strong", {}, `${p.component}${p.line ? ` (line ${p.line})` : ""}: `) : null, p.message));
      }))
      : h("div", { class: "valid", "data-testid": "valid" }, "✓ Valid: a push would accept this pipeline."));
    highlight();
  }

  function highlight() {
    const broken = new Set(problems.map((p) => componentName(p.component)).filter(Boolean));
    canvas.querySelectorAll("g.node").forEach((g) => {
      g.classList.toggle("node-problem", broken.has(g.dataset.component));
      g.classList.toggle("node-selected", g.dataset.component === selected);
    });
  }

  function draw() {
    const drawn = components(spec()).length;
    canvas.replaceChildren(drawn ? pipelineGraph(spec(), "Pipeline being designed", layoutOf(doc))
      : h("div", { class: "canvas-empty" }, h("div", { class: "empty-title" }, "An empty pipeline"),
        h("p", {}, "Drag components here from the palette (or press Enter on one), then drag from an output port to an input port to connect them.")));
    canvas.append(hint);
    const svg = canvas.querySelector("svg");
    if (!svg) return;
    svg.querySelectorAll("g.node").forEach((g) => {
      g.setAttribute("tabindex", "0");
      g.setAttribute("role", "button");
      g.addEventListener("click", () => select(g.dataset.component));
      g.addEventListener("keydown", (e) => {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); select(g.dataset.component); }
        const step = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] }[e.key];
        if (step) { e.preventDefault(); place(g.dataset.component, step[0] * KEY_STEP, step[1] * KEY_STEP); }
      });
      g.addEventListener("pointerdown", (e) => startMove(e, g));
    });
    svg.querySelectorAll("circle.port-out").forEach((c) => c.addEventListener("pointerdown", (e) => startDrag(e, c)));
    highlight();
    if (refocus) {
      canvas.querySelector(`g.node[data-component="${CSS.escape(refocus)}"]`)?.focus();
      refocus = null;
    }
  }

  // ---- moving components by hand: the layout is kept in the document ----

  let refocus = null;
  /** Keep every component where it is drawn now, `name` moved by (dx, dy). */
  function place(name, dx, dy) {
    const positions = {};
    canvas.querySelectorAll("g.node").forEach((g) => {
      const box = g.querySelector("rect.node-box");
      const moved = g.dataset.component === name;
      positions[g.dataset.component] = [Number(box.getAttribute("x")) + (moved ? dx : 0),
        Number(box.getAttribute("y")) + (moved ? dy : 0)].map((v) => Math.max(0, Math.round(v)));
    });
    const next = clone(doc);
    next.metadata = { ...next.metadata, annotations: { ...(next.metadata.annotations || {}), [LAYOUT_ANNOTATION]: JSON.stringify(positions) } };
    selected = name;
    refocus = name;
    change(next);
  }

  function startMove(event, g) {
    if (event.button !== 0 || event.target.closest("circle.port")) return;
    const svg = g.ownerSVGElement;
    const start = svgPoint(svg, event);
    let dx = 0;
    let dy = 0;
    const move = (e) => {
      const at = svgPoint(svg, e);
      dx = at.x - start.x;
      dy = at.y - start.y;
      g.setAttribute("transform", `translate(${dx},${dy})`);
      g.classList.add("node-moving");
    };
    const up = () => {
      window.removeEventListener("pointermove", move);
      window.removeEventListener("pointerup", up);
      if (Math.abs(dx) + Math.abs(dy) > 3) place(g.dataset.component, dx, dy);
    };
    window.addEventListener("pointermove", move);
    window.addEventListener("pointerup", up);
  }

  // ---- pipes: checked by the validator before they are made ----

  const checks = new Map();
  /** The validator's problems about a pipe from -> to, if it were added (cached per pair). */
  function pipeProblems(from, to) {
    const key = `${from}\n${to}\n${JSON.stringify(doc.spec)}`;
    if (!checks.has(key)) {
      const candidate = clone(doc);
      (candidate.spec.pipes ||= []).push({ from, to });
      checks.set(key, api("/validate", { method: "POST", body: { document: candidate } })
        .then((a) => a.problems.filter((p) => p.message.includes(pipeText(from, to)))));
    }
    return checks.get(key);
  }

  async function connect(from, to) {
    const refused = await pipeProblems(from, to);
    if (refused.length) {
      refusal.replaceChildren(h("strong", {}, "Pipe refused: "), refused.map((p) => p.message).join("; "));
      refusal.hidden = false;
      return false;
    }
    const next = clone(doc);
    (next.spec.pipes ||= []).push({ from, to });
    change(next);
    return true;
  }

  function startDrag(event, port) {
    event.preventDefault();
    event.stopPropagation(); // a pipe is drawn from a port; the box is not moved
    const svg = port.ownerSVGElement;
    const from = port.dataset.ref;
    const x1 = Number(port.getAttribute("cx"));
    const y1 = Number(port.getAttribute("cy"));
    const line = document.createElementNS("http://www.w3.org/2000/svg", "path");
    line.setAttribute("class", "drag-line");
    svg.append(line);
    let target = null;
    const move = (e) => {
      const { x, y } = svgPoint(svg, e);
      line.setAttribute("d", `M${x1},${y1} C${x1 + 60},${y1} ${x - 60},${y} ${x},${y}`);
      const over = document.elementFromPoint(e.clientX, e.clientY);
      const port2 = over?.closest?.("circle.port-in");
      if (port2 === target) return;
      target?.classList.remove("port-ok", "port-refused");
      target = port2;
      line.classList.remove("drag-ok", "drag-refused");
      hint.hidden = true;
      if (!target) return;
      const to = target.dataset.ref;
      const checking = target;
      pipeProblems(from, to).then((found) => {
        if (checking !== target) return;
        checking.classList.add(found.length ? "port-refused" : "port-ok");
        line.classList.add(found.length ? "drag-refused" : "drag-ok");
        hint.textContent = found.length ? found.map((p) => p.message).join("; ") : `${from} → ${to}`;
        hint.classList.toggle("drag-hint-refused", found.length > 0);
        hint.hidden = false;
      });
    };
    const up = async () => {
      window.removeEventListener("pointermove", move);
      window.removeEventListener("pointerup", up);
      const dropped = target;
      target = null; // a check still under way shows nothing once the pipe is dropped
      line.remove();
      hint.hidden = true;
      dropped?.classList.remove("port-ok", "port-refused");
      if (dropped) await connect(from, dropped.dataset.ref);
    };
    window.addEventListener("pointermove", move);
    window.addEventListener("pointerup", up);
  }

  // ---- the palette ----

  async function add(item) {
    const next = clone(doc);
    doc = next;
    const entry = await item.make();
    list(item.kind).push(entry);
    selected = entry.name;
    change(next);
  }

  const algoItems = offer.algos.filter((a) => a.latestPublished).map((a) => ({
    kind: "algo", label: a.name, detail: `${a.owner}/${a.name}:${a.latestPublished}`,
    make: async () => {
      const versions = await api(`/algos/${seg(a.owner, a.name)}/versions`);
      const v = versions.find((x) => x.version === a.latestPublished) || {};
      return {
        name: unique(a.name), ref: `${a.owner}/${a.name}:${a.latestPublished}`, runtime: v.runtime || "python",
        ...(v.settings?.entrypoint ? { entrypoint: v.settings.entrypoint } : {}),
        inputs: [{ name: "in" }], outputs: [{ name: "out" }],
      };
    },
  }));
  const groups = [
    ["Inputs", [{ kind: "endpoint", label: "HTTP endpoint", detail: "POST JSON", make: () => ({ name: unique("api"), paths: [{ name: "in", contentType: "application/json" }] }) }]],
    ["Algos", [...algoItems, { kind: "algo", label: "Python algo", detail: "module:function", make: () => ({ name: unique("algo"), runtime: "python", entrypoint: "module:function", inputs: [{ name: "in" }], outputs: [{ name: "out" }] }) }]],
    ["Data sources", offer.connectors.filter((c) => c.kinds.includes("source")).map((c) => ({ kind: "source", label: c.name, detail: c.description, make: () => ({ name: unique(`${c.name}-in`), connector: c.name, config: {} }) }))],
    ["Data sinks", offer.connectors.filter((c) => c.kinds.includes("sink")).map((c) => ({ kind: "sink", label: c.name, detail: c.description, make: () => ({ name: unique(`${c.name}-out`), connector: c.name, config: {} }) }))],
    ["Hooks", offer.hookTypes.map((t) => ({ kind: "hook", label: t.name, detail: t.description, make: () => ({ name: unique(t.name), type: t.name }) }))],
  ];
  const byId = new Map();
  const paletteView = h("nav", { class: "palette", "aria-label": "Palette" }, groups.map(([title, items]) => items.length ? h("div", { class: "palette-group" },
    h("h3", {}, title),
    items.map((item) => {
      const id = `${item.kind}:${item.label}`;
      byId.set(id, item);
      const button = h("button", {
        type: "button", class: `palette-item palette-${item.kind}`, draggable: "true", title: item.detail || "",
        "data-palette": id,
      }, h("span", { class: "palette-label" }, item.label));
      button.addEventListener("click", () => add(item));
      button.addEventListener("dragstart", (e) => { e.dataTransfer.setData("text/plain", id); e.dataTransfer.effectAllowed = "copy"; });
      return button;
    })) : null));
  canvas.addEventListener("dragover", (e) => { e.preventDefault(); canvas.classList.add("canvas-drop"); });
  canvas.addEventListener("dragleave", () => canvas.classList.remove("canvas-drop"));
  canvas.addEventListener("drop", (e) => {
    e.preventDefault();
    canvas.classList.remove("canvas-drop");
    const item = byId.get(e.dataTransfer.getData("text/plain"));
    if (item) add(item);
  });

  // ---- the inspector: the selected component's settings ----

  function select(name) {
    selected = name;
    inspect();
    highlight();
  }

  function found() {
    for (const [kind, key] of Object.entries(KINDS)) {
      const entry = (spec()[key] || []).find((c) => c.name === selected);
      if (entry) return { kind, entry };
    }
    return null;
  }

  function edit(mutate) {
    const next = clone(doc);
    const previous = doc;
    doc = next;
    const hit = found();
    if (hit) mutate(hit.entry, next);
    doc = previous;
    change(next);
  }

  function rename(entry, next, to) {
    const from = entry.name;
    entry.name = to;
    for (const pipe of next.spec.pipes || []) {
      for (const end of ["from", "to"]) {
        if (pipe[end] === from || pipe[end].startsWith(`${from}.`)) pipe[end] = to + pipe[end].slice(from.length);
      }
    }
    selected = to;
  }

  const text = (id, label, value, apply) => {
    const input = h("input", { id, type: "text", value: value ?? "", spellcheck: "false" });
    input.addEventListener("change", () => apply(input.value));
    return h("div", { class: "field" }, h("label", { for: id }, label), input);
  };

  /** A number field of one setting (`group.key`): empty removes the key, and a group left
   * empty goes with it; a value the field refuses (below its minimum) is not applied. */
  function numberField(id, label, group, key, value, min, max) {
    const input = h("input", { id, type: "number", min, max, value: value ?? "", placeholder: "default" });
    input.addEventListener("change", () => {
      if (!input.checkValidity()) {
        refusal.replaceChildren(h("strong", {}, `${label}: `), input.validationMessage);
        refusal.hidden = false;
        return;
      }
      edit((e) => setSetting(e, group, key, input.value === "" ? undefined : Number(input.value)));
    });
    return h("div", { class: "field" }, h("label", { for: id }, label), input);
  }

  function choiceField(id, label, options, value, apply) {
    const select = h("select", { id }, options.map(([v, text]) => h("option", { value: v, selected: (value ?? "") === v }, text)));
    select.addEventListener("change", () => apply(select.value));
    return h("div", { class: "field" }, h("label", { for: id }, label), select);
  }

  function setSetting(entry, group, key, value) {
    const settings = { ...(entry[group] || {}) };
    if (value === undefined || value === "") delete settings[key]; else settings[key] = value;
    if (Object.keys(settings).length) entry[group] = settings; else delete entry[group];
  }

  /** An algo's join, triggers, batch and retries, each a small form over its spec keys. */
  function algoSettings(entry) {
    const joinType = choiceField("c-join", "Join kind", [["", "default (inner)"], ...JOIN_TYPES.map((t) => [t, t])], entry.join?.type,
      (v) => edit((e) => setSetting(e, "join", "type", v)));
    const triggers = text("c-triggers", "Triggers (component.port, …)", (entry.triggers || []).map((t) => (typeof t === "string" ? t : t.from)).join(", "),
      (v) => edit((e) => {
        const refs = v.split(",").map((t) => t.trim()).filter(Boolean);
        if (refs.length) e.triggers = refs.map((from) => ({ from })); else { delete e.triggers; delete e.triggersJoin; }
      }));
    triggers.classList.add("field-wide");
    const triggersJoin = choiceField("c-triggers-join", "Triggers join", [["", "default (inner)"], ...JOIN_TYPES.map((t) => [t, t])], entry.triggersJoin,
      (v) => edit((e) => { if (v) e.triggersJoin = v; else delete e.triggersJoin; }));
    const rolling = h("input", { id: "c-batch-rolling", type: "checkbox", checked: Boolean(entry.batch?.rolling) });
    rolling.addEventListener("change", () => edit((e) => setSetting(e, "batch", "rolling", rolling.checked || undefined)));
    const group = (title, ...fields) => h("fieldset", { class: "settings" }, h("legend", {}, title), h("div", { class: "field-row" }, fields));
    return [
      group("Join", joinType, numberField("c-join-window", "Window (ms)", "join", "windowMs", entry.join?.windowMs, "0")),
      group("Triggers", triggers, triggersJoin),
      group("Batch", numberField("c-batch", "Size", "batch", "size", entry.batch?.size, "1"),
        numberField("c-batch-window", "Window (ms)", "batch", "windowMs", entry.batch?.windowMs, "1"),
        h("div", { class: "field field-check" }, rolling, h("label", { for: "c-batch-rolling" }, "Rolling"))),
      group("Retries", numberField("c-retry", "Attempts", "retry", "attempts", entry.retry?.attempts, "0", "100"),
        numberField("c-retry-backoff", "Backoff (ms)", "retry", "backoffMs", entry.retry?.backoffMs, "0")),
    ];
  }

  function inspect() {
    const hit = selected && found();
    if (!hit) {
      inspector.replaceChildren(h("h2", {}, "Component"), h("p", { class: "muted" }, "Select a component on the canvas to edit it."));
      return;
    }
    const { kind, entry } = hit;
    const rows = [text("c-name", "Name", entry.name, (v) => edit((e, next) => rename(e, next, v.trim())))];
    if (kind === "endpoint") {
      rows.push(text("c-paths", "Paths (name:contentType, …)", portsText(entry.paths), (v) => edit((e) => { e.paths = parsePorts(v); })));
    }
    if (kind === "algo") {
      if (entry.ref) rows.push(h("div", { class: "field" }, h("span", { class: "field-label" }, "From the repository"), h("span", { class: "mono" }, entry.ref)));
      rows.push(
        text("c-entrypoint", "Entrypoint", entry.entrypoint, (v) => edit((e) => { e.entrypoint = v; })),
        text("c-inputs", "Inputs (name:contentType, …)", portsText(entry.inputs), (v) => edit((e) => { e.inputs = parsePorts(v); })),
        text("c-outputs", "Outputs (name:contentType, …)", portsText(entry.outputs), (v) => edit((e) => { e.outputs = parsePorts(v); })));
      rows.push(...algoSettings(entry));
    }
    if (kind === "source" || kind === "sink") {
      const connector = offer.connectors.find((c) => c.name === entry.connector);
      rows.push(h("div", { class: "field" }, h("span", { class: "field-label" }, "Connector"), h("span", { class: "mono" }, entry.connector)));
      if (connector?.configSchema?.properties) {
        const form = objectFields(connector.configSchema, entry.config || {}, "c-config", () => {});
        const apply = h("button", { type: "button", class: "button button-small" }, "Apply config");
        apply.addEventListener("click", () => {
          try { const config = form.value(); edit((e) => { e.config = config; }); } catch (error) { refusal.textContent = error.message; refusal.hidden = false; }
        });
        rows.push(h("fieldset", { class: "config" }, h("legend", {}, "Config"),
          h("p", { class: "hint" }, "Credentials are secret references (${secrets:NAME:KEY}), never values."), form.rows, apply));
      }
    }
    if (kind === "hook") rows.push(h("div", { class: "field" }, h("span", { class: "field-label" }, "Type"), h("span", { class: "mono" }, entry.type)));

    // pipes from and to it; a new one from the keyboard, checked like a dragged one
    const node = components(spec()).find((c) => c.name === entry.name);
    const mine = (doc.spec.pipes || []).map((p, i) => [p, i]).filter(([p]) => [p.from, p.to].some((r) => r === entry.name || r.startsWith(`${entry.name}.`)));
    rows.push(h("div", { class: "field" }, h("span", { class: "field-label" }, "Pipes"),
      mine.length ? h("ul", { class: "pipe-list" }, mine.map(([p, i]) => h("li", {}, h("span", { class: "mono" }, `${p.from} → ${p.to}`),
        h("button", { type: "button", class: "button button-small", "aria-label": `Remove pipe ${p.from} to ${p.to}`, onclick: () => edit((e, next) => { next.spec.pipes.splice(i, 1); }) }, "Remove"))))
        : h("span", { class: "muted" }, "none")));
    if (node?.outputs.length) {
      const targets = components(spec()).filter((c) => c.name !== entry.name).flatMap((c) => c.inputs.map((p) => (p.implicit ? c.name : `${c.name}.${p.name}`)));
      const out = h("select", { id: "c-pipe-from", "aria-label": "From output" }, node.outputs.map((p) => { const r = p.implicit ? node.name : `${node.name}.${p.name}`; return h("option", { value: r }, r); }));
      const to = h("select", { id: "c-pipe-to", "aria-label": "To input" }, targets.map((r) => h("option", { value: r }, r)));
      const connectButton = h("button", { type: "button", class: "button button-small", disabled: !targets.length }, "Connect");
      connectButton.addEventListener("click", () => connect(out.value, to.value));
      rows.push(h("div", { class: "field" }, h("span", { class: "field-label" }, "New pipe"), h("div", { class: "pipe-new" }, out, "→", to, connectButton)));
    }
    const remove = h("button", { type: "button", class: "button button-danger button-small" }, "Remove component");
    remove.addEventListener("click", () => {
      const next = clone(doc);
      next.spec[KINDS[kind]] = next.spec[KINDS[kind]].filter((c) => c.name !== entry.name);
      next.spec.pipes = (next.spec.pipes || []).filter((p) => ![p.from, p.to].some((r) => r === entry.name || r.startsWith(`${entry.name}.`)));
      selected = null;
      change(next);
    });
    inspector.replaceChildren(h("h2", {}, h("span", { class: `kind kind-${kind}` }, kind), " ", entry.name), ...rows, h("div", { class: "form-actions" }, remove));
  }

  // ---- YAML, metadata, saving, importing ----

  let yamlTimer = null;
  yamlArea.addEventListener("input", () => {
    clearTimeout(yamlTimer);
    yamlTimer = setTimeout(async () => {
      const answer = await validate({ yaml: yamlArea.value });
      if (answer?.document) {
        doc = answer.document;
        metaName.value = doc.metadata?.name ?? "";
        metaVersion.value = doc.metadata?.version ?? "";
        draw();
        inspect();
      }
    }, VALIDATE_DELAY_MS);
  });
  const meta = (field, input) => input.addEventListener("change", () => {
    const next = clone(doc);
    next.metadata = { ...next.metadata, [field]: input.value.trim() };
    change(next);
  });
  meta("name", metaName);
  meta("version", metaVersion);

  const save = h("button", { class: "button button-primary", type: "button" }, "Save as new version");
  save.addEventListener("click", async () => {
    save.disabled = true;
    saveAnswer.className = "save-answer";
    try {
      const stored = await api("/pipelines", { method: "POST", body: { document: doc } });
      saveAnswer.classList.add("save-ok");
      saveAnswer.replaceChildren("Saved ", h("a", { class: "mono", href: `#/pipelines/${seg(stored.owner, stored.name, stored.version)}` }, stored.ref || `${stored.name} ${stored.version}`));
    } catch (error) {
      saveAnswer.classList.add("save-refused");
      saveAnswer.replaceChildren(h("div", {}, error.message), h("ul", {}, error instanceof ApiError ? error.problems.map((p) => h("li", {}, p)) : []));
    } finally {
      save.disabled = false;
    }
  });

  const importButton = h("button", { class: "button", type: "button" }, "Import Seldon manifest…");
  importButton.addEventListener("click", () => {
    const area = h("textarea", { class: "yaml-editor yaml-small", "aria-label": "Seldon manifest", spellcheck: "false" });
    const problem = h("div", { class: "login-error", role: "alert" });
    const cancel = h("button", { class: "button", type: "button" }, "Cancel");
    const go = h("button", { class: "button button-primary", type: "submit" }, "Import");
    const dialog = h("dialog", { class: "dialog dialog-wide", "aria-labelledby": "import-title" },
      h("form", { method: "dialog" }, h("h2", { id: "import-title" }, "Import a Seldon Core 2 Pipeline"),
        h("p", { class: "hint" }, "Paste a manifest (apiVersion mlops.seldon.io/v1alpha1). Bind each step to a model with the annotation algorail.io/model-url."),
        area, problem, h("div", { class: "dialog-actions" }, cancel, go)));
    cancel.addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => dialog.remove());
    go.addEventListener("click", async (e) => {
      e.preventDefault();
      let answer = null;
      try {
        answer = await api("/validate", { method: "POST", body: { yaml: area.value } });
      } catch (error) {
        problem.textContent = error.message;
        return;
      }
      if (answer.document) {
        selected = null;
        const imported = answer.document;
        imported.metadata = { ...imported.metadata, owner: doc.metadata.owner };
        change(imported);
        dialog.close();
      } else {
        problem.textContent = answer.problems.map((p) => p.text).join("\n");
      }
    });
    document.body.append(dialog);
    dialog.showModal();
    area.focus();
  });

  change(doc);
  return [
    pageHeader(from ? `Designer: new version of ${from}` : "Designer: new pipeline", [["Pipelines", "#/pipelines"]], [importButton, save]),
    h("div", { class: "designer" },
      paletteView,
      h("div", { class: "designer-main" },
        h("div", { class: "meta-row" },
          h("div", { class: "field" }, h("label", { for: "meta-name" }, "Pipeline name"), metaName),
          h("div", { class: "field" }, h("label", { for: "meta-version" }, "Version"), metaVersion),
          saveAnswer),
        refusal,
        card(null, tabs([["Canvas", canvas], ["YAML", yamlArea]]))),
      h("div", { class: "designer-side" }, h("section", { class: "card problems-card" }, h("h2", {}, "Problems"), problemList), inspector)),
  ];
}
