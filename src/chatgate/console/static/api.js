// The one fetch wrapper: adds the admin key, speaks JSON, turns the API's error shape into an ApiError
// whose message is the API's own. The key lives in sessionStorage only (this tab, until it closes).

const KEY = "chatgate.adminKey";

export class ApiError extends Error {
  constructor(status, message, code = null, param = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.param = param;
    this.signedOut = false;
  }
}

// The admin API sits beside the console: <base>/console -> <base>/v1/organization/... (works under
// /api/public and behind an API Gateway stage path alike).
export const apiRoot = new URL("v1/organization/", new URL(".", window.location.href));

export function storedKey() {
  return window.sessionStorage.getItem(KEY);
}

export function storeKey(key) {
  window.sessionStorage.setItem(KEY, key);
}

export function forgetKey() {
  window.sessionStorage.removeItem(KEY);
}

// Listeners learn when the key stopped working (401): the app returns to the key prompt.
export const events = new EventTarget();

function urlFor(path, query) {
  const url = new URL(path.replace(/^\//, ""), apiRoot);
  for (const [name, value] of Object.entries(query || {})) {
    if (value === undefined || value === null || value === "") continue;
    for (const item of Array.isArray(value) ? value : [value]) url.searchParams.append(name, String(item));
  }
  return url;
}

export function encodeId(id) {
  return encodeURIComponent(id);
}

export async function request(method, path, { query, body, key } = {}) {
  const secret = key ?? storedKey();
  if (!secret) {
    const failure = new ApiError(401, "Paste an admin key to sign in.", "invalid_api_key");
    failure.signedOut = true;
    events.dispatchEvent(new CustomEvent("unauthorized", { detail: failure.message }));
    throw failure;
  }
  const headers = { Authorization: `Bearer ${secret}`, Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(urlFor(path, query), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
      referrerPolicy: "no-referrer",
    });
  } catch (error) {
    throw new ApiError(0, `The admin API could not be reached (${error.message}).`, "network_error");
  }
  let payload = null;
  const text = await response.text();
  if (text) {
    try {
      payload = JSON.parse(text);
    } catch {
      payload = null;
    }
  }
  if (!response.ok) {
    const error = payload && typeof payload.error === "object" && payload.error ? payload.error : {};
    const message =
      typeof error.message === "string" && error.message
        ? error.message
        : `The admin API answered ${response.status} ${response.statusText}.`;
    const failure = new ApiError(response.status, message, error.code ?? null, error.param ?? null);
    if (response.status === 401 && key === undefined) {
      failure.signedOut = true; // the app returns to the key prompt and shows the message there
      events.dispatchEvent(new CustomEvent("unauthorized", { detail: message }));
    }
    throw failure;
  }
  return payload;
}

export const get = (path, query) => request("GET", path, { query });
export const post = (path, body) => request("POST", path, { body: body ?? {} });
export const del = (path) => request("DELETE", path);

// Every page of a cursor-paged list (`has_more` + `last_id` -> `after`), bounded.
export async function listAll(path, query = {}, maxPages = 50) {
  const items = [];
  let after;
  for (let page = 0; page < maxPages; page += 1) {
    const result = await get(path, { limit: 100, ...query, after });
    items.push(...(result.data || []));
    if (!result.has_more || !result.last_id) break;
    after = result.last_id;
  }
  return items;
}
