// The page's elements, the connection state shown at the top, the error alert, the level meter.

import { stats } from "./stats.js";

const $ = (id) => document.getElementById(id);
export const ui = {
  form: $("talk-form"),
  token: $("token"),
  talk: $("talk"),
  talkLabel: $("talk-label"),
  codec: $("codec"),
  meter: $("mic-level"),
  state: $("state"),
  stateText: $("state-text"),
  error: $("error"),
  errorTitle: $("error-title"),
  errorMessage: $("error-message"),
  errorClose: $("error-close"),
  turns: $("turns"),
  empty: $("empty"),
  sessionInfo: $("session-info"),
  turnTemplate: $("turn-template"),
};

const STATE_TEXT = {
  idle: "Not connected",
  connecting: "Connecting…",
  listening: "Connected · listening",
  speaking: "Connected · agent speaking",
  closed: "Disconnected",
  error: "Connection failed",
};

export function setState(state) {
  stats.state = state;
  ui.state.dataset.state = state;
  ui.stateText.textContent = STATE_TEXT[state] || state;
  const active = state === "connecting" || state === "listening" || state === "speaking";
  ui.talk.setAttribute("aria-pressed", String(active));
  ui.talk.classList.toggle("active", active);
  ui.talkLabel.textContent = active ? "Stop" : "Talk";
  ui.token.disabled = active;
  ui.codec.disabled = active;
  if (!active) ui.meter.value = 0;
}

export function showError(title, message) {
  stats.errors.push({ title, message });
  ui.errorTitle.textContent = title;
  ui.errorMessage.textContent = message;
  ui.error.hidden = false;
}

export function clearError() {
  ui.error.hidden = true;
  ui.errorTitle.textContent = "";
  ui.errorMessage.textContent = "";
}

// The microphone's RMS level: -60 dBFS .. 0 dBFS onto the meter's 0..1.
export function showLevel(rms) {
  const db = 20 * Math.log10(Math.max(rms, 1e-6));
  ui.meter.value = Math.min(1, Math.max(0, (db + 60) / 60));
}

// Speech the gateway heard from the user (`speech_started`), until its final transcript.
export function showUserSpeaking(speaking) {
  ui.state.dataset.user = speaking ? "speaking" : "";
  const base = STATE_TEXT[stats.state] || stats.state;
  ui.stateText.textContent = speaking ? `${base} · you are speaking` : base;
}
