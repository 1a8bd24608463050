// The voice agent's web client: the entry point, loaded by index.html as a module.
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
//
// The modules, each imported by the ones that need it:
//   config.js         constants: rates, frame length, jitter, timeouts, limits
//   stats.js          the counters (window.voiceStats)
//   errors.js         UserError, an error with a title for the page's alert
//   view.js           the page's elements, connection state, the error alert, the level meter
//   waterfall.js      a turn's latency waterfall (stage rows, formatMs)
//   conversation.js   TurnView and Conversation: the log of turns
//   player.js         jitter-buffered playback of the agent's audio
//   microphone.js     getUserMedia and the capture AudioWorklet (capture-worklet.js)
//   opus.js           WebCodecs Opus: OpusSender, OpusReceiver, opusSupported
//   socket.js         the WebSocket: socketUrl, openSocket, explainRefusal
//   server-events.js  a handler per JSON event from the gateway
//   client.js         Client: one session, wiring all of the above

import { Client } from "./client.js";
import { clearError, setState, ui } from "./view.js";

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
