"""Shared fixtures: where the real speech lives, and how to read it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from voice.settings import Env

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SPEECH_DIR = ROOT.parent / "shared" / "speech"


@dataclass(frozen=True)
class Clip:
    path: Path
    transcript: str
    transcript_normalized: str
    kind: str
    duration_s: float


def speech_dir() -> Path:
    """The real-speech corpus: VOICE_SPEECH_DIR, or ../shared/speech beside the checkout."""
    return Path(Env().text(str(DEFAULT_SPEECH_DIR), "VOICE_SPEECH_DIR"))


def load_manifest(directory: Path) -> list[Clip]:
    clips = []
    for line in (directory / "manifest.jsonl").read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            clips.append(
                Clip(
                    directory / row["file"],
                    row["transcript"],
                    row["transcript_normalized"],
                    row["kind"],
                    float(row["duration_s"]),
                )
            )
    return clips


@pytest.fixture(scope="session")
def speech_clips() -> list[Clip]:
    directory = speech_dir()
    if not (directory / "manifest.jsonl").exists():
        pytest.skip(f"real speech corpus not found at {directory} (set VOICE_SPEECH_DIR)")
    return load_manifest(directory)


def clip_named(clips: list[Clip], prefix: str) -> Clip:
    return next(clip for clip in clips if clip.path.name.startswith(prefix))
