"""``make load`` and ``make soak``: the cluster under N concurrent voice sessions, with Locust.

``load`` ramps N over --users (default 1,2,4,8), each step --step-s seconds, and prints the
curve: sessions held, turns, errors and the error rate, p50/p90 end of speech -> first audible
answer over the answered turns only, and the memory
of the four processes. ``soak`` holds --soak-users sessions for --soak-s seconds and samples the
processes' memory, to show it does not grow. Only loopback addresses are used, and every run is
bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from launcher.cluster import Cluster, ClusterConfig

ROOT = Path(__file__).resolve().parent.parent
ANSWERED = "first audible answer"
FAILED = "failed turn"


def memory_mb(cluster: Cluster) -> dict[str, float]:
    """Resident memory of each process (and its children), in MB."""
    sizes = {}
    for name, pid in cluster.pids().items():
        try:
            process = psutil.Process(pid)
            rss = process.memory_info().rss + sum(
                child.memory_info().rss for child in process.children(recursive=True)
            )
        except psutil.NoSuchProcess:
            continue
        sizes[name] = round(rss / 1e6, 1)
    return sizes


async def _max_sessions(cluster: Cluster, stop: asyncio.Event) -> int:
    held = 0
    async with aiohttp.ClientSession() as http:
        while not stop.is_set():
            async with http.get(f"{cluster.http_url}/health") as response:
                held = max(held, int((await response.json())["sessions"]))
            await asyncio.sleep(0.5)
    return held


async def run_locust(cluster: Cluster, users: int, seconds: int, corpus: Path) -> dict[str, Any]:
    prefix = Path(tempfile.mkdtemp()) / "locust"
    env = dict(os.environ)
    env.update(
        {
            "VOICE_URL": f"{cluster.ws_url}/ws/{cluster.token()}",
            "VOICE_CORPUS": str(corpus),
            "PYTHONPATH": str(ROOT),
        }
    )
    stop = asyncio.Event()
    held = asyncio.create_task(_max_sessions(cluster, stop))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(ROOT / "loadtest" / "locustfile.py"),
        "--headless",
        "-u",
        str(users),
        "-r",
        str(users),
        "-t",
        f"{seconds}s",
        "--stop-timeout",
        "25",
        "--csv",
        str(prefix),
        "--only-summary",
        "--host",
        cluster.http_url,
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await process.communicate()
    stop.set()
    sessions = await held
    rows = list(csv.DictReader((prefix.parent / "locust_stats.csv").open()))
    answered = next((r for r in rows if r["Name"] == ANSWERED), None)
    failed = next((r for r in rows if r["Name"] == FAILED), None)
    if answered is None and failed is None:
        raise RuntimeError(f"locust recorded no turns:\n{stderr.decode()[-2000:]}")
    count = int(answered["Request Count"]) if answered else 0
    errors = int(failed["Request Count"]) if failed else 0
    return {
        "users": users,
        "sessions_held": sessions,
        "turns": count + errors,
        "answered": count,
        "errors": errors,
        "error_rate": round(errors / (count + errors), 3),
        # Percentiles over the answered turns only (a failure is not a fast answer).
        "p50_ms": float(answered["50%"]) if count and answered else None,
        "p90_ms": float(answered["90%"]) if count and answered else None,
        "memory_mb": memory_mb(cluster),
    }


async def load(args: argparse.Namespace, cluster: Cluster) -> list[dict[str, Any]]:
    curve = []
    print(
        f"{'users':>6}{'held':>6}{'turns':>7}{'errors':>8}{'err %':>7}{'p50 ms':>9}{'p90 ms':>9}"
        "  memory MB   (latency: answered turns only)"
    )
    for users in args.users:
        step = await run_locust(cluster, users, args.step_s, args.corpus)
        curve.append(step)
        memory = ", ".join(f"{k} {v:.0f}" for k, v in step["memory_mb"].items())
        p50, p90 = (
            "-" if step[key] is None else f"{step[key]:.0f}" for key in ("p50_ms", "p90_ms")
        )
        print(
            f"{users:>6}{step['sessions_held']:>6}{step['turns']:>7}{step['errors']:>8}"
            f"{step['error_rate']:>7.1%}{p50:>9}{p90:>9}  {memory}",
            flush=True,
        )
    return curve


async def soak(args: argparse.Namespace, cluster: Cluster) -> dict[str, Any]:
    samples: list[dict[str, Any]] = []
    started = time.perf_counter()

    async def sample() -> None:
        while True:
            samples.append({"t_s": round(time.perf_counter() - started), **memory_mb(cluster)})
            print(
                f"  t={samples[-1]['t_s']:>4}s  "
                + ", ".join(f"{k} {v:.0f} MB" for k, v in samples[-1].items() if k != "t_s"),
                flush=True,
            )
            await asyncio.sleep(args.sample_s)

    sampler = asyncio.create_task(sample())
    try:
        result = await run_locust(cluster, args.soak_users, args.soak_s, args.corpus)
    finally:
        sampler.cancel()
    samples.append({"t_s": round(time.perf_counter() - started), **memory_mb(cluster)})
    growth = {}
    for name in samples[0]:
        if name == "t_s":
            continue
        # Compare the settled state (after the first minute) with the end.
        settled = next((s[name] for s in samples if s["t_s"] >= 60), samples[0][name])
        growth[name] = round(samples[-1][name] - settled, 1)
    return {"turns": result, "samples": samples, "growth_mb_after_first_minute": growth}


async def main_async(args: argparse.Namespace) -> int:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    log = args.out.with_suffix(".log").open("w")
    config = ClusterConfig.on_free_ports(output=log, env={"OTEL_SDK_DISABLED": "true"})
    print("starting the cluster (embedded models)...", flush=True)
    async with Cluster(config) as cluster:
        report: dict[str, Any] = {}
        if args.mode == "load":
            report["load"] = await load(args, cluster)
        else:
            report["soak"] = await soak(args, cluster)
            growth = report["soak"]["growth_mb_after_first_minute"]
            print("memory growth after the first minute (MB): " + json.dumps(growth))
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description="Load or soak the voice agent with Locust.")
    parser.add_argument("mode", choices=("load", "soak"))
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "speech")
    parser.add_argument("--users", default="1,2,4,8", help="concurrent sessions per load step")
    parser.add_argument("--step-s", type=int, default=60, help="seconds per load step")
    parser.add_argument("--soak-users", type=int, default=2)
    parser.add_argument("--soak-s", type=int, default=300)
    parser.add_argument("--sample-s", type=int, default=15)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    args.users = [int(u) for u in args.users.split(",")]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    args.out = args.out or ROOT / "bench" / "results" / f"{args.mode}-{stamp}.json"
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
