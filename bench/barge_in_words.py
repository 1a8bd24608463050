"""Short words spoken over the agent's answer (the backchannel case of the barge-in bench).

From the real speech corpus where it has them: "yes" is a clip of its own. It holds none of the
other words a listener says while listening ("no", "okay", "yeah", "right", "mm-hm"), so those
are spoken by the project's Piper voice (joe), then resampled to the microphone's 16 kHz.
"""

from __future__ import annotations

from bench.barge_in_cases import Overlap
from bench.barge_in_player import MIC_RATE
from bench.corpus import BenchClip
from tools.client import ClipAudio
from voice.audio import Resampler

CORPUS_WORDS = {"yes": "007_"}
SPOKEN_WORDS = ("no", "okay", "yeah", "right", "mm-hm")


def backchannels(clips: list[BenchClip]) -> list[Overlap]:
    words: list[Overlap] = []
    for word, prefix in CORPUS_WORDS.items():
        clip = next((c for c in clips if c.name.startswith(prefix)), None)
        if clip is not None:
            pcm = Resampler(clip.audio.sample_rate, MIC_RATE).process(clip.audio.pcm, last=True)
            words.append(
                Overlap(f"{word} (corpus {clip.name[:4]})", pcm, clip.audio.first_voiced_s())
            )
    from services.tts.piper import PiperEngine

    engine = PiperEngine(threads=1)
    for word in SPOKEN_WORDS:
        raw = b"".join(engine.synthesize(word.capitalize() + "."))
        pcm = Resampler(engine.sample_rate, MIC_RATE).process(raw, last=True)
        words.append(Overlap(f"{word} (piper)", pcm, ClipAudio(pcm, MIC_RATE).first_voiced_s()))
    return words
