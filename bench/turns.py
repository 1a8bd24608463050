"""``make bench-turns``: does the agent wait until the user is done, and how long after?

Cases are built from the real recordings in the corpus: every speech clip as it is
(``complete``), and clips of four words or more cut between two words near their middle (Whisper
word timestamps) with a pause of 300-1500 ms inserted there (``pause-600`` ...). Every case is
streamed in real time through the real cluster (frame k at (k + 1) x 20 ms), once per
end-of-turn rule (``silence``, ``punctuation``, ``semantic``: the ``start`` message's
``end_of_turn``; ``--max-ms``, ``--short-ms`` and ``--threshold`` set the gateway's
``GATEWAY_END_OF_TURN_*``), and for each it records:

- a **false cut-off**: an ``end_of_turn`` event or agent audio that arrived before the case's
  acoustic end of speech (the user had not finished);
- the **decision delay**: the case's acoustic end of speech -> the ``end_of_turn`` event;
- the **latency**: acoustic end of speech -> the first audible agent audio after it.

No case of a real hesitation ("um" before the pause) is built: the corpus has none to cut.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from tqdm import tqdm

from bench.corpus import BenchClip, load_corpus
from launcher.cluster import Cluster, ClusterConfig
from tools.acoustics import PlaybackClock, speech_end_s

ROOT = Path(__file__).resolve().parent.parent
FRAME_S = 0.02
RULES = ("silence", "punctuation", "semantic")
PAUSES_MS = (300, 600, 1000, 1500)
# After the speech: how long to wait for the answer to begin.
ANSWER_WAIT_S = 6.0
MIN_WORDS = 4


@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # "complete" or "pause-<ms>"
    pcm: bytes
    rate: int
    speech_end_s: float


@dataclass
class Outcome:
    case: str
    kind: str
    rule: str
    cut_off: bool = False
    decision_delay_ms: float | None = None
    latency_ms: float | None = None
    end_reasons: list[str] = field(default_factory=list)
    # The end-of-turn event's score for each decision (punctuation's or the model's).
    end_scores: list[float | None] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    finals: list[str] = field(default_factory=list)


def _case_order(kind: str) -> tuple[bool, int, str]:
    """Whole clips first, then the pauses from the shortest."""
    return (kind != "complete", len(kind), kind)


def _cut_point_s(words: list[tuple[float, float]]) -> float | None:
    """The gap between two words nearest the middle of the clip's words."""
    if len(words) < MIN_WORDS:
        return None
    middle = len(words) // 2
    end, start = words[middle - 1][1], words[middle][0]
    return (end + start) / 2 if start >= end else end


def word_times(clips: list[BenchClip]) -> dict[str, list[tuple[float, float]]]:
    """Whisper tiny.en's word timestamps for each clip (start, end in seconds)."""
    from faster_whisper import WhisperModel

    from voice.audio import Resampler
    from voice.models import whisper_model_path

    model = WhisperModel(str(whisper_model_path("tiny.en")), device="cpu", compute_type="int8")
    times = {}
    for clip in clips:
        pcm = Resampler(clip.audio.sample_rate, 16000).process(clip.audio.pcm, last=True)
        audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        segments, _ = model.transcribe(audio, language="en", word_timestamps=True, beam_size=1)
        times[clip.name] = [(w.start, w.end) for s in segments for w in (s.words or [])]
    return times


def build_cases(clips: list[BenchClip], pauses_ms: tuple[int, ...]) -> list[Case]:
    speech = [c for c in clips if c.is_speech and c.speech_end_s is not None]
    words = word_times(speech)
    cases = [
        Case(c.name, "complete", c.audio.pcm, c.audio.sample_rate, float(c.speech_end_s or 0.0))
        for c in speech
    ]
    for clip in speech:
        cut = _cut_point_s(words[clip.name])
        if cut is None or cut >= float(clip.speech_end_s or 0.0):
            continue
        rate = clip.audio.sample_rate
        at = int(cut * rate) * 2
        for pause in pauses_ms:
            pcm = clip.audio.pcm[:at] + b"\x00\x00" * int(rate * pause / 1000) + clip.audio.pcm[at:]
            end = speech_end_s(pcm, rate)
            if end is not None:
                cases.append(Case(clip.name, f"pause-{pause}", pcm, rate, end))
    return cases


