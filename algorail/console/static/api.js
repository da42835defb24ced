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
    throw new ApiError(response.status, data?.error || `HTTP ${response.status}`, data?.problems || []);
  }
  return data;
}

/** Path segments of an owner/name/version, escaped for a URL. */
export const seg = (...parts) => parts.map(encodeURIComponent).join("/");
