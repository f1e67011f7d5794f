// The REST API client: one fetch per call, the CSRF token on writes, "unreachable" told
// apart from an answer.

import { $ } from "./util.js";

export function csrfToken() {
  // The cookie is fresher than the page after a new sign-in in another tab.
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : $('meta[name="csrf-token"]').content;
}

export function randomKey() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes); // randomUUID needs a secure context; this does not
  return "dash-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export class Unreachable extends Error {}

// One API call. Resolves {status, ok, data}; throws Unreachable when no answer came
// (network down, timeout, or a proxy saying the app behind it is gone).
export async function api(url, { method = "GET", body, headers = {}, timeout = 10000 } = {}) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeout);
  const sent = { Accept: "application/json", ...headers };
  if (method !== "GET") sent["X-CSRFToken"] = csrfToken();
  if (body !== undefined) sent["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, {
      method,
      headers: sent,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: controller.signal,
    });
  } catch (error) {
    throw new Unreachable(String(error));
  } finally {
    clearTimeout(timer);
  }
  if ([502, 503, 504].includes(response.status)) throw new Unreachable(`HTTP ${response.status}`);
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = { success: false, error: `HTTP ${response.status}` };
  }
  return { status: response.status, ok: response.ok, data };
}

