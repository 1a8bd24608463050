// Agent audio out: a jitter-buffered player of PCM16 chunks (and of decoded Opus samples).
// Client stops it at once when the gateway says `interrupted`, lowers its gain on `ducked` and
// raises it again on `resumed`; it counts what the current turn has played (the `played`
// message).

import { JITTER_S, OUTPUT_RATE } from "./config.js";
import { stats } from "./stats.js";

// Plays PCM16 chunks back to back. Each chunk becomes an AudioBuffer at the gateway's rate (the
// browser resamples it to the context's rate) started exactly where the previous one ends. When
// playback has run dry, the next chunk starts JITTER_S ahead so that later chunks, arriving with
// some jitter, still join up without gaps.
export class Player {
  constructor(context) {
    this.context = context;
    this.output = context.createGain();
    this.output.connect(context.destination);
    this.rate = OUTPUT_RATE;
    this.nextTime = 0;
    this.sources = new Set();
    this.carry = null; // an odd trailing byte, kept for the next chunk
    this.onIdle = null;
    this.turnId = null; // the turn whose audio plays now
    this.turnSeconds = 0; // of its audio scheduled so far
  }

  startTurn(turnId) {
    this.turnId = turnId;
    this.turnSeconds = 0;
  }

  // Seconds of the current turn's audio played by now.
  playedSeconds() {
    const ahead = Math.max(0, this.nextTime - this.context.currentTime);
    return Math.max(0, this.turnSeconds - ahead);
  }

  // At once: the gateway ducks the agent while it decides on speech over it (0: silent).
  setGain(gain) {
    const value = Math.min(1, Math.max(0, Number(gain)));
    this.output.gain.setValueAtTime(value, this.context.currentTime);
    stats.gain = value;
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
    this.turnSeconds += buffer.duration;
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
    this.setGain(1);
  }
}