async def play(url: str, case: Case, rule: str) -> Outcome:
    """Stream the case, then silence, and judge what came back against its true end."""
    outcome = Outcome(case.name, case.kind, rule)
    frame = int(case.rate * FRAME_S) * 2
    total_s = len(case.pcm) / 2 / case.rate + ANSWER_WAIT_S
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        await ws.send_str(
            json.dumps({"type": "start", "sample_rate": case.rate, "end_of_turn": rule})
        )
        started = time.perf_counter()
        end_at = started + case.speech_end_s
        clock: PlaybackClock | None = None
        rate = 24000

        async def receive() -> None:
            nonlocal clock, rate
            async for message in ws:
                now = time.perf_counter()
                if message.type == aiohttp.WSMsgType.BINARY:
                    if now < end_at:
                        outcome.cut_off = True
                        continue
                    clock = clock or PlaybackClock(rate)
                    clock.feed(message.data, now)
                    if outcome.latency_ms is None and clock.first_audible_at is not None:
                        outcome.latency_ms = round((clock.first_audible_at - end_at) * 1000, 1)
                    continue
                data = json.loads(message.data)
                if data["type"] == "ready":
                    rate = int(data["output_sample_rate"])
                elif data["type"] == "end_of_turn":
                    outcome.end_reasons.append(str(data.get("reason")))
                    outcome.end_scores.append(data.get("score"))
                    if now < end_at:
                        outcome.cut_off = True
                    elif outcome.decision_delay_ms is None:
                        outcome.decision_delay_ms = round((now - end_at) * 1000, 1)
                elif data["type"] == "error":
                    outcome.errors.append(f"{data.get('code')}: {data.get('message')}")
                elif data["type"] == "transcript" and data.get("final"):
                    outcome.finals.append(str(data.get("text", "")))

        reader = asyncio.create_task(receive())
        index = 0
        while time.perf_counter() - started < total_s and outcome.latency_ms is None:
            await asyncio.sleep(max(0.0, started + (index + 1) * FRAME_S - time.perf_counter()))
            offset = index * frame
            chunk = case.pcm[offset : offset + frame] if offset < len(case.pcm) else b""
            await ws.send_bytes(chunk.ljust(frame, b"\x00"))
            index += 1
        await ws.close()
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
    return outcome


