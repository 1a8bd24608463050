// The microphone: getUserMedia, then the AudioWorklet in capture-worklet.js, which resamples to
// INPUT_RATE and posts 20 ms PCM16 frames with their RMS level.

import { FRAME_MS, INPUT_RATE } from "./config.js";
import { UserError } from "./errors.js";

export class Microphone {
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
