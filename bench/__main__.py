"""``make bench``: the latency benchmark, run from the client's side on real speech.

For every clip in the corpus it streams the audio over the WebSocket in real time, then silence
until the agent answers, with N sessions at once; and it does so in three modes on the same
clips: ``streaming`` (the product), ``no-early`` (streaming without early thinking, to measure
what starting at the user's pause gains and what it throws away), ``serial`` (whole transcript,
whole reply, then all the audio, as voice pipelines did before streaming) and ``overhead``
(instant engines, to measure what the gateway and the gRPC hops cost). It writes JSON and a
PNG, prints a summary, and compares against the saved baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.corpus import load_corpus
from bench.report import (
    caches,
    compare_baseline,
    early_thinking,
    median_stages,
    overhead_ms,
    plot,
    print_tables,
    summarize,
)
from bench.runner import TurnRecord, run_mode
from launcher.cluster import Cluster, ClusterConfig, ClusterStartError

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "bench" / "baseline.json"
INSTANT = {"STT_ENGINE": "instant", "LLM_PROVIDERS": "instant", "TTS_ENGINES": "instant"}


# What each mode asks for in its `start` message.
MODES: dict[str, dict[str, Any]] = {
    "streaming": {"pipeline": "streaming"},
    "no-early": {"pipeline": "streaming", "early_thinking": False},
    "serial": {"pipeline": "serial"},
    "punctuation": {"pipeline": "streaming", "end_of_turn": "punctuation"},
    "semantic": {"pipeline": "streaming", "end_of_turn": "semantic"},
    "overhead": {},
}
# Counters read from the cluster's /metrics before and after each mode: what early thinking
# gained is in the latency, what it cost is here.
COUNTERS = {
    "early_confirmed": ("gateway", 'voice_gateway_early_starts_total{result="confirmed"}'),
    "early_discarded": ("gateway", 'voice_gateway_early_starts_total{result="discarded"}'),
    "llm_tokens_complete": ("llm", 'voice_llm_tokens_total{ending="complete",kind="completion"}'),
    "llm_tokens_discarded": ("llm", 'voice_llm_tokens_total{ending="discarded",kind="completion"}'),
    "llm_prompt_tokens_discarded": (
        "llm",
        'voice_llm_tokens_total{ending="discarded",kind="prompt"}',
    ),
    # What the caches served: a later turn, session or run would hit them too.
    "tts_cache_hits": ("tts", 'voice_tts_cache_lookups_total{result="hit"}'),
    "tts_cache_misses": ("tts", 'voice_tts_cache_lookups_total{result="miss"}'),
    "llm_prompt_tokens_cached": ("llm", 'voice_llm_tokens_total{kind="cached"}'),
    "llm_prompt_tokens_read": ("llm", 'voice_llm_tokens_total{kind="prompt"}'),
}


async def _counters(cluster: Cluster) -> dict[str, float]:
    ports = cluster.config.metrics_ports
    urls = {
        "gateway": f"{cluster.http_url}/metrics",
        "llm": f"http://127.0.0.1:{ports['llm']}/metrics",
        "tts": f"http://127.0.0.1:{ports['tts']}/metrics",
    }
    pages: dict[str, str] = {}
    async with aiohttp.ClientSession() as http:
        for name, url in urls.items():
            async with http.get(url) as response:
                pages[name] = await response.text()
    return {key: _sum_series(pages[source], series) for key, (source, series) in COUNTERS.items()}


def _sum_series(page: str, series: str) -> float:
    """The sum of every sample of ``series`` whose labels include the ones it names."""
    name, _, labels = series.partition("{")
    wanted = [x for x in labels.rstrip("}").split(",") if x]
    total = 0.0
    for line in page.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        key, _, value = line.rpartition(" ")
        if key.partition("{")[0] != name:
            continue
        present = key.partition("{")[2].rstrip("}").split(",")
        if all(label in present for label in wanted):
            total += float(value)
    return total


async def _with_cluster(env: dict[str, str], log: Any, work: Any) -> Any:
    config = ClusterConfig.on_free_ports(output=log, env={"OTEL_SDK_DISABLED": "true", **env})
    cluster = Cluster(config)
    engines = "instant engines" if env else "embedded models"
    print(f"starting a fresh cluster ({engines})...", flush=True)
    await cluster.start()
    try:
        return await work(cluster)
    finally:
        await cluster.stop()


async def run(args: argparse.Namespace) -> int:
    clips = load_corpus(args.corpus)
    if args.limit:
        clips = clips[: args.limit]
    out = args.out or ROOT / "bench" / "results" / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    log_path = out.with_suffix(".log")
    speech = sum(1 for c in clips if c.is_speech)
    print(
        f"{len(clips)} clips ({speech} with speech) from {args.corpus}, {args.sessions} session(s)"
    )
    modes: dict[str, dict[str, Any]] = {}
    with log_path.open("w") as log:
        # A fresh cluster for every mode: a mode played after another on the same cluster would
        # find the same questions in the LLM's prompt cache and phrases in the TTS cache.
        for mode in args.modes:

            async def play(cluster: Cluster, mode: str = mode) -> None:
                def url_for() -> str:
                    return f"{cluster.ws_url}/ws/{cluster.token()}"

                before = await _counters(cluster)
                records = await run_mode(url_for, clips, args.sessions, MODES[mode], mode)
                after = await _counters(cluster)
                counted = {key: after[key] - before[key] for key in COUNTERS}
                modes[mode] = {"records": records, "counters": counted}

            try:
                await _with_cluster(INSTANT if mode == "overhead" else {}, log, play)
            except ClusterStartError as error:
                print(f"error: {error}", file=sys.stderr)
                return 2
    for mode, data in modes.items():
        records = data.pop("records")
        data["summary"] = summarize(records, args.sessions, score_wer=mode != "overhead")
        data["median_stages"] = median_stages(records)
        data["caches"] = caches(data["counters"])
        data["turns"] = [r.as_json() for r in records]
    if "overhead" in modes:
        overhead = overhead_ms([r for r in _records(modes["overhead"]) if r])
        modes["overhead"]["overhead"] = overhead
    gain = early_thinking(modes)
    if gain is not None:
        modes["streaming"]["early_thinking"] = gain
    main = modes.get("streaming") or next(iter(modes.values()))
    report = {
        "summary": main["summary"],
        "turns": main["turns"],
        "modes": modes,
        "corpus": str(args.corpus),
        "machine": {"cpus": _cpus(), "python": platform.python_version()},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    out.write_text(json.dumps(report, indent=2))
    picture = out.with_suffix(".png")
    plot(modes, picture)
    print_tables(modes)
    print(f"\nwrote {out}\n      {picture}\n      {log_path} (the cluster's output)")
    return _baseline(args, modes)


def _records(mode: dict[str, Any]) -> list[TurnRecord]:
    return [TurnRecord.from_json(t) for t in mode["turns"]]


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


def _baseline(args: argparse.Namespace, modes: dict[str, dict[str, Any]]) -> int:
    if "streaming" not in modes:
        return 0
    summary = dict(modes["streaming"]["summary"])
    if "overhead" in modes:
        summary["overhead_p90_ms"] = modes["overhead"]["overhead"]["p90_ms"]
    if args.save_baseline:
        BASELINE.write_text(json.dumps(summary, indent=2) + "\n")
        print(f"saved the baseline to {BASELINE}")
        return 0
    if not BASELINE.exists() or args.sessions != json.loads(BASELINE.read_text()).get("sessions"):
        print("no baseline for this many sessions to compare with (make bench-baseline)")
        return 0
    problems = compare_baseline(summary, BASELINE, args.tolerance)
    if problems:
        print("\nREGRESSION against bench/baseline.json:")
        for problem in problems:
            print(f"  - {problem}")
        return 3
    print(f"\nwithin {args.tolerance:.0%} of the baseline (bench/baseline.json)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description="End of speech -> first agent audio, measured.")
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "speech")
    parser.add_argument("--out", type=Path, default=None, help="JSON file to write")
    parser.add_argument("--sessions", type=int, default=1, help="sessions at once")
    parser.add_argument(
        "--modes",
        default="streaming,no-early,serial,overhead",
        help="comma-separated: streaming, no-early (no early thinking), serial, overhead, "
        "punctuation and semantic (streaming with that end-of-turn rule)",
    )
    parser.add_argument("--limit", type=int, default=0, help="only the first N clips")
    parser.add_argument("--tolerance", type=float, default=0.15, help="allowed p50/p90 growth")
    parser.add_argument("--save-baseline", action="store_true", help="save this run as baseline")
    args = parser.parse_args()
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = set(args.modes) - set(MODES)
    if unknown or args.sessions < 1:
        parser.error(f"bad --modes {sorted(unknown)} or --sessions {args.sessions}")
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
