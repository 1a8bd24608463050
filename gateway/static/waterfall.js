// A turn's latency waterfall: one row per stage of the gateway's `turn_complete` latency, a
// bar from the previous moment to this one on a shared time axis, and a total row.

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

export function formatMs(ms) {
  return `${Math.round(ms).toLocaleString("en-US")} ms`;
}

// The gateway's latency object holds moments (ms since the end of the user's speech), not
// durations: each bar runs from the previous moment to this one, on a shared time axis.
// `figure` is the turn's <figure class="waterfall"> (a figcaption and an <ol class="stages">).
export function drawWaterfall(figure, latency) {
  const moments = Object.entries(latency)
    .filter(([name, ms]) => name !== "total" && Number.isFinite(ms))
    .sort((a, b) => a[1] - b[1]);
  const total = Number.isFinite(latency.total) ? latency.total : null;
  const span = Math.max(1, total || 0, ...moments.map(([, ms]) => ms));
  const list = figure.querySelector(".stages");
  list.replaceChildren();
  let previous = 0;
  for (const [name, at] of moments) {
    list.append(stageRow(name, previous, at, span));
    previous = at;
  }
  if (total !== null) list.append(stageRow("total", 0, total, span, true));
  figure.querySelector("figcaption").textContent =
    total !== null
      ? `Latency: ${formatMs(total)} from end of speech to first audio`
      : "Latency (no audio in this turn)";
  figure.hidden = false;
}

export function stageRow(name, from, to, span, isTotal = false) {
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
