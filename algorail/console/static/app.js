// The console: a login screen, then a shell (top bar, left nav) around one page per route.
// Routes live in the URL fragment (#/pipelines/alice/hello/1.0.0) so every page has a link.

import { api, ApiError, seg, session, Unreachable } from "./api.js";
import { badge, copyButton, empty, h, table, when } from "./dom.js";
import { pipelineGraph } from "./graph.js";
import { toYaml } from "./yaml.js";

const root = document.getElementById("app");
const ACTIVE = new Set(["starting", "stopping"]);
let whoami = null;
let refreshTimer = null;

// ---- the frame ------------------------------------------------------------------------

function shell(section, content) {
  const nav = [["pipelines", "Pipelines"], ["algos", "Algos"], ["deployments", "Deployments"]];
  return h("div", { class: "shell" },
    h("header", { class: "topbar" },
      h("a", { class: "brand", href: "#/pipelines" }, h("span", { class: "brand-mark" }, "ar"), "algorail"),
      h("span", { class: "topbar-sep" }),
      h("span", { class: "topbar-owner", "data-testid": "owner" }, whoami.owner),
      whoami.admin ? h("span", { class: "badge badge-admin" }, "admin") : null,
      h("span", { class: "topbar-key", title: "The key of this tab (only its prefix is shown)" },
        `key ${session.prefix}…`),
      h("button", { class: "button button-ghost", type: "button", onclick: logout }, "Sign out")),
    h("nav", { class: "sidenav", "aria-label": "Sections" },
      nav.map(([id, label]) => h("a", {
        href: `#/${id}`, class: id === section ? "active" : "", "aria-current": id === section ? "page" : null,
      }, label)),
      h("div", { class: "sidenav-foot" }, h("a", { href: "/v1/openapi.json" }, "API reference"))),
    h("main", { id: "main", class: "content", tabindex: "-1" }, content));
}

const pageHeader = (title, crumbs = [], actions = []) => h("div", { class: "page-header" },
  crumbs.length ? h("div", { class: "crumbs" }, crumbs.map(([label, href], i) => [i ? h("span", {}, "/") : null, h("a", { href }, label)])) : null,
  h("div", { class: "page-title-row" }, h("h1", {}, title), h("div", { class: "actions" }, actions)));

const card = (title, ...body) => h("section", { class: "card" }, title ? h("h2", {}, title) : null, body);

function errorState(error) {
  const unreachable = error instanceof Unreachable;
  return h("div", { class: "error-state", role: "alert", "data-testid": "error-state" },
    h("div", { class: "error-title" }, unreachable ? "Registry unreachable" : `Error ${error.status ?? ""}`.trim()),
    h("p", {}, error.message),
    error.problems?.length ? h("ul", {}, error.problems.map((p) => h("li", {}, typeof p === "string" ? p : JSON.stringify(p)))) : null,
    h("button", { class: "button", type: "button", onclick: route }, "Try again"));
}

// ---- login ----------------------------------------------------------------------------

function loginPage(message) {
  const input = h("input", {
    id: "key", name: "key", type: "password", autocomplete: "off", required: true, spellcheck: "false",
    placeholder: "ar_…", "aria-describedby": "key-help",
  });
  const problem = h("div", { class: "login-error", role: "alert", "data-testid": "login-error" }, message || "");
  const submit = h("button", { class: "button button-primary", type: "submit" }, "Sign in");
  const form = h("form", { class: "login-card", "aria-labelledby": "login-title" },
    h("div", { class: "brand brand-large" }, h("span", { class: "brand-mark" }, "ar"), "algorail"),
    h("h1", { id: "login-title" }, "Sign in to the registry"),
    h("label", { for: "key" }, "API key"), input,
    h("p", { id: "key-help", class: "hint" }, "Made with ",
      h("code", {}, "algorail registry keys create --owner NAME"),
      ". It is kept in this tab only and sent to this registry alone."),
    problem, submit);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    problem.textContent = "";
    try {
      whoami = await api("/whoami", { key: input.value.trim() });
      session.key = input.value.trim();
      if (!location.hash || location.hash === "#/login") location.hash = "#/pipelines";
      else route();
    } catch (error) {
      problem.textContent = describeLoginError(error);
      submit.disabled = false;
      input.select();
    }
  });
  root.replaceChildren(h("div", { class: "login" }, form));
  input.focus();
}

function describeLoginError(error) {
  if (error instanceof ApiError && error.status === 401) {
    return "This API key was refused: it is unknown or has been revoked.";
  }
  return error.message;
}

