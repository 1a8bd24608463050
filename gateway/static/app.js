// The voice agent's web client.
//
// Talk: open the WebSocket /ws/{token}, send {"type":"start"}, then stream the microphone as
// 20 ms PCM16 frames at 16 kHz (resampled in capture-worklet.js). The gateway answers with JSON
// events (transcripts, the agent's text, a latency waterfall per turn) and binary PCM16 agent
// audio, which is played gap-free through a small jitter buffer. Press again to stop.
//
// With the Opus codec (the select beside the level meter, or ?codec=opus), the same frames go
// through WebCodecs' AudioEncoder and each binary frame is one Opus packet, both ways.
//
// window.voiceStats exposes counters for tests and for debugging from the console.

const INPUT_RATE = 16000; // what the worklet produces and the start message announces
const OUTPUT_RATE = 24000; // what we ask the gateway to synthesise at
const FRAME_MS = 20;
const JITTER_S = 0.06; // how far ahead of "now" playback starts after an underrun
const CONNECT_TIMEOUT_MS = 10000;
const MAX_BUFFERED_BYTES = 256 * 1024; // drop microphone frames rather than queue behind a stall
const OPUS_BITRATE = 32000;

const stats = {
  state: "idle",
  sessionId: null,
  framesSent: 0,
  bytesSent: 0,
  audioChunksReceived: 0,
  audioBytesReceived: 0,
  buffersScheduled: 0,
  buffersPlayed: 0,
  buffersActive: 0, // scheduled or playing right now
  secondsScheduled: 0,
  underruns: 0,
  framesDropped: 0,
  interruptions: 0,
  turnsCompleted: 0,
  errors: [],
};
window.voiceStats = stats;

// --------------------------------------------------------------------------- page elements

