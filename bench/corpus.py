"""The clips a benchmark plays, and where the speech in each one ends."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tools.acoustics import speech_bounds
from tools.client import ClipAudio


@dataclass(frozen=True)
class BenchClip:
    name: str
    kind: str
    reference: str
    audio: ClipAudio
    # The clip's acoustic end of speech (tools/acoustics.py), seconds from its start; None when
    # the clip holds no speech. Computed once per clip and kept with every result.
    speech_end_s: float | None
    # The definition used before: the end of Silero VAD's last speech window (the pipeline's own
    # detector). Kept only so a report can show how far the definition moved the figures.
    silero_end_s: float | None = None

    @property
    def is_speech(self) -> bool:
        return self.kind.startswith("speech")

    @property
    def duration_s(self) -> float:
        return len(self.audio.pcm) / (2 * self.audio.sample_rate)


def load_corpus(directory: Path) -> list[BenchClip]:
    manifest = directory / "manifest.jsonl"
    if not manifest.exists():
        raise FileNotFoundError(f"{manifest} not found: point CORPUS at a folder with one")
    clips = []
    for line in manifest.read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        audio = ClipAudio.from_wav(directory / row["file"])
        kind = str(row.get("kind", "speech"))
        bounds = speech_bounds(audio.pcm, audio.sample_rate) if kind.startswith("speech") else None
        clips.append(
            BenchClip(
                name=row["file"],
                kind=kind,
                reference=row.get("transcript_normalized") or row.get("transcript", ""),
                audio=audio,
                speech_end_s=None if bounds is None else bounds.end_s,
                silero_end_s=None if bounds is None else bounds.silero_end_s,
            )
        )
    return clips
