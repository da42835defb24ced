// Runs: a deployment's runs as they happen (the registry's Server-Sent Events), filtered
// by status and component; a test request form per endpoint path; one run's detail, as
// `algorail inspect` shows it (every hop with its timing, payload preview and error).

import { api, seg, stream } from "./api.js";
import { badge, card, empty, h, pageHeader, table } from "./dom.js";
import { components } from "./graph.js";
import { requestForm } from "./schemaform.js";

const STATUSES = ["pending", "complete", "failed"];
const KEEP = 500; // runs kept on the page, newest first

const clock = (ms) => {
  const d = new Date(ms);
  return h("time", { datetime: d.toISOString(), title: d.toISOString() },
    `${d.toLocaleTimeString(undefined, { hour12: false })}.${String(d.getMilliseconds()).padStart(3, "0")}`);
};
const duration = (ms) => (ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`);
const shortId = (id) => (id.length > 14 ? `${id.slice(0, 13)}…` : id);

async function deploymentAndDocument(owner, name) {
  const d = await api(`/deployments/${seg(owner, name)}`);
  const [path, version] = d.pipeline.split(":");
  const [pOwner, pName] = path.split("/");
  const { document } = await api(`/pipelines/${seg(pOwner, pName)}/versions/${seg(version)}`);
  return { d, document };
}

/** The deployments whose runs can be watched. */
export async function runsIndexPage() {
  const rows = await api("/deployments");
  const running = rows.filter((d) => d.state === "running");
  return [pageHeader("Runs"), card(null, running.length ? table([
    ["Deployment", (d) => h("a", { href: `#/runs/${seg(d.owner, d.name)}` }, d.name)],
    ["State", (d) => badge(d.state)],
    ["Pipeline", (d) => h("span", { class: "mono" }, d.pipeline)],
    ["Target", (d) => d.target],
  ], running, "Running deployments") : empty("No running deployment",
    rows.length ? "Runs are shown for running deployments; none of yours is running."
      : h("span", {}, "Deploy a pipeline version with ", h("code", {}, "algorail deploy OWNER/NAME:VERSION --name NAME"), ".")))];
}

function testRequestCard(owner, name, spec) {
  const paths = (spec.endpoints || []).flatMap((e) => (e.paths || [])
    .filter((p) => (p.type || "http") === "http").map((p) => ({ ...p, endpoint: e.name })));
  if (!paths.length) return card("Send a test request", h("p", { class: "muted" }, "This pipeline has no http endpoint path."));
  const chooser = h("select", { id: "request-path", "aria-label": "Endpoint path" },
    paths.map((p, i) => h("option", { value: String(i) }, `${p.endpoint}.${p.name}`)));
  const holder = h("div", {});
  const answer = h("div", { class: "request-answer", "data-testid": "request-answer", role: "status" });
  let form;
  const pick = () => {
    form = requestForm(paths[Number(chooser.value)], "request");
    holder.replaceChildren(form.element);
  };
  chooser.addEventListener("change", pick);
  pick();
  const send = h("button", { class: "button button-primary", type: "submit" }, "Send request");
  const element = h("form", { class: "request-form", "aria-label": "Send a test request" },
    h("div", { class: "field" }, h("label", { for: "request-path" }, "Endpoint path"), chooser),
    holder, h("div", { class: "form-actions" }, send), answer);
  element.addEventListener("submit", async (event) => {
    event.preventDefault();
    send.disabled = true;
    answer.className = "request-answer";
    try {
      const path = paths[Number(chooser.value)];
      const sent = await api(`/deployments/${seg(owner, name)}/requests`, { method: "POST", body: { path: path.name, body: form.body() } });
      const ok = sent.status < 300;
      answer.classList.add(ok ? "request-ok" : "request-refused");
      const runId = sent.answer?.runId;
      answer.replaceChildren(...[
        h("div", {}, h("strong", {}, `${sent.status} `), ok ? "accepted" : "refused by the gateway"),
        runId ? h("div", {}, "run ", h("a", { class: "mono", href: `#/runs/${seg(owner, name, runId)}` }, runId)) : null,
        ok ? null : h("div", { class: "mono" }, typeof sent.answer === "string" ? sent.answer : sent.answer?.error || JSON.stringify(sent.answer)),
      ].filter(Boolean));
    } catch (error) {
      answer.classList.add("request-refused");
      answer.textContent = error.message;
    } finally {
      send.disabled = false;
    }
  });
  return card("Send a test request", h("p", { class: "hint" }, "Sent through the registry to the deployment's gateway; the run shows up in the list as it happens."), element);
}

