"""``make bench-stt``: streaming speech recognition on the real corpus, through the real servicer.

Each clip streams in real time (20 ms chunks, then 1.5 s of silence) over real gRPC on loopback
into the stt servicer with the real Whisper decoder and Silero VAD, in this process. Reported:

- WER of the final transcripts (``tools.wer``: case, punctuation and small numbers ignored);
- CPU seconds per second of audio (this process), and the decode pool's real-time factor;
- word -> partial: from when a word ends (word timestamps of an offline decode of the clip) to
  when it first shows in any transcript near its place;
- end of speech -> at-pause transcript and -> final transcript, p50/p90 (end of speech is the
  last voiced sample stt reports, sent at that moment since audio streams in real time);
- turn splits: speech clips that came back as more than one final transcript;
- concurrency: N streams at once (each on its own clips); a stream falls behind when its final
  transcripts lag the end of speech by more than ``--lag-limit-s`` at p90.

``--intervals 200,300,500`` repeats the single-stream pass for each partial interval.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from services.stt.__main__ import stream_config
from services.stt.servicer import SpeechToTextServicer
from services.stt.settings import SttSettings
from services.stt.streaming import StreamConfig
from services.stt.vad import SileroVoiceActivityDetector
from services.stt.whisper import WhisperDecoder, word_end_times
from tools.wer import normalize_transcript, word_errors
from voice.v1 import audio_pb2, stt_pb2, stt_pb2_grpc

RATE = 16000
CHUNK_S = 0.02
TRAILING_SILENCE_S = 1.5
WORD_SLACK = 2


@dataclass
class Clip:
    name: str
    kind: str
    reference: str
    samples: np.ndarray
    words: list[tuple[str, float]] = field(default_factory=list)


@dataclass
class StreamResult:
    clip: Clip
    # (arrival seconds since the stream's first audio, response)
    responses: list[tuple[float, stt_pb2.TranscribeResponse]]

    def transcripts(self) -> list[tuple[float, stt_pb2.Transcript]]:
        return [(t, r.transcript) for t, r in self.responses if r.HasField("transcript")]

    def finals(self) -> list[tuple[float, stt_pb2.Transcript]]:
        return [(t, tr) for t, tr in self.transcripts() if tr.final]


def load_clips(corpus: Path, names: list[str]) -> list[Clip]:
    clips = []
    for line in (corpus / "manifest.jsonl").read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        if names and not any(row["file"].startswith(n) for n in names):
            continue
        with wave.open(str(corpus / row["file"])) as handle:
            pcm = np.frombuffer(handle.readframes(handle.getnframes()), "<i2")
        samples = pcm.astype(np.float32) / 32768
        clips.append(Clip(row["file"], row["kind"], row["transcript_normalized"], samples))
    return clips


async def stream_clip(stub: stt_pb2_grpc.SpeechToTextServiceStub, clip: Clip) -> StreamResult:
    pcm = (np.clip(clip.samples, -1, 1) * 32767).astype("<i2").tobytes()
    pcm += b"\x00\x00" * int(TRAILING_SILENCE_S * RATE)
    step = int(CHUNK_S * RATE) * 2
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def requests() -> AsyncIterator[stt_pb2.TranscribeRequest]:
        yield stt_pb2.TranscribeRequest(
            config=stt_pb2.TranscribeConfig(session_id=clip.name, sample_rate=RATE)
        )
        for index, offset in enumerate(range(0, len(pcm), step)):
            # A chunk leaves when its last sample has been "captured", as from a microphone.
            await asyncio.sleep(max(0.0, started + (index + 1) * CHUNK_S - loop.time()))
            chunk = audio_pb2.AudioChunk(pcm=pcm[offset : offset + step], sample_rate=RATE)
            yield stt_pb2.TranscribeRequest(audio=chunk)

    responses = [(loop.time() - started, r) async for r in stub.Transcribe(requests())]
    return StreamResult(clip, responses)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def word_delays(result: StreamResult) -> list[float]:
    """Seconds from each reference word's end to its first appearance in a transcript."""
    shown = [(t, normalize_transcript(tr.text).split()) for t, tr in result.transcripts()]
    delays = []
    for index, (raw, end_s) in enumerate(result.clip.words):
        word = normalize_transcript(raw)
        for arrival, words in shown:
            near = words[max(0, index - WORD_SLACK) : index + WORD_SLACK + 1]
            if word and word in near:
                delays.append(max(0.0, arrival - end_s))
                break
    return delays


