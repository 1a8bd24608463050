// The WebSocket to the gateway: its address, opening it, and why the gateway refused it.

import { CONNECT_TIMEOUT_MS } from "./config.js";
import { UserError } from "./errors.js";

export function socketUrl(token) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws/${encodeURIComponent(token)}`;
}

// Browsers hide why a WebSocket handshake failed. The gateway checks the token (401), origin
// (403) and session limit (503) before the upgrade, so a plain GET of the same path tells us.
export async function explainRefusal(token) {
  let response;
  try {
    response = await fetch(`/ws/${encodeURIComponent(token)}`, { cache: "no-store" });
  } catch {
    return new UserError("Gateway unreachable", "The gateway could not be reached. Is it running?");
  }
  switch (response.status) {
    case 401:
      return new UserError(
        "Token refused",
        "The gateway refused this token: it is unknown, expired or malformed. " +
          "Get a fresh one (make token) and try again.",
      );
    case 403:
      return new UserError("Origin not allowed", "The gateway does not accept connections from this page's origin.");
    case 503:
      return new UserError("Gateway busy", "The gateway is at its session limit. Try again in a moment.");
    default:
      return new UserError("Connection failed", `The WebSocket connection could not be opened (HTTP ${response.status}).`);
  }
}

export function openSocket(token) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(socketUrl(token));
    ws.binaryType = "arraybuffer";
    const timer = setTimeout(() => {
      ws.close();
      reject(new UserError("Connection failed", "The gateway did not answer in time."));
    }, CONNECT_TIMEOUT_MS);
    ws.onopen = () => {
      clearTimeout(timer);
      ws.onopen = ws.onerror = ws.onclose = null;
      resolve(ws);
    };
    // A failed handshake fires error then close; the close alone is enough to act on.
    ws.onerror = () => {};
    ws.onclose = async () => {
      clearTimeout(timer);
      reject(await explainRefusal(token));
    };
  });
}
