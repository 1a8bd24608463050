"""The barge-in bench's cases, each a session with the real-player client (barge_in_player.py).

Every trial asks a question, waits until the answer is audible at the client, then:

- ``interrupt``: a sentence spoken over the answer; measured from the overlap's acoustic onset
  to the ducked output (``ducked``, or the flush of ``interrupted`` when no duck came) and to
  the last audible 10 ms window of the answer; agent frames of the turn after ``interrupted``;
- ``backchannel``: one short word over the answer; the answer is lost when it is interrupted,
  or still ducked 300 ms after the word ended;
- ``echo``: no user speech, the client's microphone hears the loudspeaker 6-20 dB lower and
  30-200 ms later; any ``interrupted`` of the answer is a self-interruption;
- ``echo-interrupt``: the same echo, and a sentence spoken over it: it must still interrupt.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np

from bench.barge_in_player import MIC_RATE, EchoPath, Player
from bench.corpus import BenchClip
from voice.audio import Resampler

CASES = ("interrupt", "backchannel", "echo", "echo-interrupt")
OUT_RATE = 24000
RESUME_WITHIN_S = 0.3


@dataclass
class CaseTrial:
    case: str
    echo_cancel: str  # the gateway's GATEWAY_ECHO_CANCEL for the trial
    question: str
    overlap: str = ""  # the clip or word spoken over the answer
    echo_db: float | None = None
    echo_delay_ms: float | None = None
    # interrupt / echo-interrupt
    onset_to_duck_ms: float | None = None
    onset_to_stop_ms: float | None = None
    frames_after_interrupted: int = 0
    # outcome: interrupted / missed (interrupt cases), kept / resumed / lost (backchannel),
    # clean / self-interrupted (echo); "answer over": the answer ended before the overlap
    outcome: str = ""
    ducks: int = 0
    # echo: when the answer was interrupted, seconds after it became audible
    self_interrupted_at_s: float | None = None
    events: list[str] = field(default_factory=list)
    error: str = ""


@dataclass(frozen=True)
class Overlap:
    name: str
    pcm16: bytes  # 16 kHz
    first_voiced_s: float


def overlap_of(clip: BenchClip) -> Overlap:
    pcm = Resampler(clip.audio.sample_rate, MIC_RATE).process(clip.audio.pcm, last=True)
    return Overlap(clip.name, pcm, clip.audio.first_voiced_s())


def _pcm16(clip: BenchClip) -> bytes:
    return Resampler(clip.audio.sample_rate, MIC_RATE).process(clip.audio.pcm, last=True)


async def run_trial(
    url: str,
    case: str,
    echo_cancel: str,
    question: BenchClip,
    overlap: Overlap | None,
    rng: random.Random,
) -> CaseTrial:
    trial = CaseTrial(case, echo_cancel, question.name, overlap.name if overlap else "")
    echo = None
    if case.startswith("echo"):
        echo = EchoPath(rng.uniform(6.0, 20.0), rng.uniform(30.0, 200.0))
        trial.echo_db, trial.echo_delay_ms = round(echo.attenuation_db, 1), round(echo.delay_ms)
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        player = Player(ws, OUT_RATE, echo)
        task = asyncio.create_task(player.run())
        try:
            await _play(player, trial, question, overlap, rng)
        except TimeoutError as error:
            trial.error = str(error)
        finally:
            player.close()
            await asyncio.gather(task, return_exceptions=True)
    trial.events = [e.type for e in player.events if e.type not in ("agent_text", "transcript")]
    return trial


async def _play(
    player: Player, trial: CaseTrial, question: BenchClip, overlap: Overlap | None, rng: Any
) -> None:
    _, question_end = player.speak(_pcm16(question), time.perf_counter() + 0.2)
    answered = await player.wait(
        lambda: any(
            e.type == "audio_start" and e.at > question_end - 0.5 and e.data.get("turn_id")
            for e in player.events
        ),
        30.0,
    )
    if not answered:
        raise TimeoutError("no answer")
    start = player.first("audio_start", after=question_end - 0.5)
    assert start is not None
    turn = str(start.data["turn_id"])
    if not await player.wait(lambda: len(player.audible_windows(turn)) > 0, 10.0):
        raise TimeoutError("the answer was never audible")
    audible_at = float(player.audible_windows(turn)[0])
    if overlap is None:  # the echo case: listen to the whole answer
        await player.wait(lambda: _answer_done(player, turn), 25.0)
        interrupted = player.first("interrupted", turn_id=turn)
        trial.ducks = len(player.all("ducked", turn_id=turn))
        trial.outcome = "self-interrupted" if interrupted else "clean"
        if interrupted is not None:
            trial.self_interrupted_at_s = round(interrupted.at - audible_at, 2)
        return
    at = audible_at + rng.uniform(0.2, 0.8)
    begin, end = player.speak(overlap.pcm16, at)
    onset = begin + overlap.first_voiced_s
    if trial.case == "backchannel":
        await player.wait(lambda: time.perf_counter() > end + 1.5, 10.0)
        _score_backchannel(player, trial, turn, end)
    else:
        await player.wait(lambda: player.first("interrupted", turn_id=turn) is not None, 8.0)
        await player.wait(lambda: False, 0.5)  # anything late arrives now
        _score_interruption(player, trial, turn, onset)
    # An answer that was not interrupted and ended on its own too soon after the onset for any
    # decision (speech must last the barge-in time) is no trial of the overlap.
    needed = end if trial.case == "backchannel" else onset + 0.8
    if player.first("interrupted", turn_id=turn) is None and not _plays_at(player, turn, needed):
        trial.outcome = "answer over"


def _answer_done(player: Player, turn: str) -> bool:
    ended = player.first("audio_end", turn_id=turn) or player.first("interrupted", turn_id=turn)
    if ended is None:
        return False
    chunks = [c for c in player.chunks if c.turn_id == turn]
    last = max((c.end for c in chunks), default=0)
    return player.out_index(time.perf_counter()) > last + OUT_RATE // 2


def _plays_at(player: Player, turn: str, at: float) -> bool:
    index = player.out_index(at)
    chunks = [c for c in player.chunks if c.turn_id == turn]
    return any(c.end > index for c in chunks)


def _score_interruption(player: Player, trial: CaseTrial, turn: str, onset: float) -> None:
    interrupted = player.first("interrupted", turn_id=turn)
    # A duck before the onset (the echo's, in the echo cases) is not the overlap's.
    ducked = player.first("ducked", after=onset, turn_id=turn)
    trial.ducks = len(player.all("ducked", turn_id=turn))
    trial.outcome = "interrupted" if interrupted else "missed"
    marks = [e.at for e in (ducked, interrupted) if e is not None and e.at >= onset]
    if marks:
        trial.onset_to_duck_ms = round((min(marks) - onset) * 1000, 1)
    windows = player.audible_windows(turn)
    after = windows[windows >= onset - 0.01]
    if interrupted is not None:
        trial.onset_to_stop_ms = round(
            max((after[-1] + 0.01 - onset) if len(after) else 0, 0) * 1000, 1
        )
        trial.frames_after_interrupted = sum(
            1 for c in player.chunks if c.turn_id == turn and c.arrived > interrupted.at
        )


def _score_backchannel(player: Player, trial: CaseTrial, turn: str, overlap_end: float) -> None:
    trial.ducks = len(player.all("ducked", turn_id=turn))
    if player.first("interrupted", turn_id=turn) is not None:
        trial.outcome = "lost"
        return
    check = player.out_index(overlap_end + RESUME_WITHIN_S)
    gain = player.gain_curve(check + 1)[check]
    still_playing = any(c.end > check for c in player.chunks if c.turn_id == turn)
    if gain < 1.0 and still_playing:
        trial.outcome = "lost"
    else:
        trial.outcome = "resumed" if trial.ducks else "kept"


# ----------------------------------------------------------------------------- summaries


def _pcts(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    p50, p90 = np.percentile(values, [50, 90])
    return {"p50": round(float(p50), 1), "p90": round(float(p90), 1), "n": len(values)}


def summarize(trials: list[CaseTrial]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for case in CASES:
        for setting in ("on", "off"):
            group = [t for t in trials if t.case == case and t.echo_cancel == setting]
            if not group:
                continue
            done = [t for t in group if not t.error and t.outcome != "answer over"]
            outcomes: dict[str, int] = {}
            for t in group:
                key = "error" if t.error else t.outcome
                outcomes[key] = outcomes.get(key, 0) + 1
            row: dict[str, Any] = {"trials": len(group), "outcomes": outcomes}
            if case in ("interrupt", "echo-interrupt"):
                hit = [t for t in done if t.outcome == "interrupted"]
                row["detected"] = f"{len(hit)}/{len(done)}"
                row["onset_to_duck_ms"] = _pcts(
                    [t.onset_to_duck_ms for t in hit if t.onset_to_duck_ms is not None]
                )
                row["onset_to_stop_ms"] = _pcts(
                    [t.onset_to_stop_ms for t in hit if t.onset_to_stop_ms is not None]
                )
                row["frames_after_interrupted"] = sum(t.frames_after_interrupted for t in group)
            elif case == "backchannel":
                kept = [t for t in done if t.outcome in ("kept", "resumed")]
                row["answer_kept"] = f"{len(kept)}/{len(done)}"
            else:
                bad = [t for t in done if t.outcome == "self-interrupted"]
                row["self_interruptions"] = f"{len(bad)}/{len(done)}"
                row["self_ducks"] = sum(t.ducks for t in done)
            table[f"{case} (echo cancel {setting})"] = row
    return table


def print_table(table: dict[str, Any]) -> None:
    for name, row in table.items():
        print(f"  {name}: {row['trials']} trials, outcomes {row['outcomes']}")
        for key in (
            "detected",
            "answer_kept",
            "self_interruptions",
            "self_ducks",
            "frames_after_interrupted",
        ):
            if key in row:
                print(f"      {key:26s} {row[key]}")
        for key in ("onset_to_duck_ms", "onset_to_stop_ms"):
            if key in row:
                value = row[key]
                text = (
                    "n/a"
                    if value is None
                    else f"p50 {value['p50']:.0f} ms  p90 {value['p90']:.0f} ms  (n={value['n']})"
                )
                print(f"      {key:26s} {text}")