def summarize(results: list[StreamResult], cpu_s: float, busy_s: float) -> dict[str, Any]:
    errors = length = splits = 0
    to_final: list[float] = []
    to_pause: list[float] = []
    delays: list[float] = []
    partials = 0
    speech_s = 0.0
    noise_text: list[str] = []
    audio_s = sum(len(r.clip.samples) / RATE + TRAILING_SILENCE_S for r in results)
    for result in results:
        finals = result.finals()
        text = " ".join(tr.text for _, tr in finals)
        partials += sum(1 for _, tr in result.transcripts() if not tr.final and not tr.at_pause)
        if not result.clip.kind.startswith("speech"):
            noise_text += [text] if text else []
            continue
        e, n = word_errors(result.clip.reference, text)
        errors, length = errors + e, length + n
        splits += max(0, len(finals) - 1)
        speech_s += sum(tr.speech_end_s - tr.speech_start_s for _, tr in finals)
        delays += word_delays(result)
        if finals:
            arrival, final = finals[-1]
            to_final.append(arrival - final.speech_end_s)
            pauses = [t for t, tr in result.transcripts() if tr.at_pause and tr.text == final.text]
            if pauses:
                to_pause.append(pauses[-1] - final.speech_end_s)

    def ms(values: list[float], q: float) -> float | None:
        value = percentile(values, q)
        return None if value is None else round(value * 1000)

    return {
        "clips": len(results),
        "wer": round(errors / length, 4) if length else None,
        "turn_splits": splits,
        "text_from_noise": noise_text,
        "audio_s": round(audio_s, 1),
        "speech_s": round(speech_s, 1),
        "cpu_s_per_audio_s": round(cpu_s / audio_s, 3),
        "cpu_s_per_speech_s": round(cpu_s / speech_s, 3) if speech_s else None,
        "decode_rtf": round(busy_s / audio_s, 3),
        "partials_per_audio_s": round(partials / audio_s, 2),
        "word_to_partial_ms": {"p50": ms(delays, 0.5), "p90": ms(delays, 0.9), "n": len(delays)},
        "speech_end_to_at_pause_ms": {"p50": ms(to_pause, 0.5), "p90": ms(to_pause, 0.9)},
        "speech_end_to_final_ms": {
            "p50": ms(to_final, 0.5),
            "p90": ms(to_final, 0.9),
            "max": ms(to_final, 1.0),
        },
    }


async def run_pass(
    decoder: WhisperDecoder, settings: SttSettings, config: StreamConfig, lanes: list[list[Clip]]
) -> dict[str, Any]:
    """Each lane is one stream at a time playing its clips in turn; lanes run at once."""
    servicer = SpeechToTextServicer(
        decoder,
        SileroVoiceActivityDetector,
        config,
        decode_workers=settings.decode_workers,
        max_streams=max(len(lanes), 1),
    )
    server = grpc.aio.server()
    stt_pb2_grpc.add_SpeechToTextServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    results: list[StreamResult] = []
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = stt_pb2_grpc.SpeechToTextServiceStub(channel)

            async def lane(clips: list[Clip]) -> None:
                for clip in clips:
                    results.append(await stream_clip(stub, clip))

            cpu = time.process_time()
            await asyncio.gather(*(lane(clips) for clips in lanes))
            cpu_s = time.process_time() - cpu
    finally:
        await server.stop(0)
        servicer.shutdown()
    stats = servicer.pool.stats
    summary = summarize(results, cpu_s, stats.busy_s)
    summary["pool"] = {
        "urgent": stats.urgent,
        "partial": stats.partial,
        "partial_skipped": stats.partial_skipped,
        "cancelled": stats.cancelled,
    }
    return summary