def _percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def summarize(outcomes: list[Outcome]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for rule in RULES:
        mine = [o for o in outcomes if o.rule == rule]
        if not mine:
            continue
        kinds = sorted({o.kind for o in mine}, key=_case_order)
        cut = {k: [o.cut_off for o in mine if o.kind == k] for k in kinds}
        paused = [
            o.cut_off for o in mine if o.kind.startswith("pause-") and int(o.kind[6:]) <= 1000
        ]
        whole = [o for o in mine if not o.cut_off]
        delays = [o.decision_delay_ms for o in whole if o.decision_delay_ms is not None]
        latency = [o.latency_ms for o in whole if o.latency_ms is not None]
        table[rule] = {
            "cases": len(mine),
            "false_cut_off_rate": {k: round(sum(v) / len(v), 3) for k, v in cut.items()},
            "false_cut_off_rate_pauses_up_to_1s": round(sum(paused) / len(paused), 3)
            if paused
            else None,
            "decision_delay_p50_ms": _percentile(delays, 50),
            "decision_delay_p90_ms": _percentile(delays, 90),
            "latency_p50_ms": _percentile(latency, 50),
            "latency_p90_ms": _percentile(latency, 90),
            "unanswered": sum(1 for o in whole if o.latency_ms is None),
        }
    return table


def print_table(table: dict[str, Any]) -> None:
    kinds = sorted(
        {k for t in table.values() for k in t["false_cut_off_rate"]},
        key=_case_order,
    )
    print("\nFalse cut-offs (end of turn or agent audio before the user finished), by case:")
    print("  " + f"{'rule':<13}" + "".join(f"{k:>12}" for k in kinds) + f"{'<=1s':>8}")
    for rule, t in table.items():
        rates = "".join(f"{t['false_cut_off_rate'].get(k, 0):>12.0%}" for k in kinds)
        up_to = t["false_cut_off_rate_pauses_up_to_1s"]
        print(f"  {rule:<13}{rates}{'-' if up_to is None else f'{up_to:.0%}':>8}")
    print("\nWhen the user had finished (acoustic end of speech ->), p50 / p90 ms:")
    for rule, t in table.items():
        print(
            f"  {rule:<13} end of turn {t['decision_delay_p50_ms']} / {t['decision_delay_p90_ms']}"
            f"   first audible answer {t['latency_p50_ms']} / {t['latency_p90_ms']}"
            f"   ({t['cases']} cases, {t['unanswered']} unanswered)"
        )


def plot(outcomes: list[Outcome], table: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (rates, delays) = plt.subplots(1, 2, figsize=(13, 5))
    kinds = sorted(
        {k for t in table.values() for k in t["false_cut_off_rate"]},
        key=_case_order,
    )
    width = 0.8 / max(len(table), 1)
    for i, (rule, t) in enumerate(table.items()):
        xs = [j + i * width for j in range(len(kinds))]
        rates.bar(xs, [t["false_cut_off_rate"].get(k, 0) * 100 for k in kinds], width, label=rule)
        values = sorted(
            o.decision_delay_ms
            for o in outcomes
            if o.rule == rule and not o.cut_off and o.decision_delay_ms is not None
        )
        if values:
            delays.step(
                values, np.arange(1, len(values) + 1) / len(values), where="post", label=rule
            )
    rates.set_xticks([j + width / 2 for j in range(len(kinds))], kinds)
    rates.axhline(5, color="green", linestyle="--", label="goal 5%")
    rates.set_ylabel("false cut-offs (%)")
    rates.set_title("The agent took the turn before the user finished")
    rates.legend()
    delays.set_xlabel("acoustic end of speech -> end of turn (ms)")
    delays.set_ylabel("share of cases")
    delays.set_title("How long after the user finished")
    delays.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


async def run(args: argparse.Namespace) -> int:
    clips = load_corpus(args.corpus)
    print("finding word boundaries (Whisper tiny.en word timestamps)...", flush=True)
    cases = build_cases(clips, tuple(args.pauses))
    if args.limit:
        cases = [c for c in cases if c.name in sorted({c.name for c in cases})[: args.limit]]
    out = args.out or ROOT / "bench" / "results" / f"turns-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    outcomes: list[Outcome] = []
    with out.with_suffix(".log").open("w") as log:
        env = {"OTEL_SDK_DISABLED": "true", **_settings_env(args)}
        config = ClusterConfig.on_free_ports(output=log, env=env)
        print(f"{len(cases)} cases x {len(args.rules)} rules; starting the cluster...", flush=True)
        async with Cluster(config) as cluster:
            progress = tqdm(total=len(cases) * len(args.rules), unit="case")
            for case in cases:
                for rule in args.rules:  # both rules in turn, so drift hits them alike
                    url = f"{cluster.ws_url}/ws/{cluster.token()}"
                    outcomes.append(await play(url, case, rule))
                    progress.update(1)
            progress.close()
            cost = await score_cost(f"http://127.0.0.1:{cluster.config.metrics_ports['llm']}")
    table = summarize(outcomes)
    print_table(table)
    errors = sorted({error for o in outcomes for error in o.errors})
    for error in errors:
        print(f"error from the gateway: {error}")
    if cost:
        print(
            f"\nthe language model's end-of-turn score: {cost['count']:.0f} scored, "
            f"{cost['mean_ms']:.1f} ms each on average (wall, in the llm service)"
        )
    report = {"settings": _settings_env(args), "summary": table, "end_score_cost": cost}
    out.write_text(json.dumps({**report, "cases": [asdict(o) for o in outcomes]}, indent=2))
    plot(outcomes, table, out.with_suffix(".png"))
    print(f"\nwrote {out}\n      {out.with_suffix('.png')}")
    return 0


async def score_cost(metrics_url: str) -> dict[str, float]:
    """What the end-of-turn scores cost in the llm service (``voice_llm_end_score_seconds``)."""
    async with aiohttp.ClientSession() as http, http.get(f"{metrics_url}/metrics") as response:
        page = await response.text()
    values = {}
    for line in page.splitlines():
        for name in ("sum", "count"):
            if line.startswith(f"voice_llm_end_score_seconds_{name} "):
                values[name] = float(line.split()[1])
    if not values.get("count"):
        return {}
    return {"count": values["count"], "mean_ms": round(values["sum"] / values["count"] * 1000, 1)}


def _settings_env(args: argparse.Namespace) -> dict[str, str]:
    """The gateway's end-of-turn settings the run asks for (unset: the gateway's defaults)."""
    chosen = {
        "GATEWAY_END_OF_TURN_MAX_MS": args.max_ms,
        "GATEWAY_END_OF_TURN_SHORT_MS": args.short_ms,
        "GATEWAY_END_OF_TURN_THRESHOLD": args.threshold,
    }
    return {name: str(value) for name, value in chosen.items() if value is not None}


def main() -> int:
    parser = argparse.ArgumentParser(description="Turn taking on real speech: cut-offs, delay.")
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "speech")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--rules", default=",".join(RULES))
    parser.add_argument("--pauses", default=",".join(map(str, PAUSES_MS)), help="ms, inserted")
    parser.add_argument("--limit", type=int, default=0, help="only the first N clips")
    parser.add_argument("--max-ms", type=int, default=None, help="the long silence")
    parser.add_argument("--short-ms", type=int, default=None, help="the short silence")
    parser.add_argument("--threshold", type=float, default=None, help="score to end at a pause")
    args = parser.parse_args()
    args.rules = [r for r in args.rules.split(",") if r]
    args.pauses = [int(p) for p in args.pauses.split(",") if p]
    if set(args.rules) - set(RULES):
        parser.error(f"--rules: choose from {', '.join(RULES)}")
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