function logout() {
  session.clear();
  whoami = null;
  location.hash = "";
  loginPage();
}

// ---- pages ----------------------------------------------------------------------------

async function pipelinesPage() {
  const rows = await api("/pipelines");
  return [pageHeader("Pipelines"), card(null, rows.length ? table([
    ["Name", (p) => h("a", { href: `#/pipelines/${seg(p.owner, p.name)}` }, p.name)],
    ["Owner", (p) => p.owner],
    ["Versions", (p) => p.versions],
    ["Latest", (p) => p.latest ? h("a", { href: `#/pipelines/${seg(p.owner, p.name, p.latest)}`, class: "mono" }, p.latest) : "none"],
  ], rows, "Pipelines") : empty("No pipelines yet", h("span", {}, "Push one with ", h("code", {}, "algorail push pipeline.yaml"), ".")))];
}

async function pipelinePage(owner, name) {
  const versions = await api(`/pipelines/${seg(owner, name)}/versions`);
  return [pageHeader(name, [["Pipelines", "#/pipelines"]]), card("Versions", table([
    ["Version", (v) => h("a", { href: `#/pipelines/${seg(owner, name, v.version)}`, class: "mono" }, v.version)],
    ["Description", (v) => v.description || h("span", { class: "muted" }, "—")],
    ["Digest", (v) => h("span", { class: "mono muted", title: v.digest }, (v.digest || "").slice(0, 12))],
    ["Created", (v) => when(v.createdAt)],
  ], [...versions].reverse(), "Versions"))];
}

function counts(spec) {
  const kinds = [["endpoints", "endpoints"], ["algos", "algos"], ["dataSources", "sources"],
    ["dataSinks", "sinks"], ["hooks", "hooks"], ["pipes", "pipes"]];
  return h("dl", { class: "facts" }, kinds.map(([key, label]) => h("div", {},
    h("dt", {}, label), h("dd", {}, (spec[key] || []).length))));
}

function tabs(panels) {
  const buttons = [];
  const views = [];
  const select = (index) => {
    buttons.forEach((b, i) => {
      b.setAttribute("aria-selected", String(i === index));
      b.tabIndex = i === index ? 0 : -1;
      views[i].hidden = i !== index;
    });
  };
  panels.forEach(([label, view], index) => {
    const button = h("button", { role: "tab", type: "button", id: `tab-${index}`, "aria-controls": `panel-${index}` }, label);
    button.addEventListener("click", () => select(index));
    button.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      const next = (index + step + panels.length) % panels.length;
      select(next);
      buttons[next].focus();
    });
    buttons.push(button);
    views.push(h("div", { role: "tabpanel", id: `panel-${index}`, "aria-labelledby": `tab-${index}` }, view));
  });
  select(0);
  return [h("div", { role: "tablist", class: "tabs" }, buttons), views];
}

async function versionPage(owner, name, version) {
  const v = await api(`/pipelines/${seg(owner, name)}/versions/${seg(version)}`);
  const spec = v.document.spec || {};
  const yaml = toYaml(v.document);
  const graph = Object.values(spec).some((list) => Array.isArray(list) && list.length)
    ? h("div", { class: "graph-wrap", "data-testid": "graph" }, pipelineGraph(spec, `Graph of ${v.ref}`))
    : empty("This version is empty", "It has no components yet.");
  return [
    pageHeader(`${name} ${version}`, [["Pipelines", "#/pipelines"], [name, `#/pipelines/${seg(owner, name)}`]],
      [copyButton(yaml, "Copy YAML")]),
    v.description ? h("p", { class: "lead" }, v.description) : null,
    card(null, counts(spec)),
    card(null, tabs([
      ["Graph", graph],
      ["YAML", h("pre", { class: "code", "data-testid": "yaml", tabindex: "0" }, yaml)],
    ])),
  ];
}

async function algosPage() {
  const rows = await api("/algos");
  return [pageHeader("Algos"), card(null, rows.length ? table([
    ["Name", (a) => h("a", { href: `#/algos/${seg(a.owner, a.name)}` }, a.name)],
    ["Description", (a) => a.description || h("span", { class: "muted" }, "—")],
    ["Versions", (a) => a.versions],
    ["Latest published", (a) => a.latestPublished ? h("span", { class: "mono" }, a.latestPublished) : h("span", { class: "muted" }, "none")],
  ], rows, "Algos") : empty("No algos yet", h("span", {}, "Publish one with ",
    h("code", {}, "algorail algos publish OWNER/NAME:VERSION --runtime python"), ".")))];
}

