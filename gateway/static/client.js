// The session: opens the socket, sends `start`, streams the microphone (PCM16 or Opus) and
// plays the agent's audio; server events are handled in server-events.js.

import { INPUT_RATE, MAX_BUFFERED_BYTES, OUTPUT_RATE } from "./config.js";
import { Conversation } from "./conversation.js";
import { UserError } from "./errors.js";
import { Microphone } from "./microphone.js";
import { OpusReceiver, OpusSender, opusSupported } from "./opus.js";
import { Player } from "./player.js";
import { handlers } from "./server-events.js";
import { openSocket } from "./socket.js";
import { stats } from "./stats.js";
import { clearError, setState, showError, showLevel, ui } from "./view.js";

const PLAYED_EVERY_MS = 200;

export class Client {
  constructor() {
    this.context = null;
    this.player = null;
    this.workletReady = null;
    this.ws = null;
    this.mic = null;
    this.conversation = new Conversation();
    this.dropAudio = false; // after "interrupted", until the next audio_start
    this.sender = null; // OpusSender when the codec is Opus
    this.receiver = null; // OpusReceiver when the codec is Opus
    this.attempt = 0;
    this.lastServerError = null;
    // While the agent's audio plays, the gateway hears how much of it has (docs/protocol.md).
    setInterval(() => {
      if (this.player && this.player.playing) this.reportPlayed();
    }, PLAYED_EVERY_MS);
  }

  reportPlayed() {
    const ws = this.ws;
    const player = this.player;
    if (!ws || ws.readyState !== WebSocket.OPEN || !player || !player.turnId) return;
    const ms = Math.round(player.playedSeconds() * 1000);
    ws.send(JSON.stringify({ type: "played", turn_id: player.turnId, ms }));
    stats.playedReports += 1;
  }

  get active() {
    return this.ws !== null || stats.state === "connecting";
  }

  // Created on the first click: browsers only let audio start from a user gesture.
  ensureAudio() {
    if (!this.context) {
      this.context = new AudioContext({ latencyHint: "interactive" });
      this.player = new Player(this.context);
      this.player.onIdle = () => {
        if (stats.state === "speaking") setState("listening");
      };
      this.workletReady = this.context.audioWorklet.addModule("/static/capture-worklet.js");
    }
    return this.context.resume();
  }

  async start() {
    const token = ui.token.value.trim();
    clearError();
    if (!token) {
      showError("Token needed", "Enter an access token first (or open the page with ?token=…).");
      ui.token.focus();
      return;
    }
    // Each start gets a number; stop() bumps it, so a start that is still awaiting something
    // when the user stops (or starts again) notices and backs out.
    const attempt = ++this.attempt;
    const current = () => attempt === this.attempt;
    setState("connecting");
    this.lastServerError = null;
    this.dropAudio = false;
    const audioReady = this.ensureAudio(); // inside the click's gesture: no await before this
    const codec = ui.codec.value;
    let ws = null;
    try {
      if (codec === "opus" && !opusSupported()) {
        throw new UserError("Opus unavailable", "This browser has no WebCodecs. Choose PCM16.");
      }
      ws = await openSocket(token);
      if (!current()) throw new Error("stopped while connecting");
      this.ws = ws;
      ws.onmessage = (event) => this.onMessage(event);
      ws.onclose = (event) => this.onClose(event);
      // `start` must precede any audio; the microphone only opens after it is sent.
      ws.send(
        JSON.stringify({ type: "start", sample_rate: INPUT_RATE, output_sample_rate: OUTPUT_RATE, codec }),
      );
      if (codec === "opus") {
        this.sender = await OpusSender.open((packet) => this.sendBinary(packet));
        this.receiver = new OpusReceiver((samples, rate) => this.play(samples, rate));
      }
      await audioReady;
      await this.workletReady;
      const mic = await Microphone.open(
        this.context,
        (pcm) => this.sendFrame(pcm),
        (level) => showLevel(level),
      );
      if (!current() || this.ws !== ws) {
        mic.close(); // stopped, or the socket closed, while the microphone was opening
        return;
      }
      this.mic = mic;
      if (stats.state === "connecting") setState("listening");
    } catch (error) {
      if (!current()) {
        if (ws && ws !== this.ws && ws.readyState === WebSocket.OPEN) ws.close(1000);
        return;
      }
      this.attempt += 1;
      this.teardown();
      if (ws && ws.readyState === WebSocket.OPEN) ws.close(1000);
      setState("error");
      if (error instanceof UserError) showError(error.title, error.message);
      else showError("Could not start", String((error && error.message) || error));
    }
  }

  stop() {
    this.attempt += 1;
    const ws = this.ws;
    this.teardown();
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify({ type: "stop" }));
      ws.close(1000, "client stopped");
    }
    setState("idle");
  }

  teardown() {
    if (this.mic) this.mic.close();
    this.mic = null;
    if (this.ws) {
      this.ws.onmessage = null;
      this.ws.onclose = null;
    }
    this.ws = null;
    if (this.player) this.player.stop();
    if (this.sender) this.sender.close();
    if (this.receiver) this.receiver.close();
    this.sender = null;
    this.receiver = null;
  }

  sendFrame(pcm) {
    if (this.sender) this.sender.push(pcm);
    else this.sendBinary(pcm);
  }

  sendBinary(data) {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    if (ws.bufferedAmount > MAX_BUFFERED_BYTES) {
      stats.framesDropped += 1;
      return;
    }
    ws.send(data);
    stats.framesSent += 1;
    stats.bytesSent += data.byteLength;
  }

  // The server closed the session (stop() detaches this handler before closing on our side).
  onClose(event) {
    this.attempt += 1;
    this.teardown();
    setState("closed");
    if (this.lastServerError) return; // the error event already said why
    const reason = event.reason ? `: ${event.reason}` : "";
    if (event.code === 1001) showError("Disconnected", `The gateway is shutting down${reason}.`);
    else showError("Disconnected", `The connection closed (code ${event.code}${reason}).`);
  }

  onMessage(event) {
    if (typeof event.data !== "string") {
      this.onAudio(event.data);
      return;
    }
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      console.warn("ignoring a text frame that is not JSON", event.data);
      return;
    }
    const handler = this.handlers[message.type];
    if (handler) handler.call(this, message);
    else console.debug("ignoring event", message);
  }

  onAudio(data) {
    stats.audioChunksReceived += 1;
    stats.audioBytesReceived += data.byteLength;
    if (this.dropAudio || !this.player) return;
    if (this.receiver) {
      this.receiver.push(data); // decoded asynchronously, then play()
      return;
    }
    this.player.enqueue(data);
    if (stats.state === "listening") setState("speaking");
  }

  play(samples, rate) {
    if (this.dropAudio || !this.player) return;
    this.player.enqueueSamples(samples, rate);
    if (stats.state === "listening") setState("speaking");
  }
}

// One handler per server event type (called with `this` = the Client).
Client.prototype.handlers = handlers;