const $ = (id) => document.getElementById(id);
const ui = {
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

function setState(state) {
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

function showError(title, message) {
  stats.errors.push({ title, message });
  ui.errorTitle.textContent = title;
  ui.errorMessage.textContent = message;
  ui.error.hidden = false;
}

function clearError() {
  ui.error.hidden = true;
  ui.errorTitle.textContent = "";
  ui.errorMessage.textContent = "";
}

// --------------------------------------------------------------------------- conversation view

// Friendlier names for the gateway's waterfall stages; unknown stages keep their own name.
const STAGE_LABELS = {
  audio_received: "end of speech",
  end_of_turn: "end of turn",
  stt_complete: "transcribed",
  llm_start: "LLM request",
  llm_first_token: "first token",
  tts_start: "TTS start",
  first_audio_sent: "first audio",
  pipeline_complete: "complete",
  total: "total",
};

class TurnView {
  constructor(turnId) {
    const node = ui.turnTemplate.content.firstElementChild.cloneNode(true);
    node.dataset.turnId = turnId;
    this.node = node;
    this.final = node.querySelector(".user .final");
    this.partial = node.querySelector(".user .partial");
    this.partial.setAttribute("aria-hidden", "true"); // partials change too often to announce
    this.agent = node.querySelector(".agent .text");
    this.status = node.querySelector(".turn-status");
    this.waterfall = node.querySelector(".waterfall");
    ui.turns.append(node);
    ui.empty.hidden = true;
  }

  get isEmpty() {
    return !this.final.textContent && !this.agent.textContent;
  }

  setPartial(text) {
    this.partial.textContent = text;
  }

  setFinal(text) {
    this.final.textContent = text;
    this.partial.textContent = "";
    this.node.classList.add("heard");
  }

  appendAgent(text) {
    this.agent.textContent += text;
    this.node.classList.add("answered");
  }

  setStatus(text, kind = "") {
    this.status.textContent = text;
    this.status.dataset.kind = kind;
  }

  // The gateway's latency object holds moments (ms since the end of the user's speech), not
  // durations: each bar runs from the previous moment to this one, on a shared time axis.
  showLatency(latency) {
    const moments = Object.entries(latency)
      .filter(([name, ms]) => name !== "total" && Number.isFinite(ms))
      .sort((a, b) => a[1] - b[1]);
    const total = Number.isFinite(latency.total) ? latency.total : null;
    const span = Math.max(1, total || 0, ...moments.map(([, ms]) => ms));
    const list = this.waterfall.querySelector(".stages");
    list.replaceChildren();
    let previous = 0;
    for (const [name, at] of moments) {
      list.append(stageRow(name, previous, at, span));
      previous = at;
    }
    if (total !== null) list.append(stageRow("total", 0, total, span, true));
    this.waterfall.querySelector("figcaption").textContent =
      total !== null
        ? `Latency: ${formatMs(total)} from end of speech to first audio`
        : "Latency (no audio in this turn)";
    this.waterfall.hidden = false;
  }
}

function formatMs(ms) {
  return `${Math.round(ms).toLocaleString("en-US")} ms`;
}

function stageRow(name, from, to, span, isTotal = false) {
  const row = document.createElement("li");
  row.className = isTotal ? "stage total" : "stage";
  row.dataset.stage = name;

  const label = document.createElement("span");
  label.className = "stage-name";
  label.textContent = STAGE_LABELS[name] || name;
  label.title = name;

  const track = document.createElement("span");
  track.className = "track";
  track.setAttribute("aria-hidden", "true");
  const bar = document.createElement("span");
  bar.className = "bar";
  bar.style.left = `${(100 * from) / span}%`;
  bar.style.width = `${(100 * Math.max(0, to - from)) / span}%`;
  track.append(bar);

  const value = document.createElement("span");
  value.className = "ms";
  const duration = to - from;
  value.textContent = isTotal ? formatMs(to) : `+${formatMs(duration)}`;
  if (!isTotal) {
    const at = document.createElement("span");
    at.className = "at";
    at.textContent = ` at ${formatMs(to)}`;
    value.append(at);
  }
  row.append(label, track, value);
  return row;
}

class Conversation {
  constructor() {
    this.turns = new Map();
  }

  turn(turnId) {
    let view = this.turns.get(turnId);
    if (!view) {
      view = new TurnView(turnId);
      this.turns.set(turnId, view);
    }
    return view;
  }

  // Drops a turn that never got any text (a final transcript that turned out empty).
  discardIfEmpty(turnId) {
    const view = this.turns.get(turnId);
    if (view && view.isEmpty) {
      view.node.remove();
      this.turns.delete(turnId);
      ui.empty.hidden = ui.turns.children.length > 0;
    }
  }

  scroll() {
    const last = ui.turns.lastElementChild;
    if (last) last.scrollIntoView({ block: "end", behavior: "smooth" });
  }
}

// --------------------------------------------------------------------------- audio out

// Plays PCM16 chunks back to back. Each chunk becomes an AudioBuffer at the gateway's rate (the
// browser resamples it to the context's rate) started exactly where the previous one ends. When
// playback has run dry, the next chunk starts JITTER_S ahead so that later chunks, arriving with
// some jitter, still join up without gaps.
class Player {
  constructor(context) {
    this.context = context;
    this.output = context.createGain();
    this.output.connect(context.destination);
    this.rate = OUTPUT_RATE;
    this.nextTime = 0;
    this.sources = new Set();
    this.carry = null; // an odd trailing byte, kept for the next chunk
    this.onIdle = null;
  }

  get playing() {
    return this.sources.size > 0;
  }

  enqueue(data) {
    let bytes = new Uint8Array(data);
    if (this.carry !== null) {
      const joined = new Uint8Array(bytes.length + 1);
      joined[0] = this.carry;
      joined.set(bytes, 1);
      bytes = joined;
      this.carry = null;
    }
    if (bytes.length % 2) {
      this.carry = bytes[bytes.length - 1];
      bytes = bytes.subarray(0, bytes.length - 1);
    }
    const count = bytes.length / 2;
    if (count === 0) return;

    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
    const samples = new Float32Array(count);
    for (let i = 0; i < count; i++) samples[i] = view.getInt16(2 * i, true) / 32768;
    this.enqueueSamples(samples, this.rate);
  }

  // Float samples at `rate` (decoded Opus comes this way, at 48 kHz).
  enqueueSamples(samples, rate) {
    if (samples.length === 0) return;
    const buffer = this.context.createBuffer(1, samples.length, rate);
    buffer.copyToChannel(samples, 0);

    const source = this.context.createBufferSource();
    source.buffer = buffer;
    source.connect(this.output);
    const now = this.context.currentTime;
    if (this.nextTime < now + 0.005) {
      if (this.nextTime > 0) stats.underruns += 1;
      this.nextTime = now + JITTER_S;
    }
    source.start(this.nextTime);
    this.nextTime += buffer.duration;
    this.sources.add(source);
    stats.buffersActive = this.sources.size;
    source.onended = () => {
      this.sources.delete(source);
      stats.buffersActive = this.sources.size;
      stats.buffersPlayed += 1;
      if (!this.playing && this.onIdle) this.onIdle();
    };
    stats.buffersScheduled += 1;
    stats.secondsScheduled += buffer.duration;
  }

  // Silences everything at once: scheduled and playing buffers alike.
  stop() {
    for (const source of this.sources) {
      source.onended = null;
      try {
        source.stop();
      } catch {
        // never started: nothing to stop
      }
      source.disconnect();
    }
    this.sources.clear();
    stats.buffersActive = 0;
    this.nextTime = 0;
    this.carry = null;
  }
}

// --------------------------------------------------------------------------- audio in

class Microphone {
  static async open(context, onFrame, onLevel) {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new UserError(
        "Microphone unavailable",
        "This browser offers no microphone here (pages need https or localhost).",
      );
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        audio: {
          channelCount: 1,
          echoCancellation: true, // keeps the agent's own voice from barging in
          noiseSuppression: true,
          autoGainControl: true,
        },
      });
    } catch (error) {
      const denied = error && (error.name === "NotAllowedError" || error.name === "SecurityError");
      const missing = error && (error.name === "NotFoundError" || error.name === "OverconstrainedError");
      throw new UserError(
        "Microphone unavailable",
        denied
          ? "Microphone permission was refused. Allow it in the browser and press Talk again."
          : missing
            ? "No microphone was found."
            : `The microphone could not be opened (${error && error.name}).`,
      );
    }
    const source = context.createMediaStreamSource(stream);
    // No outputs: the node is a sink that the context pulls on its own.
    const node = new AudioWorkletNode(context, "capture-processor", {
      numberOfInputs: 1,
      numberOfOutputs: 0,
      channelCount: 1,
      channelCountMode: "explicit",
      channelInterpretation: "speakers",
      processorOptions: { targetRate: INPUT_RATE, frameMs: FRAME_MS },
    });
    node.port.onmessage = (event) => {
      const message = event.data;
      if (message.type === "frame") {
        onFrame(message.pcm);
        onLevel(message.level);
      }
    };
    source.connect(node);
    return new Microphone(stream, source, node);
  }

  constructor(stream, source, node) {
    this.stream = stream;
    this.source = source;
    this.node = node;
  }

  close() {
    this.node.port.postMessage({ type: "stop" });
    this.node.port.onmessage = null;
    this.source.disconnect();
    for (const track of this.stream.getTracks()) track.stop();
  }
}

