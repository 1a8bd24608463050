"""``make bench-peer``: this project beside a stock Pipecat 1.14 pipeline, in one run.

Both are played the same clips in real time by the same client (``bench.runner.run_mode``, so
``tools.client.talk``) and measured the same way (``bench.report.summarize``): first the
project's streaming mode on a fresh cluster, then the peer (``bench/peer/server.py``, with the
same Whisper, Silero, Qwen2.5 GGUF and Piper voice files) in its own ``.venv-peer/``, created on
first use. It prints both and the ratio of their p50 and p90, and writes JSON and a PNG.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.__main__ import MODES, _with_cluster
from bench.corpus import BenchClip, load_corpus
from bench.peer.process import PeerConfig, PeerStartError, ensure_venv, peer_server
from bench.report import summarize
from bench.runner import TurnRecord, run_mode
from launcher.cluster import Cluster, ClusterStartError
from services.llm.settings import LlmSettings
from services.stt.settings import SttSettings
from voice.models import piper_voice_files, qwen_gguf_path, whisper_model_path

ROOT = Path(__file__).resolve().parent.parent.parent
PROJECT = "voice agent"
PEER = "pipecat 1.14"
# How the peer pipeline is put together (bench/peer/server.py), for the report.
PEER_PIPELINE = {
    "transport": "FastAPIWebsocketTransport (one pipeline per connection), uvicorn",
    "vad": "SileroVADAnalyzer() in LLMUserAggregatorParams, Pipecat's default VADParams",
    "turn": "TurnAnalyzerUserTurnStopStrategy(LocalSmartTurnAnalyzerV3()) (Smart Turn v3.2)",
    "stt": "WhisperSTTService(device=cpu, compute_type=int8, model=<tiny.en folder>, language=en)",
    "llm": "OpenAILLMService(base_url=llama.cpp server) via xllamacpp's llama-server HTTP API",
    "tts": "PiperTTSService(voice=en_US-joe-medium, download_dir=<the voice's folder>)",
    "audio": "16 kHz in, 24 kHz out, Pipecat's real-time output pacing",
}


def peer_config() -> PeerConfig:
    """The project's own model files and LLM settings (its defaults, or the environment's)."""
    llm = LlmSettings.from_env(os.environ)
    stt = SttSettings.from_env(os.environ)
    cache = ROOT / llm.common.cache_dir  # an absolute cache_dir stays what it is
    return PeerConfig(
        whisper=whisper_model_path(stt.model, cache),
        voice=piper_voice_files().model,
        gguf=Path(llm.model_path) if llm.model_path else qwen_gguf_path(cache),
        system_prompt=llm.system_prompt,
        max_tokens=llm.max_reply_tokens,
        temperature=llm.temperature,
        llm_parallel=llm.parallel,
        llm_context=llm.context_tokens,
    )


async def play_project(clips: list[BenchClip], sessions: int, log: Any) -> list[TurnRecord]:
    async def work(cluster: Cluster) -> list[TurnRecord]:
        def url_for() -> str:
            return f"{cluster.ws_url}/ws/{cluster.token()}"

        return await run_mode(url_for, clips, sessions, MODES["streaming"], "streaming")

    records: list[TurnRecord] = await _with_cluster({}, log, work)
    return records


async def play_peer(
    python: Path, clips: list[BenchClip], sessions: int, log: Any
) -> tuple[list[TurnRecord], float]:
    print("starting the Pipecat pipeline (llama.cpp server, then uvicorn)...", flush=True)
    async with peer_server(python, peer_config(), log) as (base, start_s):
        print(f"  answering after {start_s:.1f} s", flush=True)

        def url_for() -> str:
            return f"{base}/ws/bench"

        records = await run_mode(url_for, clips, sessions, {}, "pipecat")
    return records, start_s


def ratios(project: dict[str, Any], peer: dict[str, Any]) -> dict[str, float | None]:
    """Pipecat's figure over the project's: 2.0 means Pipecat takes twice as long."""
    out: dict[str, float | None] = {}
    for key in ("p50_ms", "p90_ms"):
        mine, theirs = project.get(key), peer.get(key)
        out[key] = round(theirs / mine, 2) if mine and theirs else None
    return out


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def print_table(summaries: dict[str, dict[str, Any]], ratio: dict[str, float | None]) -> None:
    print("\nEnd of user speech -> first agent audio, at the client (ms), same clips, same client")
    header = f"  {'pipeline':<14}{'turns':>6}{'answered':>10}{'p50':>8}{'p90':>8}{'p99':>8}"
    print(header + f"{'WER':>8}{'errors':>8}   first frame p50/p90")
    for name, s in summaries.items():
        wer = "-" if s.get("wer") is None else f"{s['wer']:.3f}"
        frame = f"{_ms(s.get('first_frame_p50_ms'))}/{_ms(s.get('first_frame_p90_ms'))}"
        print(
            f"  {name:<14}{s['turns']:>6}{s['answered']:>10}{_ms(s['p50_ms']):>8}"
            f"{_ms(s['p90_ms']):>8}{_ms(s.get('p99_ms')):>8}{wer:>8}{s.get('errors', 0):>8}"
            f"   {frame}"
        )
    p50, p90 = ratio["p50_ms"], ratio["p90_ms"]
    if p50 is not None and p90 is not None:
        print(f"\n  {PEER} / {PROJECT}: p50 {p50:.2f}x, p90 {p90:.2f}x")
    else:
        print(f"\n  no ratio: one side answered no speech turn ({PEER} / {PROJECT})")


def plot(turns: dict[str, list[dict[str, Any]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5))
    for name, rows in turns.items():
        values = sorted(r["latency_ms"] for r in rows if r["latency_ms"] is not None)
        if not values:
            continue
        share = np.arange(0, len(values) + 1) / len(values)
        values = [values[0], *values]
        p50, p90 = np.percentile(values, 50), np.percentile(values, 90)
        ax.step(values, share, where="post", label=f"{name} (p50 {p50:.0f}, p90 {p90:.0f} ms)")
    ax.axhline(0.5, color="black", linewidth=0.4)
    ax.axhline(0.9, color="black", linewidth=0.4)
    ax.set_xlabel("end of speech -> first agent audio at the client (ms)")
    ax.set_ylabel("share of answered turns")
    ax.set_title(f"{PROJECT} vs a stock {PEER} pipeline, same models, same clips")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _write(out: Path, report: dict[str, Any], turns: dict[str, Any], picture: Path) -> None:
    out.write_text(json.dumps(report, indent=2))
    plot(turns, picture)


async def run(args: argparse.Namespace) -> int:
    venv = ensure_venv()
    clips = load_corpus(args.corpus)
    if args.limit:
        clips = clips[: args.limit]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out: Path = args.out or ROOT / "bench" / "results" / f"bench-peer-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    print(f"{len(clips)} clips from {args.corpus}, {args.sessions} session(s)", flush=True)
    records: dict[str, list[TurnRecord]] = {}
    peer_start_s = None
    with out.with_suffix(".log").open("w") as log, out.with_suffix(".peer.log").open("w") as plog:
        try:
            if not args.peer_only:
                records[PROJECT] = await play_project(clips, args.sessions, log)
            records[PEER], peer_start_s = await play_peer(venv.python, clips, args.sessions, plog)
        except (ClusterStartError, PeerStartError) as error:
            print(f"error: {error} (see {out.with_suffix('.log')}, .peer.log)", file=sys.stderr)
            return 2
    summaries = {name: summarize(rows, args.sessions) for name, rows in records.items()}
    ratio = ratios(summaries.get(PROJECT, {}), summaries[PEER])
    turns = {name: [r.as_json() for r in rows] for name, rows in records.items()}
    config = peer_config()
    report = {
        "summaries": summaries,
        "ratio_peer_over_project": ratio,
        "turns": turns,
        "peer": {
            "pipeline": PEER_PIPELINE,
            "models": {
                "whisper": str(config.whisper),
                "voice": str(config.voice),
                "gguf": str(config.gguf),
            },
            "llm": {
                "max_tokens": config.max_tokens,
                "temperature": config.temperature,
                "slots": config.llm_parallel,
                "context_per_slot": config.llm_context,
            },
            "start_s": peer_start_s,
            "venv_install_s": venv.install_s,
            "venv_mb": venv.size_mb,
        },
        "corpus": str(args.corpus),
        "machine": {"cpus": os.cpu_count() or 0, "python": platform.python_version()},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    picture = out.with_suffix(".png")
    await asyncio.to_thread(_write, out, report, turns, picture)
    print_table(summaries, ratio)
    print(f"\nwrote {out}\n      {picture}\n      {out.with_suffix('.log')}, .peer.log")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "speech")
    parser.add_argument("--out", type=Path, default=None, help="JSON file to write")
    parser.add_argument("--sessions", type=int, default=1, help="sessions at once")
    parser.add_argument("--limit", type=int, default=0, help="only the first N clips")
    parser.add_argument(
        "--peer-only", action="store_true", help="skip the project's own run (no ratio)"
    )
    args = parser.parse_args()
    if args.sessions < 1:
        parser.error("--sessions must be at least 1")
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
