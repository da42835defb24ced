// The registry's /v1 JSON API, called with the key typed at login (kept for this tab only).

const KEY = "algorail.apiKey";

export class ApiError extends Error {
  constructor(status, message, problems = []) {
    super(message);
    this.status = status;
    this.problems = problems;
  }
}

/** The registry did not answer at all (stopped, wrong address, network down). */
export class Unreachable extends Error {}

/** Raised as an event on window when the tab's key is refused (revoked while the console
 * is open, or never valid): the frame then shows the sign-in screen saying so, whichever
 * call of whichever page met it. */
export const KEY_REFUSED = "algorail:key-refused";

function refused(response, key) {
  if (response.status === 401 && key && key === session.key) window.dispatchEvent(new Event(KEY_REFUSED));
}

export const session = {
  get key() { return sessionStorage.getItem(KEY); },
  set key(value) { sessionStorage.setItem(KEY, value); },
  clear() { sessionStorage.removeItem(KEY); },
  /** What may be shown of a key: its first characters, never the whole of it. */
  get prefix() { return (this.key || "").slice(0, 12); },
};

export async function api(path, { method = "GET", body, key = session.key } = {}) {
  const headers = { Accept: "application/json", Authorization: `Bearer ${key}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(`/v1${path}`, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch {
    throw new Unreachable(`The registry at ${location.origin} is not answering.`);
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    if (response.ok) throw new ApiError(response.status, "The registry sent an answer that is not JSON.");
  }
  if (!response.ok) {
    refused(response, key);
    throw new ApiError(response.status, data?.error || `HTTP ${response.status}`, data?.problems || []);
  }
  return data;
}

/** Path segments of an owner/name/version, escaped for a URL. */
export const seg = (...parts) => parts.map(encodeURIComponent).join("/");

/**
 * A Server-Sent Events stream of the API, read with fetch so the key goes in a header
 * (EventSource cannot send one). Calls onEvent(name, data) per event until the stream
 * ends (resolves) or `signal` aborts it; a refusal before the stream starts throws.
 */
export async function stream(path, onEvent, signal) {
  let response;
  try {
    response = await fetch(`/v1${path}`, {
      headers: { Accept: "text/event-stream", Authorization: `Bearer ${session.key}` },
      cache: "no-store", signal,
    });
  } catch (error) {
    if (signal?.aborted) return;
    throw new Unreachable(`The registry at ${location.origin} is not answering.`);
  }
  if (!response.ok) {
    refused(response, session.key);
    const data = await response.json().catch(() => null);
    throw new ApiError(response.status, data?.error || `HTTP ${response.status}`, data?.problems || []);
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let name = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) name = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
        }
        if (data.length) onEvent(name, JSON.parse(data.join("\n")));
      }
    }
  } catch (error) {
    if (signal?.aborted) return;
    throw new Unreachable(`The stream from the registry at ${location.origin} broke off.`);
  }
}
