"""``make bench-barge-in``: how fast the agent stops talking when the user talks over it.

Each trial is one session against the whole cluster (embedded models): a spoken question, then
a second clip spoken over the answer, starting when the question's final transcript arrives
(odd trials: the barge-in lands around the answer's first audio) or when the answer's first
audio arrives (even trials: the answer is further along). From the
client's side it records when the interrupting voice was sent, when ``speech_started`` and
``interrupted`` arrived, and when the last audio frame of the interrupted answer arrived:

- **detect**: voice sent -> ``speech_started`` (stt's voice detection, ``STT_MIN_SPEECH_MS``);
- **decided**: ``speech_started`` + ``GATEWAY_BARGE_IN_MS``, when the gateway's barge-in timer
  fires (shorter sounds are ignored, by design);
- **interrupted**: decided -> ``interrupted`` received (the web client stops playback here);
- **audio stops**: decided -> the last frame of the answer received (0 when none came after);
- **frames after interrupted**: must be 0.

The goal: audio stops reaching the client within 150 ms of the barge-in decision. The gateway's
own view, ``voice_gateway_barge_in_seconds``, is printed beside it.

That is the ``decision`` case. The other cases (``interrupt``, ``backchannel``, ``echo``,
``echo-interrupt``; bench/barge_in_cases.py) play through a client that models a real player
(bench/barge_in_player.py) and are measured from the overlap's acoustic onset; the echo cases
run on a cluster with the gateway's echo cancelling on and on one with it off.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from bench.barge_in_cases import CaseTrial, overlap_of, print_table, run_trial, summarize
from bench.barge_in_plot import plot_cases, plot_decisions
from bench.barge_in_words import backchannels
from bench.corpus import BenchClip, load_corpus
from launcher.cluster import Cluster, ClusterConfig, ClusterStartError
from tools.live import LiveSession

ROOT = Path(__file__).resolve().parent.parent
INTERRUPTION = "006_"  # "The birch canoe slid on the smooth planks."
# Sentences spoken over the answer in the interrupt cases (bench/barge_in_cases.py).
INTERRUPTIONS = ("006_", "024_", "012_", "036_")
ALL_CASES = ("decision", "interrupt", "backchannel", "echo", "echo-interrupt")
GOAL_MS = 150.0


@dataclass
class Trial:
    question: str
    detect_ms: float | None = None
    interrupted_ms: float | None = None
    audio_stop_ms: float | None = None
    onset_to_interrupted_ms: float | None = None
    # The answer's last frame, in ms after the interrupting voice was sent (None: no audio).
    last_frame_ms: float | None = None
    frames_after_interrupted: int = 0
    # Where the answer was when the barge-in was decided: "thinking" (no audio yet),
    # "streaming" (audio arriving), "sent" (all of it sent; the client was still playing).
    answer_state: str = ""
    error: str = ""


def _final(session: LiveSession) -> dict[str, Any] | None:
    return next(
        (e for e in session.events if e["type"] == "transcript" and e["final"] and e["text"]), None
    )


async def _trial(
    url: str, question: BenchClip, interruption: BenchClip, barge_in_s: float, trigger: str
) -> Trial:
    trial = Trial(question.name)
    async with aiohttp.ClientSession() as http, LiveSession(http, url) as session:
        await session.say(question.audio, silence_s=0.0)
        if trigger == "final":
            await session.silence_until(lambda: _final(session) is not None, 30.0)
        else:
            await session.silence_until(lambda: session.first("audio_start") is not None, 30.0)
        final = _final(session)
        assert final is not None
        turn_id = final["turn_id"]
        await session.say(interruption.audio, silence_s=0.0)
        voice_at = session.sent_voice_at[-1]
        try:
            await session.silence_until(
                lambda: session.first("interrupted", turn_id=turn_id) is not None, 5.0
            )
            await session.keep_listening(0.5)  # anything late would arrive now
        except AssertionError:
            trial.error = "no interrupted event"
            return trial
    heard = session.first("speech_started", after=voice_at)
    interrupted = session.first("interrupted", turn_id=turn_id)
    if heard is None or interrupted is None:
        trial.error = "no speech_started"
        return trial
    decided = heard.at + barge_in_s
    frames = session.audio_of(turn_id)
    audio_start = session.first("audio_start", turn_id=turn_id)
    audio_end = session.first("audio_end", turn_id=turn_id)
    trial.detect_ms = (heard.at - voice_at) * 1000
    trial.interrupted_ms = (interrupted.at - decided) * 1000
    trial.audio_stop_ms = max((frames[-1].at - decided) * 1000, 0.0) if frames else 0.0
    trial.onset_to_interrupted_ms = (interrupted.at - voice_at) * 1000
    trial.last_frame_ms = (frames[-1].at - voice_at) * 1000 if frames else None
    trial.frames_after_interrupted = sum(1 for f in frames if f.at > interrupted.at)
    if audio_start is None or audio_start.at > decided:
        trial.answer_state = "thinking"
    elif audio_end is None or audio_end.at > decided:
        trial.answer_state = "streaming"
    else:
        trial.answer_state = "sent"
    return trial


def _describe(trial: Trial) -> str:
    return (
        f"detect {trial.detect_ms:4.0f}  interrupted +{trial.interrupted_ms:3.0f}  "
        f"audio stops +{trial.audio_stop_ms:3.0f} ms  (answer {trial.answer_state})"
    )


async def _gateway_view(http_url: str) -> tuple[float, int]:
    """Mean and count of ``voice_gateway_barge_in_seconds`` from the gateway's /metrics."""
    async with aiohttp.ClientSession() as http, http.get(f"{http_url}/metrics") as response:
        text = await response.text()
    total = re.search(r"^voice_gateway_barge_in_seconds_sum (\S+)$", text, re.M)
    count = re.search(r"^voice_gateway_barge_in_seconds_count (\S+)$", text, re.M)
    if not total or not count or float(count.group(1)) == 0:
        return 0.0, 0
    return float(total.group(1)) / float(count.group(1)) * 1000, int(float(count.group(1)))


