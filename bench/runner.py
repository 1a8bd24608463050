"""Plays every clip to the gateway, N sessions at once, and records each answer."""

from __future__ import annotations

import asyncio
import random
from dataclasses import asdict, dataclass, field
from typing import Any

from tqdm import tqdm

from bench.corpus import BenchClip
from tools.client import talk
from tools.wer import normalize_transcript

SPEECH_ANSWER_TIMEOUT_S = 20.0
NON_SPEECH_WAIT_S = 3.0
# Each session plays the clips in its own order, drawn from this seed and its index, so no
# session replays another's clips in the same order (the report counts what caches served).
ORDER_SEED = 20261201


@dataclass
class TurnRecord:
    clip: str
    kind: str
    session: int
    # End of speech (the clip's acoustic end) -> first audible agent audio, at the client.
    latency_ms: float | None
    transcript: str
    reference: str
    agent_text: str
    stages: dict[str, float]
    errors: list[dict[str, Any]] = field(default_factory=list)
    # End of speech -> the answer's first binary frame, audible or not.
    first_frame_ms: float | None = None
    # Where the speech ended (seconds into the clip) by the acoustic definition and by Silero,
    # and when the first frame and first audible audio came, on the same clip timeline.
    speech_end_s: float | None = None
    silero_end_s: float | None = None
    first_frame_s: float | None = None
    first_audible_s: float | None = None

    @property
    def old_latency_ms(self) -> float | None:
        """The previous definition: Silero's last speech window -> the first binary frame."""
        if self.first_frame_s is None or self.silero_end_s is None:
            return None
        return round((self.first_frame_s - self.silero_end_s) * 1000, 1)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("latency_ms", "first_frame_ms"):
            if data[key] is not None:
                data[key] = round(data[key], 1)
        for key in ("first_frame_s", "first_audible_s"):
            if data[key] is not None:
                data[key] = round(data[key], 4)
        data["old_latency_ms"] = self.old_latency_ms
        return data

    @staticmethod
    def from_json(data: dict[str, Any]) -> TurnRecord:
        fields = {k: v for k, v in data.items() if k != "old_latency_ms"}
        return TurnRecord(**fields)


async def _play(url: str, clip: BenchClip, session: int, start: dict[str, Any]) -> TurnRecord:
    speech_end_s = clip.speech_end_s if clip.speech_end_s is not None else clip.duration_s
    record = TurnRecord(
        clip=clip.name,
        kind=clip.kind,
        session=session,
        latency_ms=None,
        transcript="",
        reference=clip.reference,
        agent_text="",
        stages={},
        speech_end_s=clip.speech_end_s,
        silero_end_s=clip.silero_end_s,
    )
    try:
        result = await talk(
            url,
            clip.audio,
            answer_timeout_s=SPEECH_ANSWER_TIMEOUT_S if clip.is_speech else NON_SPEECH_WAIT_S,
            start=start,
            speech_end_s=speech_end_s,
        )
    except Exception as error:  # a failed turn is a result, not a crash
        record.errors.append({"code": "client", "message": f"{type(error).__name__}: {error}"})
        return record
    stages = dict(result.waterfall)
    for name, value in (
        ("client_final_transcript", result.final_transcript_ms),
        ("client_first_text", result.first_text_ms),
        ("client_first_frame", result.first_frame_ms),
        ("client_first_audio", result.latency_ms),
    ):
        if value is not None:
            stages[name] = round(value, 1)
    errors = list(result.errors)
    if clip.is_speech and result.latency_ms is None:
        what = "no agent audio" if result.first_frame_ms is None else "no audible agent audio"
        errors.append({"code": "no_answer", "message": f"{what} after the speech"})
    record.latency_ms = result.latency_ms
    record.first_frame_ms = result.first_frame_ms
    record.first_frame_s = result.first_frame_s
    record.first_audible_s = result.first_audible_s
    record.transcript = normalize_transcript(result.transcript)
    record.agent_text = result.agent_text
    record.stages = stages
    record.errors = errors
    return record


def session_order(clips: list[BenchClip], index: int) -> list[BenchClip]:
    """The order session ``index`` plays the clips in: session 0 in corpus order, others own."""
    if index == 0:
        return list(clips)
    order = list(clips)
    random.Random(ORDER_SEED + index).shuffle(order)
    return order


async def run_mode(
    url_for: Any, clips: list[BenchClip], sessions: int, start: dict[str, Any], label: str
) -> list[TurnRecord]:
    """Every session plays every clip once, each session in its own order."""
    records: list[TurnRecord] = []
    progress = tqdm(total=len(clips) * sessions, desc=f"{label:>9}", unit="turn", leave=True)

    async def session(index: int) -> None:
        for clip in session_order(clips, index):
            record = await _play(url_for(), clip, index, start)
            records.append(record)
            progress.update(1)
            if record.latency_ms is not None:
                progress.set_postfix_str(f"last {record.latency_ms:.0f} ms")

    try:
        await asyncio.gather(*(session(i) for i in range(sessions)))
    finally:
        progress.close()
    return records
