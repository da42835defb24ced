// The console: a login screen, then a shell (top bar, left nav) around one page per route.
// Routes live in the URL fragment (#/pipelines/alice/hello/1.0.0) so every page has a link.

import { api, ApiError, KEY_REFUSED, seg, session, Unreachable } from "./api.js";
import { badge, card, copyButton, empty, h, pageHeader, table, tabs, when } from "./dom.js";
import { designerPage } from "./designer.js";
import { devPipelinePage, devRunPage, devRunsPage, devTitle } from "./devmode.js";
import { diffPage } from "./diff.js";
import { layoutOf, pipelineGraph } from "./graph.js";
import { brokerProblem, messagesView } from "./messages.js";
import { monitoringPage } from "./monitoring.js";
import { runPage, runsIndexPage, runsPage } from "./runs.js";
import { example } from "./schemaform.js";
import { toYaml } from "./yaml.js";

const root = document.getElementById("app");
const ACTIVE = new Set(["starting", "stopping"]);
const KEY_REFUSED_TEXT = "Your key was revoked or is invalid: sign in again with a valid API key.";
let whoami = null;
let devInfo = null; // what `algorail dev` serves (GET /v1/dev) when the console is its own
let refreshTimer = null;
let leaving = new AbortController(); // aborted when the page is left: ends its streams

// ---- the frame ------------------------------------------------------------------------

function shell(section, content) {
  const nav = devInfo ? [["pipeline", "Pipeline"], ["runs", "Runs"], ["messages", "Messages"]]
    : [["pipelines", "Pipelines"], ["algos", "Algos"], ["designer", "Designer"], ["deployments", "Deployments"], ["runs", "Runs"]];
  const who = devInfo ? [h("span", { class: "topbar-owner" }, devTitle(devInfo)), h("span", { class: "badge badge-dev" }, "algorail dev · read-only")]
    : [h("span", { class: "topbar-owner", "data-testid": "owner" }, whoami.owner),
      whoami.admin ? h("span", { class: "badge badge-admin" }, "admin") : null,
      h("span", { class: "topbar-key", title: "The key of this tab (only its prefix is shown)" }, `key ${session.prefix}…`),
      h("button", { class: "button button-ghost", type: "button", onclick: logout }, "Sign out")];
  return h("div", { class: "shell" },
    h("header", { class: "topbar" },
      h("a", { class: "brand", href: `#/${nav[0][0]}` }, h("span", { class: "brand-mark" }, "ar"), "algorail"),
      h("span", { class: "topbar-sep" }), who),
    h("nav", { class: "sidenav", "aria-label": "Sections" },
      nav.map(([id, label]) => h("a", {
        href: `#/${id}`, class: id === section ? "active" : "", "aria-current": id === section ? "page" : null,
      }, label)),
      h("div", { class: "sidenav-foot" }, devInfo ? h("a", { href: "/openapi.json" }, "Gateway API")
        : h("a", { href: "/v1/openapi.json" }, "API reference"))),
    h("main", { id: "main", class: "content", tabindex: "-1" }, content));
}

function errorState(error) {
  const unreachable = error instanceof Unreachable;
  return h("div", { class: "error-state", role: "alert", "data-testid": "error-state" },
    h("div", { class: "error-title" }, unreachable ? "Registry unreachable" : `Error ${error.status ?? ""}`.trim()),
    h("p", {}, error.message),
    error.problems?.length ? h("ul", {}, error.problems.map((p) => h("li", {}, typeof p === "string" ? p : JSON.stringify(p)))) : null,
    h("button", { class: "button", type: "button", onclick: route }, "Try again"));
}

// ---- login ----------------------------------------------------------------------------