def show(label: str, summary: dict[str, Any]) -> None:
    final, pause = summary["speech_end_to_final_ms"], summary["speech_end_to_at_pause_ms"]
    word = summary["word_to_partial_ms"]
    print(
        f"{label:<22} WER {summary['wer']}  splits {summary['turn_splits']}  "
        f"cpu/audio-s {summary['cpu_s_per_audio_s']} (per speech-s "
        f"{summary['cpu_s_per_speech_s']})  decode RTF {summary['decode_rtf']}  "
        f"partials/s {summary['partials_per_audio_s']}\n{'':<22} word->partial p50/p90 "
        f"{word['p50']}/{word['p90']} ms  end->at_pause {pause['p50']}/{pause['p90']} ms  "
        f"end->final {final['p50']}/{final['p90']} ms (max {final['max']})  "
        f"noise text {summary['text_from_noise']}",
        flush=True,
    )


async def main(args: argparse.Namespace) -> dict[str, Any]:
    settings = SttSettings.from_env()
    decoder = await asyncio.to_thread(WhisperDecoder, settings, workers=settings.decode_workers)
    await asyncio.to_thread(decoder.warm_up)
    clips = load_clips(args.corpus, args.clips.split(",") if args.clips else [])
    for clip in clips:
        if clip.kind.startswith("speech"):
            clip.words = await asyncio.to_thread(word_end_times, decoder, clip.samples)
    print(f"{decoder.description}; {len(clips)} clips; {settings.decode_workers} decode workers")
    report: dict[str, Any] = {"model": decoder.description, "passes": {}, "concurrency": {}}
    base = stream_config(settings)
    intervals = [int(i) for i in args.intervals.split(",")] if args.intervals else []
    for interval in intervals or [settings.partial_interval_ms]:
        config = StreamConfig(
            base.endpoint, interval / 1000, base.rolling_window_s, args.anticipate_ms / 1000
        )
        summary = await run_pass(decoder, settings, config, [clips])
        report["passes"][f"interval_{interval}ms"] = summary
        show(f"1 stream, {interval} ms", summary)
    ramp = [c for c in clips if c.kind.startswith("speech")][: args.ramp_clips]
    for streams in [int(n) for n in args.streams.split(",") if n]:
        lanes = [ramp[i:] + ramp[:i] for i in range(streams)]
        summary = await run_pass(decoder, settings, base, lanes)
        p90 = summary["speech_end_to_final_ms"]["p90"]
        summary["keeps_up"] = p90 is not None and p90 <= args.lag_limit_s * 1000
        report["concurrency"][str(streams)] = summary
        show(f"{streams} streams at once", summary)
        if not summary["keeps_up"]:
            print(f"  {streams} streams fall behind real time (final p90 {p90} ms)")
            break
    return report


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("../shared/speech"))
    parser.add_argument("--clips", default="", help="comma-separated file name prefixes")
    parser.add_argument("--intervals", default="", help="partial intervals to compare, in ms")
    parser.add_argument("--streams", default="1,2,4", help="concurrent streams to ramp through")
    parser.add_argument("--ramp-clips", type=int, default=6, help="speech clips per ramp stream")
    parser.add_argument("--lag-limit-s", type=float, default=1.0)
    parser.add_argument(
        "--anticipate-ms", type=float, default=64, help="silence that starts a partial (0: off)"
    )
    parser.add_argument("--out", type=Path, default=None, help="write the report as JSON")
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse()
    if not (arguments.corpus / "manifest.jsonl").exists():
        raise SystemExit(f"no speech corpus at {arguments.corpus} (set --corpus / CORPUS=dir)")
    result = asyncio.run(main(arguments))
    if arguments.out is not None:
        arguments.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {arguments.out}")
