// Microphone capture, on the audio rendering thread.
//
// Takes the context's mono input at whatever rate the context runs (usually 48 kHz or 44.1 kHz),
// low-pass filters and resamples it to the target rate (16 kHz) with a windowed-sinc kernel, and
// posts fixed-size frames of little-endian PCM16 to the main thread:
//   { type: "frame", pcm: ArrayBuffer (transferred), level: RMS of the frame in 0..1 }
//
// Options (processorOptions): targetRate (Hz, default 16000), frameMs (default 20).

const HALF_TAPS = 8; // zero crossings of the sinc on each side, at the output rate
const FRACTIONS = 256; // sub-sample resolution of the precomputed kernels

class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = (options && options.processorOptions) || {};
    this.targetRate = opts.targetRate || 16000;
    const frameMs = opts.frameMs || 20;

    // `sampleRate` is the AudioWorkletGlobalScope's: the context's rate.
    this.step = sampleRate / this.targetRate; // input samples per output sample
    // Cut off a little below the output Nyquist when downsampling. At equal rates a cutoff of 1
    // makes the kernel a unit impulse: the samples pass through unchanged.
    this.cutoff = this.step > 1 ? 0.92 / this.step : 1;
    // Half the kernel's width in input samples.
    this.halfWidth = Math.ceil(HALF_TAPS / this.cutoff);
    this.kernels = new Map();

    // Input history: samples [this.base, this.base + this.length) of the input stream.
    this.buffer = new Float32Array(4096);
    this.length = 0;
    this.base = 0;
    // Position of the next output sample in the input stream (fractional).
    this.pos = 0;

    this.frameSamples = Math.round((this.targetRate * frameMs) / 1000);
    this.frame = new Int16Array(this.frameSamples);
    this.frameFill = 0;
    this.sumSquares = 0;

    this.running = true;
    this.port.onmessage = (event) => {
      if (event.data && event.data.type === "stop") this.running = false;
    };
  }

  // Appends one render quantum (128 samples) to the history, growing it when needed.
  append(samples) {
    if (this.length + samples.length > this.buffer.length) {
      const grown = new Float32Array((this.length + samples.length) * 2);
      grown.set(this.buffer.subarray(0, this.length));
      this.buffer = grown;
    }
    this.buffer.set(samples, this.length);
    this.length += samples.length;
  }

  // The filter's weights for an output sample that falls `frac` (0..1) past an input sample:
  // a Blackman-windowed sinc, normalised to unity gain at DC. The fraction is quantised to
  // 1/FRACTIONS of an input sample and each kernel computed once (48 kHz -> 16 kHz needs one).
  kernel(frac) {
    const key = Math.round(frac * FRACTIONS);
    let weights = this.kernels.get(key);
    if (weights) return weights;
    const offset = key / FRACTIONS;
    weights = new Float32Array(2 * this.halfWidth);
    let norm = 0;
    for (let k = 0; k < weights.length; k++) {
      const d = k - this.halfWidth + 1 - offset; // distance from the output sample, input samples
      const x = d * this.cutoff; // the same distance in output-rate samples
      const t = d / this.halfWidth; // -1..1 across the window
      const sinc = x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x);
      const window = Math.abs(t) >= 1 ? 0 : 0.42 + 0.5 * Math.cos(Math.PI * t) + 0.08 * Math.cos(2 * Math.PI * t);
      weights[k] = sinc * window;
      norm += weights[k];
    }
    for (let k = 0; k < weights.length; k++) weights[k] /= norm;
    this.kernels.set(key, weights);
    return weights;
  }

  // One output sample at input position `pos`.
  sampleAt(pos) {
    const center = Math.floor(pos);
    const weights = this.kernel(pos - center);
    const first = center - this.halfWidth + 1 - this.base; // buffer index of weights[0]
    let acc = 0;
    for (let k = 0; k < weights.length; k++) acc += weights[k] * this.buffer[first + k];
    return acc;
  }

  emit(value) {
    const clamped = Math.max(-1, Math.min(1, value));
    this.frame[this.frameFill++] = clamped < 0 ? clamped * 0x8000 : clamped * 0x7fff;
    this.sumSquares += clamped * clamped;
    if (this.frameFill === this.frameSamples) {
      const level = Math.sqrt(this.sumSquares / this.frameSamples);
      const pcm = this.frame.buffer; // Int16Array is little-endian on every platform browsers run on
      this.port.postMessage({ type: "frame", pcm, level }, [pcm]);
      this.frame = new Int16Array(this.frameSamples);
      this.frameFill = 0;
      this.sumSquares = 0;
    }
  }

  process(inputs) {
    if (!this.running) return false;
    const input = inputs[0];
    if (!input || input.length === 0) return true; // no input connected yet
    // Mix down to mono when the source has more than one channel.
    let mono = input[0];
    if (input.length > 1) {
      mono = new Float32Array(input[0].length);
      for (const channel of input) {
        for (let i = 0; i < mono.length; i++) mono[i] += channel[i] / input.length;
      }
    }
    this.append(mono);

    // Produce every output sample whose kernel lies entirely inside the history.
    const end = this.base + this.length;
    while (Math.floor(this.pos) + this.halfWidth < end) {
      if (Math.floor(this.pos) - this.halfWidth + 1 < this.base) {
        // Start of the stream: the kernel would reach before the first sample; treat as silence.
        this.emit(0);
      } else {
        this.emit(this.sampleAt(this.pos));
      }
      this.pos += this.step;
    }

    // Drop the history no later output sample can reach.
    const keepFrom = Math.max(this.base, Math.floor(this.pos) - this.halfWidth);
    const drop = keepFrom - this.base;
    if (drop > 0) {
      this.buffer.copyWithin(0, drop, this.length);
      this.length -= drop;
      this.base = keepFrom;
    }
    return true;
  }
}

registerProcessor("capture-processor", CaptureProcessor);