/** The sign-in screen; `refusedKey` when the tab's key was just refused, which it says first. */
function loginPage(message, refusedKey = false) {
  const input = h("input", {
    id: "key", name: "key", type: "password", autocomplete: "off", required: true, spellcheck: "false",
    placeholder: "ar_…", "aria-describedby": "key-help",
  });
  const problem = h("div", { class: "login-error", role: "alert", "data-testid": "login-error" }, message || "");
  const submit = h("button", { class: "button button-primary", type: "submit" }, "Sign in");
  const form = h("form", { class: "login-card", "aria-labelledby": "login-title" },
    h("div", { class: "brand brand-large" }, h("span", { class: "brand-mark" }, "ar"), "algorail"),
    refusedKey ? h("div", { class: "key-refused", role: "alert", "data-testid": "key-refused" },
      h("strong", {}, "Your key was revoked or is invalid"),
      h("p", {}, "The registry refused the API key this tab was using, so nothing more is shown with it. Sign in again with a valid key; ",
        h("code", {}, "algorail registry keys list"), " shows which keys exist.")) : null,
    h("h1", { id: "login-title" }, refusedKey ? "Sign in again" : "Sign in to the registry"),
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

/** The tab's key was refused by some call: whatever page was open is left, its streams end,
 * and the sign-in screen says why. */
function keyRefused() {
  clearTimeout(refreshTimer);
  leaving.abort();
  leaving = new AbortController();
  document.querySelectorAll("dialog").forEach((d) => d.remove());
  session.clear();
  whoami = null;
  loginPage(KEY_REFUSED_TEXT, true);
}

function logout() {
  session.clear();
  whoami = null;
  location.hash = "";
  loginPage();
}

// ---- pages ----------------------------------------------------------------------------

let ownerShown = ""; // an admin's owner filter, kept across the cluster-wide lists

/** An admin's list spans every owner: a filter by owner above it. Others see their own. */
function byOwner(rows, render) {
  const holder = h("div", {});
  if (!whoami.admin) {
    holder.append(render(rows));
    return [null, holder];
  }
  const owners = [...new Set(rows.map((r) => r.owner))].sort();
  if (!owners.includes(ownerShown)) ownerShown = "";
  const pick = h("select", { id: "owner-filter" }, h("option", { value: "" }, `every owner (${owners.length})`),
    owners.map((o) => h("option", { value: o, selected: o === ownerShown }, o)));
  const show = () => holder.replaceChildren(render(rows.filter((r) => !ownerShown || r.owner === ownerShown)));
  pick.addEventListener("change", () => { ownerShown = pick.value; show(); });
  show();
  return [h("div", { class: "owner-filter" }, h("label", { for: "owner-filter" }, "Owner"), pick,
    h("span", { class: "hint" }, "An admin key sees every owner's.")), holder];
}

async function pipelinesPage() {
  const rows = await api("/pipelines");
  const create = h("a", { class: "button button-primary", href: "#/designer" }, "New pipeline");
  const [filter, list] = byOwner(rows, (shown) => table([
    ["Name", (p) => h("a", { href: `#/pipelines/${seg(p.owner, p.name)}` }, p.name)],
    ["Owner", (p) => p.owner],
    ["Versions", (p) => p.versions],
    ["Latest", (p) => p.latest ? h("a", { href: `#/pipelines/${seg(p.owner, p.name, p.latest)}`, class: "mono" }, p.latest) : "none"],
  ], shown, "Pipelines"));
  return [pageHeader("Pipelines", [], [create]), card(null, rows.length ? [filter, list]
    : empty("No pipelines yet", h("span", {}, "Push one with ", h("code", {}, "algorail push pipeline.yaml"), ".")))];
}

async function pipelinePage(owner, name) {
  const versions = await api(`/pipelines/${seg(owner, name)}/versions`);
  return [pageHeader(name, [["Pipelines", "#/pipelines"]]), versions.length > 1 ? compareForm(owner, name, versions) : null, card("Versions", table([
    ["Version", (v) => h("a", { href: `#/pipelines/${seg(owner, name, v.version)}`, class: "mono" }, v.version)],
    ["Description", (v) => v.description || h("span", { class: "muted" }, "—")],
    ["Digest", (v) => h("span", { class: "mono muted", title: v.digest }, (v.digest || "").slice(0, 12))],
    ["Created", (v) => when(v.createdAt)],
  ], [...versions].reverse(), "Versions"))];
}

function compareForm(owner, name, versions) {
  const choose = (id, label, selected) => h("div", { class: "field" }, h("label", { for: id }, label),
    h("select", { id }, versions.map((v) => h("option", { value: v.version, selected: v.version === selected }, v.version))));
  const form = h("form", { class: "compare", "aria-label": "Compare two versions" },
    choose("compare-from", "Compare", versions.at(-2).version), choose("compare-to", "with", versions.at(-1).version),
    h("button", { class: "button", type: "submit" }, "Compare"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = `#/diff/${seg(owner, name, form.querySelector("#compare-from").value, form.querySelector("#compare-to").value)}`;
  });
  return card(null, form);
}

function counts(spec) {
  const kinds = [["endpoints", "endpoints"], ["algos", "algos"], ["dataSources", "sources"],
    ["dataSinks", "sinks"], ["hooks", "hooks"], ["pipes", "pipes"]];
  return h("dl", { class: "facts" }, kinds.map(([key, label]) => h("div", {},
    h("dt", {}, label), h("dd", {}, (spec[key] || []).length))));
}

async function versionPage(owner, name, version) {
  const v = await api(`/pipelines/${seg(owner, name)}/versions/${seg(version)}`);
  const spec = v.document.spec || {};
  const yaml = toYaml(v.document);
  const graph = Object.values(spec).some((list) => Array.isArray(list) && list.length)
    ? h("div", { class: "graph-wrap", "data-testid": "graph" }, pipelineGraph(spec, `Graph of ${v.ref}`, layoutOf(v.document)))
    : empty("This version is empty", "It has no components yet.");
  // an admin reads every owner's versions, but pushes and deploys only as its own owner
  const theirs = owner !== whoami.owner;
  return [
    pageHeader(`${name} ${version}`, [["Pipelines", "#/pipelines"], [name, `#/pipelines/${seg(owner, name)}`]],
      [theirs ? null : h("a", { class: "button", href: `#/designer/${seg(owner, name, version)}` }, "Edit as new version"), copyButton(yaml, "Copy YAML"),
        theirs ? null : h("button", { class: "button button-primary", type: "button", onclick: () => deployDialog(v.ref, name) }, "Deploy…")]),
    theirs ? h("p", { class: "hint", "data-testid": "read-only" }, `${owner}'s pipeline, shown to an admin key: read-only here (deploy and edit it with ${owner}'s key).`) : null,
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
  const [filter, list] = byOwner(rows, (shown) => table([
    ["Name", (a) => h("a", { href: `#/algos/${seg(a.owner, a.name)}` }, a.name)],
    ["Owner", (a) => a.owner],
    ["Description", (a) => a.description || h("span", { class: "muted" }, "—")],
    ["Versions", (a) => a.versions],
    ["Latest published", (a) => a.latestPublished ? h("span", { class: "mono" }, a.latestPublished) : h("span", { class: "muted" }, "none")],
  ], shown, "Algos"));
  return [pageHeader("Algos"), card(null, rows.length ? [filter, list] : empty("No algos yet", h("span", {}, "Publish one with ",
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
  const [filter, list] = byOwner(rows, (shown) => table([
    ["Name", (d) => h("a", { href: `#/deployments/${seg(d.owner, d.name)}` }, d.name)],
    ["Owner", (d) => d.owner],
    ["State", (d) => badge(d.state)],
    ["Pipeline", (d) => pipelineLink(d.pipeline)],
    ["Target", (d) => d.target],
    ["Gateway", (d) => d.runtime?.url ? h("span", { class: "mono" }, d.runtime.url) : h("span", { class: "muted" }, "—")],
    ["Updated", (d) => when(d.updatedAt)],
  ], shown, "Deployments"));
  return [pageHeader("Deployments"), card(null, rows.length ? [filter, list] : empty("No deployments yet", h("span", {}, "Deploy a pipeline version with ",
    h("code", {}, "algorail deploy OWNER/NAME:VERSION --name NAME"), ".")))];
}

function pipelineLink(ref) {
  const { owner, name, version } = parseRef(ref);
  return h("a", { class: "mono", href: `#/pipelines/${seg(owner, name, version)}` }, ref);
}

const shellQuote = (text) => `'${text.replaceAll("'", "'\\''")}'`;

/** One curl per endpoint path of the deployed version, against the deployment's gateway. */
function curls(deployment, document) {
  const base = deployment.runtime?.url;
  if (!base) {
    if (deployment.target !== "kubernetes") return h("p", { class: "muted" }, "The gateway address is known once the deployment runs.");
    const served = deployment.status?.endpoints || [];
    return [h("p", { class: "muted" }, "Served by the namespace's gateway Service in the cluster (the registry records no external URL)",
      served.length ? "; the operator reports these paths:" : "."),
    served.length ? h("ul", { "data-testid": "cluster-endpoints" }, served.map((p) => h("li", { class: "mono" }, p))) : null];
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

const field = (id, label, input) => h("div", { class: "field" }, h("label", { for: id }, label), input);

/** A modal form: `fields` above its Cancel and submit buttons; `submit()` runs the change and
 * closes it, or its error is shown in the dialog. Escape and Cancel close it unchanged. */
function formDialog(id, title, fields, label, submit, focus) {
  const problem = h("div", { class: "login-error", role: "alert" });
  const cancel = h("button", { class: "button", type: "button" }, "Cancel");
  const go = h("button", { class: "button button-primary", type: "submit" }, label);
  const form = h("form", { class: "form-fields" }, h("h2", { id: `${id}-title` }, title), fields,
    problem, h("div", { class: "dialog-actions" }, cancel, go));
  const dialog = h("dialog", { class: "dialog", "aria-labelledby": `${id}-title` }, form);
  cancel.addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => dialog.remove());
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    go.disabled = true;
    try {
      await submit();
      dialog.close();
    } catch (error) {
      problem.textContent = error.message;
      go.disabled = false;
    }
  });
  document.body.append(dialog);
  dialog.showModal();
  focus.focus();
}

/** Deploy a pipeline version: a name, a target and its main setting. */
function deployDialog(ref, name) {
  const deployment = h("input", { id: "deploy-name", type: "text", value: name, spellcheck: "false", required: true });
  const target = h("select", { id: "deploy-target" }, h("option", { value: "local" }, "local (algorail dev on the registry host)"),
    h("option", { value: "kubernetes" }, "kubernetes (Pipeline resource)"));
  const workdir = h("input", { id: "deploy-workdir", type: "text", spellcheck: "false", placeholder: "the folder the algos' code is in" });
  const namespace = h("input", { id: "deploy-namespace", type: "text", spellcheck: "false", placeholder: "algorail" });
  const local = field("deploy-workdir", "Work folder (on the registry host)", workdir);
  const cluster = field("deploy-namespace", "Namespace", namespace);
  const pick = () => { local.hidden = target.value !== "local"; cluster.hidden = target.value === "local"; };
  target.addEventListener("change", pick);
  pick();
  formDialog("deploy", `Deploy ${ref}`, [field("deploy-name", "Deployment name", deployment), field("deploy-target", "Target", target), local, cluster,
    h("p", { class: "hint" }, "Local deployments need an admin key and a registry started with --allow-local-deployments.")], "Deploy", async () => {
    const settings = target.value === "local" ? (workdir.value.trim() ? { workdir: workdir.value.trim() } : {})
      : (namespace.value.trim() ? { namespace: namespace.value.trim() } : {});
    const made = await api("/deployments", { method: "POST", body: { pipeline: ref, name: deployment.value.trim(), target: target.value, settings } });
    location.hash = `#/deployments/${seg(made.owner, made.name)}`;
  }, deployment);
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

const STATUS_EVERY_MS = 10_000;
const number = (value) => (value === null || value === undefined ? h("span", { class: "muted" }, "—") : String(value));

/** Each component's state, replicas, lag, rates and last error, as `algorail status` reads
 * them from the deployment's broker (GET .../components), refreshed while the page is open. */
function componentsCard(d, signal) {
  const body = h("div", { "data-testid": "components" });
  if (d.state !== "running") {
    body.append(h("p", { class: "muted" }, `The deployment is not running (${d.state}): there is no component state to read.`));
    return card("Components", body);
  }
  const refresh = h("button", { class: "button button-small", type: "button" }, "Refresh");
  let timer = null;
  const load = async () => {
    clearTimeout(timer);
    refresh.disabled = true;
    try {
      const status = await api(`/deployments/${seg(d.owner, d.name)}/components`);
      body.replaceChildren(table([
        ["Component", (c) => h("span", { class: "strong" }, c.name)],
        ["Kind", (c) => c.kind],
        ["State", (c) => badge(c.state)],
        ["Replicas", (c) => h("span", { class: "mono", title: c.replicas.startsWith("?") ? "members of its consumer group (the broker does not describe groups) / wanted" : "members of its consumer group / wanted" }, c.replicas)],
        ["Lag", (c) => h("span", { class: "mono", "data-lag": c.lag ?? "" }, number(c.lag))],
        ["In/s", (c) => number(c.in_per_s)],
        ["Out/s", (c) => number(c.out_per_s)],
        ["Errors (5 min)", (c) => (c.errors || c.dead_letters ? h("span", { class: "error-text" }, `${c.errors} errors, ${c.dead_letters} dead letters`) : "0")],
        ["Last error", (c) => (c.last_error ? h("span", { class: "error-text", title: c.last_error }, c.last_error.slice(0, 80)) : h("span", { class: "muted" }, "—"))],
      ], status.components, "Component status"));
    } catch (error) {
      if (signal.aborted) return;
      body.replaceChildren(brokerProblem(error, "components-problem"));
    } finally {
      refresh.disabled = false;
    }
    if (!signal.aborted) timer = setTimeout(load, STATUS_EVERY_MS);
  };
  signal.addEventListener("abort", () => clearTimeout(timer));
  refresh.addEventListener("click", load);
  body.append(h("p", { class: "muted" }, "Reading the deployment's broker…"));
  load();
  return h("section", { class: "card" }, h("div", { class: "card-head" }, h("h2", {}, "Components"),
    h("span", { class: "hint" }, "Lag: messages not yet committed by the component's consumer group; replicas: its group's members over those wanted."), refresh), body);
}

/** A Kubernetes deployment's components as the operator reports them in its Pipeline's
 * status (replicas and last error); lag needs the cluster's broker, which the registry
 * does not reach. */
function clusterComponentsCard(d) {
  const components = Object.entries(d.status?.components || {}).map(([name, c]) => ({ name, ...c }));
  const lagHint = h("p", { class: "muted" }, "Lag is read from the cluster's Kafka: run ",
    h("code", {}, "algorail status --bootstrap-servers …"), " where it is reachable.");
  if (!components.length) {
    return card("Components", h("p", { class: "muted", "data-testid": "cluster-components" },
      d.status?.message || "The operator has not reported this pipeline's components yet."), lagHint);
  }
  const replicas = (c) => (c.kind === "algo" ? `${c.readyReplicas}/${c.desiredReplicas}` : "—");
  return card("Components", h("div", { "data-testid": "cluster-components" }, table([
    ["Component", (c) => h("span", { class: "strong" }, c.name)],
    ["Kind", (c) => c.kind],
    ["Replicas", (c) => h("span", { class: "mono", title: "ready / desired, from the Pipeline's status" }, replicas(c))],
    ["Last error", (c) => (c.lastError ? h("span", { class: "error-text", title: c.lastError }, c.lastError.slice(0, 80)) : h("span", { class: "muted" }, "—"))],
  ], components, "Component status")), lagHint);
}

/** Move a deployment to another version of its pipeline (PATCH), restarting it. */
async function updateDialog(d) {
  const { owner, name: pName, version } = parseRef(d.pipeline);
  const versions = await api(`/pipelines/${seg(owner, pName)}/versions`);
  const choose = h("select", { id: "update-version" }, [...versions].reverse().map((v) =>
    h("option", { value: v.version, selected: v.version === version }, v.version === version ? `${v.version} (deployed)` : v.version)));
  formDialog("update", `Update ${d.name}`, [field("update-version", `Version of ${owner}/${pName}`, choose),
    h("p", { class: "hint" }, "The deployment restarts on the version chosen; its history records the change.")], "Update", async () => {
    await api(`/deployments/${seg(d.owner, d.name)}`, { method: "PATCH", body: { pipeline: `${owner}/${pName}:${choose.value}` } });
    route();
  }, choose);
}

function parseRef(ref) {
  const [path, version] = ref.split(":");
  const [owner, name] = path.split("/");
  return { owner, name, version };
}

function history(events) {
  return h("ol", { class: "timeline", "data-testid": "history" }, [...events].reverse().map((e) =>
    h("li", {}, badge(e.state), h("span", { class: "mono" }, e.pipeline), when(e.at),
      e.message ? h("div", { class: "timeline-message" }, e.message) : null)));
}

async function deploymentPage(owner, name, signal) {
  const d = await api(`/deployments/${seg(owner, name)}`);
  const ref = parseRef(d.pipeline);
  const document = (await api(`/pipelines/${seg(ref.owner, ref.name)}/versions/${seg(ref.version)}`)).document;
  watch(ACTIVE.has(d.state));
  const terminate = h("button", {
    class: "button button-danger", type: "button", disabled: d.state === "terminated" || d.state === "stopping",
  }, "Terminate…");
  terminate.addEventListener("click", () => confirmTerminate(d));
  const update = h("button", { class: "button", type: "button", disabled: !["running", "failed"].includes(d.state) }, "Update…");
  update.addEventListener("click", () => updateDialog(d));
  const running = d.state === "running";
  const local = running && d.target === "local";
  const runs = running ? h("a", { class: "button", href: `#/runs/${seg(owner, name)}` }, "Runs") : null;
  const messages = local ? h("a", { class: "button", href: `#/messages/${seg(owner, name)}` }, "Messages") : null;
  const monitor = running && d.runtime?.url ? h("a", { class: "button", href: `#/monitoring/${seg(owner, name)}` }, "Monitoring") : null;
  return [
    pageHeader(d.name, [["Deployments", "#/deployments"]], [runs, messages, monitor, update, terminate]),
    card(null, h("dl", { class: "facts" },
      h("div", {}, h("dt", {}, "state"), h("dd", {}, badge(d.state))),
      h("div", {}, h("dt", {}, "owner"), h("dd", {}, d.owner)),
      h("div", {}, h("dt", {}, "pipeline"), h("dd", {}, pipelineLink(d.pipeline))),
      h("div", {}, h("dt", {}, "target"), h("dd", {}, d.target)),
      d.runtime?.namespace ? h("div", {}, h("dt", {}, "namespace"), h("dd", { class: "mono" }, d.runtime.namespace)) : null,
      d.runtime?.kind ? h("div", {}, h("dt", {}, "resource"), h("dd", { class: "mono" }, `${d.runtime.kind} ${d.runtime.name}`)) : null,
      d.status ? h("div", { "data-testid": "cluster-status" }, h("dt", {}, "on the cluster"),
        h("dd", {}, d.status.ready ? "ready" : d.status.degraded ? "degraded" : "not ready",
          d.status.message ? ` — ${d.status.message}` : "")) : null),
    d.message ? h("div", { class: `notice notice-${d.state}`, "data-testid": "message" }, d.message) : null),
    local || !running ? componentsCard(d, signal) : clusterComponentsCard(d),
    card("Endpoints", curls(d, document)),
    card("History", history(d.events || [])),
  ];
}

async function messagesPage(owner, name) {
  return [pageHeader(`Messages of ${name}`, [["Deployments", "#/deployments"], [name, `#/deployments/${seg(owner, name)}`]]),
    await messagesView(`/deployments/${seg(owner, name)}/messages`)];
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
  [/^#\/runs\/([^/]+)\/([^/]+)\/([^/]+)$/, "runs", runPage],
  [/^#\/runs\/([^/]+)\/([^/]+)$/, "runs", runsPage],
  [/^#\/runs$/, "runs", runsIndexPage],
  [/^#\/designer\/([^/]+)\/([^/]+)\/([^/]+)$/, "designer", designerPage],
  [/^#\/designer$/, "designer", designerPage],
  [/^#\/monitoring\/([^/]+)\/([^/]+)$/, "deployments", monitoringPage],
  [/^#\/messages\/([^/]+)\/([^/]+)$/, "deployments", messagesPage],
  [/^#\/diff\/([^/]+)\/([^/]+)\/([^/]+)\/([^/]+)$/, "pipelines", diffPage],
];

// `algorail dev`'s read-only console: its pipeline and runs, no login
const DEV_ROUTES = [
  [/^#\/runs\/([^/]+)$/, "runs", devRunPage],
  [/^#\/messages$/, "messages", async () => [pageHeader("Messages"), await messagesView("/dev/messages")]],
  [/^#\/runs$/, "runs", devRunsPage],
  [/^#\/pipeline$/, "pipeline", devPipelinePage],
];

function watch(active) {
  clearTimeout(refreshTimer);
  if (active) refreshTimer = setTimeout(() => route({ quiet: true }), 2000);
}

function show(node) {
  if (node) root.replaceChildren(node);
}

async function devRoute() {
  const hash = location.hash || "#/pipeline";
  const [pattern, section, page] = DEV_ROUTES.find(([p]) => p.test(hash)) || DEV_ROUTES.at(-1);
  const args = (hash.match(pattern) || []).slice(1).map(decodeURIComponent);
  document.title = `${section[0].toUpperCase()}${section.slice(1)} · algorail dev`;
  leaving.abort();
  leaving = new AbortController();
  try {
    show(shell(section, await page(devInfo, ...args, leaving.signal)));
  } catch (error) {
    show(shell(section, errorState(error)));
  }
  document.getElementById("main").focus({ preventScroll: true });
}

async function route({ quiet = false } = {}) {
  clearTimeout(refreshTimer);
  if (devInfo) return devRoute();
  if (!session.key) return loginPage();
  const hash = location.hash || "#/pipelines";
  const [pattern, section, page] = ROUTES.find(([p]) => p.test(hash)) || ROUTES[2];
  const args = (hash.match(pattern) || []).slice(1).map(decodeURIComponent);
  if (!quiet) document.title = `${section[0].toUpperCase()}${section.slice(1)} · algorail`;
  try {
    whoami ||= await api("/whoami");
    if (!quiet) {
      leaving.abort();
      leaving = new AbortController();
    }
    const content = await page(...args, leaving.signal);
    const previous = document.activeElement?.id;
    show(shell(section, content));
    if (!quiet) document.getElementById("main").focus({ preventScroll: true });
    else if (previous) document.getElementById(previous)?.focus();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      return keyRefused();
    }
    show(whoami ? shell(section, errorState(error)) : h("div", { class: "login" }, errorState(error)));
  }
}

/** Which server this page came from: the registry, or `algorail dev` (its mode.json says). */
async function start() {
  const mode = await fetch("mode.json", { cache: "no-store" }).then((r) => r.json()).catch(() => ({ mode: "registry" }));
  if (mode.mode === "dev") {
    try {
      devInfo = await api("/dev");
    } catch (error) {
      return show(h("div", { class: "login" }, errorState(error)));
    }
  }
  window.addEventListener("hashchange", () => route());
  window.addEventListener(KEY_REFUSED, keyRefused);
  return route();
}

start();
