"""``make bench-stt-batch``: is one batched Whisper decode of N utterances cheaper than N decodes?

On the real corpus's speech clips of 1-6 s, with the stt service's default model and encoder
window, for N = 1, 2, 4 utterances due at the same moment:

- ``sequential``: N decodes one after the other (one decode worker);
- ``parallel``: N decodes on two decode workers at once (the service's default pool);
- ``batched``: one CTranslate2 batch of N (``WhisperDecoder.decode_batch``, what
  ``STT_MAX_BATCH`` turns on).

Each is timed as the wall time until the last of the N results, median of ``--repeats``, for
each ``--threads`` value (``STT_CPU_THREADS``; 0 is CTranslate2's default). The encoder alone is
also timed on a 30 s window (3000 frames, what faster-whisper's standard path feeds it) and on
the short window, batch 1 and 4. The texts of the batched decodes are checked against the
one-by-one decodes. Prints a table, then the figures as JSON (``--out`` writes them to a file).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import ctranslate2
import numpy as np

from services.stt.batcher import DecodeRequest
from services.stt.settings import SttSettings
from services.stt.whisper import WhisperDecoder

RATE = 16000
SIZES = (1, 2, 4)


def speech_clips(corpus: Path, low_s: float, high_s: float) -> list[tuple[str, np.ndarray]]:
    clips = []
    for line in (corpus / "manifest.jsonl").read_text().splitlines():
        row = json.loads(line) if line.strip() else None
        if row is None or row.get("kind", "speech") != "speech":
            continue
        with wave.open(str(corpus / row["file"]), "rb") as wav:
            if wav.getframerate() != RATE or wav.getnchannels() != 1:
                continue
            pcm = wav.readframes(wav.getnframes())
        samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0
        if low_s <= len(samples) / RATE <= high_s:
            clips.append((str(row["file"]), samples))
    return clips


def timed(run: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def bench_threads(
    threads: int, clips: list[tuple[str, np.ndarray]], repeats: int
) -> dict[str, Any]:
    # The rest of the environment applies (STT_MODEL, STT_DEVICE=cuda on a GPU machine).
    settings = SttSettings.from_env({**os.environ, "STT_CPU_THREADS": str(threads)})
    decoder = WhisperDecoder(settings, workers=2)
    decoder.warm_up()
    rows = []
    mismatches = []
    with ThreadPoolExecutor(max_workers=2) as workers:
        for size in SIZES:
            group = [clips[(size + i) % len(clips)] for i in range(size)]
            samples = [s for _, s in group]
            one_by_one = [decoder.decode(s).text for s in samples]
            batched_texts = [
                getattr(o, "text", repr(o))
                for o in decoder.decode_batch([DecodeRequest(s) for s in samples])
            ]
            for (name, _), single, batched in zip(group, one_by_one, batched_texts, strict=True):
                if single != batched:
                    mismatches.append({"clip": name, "single": single, "batched": batched})
            requests = [DecodeRequest(s) for s in samples]
            sequential_ms = timed(lambda g=samples: [decoder.decode(s) for s in g], repeats)
            parallel_ms = timed(lambda g=samples: list(workers.map(decoder.decode, g)), repeats)
            batched_ms = timed(lambda r=requests: decoder.decode_batch(r), repeats)
            rows.append(
                {
                    "threads": threads,
                    "n": size,
                    "audio_s": round(sum(len(s) for s in samples) / RATE, 2),
                    "sequential_ms": round(sequential_ms, 1),
                    "parallel_ms": round(parallel_ms, 1),
                    "batched_ms": round(batched_ms, 1),
                    "batched_vs_sequential": round(sequential_ms / batched_ms, 2),
                    "batched_vs_parallel": round(parallel_ms / batched_ms, 2),
                }
            )
    encoder = encoder_times(decoder, settings.encoder_window_s, repeats)
    return {
        "device": decoder.description,
        "rows": rows,
        "encoder": encoder,
        "mismatches": mismatches,
    }


def encoder_times(decoder: WhisperDecoder, window_s: float, repeats: int) -> list[dict[str, Any]]:
    model = decoder._model.model
    out = []
    for frames in (3000, int(window_s * 100)):
        for size in (1, 4):
            features = np.zeros((size, 80, frames), dtype=np.float32)
            view = ctranslate2.StorageView.from_array(features)
            ms = timed(lambda v=view: model.encode(v), repeats)
            out.append({"frames": frames, "batch": size, "encode_ms": round(ms, 1)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("/work/shared/speech"))
    parser.add_argument("--threads", default="0,1,2", help="STT_CPU_THREADS values to try")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--min-s", type=float, default=1.0)
    parser.add_argument("--max-s", type=float, default=6.0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    clips = speech_clips(args.corpus, args.min_s, args.max_s)
    if not clips:
        raise SystemExit(
            f"no 16 kHz mono speech clips of {args.min_s}-{args.max_s} s in {args.corpus}"
        )
    results: dict[str, Any] = {
        "model": SttSettings.from_env(os.environ).model,
        "clips": len(clips),
        "cpus": os.cpu_count(),
        "threads": [bench_threads(int(t), clips, args.repeats) for t in args.threads.split(",")],
    }
    print(
        f"{'threads':>7} {'N':>2} {'audio s':>7} {'sequential ms':>13} {'parallel ms':>11} "
        f"{'batched ms':>10} {'seq/batch':>9} {'par/batch':>9}"
    )
    for run in results["threads"]:
        for r in run["rows"]:
            print(
                f"{r['threads']:>7} {r['n']:>2} {r['audio_s']:>7} {r['sequential_ms']:>13} "
                f"{r['parallel_ms']:>11} {r['batched_ms']:>10} {r['batched_vs_sequential']:>9} "
                f"{r['batched_vs_parallel']:>9}"
            )
    print(f"\n{'threads':>7} {'frames':>6} {'batch':>5} {'encode ms':>9}")
    for run, threads in zip(results["threads"], args.threads.split(","), strict=True):
        for e in run["encoder"]:
            print(f"{threads:>7} {e['frames']:>6} {e['batch']:>5} {e['encode_ms']:>9}")
    mismatches = [m for run in results["threads"] for m in run["mismatches"]]
    print(f"\nbatched text == one-by-one text: {mismatches or 'yes'}")
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
