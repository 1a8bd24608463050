// What the client does with each JSON event from the gateway (see docs/protocol.md).

import { stats } from "./stats.js";
import { setState, showError, ui } from "./view.js";

// One handler per server event type, called with `this` = the Client.
export const handlers = {
  ready(m) {
    stats.sessionId = m.session_id;
    if (this.player && m.output_sample_rate) this.player.rate = m.output_sample_rate;
    const microphone = m.codec === "opus" ? "Opus" : `PCM16 ${m.sample_rate / 1000} kHz`;
    ui.sessionInfo.textContent =
      `Session ${m.session_id} · microphone ${microphone} · ` +
      `agent audio ${m.output_sample_rate / 1000} kHz`;
  },

  transcript(m) {
    const conversation = this.conversation;
    const text = (m.text || "").trim();
    if (m.final) {
      if (text) conversation.turn(m.turn_id).setFinal(text);
      else conversation.discardIfEmpty(m.turn_id);
    } else if (text) {
      conversation.turn(m.turn_id).setPartial(text);
    }
    conversation.scroll();
  },

  agent_text(m) {
    this.conversation.turn(m.turn_id).appendAgent(m.text || "");
    this.conversation.scroll();
  },

  audio_start(m) {
    this.dropAudio = false;
    if (this.player && m.sample_rate) this.player.rate = m.sample_rate;
    this.conversation.turn(m.turn_id).setStatus("Speaking…", "speaking");
  },

  audio_end(m) {
    this.conversation.turn(m.turn_id).setStatus("", "");
  },

  interrupted(m) {
    stats.interruptions += 1;
    this.dropAudio = true;
    if (this.receiver) this.receiver.reset();
    if (this.player) this.player.stop();
    if (stats.state === "speaking") setState("listening");
    this.conversation.turn(m.turn_id).setStatus("Interrupted", "interrupted");
  },

  turn_complete(m) {
    stats.turnsCompleted += 1;
    this.conversation.turn(m.turn_id).showLatency(m.latency || {});
    this.conversation.scroll();
  },

  error(m) {
    this.lastServerError = m;
    const title = m.code === "upstream_unavailable" ? "Service unavailable" : `Error: ${m.code || "unknown"}`;
    showError(title, m.message || "The gateway reported an error.");
    // A stage that failed during a turn (llm_error, tts_error): the session goes on.
    if (m.turn_id) this.conversation.turn(m.turn_id).setStatus(`Failed: ${m.code}`, "error");
  },
};
