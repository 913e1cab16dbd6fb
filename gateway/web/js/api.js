// The gateway's API over fetch. The key goes in the Authorization header of each request
// and nowhere else: never a URL, a cookie or a log line. `credentials: "omit"` keeps
// cookies out of every request too.

export const API = "/api/v1";

export class ApiError extends Error {
  constructor(status, code, message, field = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

function queryString(query) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value !== null && value !== undefined && value !== "") params.set(key, String(value));
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

async function errorFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: a proxy's page, say
  }
  const error = body?.error;
  if (error && typeof error.message === "string") {
    return new ApiError(response.status, error.code ?? "error", error.message, error.field ?? null);
  }
  return new ApiError(response.status, "http_error", `the gateway answered HTTP ${response.status}`);
}

function networkError() {
  return new ApiError(0, "network_error", "cannot reach the gateway (network error); try again");
}

export class Api {
  // onUnauthorized(error): the key stopped working (revoked since sign-in, say).
  constructor(key, onUnauthorized = () => {}) {
    this.key = key;
    this.onUnauthorized = onUnauthorized;
  }

  headers(extra = {}) {
    return {Authorization: `Bearer ${this.key}`, ...extra};
  }

  // The raw response of an authenticated request (the event stream, downloads).
  async fetch(path, {method = "GET", headers = {}, body, signal, query} = {}) {
    try {
      return await fetch(`${API}${path}${queryString(query)}`, {
        method, body, signal, headers: this.headers(headers), credentials: "omit",
        cache: "no-store", referrerPolicy: "no-referrer",
      });
    } catch (error) {
      if (error?.name === "AbortError") throw error;
      throw networkError();
    }
  }

  async request(method, path, {json, form, query, signal} = {}) {
    const headers = {Accept: "application/json"};
    let body;
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    } else if (form !== undefined) {
      body = form; // FormData: the browser writes the multipart boundary
    }
    const response = await this.fetch(path, {method, headers, body, signal, query});
    if (!response.ok) {
      const error = await errorFrom(response);
      if (response.status === 401) this.onUnauthorized(error);
      throw error;
    }
    if (response.status === 204) return null;
    return response.json();
  }

  get(path, query, signal) {
    return this.request("GET", path, {query, signal});
  }

  post(path, json) {
    return this.request("POST", path, {json});
  }

  patch(path, json) {
    return this.request("PATCH", path, {json});
  }

  del(path) {
    return this.request("DELETE", path);
  }

  // Every item of a list, page after page (bounded: at most `maxPages` pages).
  async all(path, query = {}, maxPages = 20) {
    const items = [];
    for (let page = 0; page < maxPages; page += 1) {
      const result = await this.get(path, {...query, page});
      items.push(...result.data);
      if (!result.has_more) break;
    }
    return items;
  }

  // A file download: fetched with the key, handed to the browser as a Blob.
  async download(path, query) {
    const response = await this.fetch(path, {query});
    if (!response.ok) {
      const error = await errorFrom(response);
      if (response.status === 401) this.onUnauthorized(error);
      throw error;
    }
    const disposition = response.headers.get("Content-Disposition") ?? "";
    const match = /filename="([^"]+)"/.exec(disposition);
    const fallback = path.split("/").filter(Boolean).slice(-2).join("-");
    let blob;
    try {
      blob = await response.blob();
    } catch {
      throw new ApiError(0, "stream_closed", "the download was cut before its end; try again");
    }
    return {blob, filename: match ? match[1] : fallback};
  }
}

// Hands a Blob to the browser as a file download, then lets the object URL go.
export function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  window.setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
