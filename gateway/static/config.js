// The web client's constants: audio rates and framing, timeouts, limits.

export const INPUT_RATE = 16000; // what the worklet produces and the start message announces
export const OUTPUT_RATE = 24000; // what we ask the gateway to synthesise at
export const FRAME_MS = 20;
export const JITTER_S = 0.06; // how far ahead of "now" playback starts after an underrun
export const CONNECT_TIMEOUT_MS = 10000;
export const MAX_BUFFERED_BYTES = 256 * 1024; // drop microphone frames rather than queue behind a stall
export const OPUS_BITRATE = 32000;
