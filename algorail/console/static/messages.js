// The last messages of a pipe, as `algorail tail --last N` reads them: each with its time,
// topic, partition and offset, key, run, headers and a payload preview. One view for the
// registry's local deployments and for `algorail dev` (each reads its own API route).

import { api, Unreachable } from "./api.js";
import { card, empty, h } from "./dom.js";

const SHOWN_HEADERS = new Set(["algorail-run-id", "algorail-source", "content-type"]);
const DEFAULT_LAST = 20;

const stamp = (ms) => {
  const date = new Date(ms);
  return h("time", { datetime: date.toISOString(), title: date.toISOString() },
    `${date.toLocaleTimeString(undefined, { hour12: false })}.${String(ms % 1000).padStart(3, "0")}`);
};

function headerChips(headers) {
  const extra = Object.entries(headers || {}).filter(([name]) => !SHOWN_HEADERS.has(name));
  return extra.length ? h("div", { class: "chips" }, extra.map(([name, value]) => h("span", { class: "chip mono", title: `${name}: ${value}` }, `${name}=${value}`)))
    : h("span", { class: "muted" }, "—");
}

function messageRows(messages) {
  return h("table", { class: "table messages", "aria-label": "Messages", "data-testid": "messages" },
    h("thead", {}, h("tr", {}, ["Time", "Pipe", "Where", "Key", "Run", "Headers", "Payload"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, messages.map((m) => h("tr", { class: m.error ? "message-error" : "" },
      h("td", {}, stamp(m.timestamp)),
      h("td", { class: "mono" }, `${m.component}.${m.port}`),
      h("td", { class: "mono muted", title: m.topic }, `[${m.partition}]@${m.offset}`),
      h("td", { class: "mono", title: m.key ?? "" }, m.key ?? h("span", { class: "muted" }, "—")),
      h("td", { class: "mono", title: m.run_id }, (m.run_id || "").slice(0, 8)),
      h("td", {}, headerChips(m.headers)),
      h("td", { class: "payload" },
        h("div", { class: "payload-meta" }, `${m.content_type || "?"} · ${m.size} B${m.skip ? " · skip marker" : ""}`),
        m.error ? h("div", { class: "error-text" }, m.error) : null,
        h("code", { class: "mono payload-text" }, m.payload))))));
}

/** What a read of the deployment's broker that failed shows: a broker that is down or out of
 * reach (409), or a server that does not answer at all. */
export function brokerProblem(error, testid) {
  const title = error instanceof Unreachable ? "Not answering" : "The broker cannot be read";
  return h("div", { class: "state-problem", role: "alert", "data-testid": testid },
    h("div", { class: "state-problem-title" }, title), h("div", { class: "mono" }, error.message));
}

/** A pipe picker, a count, and the table; `path` is the API route that answers them. */
export async function messagesView(path) {
  const pipe = h("select", { id: "messages-pipe", "aria-label": "Pipe" });
  const last = h("input", { id: "messages-last", type: "number", min: "1", max: "200", value: String(DEFAULT_LAST), "aria-label": "Last messages per partition" });
  const refresh = h("button", { class: "button", type: "submit" }, "Refresh");
  const body = h("div", { class: "messages-body" });
  const count = h("span", { class: "muted", "data-testid": "message-count" });
  const load = async () => {
    refresh.disabled = true;
    const query = new URLSearchParams({ last: last.value || String(DEFAULT_LAST), ...(pipe.value ? { pipe: pipe.value } : {}) });
    try {
      const answer = await api(`${path}?${query}`);
      if (pipe.options.length <= 1) {
        pipe.append(...answer.pipes.map((name) => h("option", { value: name }, name)));
      }
      count.textContent = `${answer.messages.length} message${answer.messages.length === 1 ? "" : "s"}`;
      body.replaceChildren(answer.messages.length ? messageRows(answer.messages)
        : empty("No messages", "Nothing has been written to this pipe yet."));
    } catch (error) {
      count.textContent = "";
      body.replaceChildren(brokerProblem(error, "messages-problem"));
    } finally {
      refresh.disabled = false;
    }
  };
  pipe.append(h("option", { value: "" }, "every pipe"));
  pipe.addEventListener("change", load);
  const form = h("form", { class: "toolbar", "aria-label": "Which messages" },
    h("label", { for: "messages-pipe" }, "Pipe"), pipe,
    h("label", { for: "messages-last" }, "Last"), last, h("span", { class: "muted" }, "per partition"),
    refresh, h("span", { class: "toolbar-sep" }), count);
  form.addEventListener("submit", (event) => { event.preventDefault(); load(); });
  await load();
  return card(null, form, body);
}