/**
 * The live list of runs from the event stream at `streamPath`, filtered by status and
 * by the components of `spec`: {view, live (the connection's state), reconnect}.
 */
export function liveRuns(streamPath, runHref, componentNames, signal) {
  const runs = new Map();
  const live = h("span", { class: "live live-connecting", "data-testid": "live", role: "status" }, "connecting…");
  const status = h("select", { id: "filter-status", "aria-label": "Filter by status" },
    h("option", { value: "" }, "All statuses"), STATUSES.map((s) => h("option", { value: s }, s)));
  const component = h("select", { id: "filter-component", "aria-label": "Filter by component" },
    h("option", { value: "" }, "All components"), componentNames.map((c) => h("option", { value: c }, c)));
  const counts = h("span", { class: "muted", "data-testid": "run-count" });
  const body = h("div", { "data-testid": "runs" });
  const problem = h("div", { class: "notice notice-failed", role: "alert", hidden: true, "data-testid": "stream-problem" });

  const render = () => {
    const shown = [...runs.values()]
      .filter((r) => !status.value || r.status === status.value)
      .filter((r) => !component.value || r.components.includes(component.value))
      .sort((a, b) => b.startedMs - a.startedMs);
    counts.textContent = `${shown.length} of ${runs.size} runs`;
    body.replaceChildren(shown.length ? table([
      ["Run", (r) => h("a", { class: "mono", href: runHref(r.runId), title: r.runId }, shortId(r.runId))],
      ["Status", (r) => badge(r.status)],
      ["Started", (r) => clock(r.startedMs)],
      ["Duration", (r) => duration(r.durationMs)],
      ["Reached", (r) => h("span", { class: "reached", title: `${r.messages} messages` }, r.components.join(" → "))],
      ["Error", (r) => (r.errors.length ? h("span", { class: "error-text", title: r.errors.join("\n") }, r.errors.at(-1)) : h("span", { class: "muted" }, "—"))],
    ], shown, "Runs") : empty(runs.size ? "No run matches the filters" : "Waiting for runs",
      runs.size ? "Change the status or component filter." : "Send a request to an endpoint: each run shows up here as it happens."));
  };
  status.addEventListener("change", render);
  component.addEventListener("change", render);
  render();

  const disconnected = () => {
    live.className = "live live-off";
    live.textContent = "disconnected";
  };
  const connect = () => {
    problem.hidden = true;
    live.className = "live live-connecting";
    live.textContent = "connecting…";
    stream(streamPath, (event, data) => {
      if (event === "ready") {
        live.className = "live live-on";
        live.textContent = "live";
      } else if (event === "run") {
        runs.set(data.runId, data);
        if (runs.size > KEEP) runs.delete([...runs.values()].sort((a, b) => a.startedMs - b.startedMs)[0].runId);
        render();
      } else if (event === "problem") {
        problem.textContent = data.error;
        problem.hidden = false;
      }
    }, signal).then(() => { if (!signal.aborted) disconnected(); }, (error) => {
      disconnected();
      problem.textContent = error.message;
      problem.hidden = false;
    });
  };
  connect();
  const reconnect = h("button", { class: "button", type: "button", onclick: connect }, "Reconnect");
  const view = card(null, h("div", { class: "toolbar" }, status, component, h("span", { class: "toolbar-sep" }), counts), problem, body);
  return { view, live, reconnect };
}

/** A deployment's runs, live, and its test request form. */
export async function runsPage(owner, name, signal) {
  const { d, document } = await deploymentAndDocument(owner, name);
  const spec = document.spec || {};
  const crumbs = [["Deployments", "#/deployments"], [name, `#/deployments/${seg(owner, name)}`]];
  if (d.state !== "running") {
    return [pageHeader(`Runs of ${name}`, crumbs), card(null, empty(`The deployment is ${d.state}`,
      "Runs are read from a running deployment's topics. Deploy it again to watch its runs."))];
  }
  const { view, live, reconnect } = liveRuns(`/deployments/${seg(owner, name)}/runs`,
    (runId) => `#/runs/${seg(owner, name, runId)}`, components(spec).map((c) => c.name), signal);
  return [
    pageHeader(`Runs of ${name}`, crumbs, [live, reconnect]),
    h("div", { class: "split" }, h("div", {}, view), h("div", {}, testRequestCard(owner, name, spec))),
  ];
}