function settingsList(settings) {
  const entries = Object.entries(settings || {}).filter(([key]) => key !== "image");
  if (!entries.length) return h("span", { class: "muted" }, "—");
  return h("div", { class: "chips" }, entries.map(([key, value]) =>
    h("span", { class: "chip mono" }, `${key}=${typeof value === "string" ? value : JSON.stringify(value)}`)));
}

async function algoPage(owner, name) {
  const versions = await api(`/algos/${seg(owner, name)}/versions`);
  return [pageHeader(name, [["Algos", "#/algos"]]), card("Versions", table([
    ["Version", (v) => h("span", { class: "mono" }, v.version)],
    ["Status", (v) => badge(v.published ? "published" : "draft")],
    ["Runtime", (v) => h("span", { class: "chip" }, v.runtime)],
    ["Image", (v) => v.settings?.image ? h("span", { class: "mono" }, v.settings.image) : h("span", { class: "muted" }, "—")],
    ["Settings", (v) => settingsList(v.settings)],
    ["Created", (v) => when(v.createdAt)],
  ], [...versions].reverse(), "Algo versions"))];
}

async function deploymentsPage() {
  const rows = await api("/deployments");
  watch(rows.some((d) => ACTIVE.has(d.state)));
  return [pageHeader("Deployments"), card(null, rows.length ? table([
    ["Name", (d) => h("a", { href: `#/deployments/${seg(d.owner, d.name)}` }, d.name)],
    ["State", (d) => badge(d.state)],
    ["Pipeline", (d) => pipelineLink(d.pipeline)],
    ["Target", (d) => d.target],
    ["Gateway", (d) => d.runtime?.url ? h("span", { class: "mono" }, d.runtime.url) : h("span", { class: "muted" }, "—")],
    ["Updated", (d) => when(d.updatedAt)],
  ], rows, "Deployments") : empty("No deployments yet", h("span", {}, "Deploy a pipeline version with ",
    h("code", {}, "algorail deploy OWNER/NAME:VERSION --name NAME"), ".")))];
}

function pipelineLink(ref) {
  const [path, version] = ref.split(":");
  const [owner, name] = path.split("/");
  return h("a", { class: "mono", href: `#/pipelines/${seg(owner, name, version)}` }, ref);
}

/** The smallest body a JSON Schema accepts, for a curl to start from. */
function example(schema) {
  const kinds = { string: "text", integer: 0, number: 0, boolean: false, array: [], null: null };
  if (!schema || schema.type === "object" || schema.properties) {
    return Object.fromEntries((schema?.required || []).map((name) => [name, example(schema.properties?.[name])]));
  }
  if (schema.enum?.length) return schema.enum[0];
  return schema.type in kinds ? kinds[schema.type] : {};
}

const shellQuote = (text) => `'${text.replaceAll("'", "'\\''")}'`;

/** One curl per endpoint path of the deployed version, against the deployment's gateway. */
function curls(deployment, document) {
  const base = deployment.runtime?.url;
  if (!base) {
    return h("p", { class: "muted" }, deployment.target === "kubernetes"
      ? "Served by the release's gateway Service in the cluster; the registry records no external URL."
      : "The gateway address is known once the deployment runs.");
  }
  const paths = (document.spec?.endpoints || []).flatMap((e) => e.paths);
  if (!paths.length) return h("p", { class: "muted" }, "This pipeline has no endpoint.");
  return paths.map((path) => {
    const url = `${base}/${seg(deployment.owner, deployment.name, path.name)}?sync=true`;
    const type = path.contentType || "application/json";
    const body = type === "application/json" ? JSON.stringify(example(path.schema)) : "";
    const command = `curl -s -X POST ${shellQuote(url)} -H ${shellQuote(`content-type: ${type}`)}`
      + ` --data-binary ${body ? shellQuote(body) : "@FILE"}`;
    return h("div", { class: "curl" }, h("div", { class: "curl-head" },
      h("span", { class: "mono" }, url), copyButton(command, "Copy curl")),
    h("pre", { class: "code code-small", "data-testid": "curl" }, command));
  });
}