// --------------------------------------------------------------------------- Opus (WebCodecs)

function opusSupported() {
  return typeof AudioEncoder === "function" && typeof AudioDecoder === "function";
}

// Microphone frames (PCM16 at INPUT_RATE) in, one Opus packet per 20 ms out.
class OpusSender {
  static async open(send) {
    const config = {
      codec: "opus",
      sampleRate: INPUT_RATE,
      numberOfChannels: 1,
      bitrate: OPUS_BITRATE,
      opus: { frameDuration: FRAME_MS * 1000 },
    };
    const support = await AudioEncoder.isConfigSupported(config);
    if (!support.supported) {
      throw new UserError("Opus unavailable", "This browser cannot encode Opus. Choose PCM16.");
    }
    return new OpusSender(config, send);
  }

  constructor(config, send) {
    this.timestamp = 0; // microseconds, as WebCodecs counts
    this.encoder = new AudioEncoder({
      output: (chunk) => {
        const packet = new ArrayBuffer(chunk.byteLength);
        chunk.copyTo(packet);
        send(packet);
      },
      error: (error) => console.warn("Opus encoder:", error),
    });
    this.encoder.configure(config);
  }

  push(pcm) {
    const frames = pcm.byteLength / 2;
    const audio = new AudioData({
      format: "s16",
      sampleRate: INPUT_RATE,
      numberOfFrames: frames,
      numberOfChannels: 1,
      timestamp: this.timestamp,
      data: pcm,
    });
    this.timestamp += (frames * 1e6) / INPUT_RATE;
    this.encoder.encode(audio);
    audio.close();
  }

