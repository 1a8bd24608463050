"""Plays every clip to the gateway, N sessions at once, and records each answer."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from bench.corpus import BenchClip
from voice.client import talk
from voice.wer import normalize_transcript

SPEECH_ANSWER_TIMEOUT_S = 20.0
NON_SPEECH_WAIT_S = 3.0


@dataclass
class TurnRecord:
    clip: str
    kind: str
    session: int
    latency_ms: float | None
    transcript: str
    reference: str
    agent_text: str
    stages: dict[str, float]
    errors: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "clip": self.clip,
            "kind": self.kind,
            "session": self.session,
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 1),
            "transcript": self.transcript,
            "reference": self.reference,
            "agent_text": self.agent_text,
            "stages": self.stages,
            "errors": self.errors,
        }


async def _play(url: str, clip: BenchClip, session: int, start: dict[str, Any]) -> TurnRecord:
    duration_s = len(clip.audio.pcm) / (2 * clip.audio.sample_rate)
    try:
        result = await talk(
            url,
            clip.audio,
            answer_timeout_s=SPEECH_ANSWER_TIMEOUT_S if clip.is_speech else NON_SPEECH_WAIT_S,
            start=start,
            speech_end_s=clip.speech_end_s if clip.speech_end_s is not None else duration_s,
        )
    except Exception as error:  # a failed turn is a result, not a crash
        return TurnRecord(
            clip.name,
            clip.kind,
            session,
            None,
            "",
            clip.reference,
            "",
            {},
            [{"code": "client", "message": f"{type(error).__name__}: {error}"}],
        )
    stages = dict(result.waterfall)
    for name, value in (
        ("client_final_transcript", result.final_transcript_ms),
        ("client_first_text", result.first_text_ms),
        ("client_first_audio", result.latency_ms),
    ):
        if value is not None:
            stages[name] = round(value, 1)
    errors = list(result.errors)
    if clip.is_speech and result.latency_ms is None:
        errors.append({"code": "no_answer", "message": "no agent audio after the speech"})
    return TurnRecord(
        clip=clip.name,
        kind=clip.kind,
        session=session,
        latency_ms=result.latency_ms,
        transcript=normalize_transcript(result.transcript),
        reference=clip.reference,
        agent_text=result.agent_text,
        stages=stages,
        errors=errors,
    )


async def run_mode(
    url_for: Any, clips: list[BenchClip], sessions: int, start: dict[str, Any], label: str
) -> list[TurnRecord]:
    """Every session plays every clip once (each session starting at a different clip)."""
    records: list[TurnRecord] = []
    progress = tqdm(total=len(clips) * sessions, desc=f"{label:>9}", unit="turn", leave=True)

    async def session(index: int) -> None:
        offset = index * len(clips) // max(sessions, 1)
        for step in range(len(clips)):
            clip = clips[(offset + step) % len(clips)]
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
