// What the client does with each JSON event from the gateway (see docs/protocol.md).

import { stats } from "./stats.js";
import { setState, showError, showUserSpeaking, ui } from "./view.js";

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
    if (m.final) showUserSpeaking(false);
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
    if (this.player) this.player.startTurn(m.turn_id);
    if (this.player && m.sample_rate) this.player.rate = m.sample_rate;
    this.conversation.turn(m.turn_id).setStatus("Speaking…", "speaking");
  },

  audio_end(m) {
    this.conversation.turn(m.turn_id).setStatus("", "");
  },

  speech_started() {
    stats.speechStarts += 1;
    showUserSpeaking(true);
  },

  // The user spoke over the agent: it plays on quietly (or not at all) while the gateway
  // decides whether that was an interruption.
  ducked(m) {
    stats.ducks += 1;
    if (this.player) this.player.setGain(m.gain ?? 0);
    this.conversation.turn(m.turn_id).setStatus("Listening to you…", "ducked");
  },

  // It was not (a backchannel, a sound, the agent's own echo): the answer goes on.
  resumed(m) {
    stats.resumes += 1;
    if (this.player) this.player.setGain(1);
    this.conversation.turn(m.turn_id).setStatus("Speaking…", "speaking");
  },

  check_in(m) {
    stats.checkIns += 1;
    this.conversation.turn(m.turn_id).setStatus("Checking in", "check-in");
    this.conversation.scroll();
  },

  interrupted(m) {
    stats.interruptions += 1;
    this.reportPlayed(); // what was heard, before the player forgets it
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