  close() {
    if (this.encoder.state !== "closed") this.encoder.close();
  }
}

// Opus packets from the gateway in, float samples (48 kHz) out to the Player.
class OpusReceiver {
  constructor(onSamples) {
    this.timestamp = 0;
    this.decoder = new AudioDecoder({
      output: (audio) => {
        const samples = new Float32Array(audio.numberOfFrames);
        audio.copyTo(samples, { planeIndex: 0, format: "f32-planar" });
        const rate = audio.sampleRate;
        audio.close();
        onSamples(samples, rate);
      },
      error: (error) => console.warn("Opus decoder:", error),
    });
    this.configure();
  }

  configure() {
    this.decoder.configure({ codec: "opus", sampleRate: 48000, numberOfChannels: 1 });
  }

  push(packet) {
    const chunk = new EncodedAudioChunk({ type: "key", timestamp: this.timestamp, data: packet });
    this.timestamp += FRAME_MS * 1000;
    this.decoder.decode(chunk);
  }

  // Drops what is still being decoded (after `interrupted`).
  reset() {
    if (this.decoder.state !== "configured") return;
    this.decoder.reset();
    this.configure();
  }

  close() {
    if (this.decoder.state !== "closed") this.decoder.close();
  }
}

// --------------------------------------------------------------------------- connection

class UserError extends Error {
  constructor(title, message) {
    super(message);
    this.title = title;
  }
}

function socketUrl(token) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws/${encodeURIComponent(token)}`;
}

// Browsers hide why a WebSocket handshake failed. The gateway checks the token (401), origin
// (403) and session limit (503) before the upgrade, so a plain GET of the same path tells us.
async function explainRefusal(token) {
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

function openSocket(token) {
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

// --------------------------------------------------------------------------- the session

class Client {
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
        (level) => this.showLevel(level),
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

  showLevel(rms) {
    // -60 dBFS .. 0 dBFS onto 0..1
    const db = 20 * Math.log10(Math.max(rms, 1e-6));
    ui.meter.value = Math.min(1, Math.max(0, (db + 60) / 60));
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
Client.prototype.handlers = {
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

// --------------------------------------------------------------------------- wiring

const client = new Client();
const query = new URLSearchParams(location.search);
ui.token.value = query.get("token") || "";
if (query.get("codec") === "opus") ui.codec.value = "opus";
setState("idle");

ui.form.addEventListener("submit", (event) => {
  event.preventDefault();
  if (client.active) client.stop();
  else client.start();
});
ui.errorClose.addEventListener("click", clearError);
window.addEventListener("pagehide", () => {
  if (client.active) client.stop();
});
