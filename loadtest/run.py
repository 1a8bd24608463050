"""``make load`` and ``make soak``: the cluster under N concurrent voice sessions, with Locust.

``load`` ramps N over --users (default 1,2,4,8), each step --step-s seconds, and prints the
curve (loadtest/report.py): sessions admitted and refused (503 at the upgrade), answered turns,
the error rate, p50/p90 end of speech -> first audible answer over the answered turns only, and
each process's CPU seconds over the step and peak RSS; the JSON goes to --out.
``soak`` holds --soak-users sessions for --soak-s seconds and samples the
processes' memory, to show it does not grow. Only loopback addresses are used, and every run is
bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
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
from loadtest import procstat
from loadtest.report import TurnRecord, cpu_seconds, peak_rss_mb, step_summary, table

ROOT = Path(__file__).resolve().parent.parent


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


async def _sample_rss(cluster: Cluster, stop: asyncio.Event, into: list[dict[str, float]]) -> None:
    while not stop.is_set():
        into.append(procstat.rss_mb(cluster.pids()))
        await asyncio.sleep(1.0)


def read_records(path: Path) -> list[TurnRecord]:
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [TurnRecord(r["name"], float(r["latency_ms"]), float(r.get("held_s", 0))) for r in rows]


async def run_locust(cluster: Cluster, users: int, seconds: int, corpus: Path) -> dict[str, Any]:
    """One step: ``users`` sessions offered for ``seconds``; its figures (loadtest/report.py)."""
    prefix = Path(tempfile.mkdtemp()) / "locust"
    records_path = prefix.parent / "records.jsonl"
    env = dict(os.environ)
    env.update(
        {
            "VOICE_URL": f"{cluster.ws_url}/ws/{cluster.token()}",
            "VOICE_CORPUS": str(corpus),
            "VOICE_RECORDS": str(records_path),
            "PYTHONPATH": str(ROOT),
        }
    )
    stop = asyncio.Event()
    held = asyncio.create_task(_max_sessions(cluster, stop))
    rss_samples: list[dict[str, float]] = []
    sampler = asyncio.create_task(_sample_rss(cluster, stop, rss_samples))
    cpu_before = procstat.cpu_s(cluster.pids())
    started = time.perf_counter()
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
    elapsed = time.perf_counter() - started
    cpu_after = procstat.cpu_s(cluster.pids())
    stop.set()
    sessions = await held
    await sampler
    records = read_records(records_path)
    if not records:
        raise RuntimeError(f"locust recorded no turns:\n{stderr.decode()[-2000:]}")
    return step_summary(
        users,
        elapsed,
        records,
        cpu_seconds(cpu_before, cpu_after),
        peak_rss_mb(rss_samples),
        sessions,
    )


async def load(args: argparse.Namespace, cluster: Cluster) -> list[dict[str, Any]]:
    curve = []
    if args.warmup_s:
        # The first turns load caches and pages in the models: not a figure of any step.
        print(f"warm-up: 1 session for {args.warmup_s} s (not reported)", flush=True)
        await run_locust(cluster, 1, args.warmup_s, args.corpus)
    admission = os.environ.get("GATEWAY_ADMISSION", "the gateway's default")
    print(f"admission: {admission}; latency: answered turns only; cpu s: each process over")
    print("the step; MB: peak RSS; refused: 503s at the upgrade (a user retries in 0.5-1.5 s)")
    for users in args.users:
        step = await run_locust(cluster, users, args.step_s, args.corpus)
        curve.append(step)
        header, row = table([step]).splitlines()
        if len(curve) == 1:
            print(header)
        print(row, flush=True)
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
            report["gateway_admission"] = os.environ.get("GATEWAY_ADMISSION", "default")
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
    parser.add_argument("--step-s", type=int, default=30, help="seconds per load step")
    parser.add_argument("--warmup-s", type=int, default=15, help="unreported warm-up (0: none)")
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