def _percentiles(values: list[float]) -> str:
    if not values:
        return "n/a"
    p50, p90 = np.percentile(values, [50, 90])
    return f"p50 {p50:6.0f} ms   p90 {p90:6.0f} ms   max {max(values):6.0f} ms"


async def _decision_trials(
    cluster: Cluster,
    args: argparse.Namespace,
    questions: list[BenchClip],
    interruption: BenchClip,
    barge_in_ms: float,
) -> list[Trial]:
    trials: list[Trial] = []
    for index in range(args.trials):
        question = questions[index // 2 % len(questions)]
        trigger = "final" if index % 2 == 0 else "audio"
        url = f"{cluster.ws_url}/ws/{cluster.token()}"
        trial = await _trial(url, question, interruption, barge_in_ms / 1000, trigger)
        trials.append(trial)
        print(
            f"[decision {index + 1:2d}/{args.trials}] {question.name[:28]:28s} "
            + (trial.error or _describe(trial)),
            flush=True,
        )
    return trials


async def _case_trials(
    cluster: Cluster,
    args: argparse.Namespace,
    setting: str,
    clips: list[BenchClip],
    questions: list[BenchClip],
) -> list[CaseTrial]:
    rng = random.Random(f"{args.seed}-{setting}")
    # Clean questions only: the noise of a mixed clip goes on over the answer (a user turn of
    # its own), and "yes" is a backchannel word here.
    questions = [q for q in questions if q.kind == "speech" and not q.name.startswith("007_")]
    sentences = [overlap_of(c) for c in clips if c.name.startswith(INTERRUPTIONS)]
    # Backchannels run on the first cluster only (echo cancelling off, the default, unless on
    # alone); interruptions and the echo cases on both, to show what cancelling does to each.
    first_cluster = setting == "off" or "off" not in args.echo_cancel
    words = backchannels(clips) if "backchannel" in args.cases and first_cluster else []
    plan: list[tuple[str, Any]] = []
    for case in ("interrupt", "backchannel", "echo", "echo-interrupt"):
        if case not in args.cases or (not first_cluster and case == "backchannel"):
            continue
        count = args.echo_trials if case == "echo" else args.case_trials
        pool = words if case == "backchannel" else sentences
        plan += [(case, None if case == "echo" else pool[i % len(pool)]) for i in range(count)]
    trials: list[CaseTrial] = []
    for first in range(0, len(plan), args.concurrency):
        batch = plan[first : first + args.concurrency]
        results = await asyncio.gather(
            *(
                run_trial(
                    f"{cluster.ws_url}/ws/{cluster.token()}",
                    case,
                    setting,
                    questions[rng.randrange(len(questions))],
                    overlap,
                    random.Random(rng.random()),
                )
                for case, overlap in batch
            )
        )
        for number, trial in enumerate(results, first + 1):
            trials.append(trial)
            figures = (
                f"duck {trial.onset_to_duck_ms} stop {trial.onset_to_stop_ms} ms"
                if trial.case.endswith("interrupt")
                else f"ducks {trial.ducks}"
            )
            echo = f" echo -{trial.echo_db} dB {trial.echo_delay_ms} ms" if trial.echo_db else ""
            print(
                f"[{trial.case} echo-cancel {setting} {number:2d}/{len(plan)}] "
                f"{trial.overlap[:18]:18s} {trial.error or trial.outcome:16s} {figures}{echo}",
                flush=True,
            )
    return trials


async def run(args: argparse.Namespace) -> int:
    clips = load_corpus(args.corpus)
    interruption = next(c for c in clips if c.name.startswith(INTERRUPTION))
    questions = [c for c in clips if c.is_speech and c is not interruption]
    questions = [c for c in questions if len(c.audio.pcm) / (2 * c.audio.sample_rate) < 6.0]
    questions = [c for c in questions if not c.name.startswith(INTERRUPTIONS)]
    barge_in_ms = float(os.environ.get("GATEWAY_BARGE_IN_MS", "300"))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = args.out or ROOT / "bench" / "results" / f"barge-in-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    trials: list[Trial] = []
    case_trials: list[CaseTrial] = []
    gateway_mean_ms, gateway_count = 0.0, 0
    settings = [c for c in ("off", "on") if c in args.echo_cancel]
    with out.with_suffix(".log").open("w") as log:
        for setting in settings:
            env = {
                "OTEL_SDK_DISABLED": "true",
                "GATEWAY_BARGE_IN_MS": f"{barge_in_ms:.0f}",
                "GATEWAY_ECHO_CANCEL": setting,
                # Sessions at once are this bench's choice, not the admission control's.
                "GATEWAY_ADMISSION": "off",
            }
            config = ClusterConfig.on_free_ports(output=log, env=env)
            print(
                f"starting a cluster (embedded models, GATEWAY_ECHO_CANCEL={setting})...",
                flush=True,
            )
            try:
                async with Cluster(config) as cluster:
                    if "decision" in args.cases and not trials:
                        trials = await _decision_trials(
                            cluster, args, questions, interruption, barge_in_ms
                        )
                        gateway_mean_ms, gateway_count = await _gateway_view(cluster.http_url)
                    case_trials += await _case_trials(cluster, args, setting, clips, questions)
            except ClusterStartError as error:
                print(f"error: {error}")
                return 2
    table = summarize(case_trials)
    if case_trials:
        plot_cases(case_trials, out.with_name(out.stem + "-cases.png"))
        print("\nbarge-in cases (from the overlap's acoustic onset, at the real-player client)")
        print_table(table)
    if not trials:
        out.write_text(
            json.dumps({"cases": table, "case_trials": [asdict(t) for t in case_trials]}, indent=2)
        )
        print(f"\nwrote {out}\n      {out.with_name(out.stem + '-cases.png')}")
        return 0 if all(t.frames_after_interrupted == 0 for t in case_trials) else 1
    done = [t for t in trials if not t.error]
    streaming = [t for t in done if t.answer_state == "streaming"]
    stops = [t.audio_stop_ms for t in streaming if t.audio_stop_ms is not None]
    summary: dict[str, Any] = {
        "trials": len(trials),
        "failed": len(trials) - len(done),
        "barge_in_ms": barge_in_ms,
        "answer_states": {
            state: sum(1 for t in done if t.answer_state == state)
            for state in ("thinking", "streaming", "sent")
        },
        "frames_after_interrupted": sum(t.frames_after_interrupted for t in trials),
        "gateway_barge_in_mean_ms": round(gateway_mean_ms, 1),
        "gateway_barge_in_count": gateway_count,
    }
    for name, values in (
        ("detect_ms", [t.detect_ms for t in done]),
        ("interrupted_ms", [t.interrupted_ms for t in done]),
        ("audio_stop_ms", stops),
        ("onset_to_interrupted_ms", [t.onset_to_interrupted_ms for t in done]),
    ):
        kept = [v for v in values if v is not None]
        if kept:
            p50, p90 = np.percentile(kept, [50, 90])
            summary[name] = {"p50": round(float(p50), 1), "p90": round(float(p90), 1)}
    out.write_text(
        json.dumps(
            {
                "summary": summary,
                "trials": [asdict(t) for t in trials],
                "cases": table,
                "case_trials": [asdict(t) for t in case_trials],
            },
            indent=2,
        )
    )
    plot_decisions(trials, barge_in_ms, out.with_suffix(".png"))

    rows = (
        ("voice sent -> speech_started", [t.detect_ms or 0.0 for t in done]),
        ("decided -> interrupted received", [t.interrupted_ms or 0.0 for t in done]),
        ("decided -> last agent frame *", stops),
        ("voice sent -> interrupted", [t.onset_to_interrupted_ms or 0.0 for t in done]),
    )
    print(f"\nbarge-in, {len(done)}/{len(trials)} trials (GATEWAY_BARGE_IN_MS={barge_in_ms:.0f})")
    for label, values in rows:
        print(f"  {label:34s}{_percentiles(values)}")
    print(f"  * over the {len(stops)} trials whose answer was streaming at the decision")
    print(f"  answer at the decision: {summary['answer_states']}")
    print(f"  frames after interrupted: {summary['frames_after_interrupted']}")
    print(
        f"  gateway: decided -> interrupted sent, mean {gateway_mean_ms:.1f} ms ({gateway_count})"
    )
    met = bool(stops) and float(np.percentile(stops, 90)) <= GOAL_MS
    verdict = "met" if met else "NOT met"
    print(f"  goal, audio stops within {GOAL_MS:.0f} ms of the decision (p90): {verdict}")
    print(f"\nwrote {out}\n      {out.with_suffix('.png')}")
    if case_trials:
        print(f"      {out.with_name(out.stem + '-cases.png')}")
    late = summary["frames_after_interrupted"] + sum(
        t.frames_after_interrupted for t in case_trials
    )
    return 0 if done and late == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description="Barge-in: how fast the agent stops talking.")
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "speech")
    parser.add_argument("--trials", type=int, default=6, help="trials of the decision case")
    parser.add_argument(
        "--cases", default=",".join(ALL_CASES), help=f"comma-separated, of {','.join(ALL_CASES)}"
    )
    parser.add_argument(
        "--case-trials",
        type=int,
        default=6,
        help="trials of interrupt, backchannel, echo-interrupt (each)",
    )
    parser.add_argument("--echo-trials", type=int, default=10, help="answers of the echo case")
    parser.add_argument(
        "--echo-cancel", default="on,off", help="GATEWAY_ECHO_CANCEL values the echo cases run with"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=2,
        help="sessions at once in the cases other than decision",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="JSON file to write")
    args = parser.parse_args()
    args.cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    args.echo_cancel = [c.strip() for c in args.echo_cancel.split(",") if c.strip()]
    unknown = set(args.cases) - set(ALL_CASES)
    if unknown:
        parser.error(f"unknown cases: {', '.join(sorted(unknown))}")
    if set(args.echo_cancel) - {"on", "off"} or not args.echo_cancel:
        parser.error("--echo-cancel takes on, off or on,off")
    if min(args.trials, args.case_trials, args.echo_trials, args.concurrency) < 1:
        parser.error("trial counts and --concurrency must be at least 1")
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
