// Opus through WebCodecs: each binary WebSocket frame is one raw Opus packet, both ways.

import { FRAME_MS, INPUT_RATE, OPUS_BITRATE } from "./config.js";
import { UserError } from "./errors.js";

export function opusSupported() {
  return typeof AudioEncoder === "function" && typeof AudioDecoder === "function";
}

// Microphone frames (PCM16 at INPUT_RATE) in, one Opus packet per 20 ms out.
export class OpusSender {
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
export class OpusReceiver {
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