function confirmTerminate(deployment) {
  const cancel = h("button", { class: "button", type: "button", value: "cancel" }, "Cancel");
  const confirm = h("button", { class: "button button-danger", type: "submit", value: "terminate" }, "Terminate");
  const dialog = h("dialog", { class: "dialog", "aria-labelledby": "dialog-title" },
    h("form", { method: "dialog" },
      h("h2", { id: "dialog-title" }, `Terminate ${deployment.name}?`),
      h("p", {}, "Everything this deployment started is stopped. Its pipeline versions stay in the registry."),
      h("div", { class: "dialog-actions" }, cancel, confirm)));
  cancel.addEventListener("click", () => dialog.close("cancel"));
  dialog.addEventListener("close", async () => {
    dialog.remove();
    if (dialog.returnValue !== "terminate") return;
    try {
      await api(`/deployments/${seg(deployment.owner, deployment.name)}`, { method: "DELETE" });
      route();
    } catch (error) {
      show(whoami ? shell("deployments", errorState(error)) : null);
    }
  });
  document.body.append(dialog);
  dialog.showModal();
  cancel.focus();
}

async function deploymentPage(owner, name) {
  const d = await api(`/deployments/${seg(owner, name)}`);
  const [path, version] = d.pipeline.split(":");
  const [pOwner, pName] = path.split("/");
  const document = (await api(`/pipelines/${seg(pOwner, pName)}/versions/${seg(version)}`)).document;
  watch(ACTIVE.has(d.state));
  const terminate = h("button", {
    class: "button button-danger", type: "button", disabled: d.state === "terminated" || d.state === "stopping",
  }, "Terminate…");
  terminate.addEventListener("click", () => confirmTerminate(d));
  const events = [["Created", d.createdAt, "starting"], ["Last change", d.updatedAt, d.state]];
  return [
    pageHeader(d.name, [["Deployments", "#/deployments"]], [terminate]),
    card(null, h("dl", { class: "facts" },
      h("div", {}, h("dt", {}, "state"), h("dd", {}, badge(d.state))),
      h("div", {}, h("dt", {}, "pipeline"), h("dd", {}, pipelineLink(d.pipeline))),
      h("div", {}, h("dt", {}, "target"), h("dd", {}, d.target)),
      d.runtime?.namespace ? h("div", {}, h("dt", {}, "namespace"), h("dd", { class: "mono" }, d.runtime.namespace)) : null,
      d.runtime?.release ? h("div", {}, h("dt", {}, "release"), h("dd", { class: "mono" }, d.runtime.release)) : null),
    d.message ? h("div", { class: `notice notice-${d.state}`, "data-testid": "message" }, d.message) : null),
    card("Endpoints", curls(d, document)),
    card("History", h("p", { class: "hint" }, "The registry keeps a deployment's first and latest state change."),
      h("ol", { class: "timeline" }, events.map(([label, at, state]) =>
        h("li", {}, badge(state), h("span", {}, label), when(at))))),
  ];
}

// ---- routing --------------------------------------------------------------------------

const ROUTES = [
  [/^#\/pipelines\/([^/]+)\/([^/]+)\/([^/]+)$/, "pipelines", versionPage],
  [/^#\/pipelines\/([^/]+)\/([^/]+)$/, "pipelines", pipelinePage],
  [/^#\/pipelines$/, "pipelines", pipelinesPage],
  [/^#\/algos\/([^/]+)\/([^/]+)$/, "algos", algoPage],
  [/^#\/algos$/, "algos", algosPage],
  [/^#\/deployments\/([^/]+)\/([^/]+)$/, "deployments", deploymentPage],
  [/^#\/deployments$/, "deployments", deploymentsPage],
];

function watch(active) {
  clearTimeout(refreshTimer);
  if (active) refreshTimer = setTimeout(() => route({ quiet: true }), 2000);
}

function show(node) {
  if (node) root.replaceChildren(node);
}

async function route({ quiet = false } = {}) {
  clearTimeout(refreshTimer);
  if (!session.key) return loginPage();
  const hash = location.hash || "#/pipelines";
  const [pattern, section, page] = ROUTES.find(([p]) => p.test(hash)) || ROUTES[2];
  const args = (hash.match(pattern) || []).slice(1).map(decodeURIComponent);
  if (!quiet) document.title = `${section[0].toUpperCase()}${section.slice(1)} · algorail`;
  try {
    whoami ||= await api("/whoami");
    const content = await page(...args);
    const previous = document.activeElement?.id;
    show(shell(section, content));
    if (!quiet) document.getElementById("main").focus({ preventScroll: true });
    else if (previous) document.getElementById(previous)?.focus();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      session.clear();
      whoami = null;
      return loginPage(describeLoginError(error));
    }
    show(whoami ? shell(section, errorState(error)) : h("div", { class: "login" }, errorState(error)));
  }
}

window.addEventListener("hashchange", () => route());
route();