/** The bar at `percent` of its track (set through CSSOM: the CSP forbids style attributes). */
function placed(bar, percent) {
  bar.style.left = `${Math.min(percent, 100)}%`;
  return bar;
}

function waterfall(hops, total) {
  const scale = total > 0 ? total : 1;
  return table([
    ["#", (hop) => hop.index + 1],
    ["Pipe", (hop) => h("span", { class: "mono strong" }, hop.component + (hop.port ? `.${hop.port}` : ""))],
    ["At", (hop) => h("div", { class: "bar-cell" },
      h("div", { class: "bar-track", "aria-hidden": "true" },
        placed(h("div", { class: `bar ${hop.error || hop.dead_letter ? "bar-error" : ""}` }), (100 * hop.sinceStartMs) / scale)),
      h("span", { class: "mono" }, `+${duration(hop.sinceStartMs)}`))],
    ["Step", (hop) => h("span", { class: "mono" }, `+${duration(hop.sincePreviousMs)}`)],
    ["Where", (hop) => h("span", { class: "mono muted" }, `${hop.topic}[${hop.partition}]@${hop.offset}`)],
    ["Payload", (hop) => h("div", {},
      h("div", { class: "payload mono", title: String(hop.payload) }, hop.skip ? "(skip marker)" : String(hop.payload ?? "")),
      h("div", { class: "muted small" }, `${hop.content_type || "—"} · ${hop.size} B`),
      hop.error ? h("div", { class: "error-text" }, hop.error) : null)],
  ], hops.map((hop, index) => ({ ...hop, index })), "Hops");
}

/** One run, as `algorail inspect RUN_ID` shows it: the report of `reportPath`. */
export async function runDetail(reportPath, runId, crumbs) {
  const report = await api(reportPath);
  const total = report.hops.length ? report.hops.at(-1).sinceStartMs : 0;
  const hooks = Object.entries(report.hooks || {});
  const results = Object.entries(report.results || {});
  return [
    pageHeader(`Run ${shortId(runId)}`, crumbs,
      [h("button", { class: "button", type: "button", onclick: () => dispatchEvent(new HashChangeEvent("hashchange")) }, "Refresh")]),
    card(null, h("dl", { class: "facts" },
      h("div", {}, h("dt", {}, "status"), h("dd", { "data-testid": "run-status" }, badge(report.status || "unknown"))),
      h("div", {}, h("dt", {}, "run id"), h("dd", { class: "mono" }, runId)),
      h("div", {}, h("dt", {}, "hops"), h("dd", {}, report.hops.length)),
      h("div", {}, h("dt", {}, "end to end"), h("dd", {}, duration(total))),
      report.traceId ? h("div", {}, h("dt", {}, "trace"), h("dd", { class: "mono" }, report.traceId)) : null,
      h("div", {}, h("dt", {}, "records scanned"), h("dd", {}, report.scanned)))),
    report.errors?.length ? card("Errors", h("ul", { class: "error-list", "data-testid": "run-errors" },
      report.errors.map((e) => h("li", {}, h("strong", {}, e.component || "run"), ": ", e.error || JSON.stringify(e))))) : null,
    card("Hops", report.hops.length ? waterfall(report.hops, total)
      : empty("No message found", "None of the run's messages is on the topics of the last hour.")),
    report.criticalPath?.length ? card("Critical path", h("p", { class: "hint" }, "From the first message to the last, the input each step waited for."),
      h("ol", { class: "path" }, report.criticalPath.map((step) => h("li", {}, h("span", { class: "mono" }, step.pipe), h("span", { class: "muted" }, `+${duration(step.ms)}`))))) : null,
    hooks.length || results.length ? card("Hooks and results",
      hooks.length ? h("div", { class: "chips" }, hooks.map(([hook, state]) => h("span", { class: "chip" }, `${hook}: ${state}`))) : null,
      results.map(([hook, value]) => h("div", { class: "result" }, h("div", { class: "muted small" }, hook),
        h("pre", { class: "code code-small", "data-testid": "run-result" }, typeof value === "string" ? value : JSON.stringify(value, null, 2))))) : null,
  ];
}

export const runPage = (owner, name, runId) => runDetail(`/deployments/${seg(owner, name)}/runs/${seg(runId)}`, runId,
  [["Deployments", "#/deployments"], [name, `#/deployments/${seg(owner, name)}`], ["Runs", `#/runs/${seg(owner, name)}`]]);
