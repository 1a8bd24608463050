"""``make bench-phone``: the same clips over the phone and over the browser protocol.

Each speech clip of the corpus is played twice through one real cluster, one session at a time
and in alternating order: as a phone call (``tools/phone.py``: the clip converted to 8 kHz
mu-law, Twilio's media-stream protocol, the answer played as a phone plays it) and as a browser
session (``tools/client.py``: 16 kHz PCM16). For both it records end of speech (the clip's
acoustic end, tools/acoustics.py) -> the first audible answer, and the transcript, scored
against the reference (tools/wer.py). The phone transport logs its transcripts at DEBUG (the
gateway runs with LOG_LEVEL=DEBUG here): Twilio's protocol has no place for them.

Not measured here: the network legs of a real call (the phone network, Twilio's media servers
and their jitter buffer), which come on top of the phone figure (docs/phone.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bench.corpus import BenchClip, load_corpus
from launcher.cluster import Cluster, ClusterConfig
from tools.client import talk
from tools.phone import call, caller_transcripts
from tools.wer import word_errors

ROOT = Path(__file__).resolve().parent.parent
ANSWER_TIMEOUT_S = 20.0


@dataclass
class Outcome:
    clip: str
    path: str  # "phone" (8 kHz mu-law) or "browser" (16 kHz PCM16)
    reference: str
    transcript: str = ""
    latency_ms: float | None = None
    errors: list[str] = field(default_factory=list)


async def over_phone(cluster: Cluster, auth_token: str, clip: BenchClip) -> Outcome:
    outcome = Outcome(clip.name, "phone", clip.reference)
    try:
        result = await call(cluster.http_url, auth_token, clip.audio, listen_s=ANSWER_TIMEOUT_S)
    except (OSError, RuntimeError, ValueError) as error:
        outcome.errors.append(f"{type(error).__name__}: {error}")
        return outcome
    await asyncio.sleep(0.3)  # the gateway's last log lines
    log = cluster.config.output
    gateway_log = await asyncio.to_thread(_read, Path(log.name)) if log is not None else ""
    outcome.transcript = " ".join(caller_transcripts(gateway_log, result.call_sid))
    if result.answered_early:
        outcome.errors.append("answered before the end of speech")
    else:
        outcome.latency_ms = result.latency_ms
    outcome.errors += result.invalid
    return outcome


def _read(path: Path) -> str:
    return path.read_text(errors="replace")


async def over_browser(cluster: Cluster, clip: BenchClip) -> Outcome:
    outcome = Outcome(clip.name, "browser", clip.reference)
    url = f"{cluster.ws_url}/ws/{cluster.token()}"
    result = await talk(url, clip.audio, answer_timeout_s=ANSWER_TIMEOUT_S)
    outcome.transcript = result.transcript
    outcome.latency_ms = result.latency_ms
    outcome.errors += [str(error.get("code")) for error in result.errors]
    return outcome


def summarize(outcomes: list[Outcome]) -> dict[str, dict[str, float | int | None]]:
    table: dict[str, dict[str, float | int | None]] = {}
    for path in ("phone", "browser"):
        mine = [o for o in outcomes if o.path == path]
        latency = [o.latency_ms for o in mine if o.latency_ms is not None]
        errors = [word_errors(o.reference, o.transcript) for o in mine]
        words = sum(length for _, length in errors)
        table[path] = {
            "clips": len(mine),
            "answered": len(latency),
            "latency_p50_ms": _percentile(latency, 50),
            "latency_p90_ms": _percentile(latency, 90),
            "wer": round(sum(e for e, _ in errors) / words, 3) if words else None,
        }
    return table


def _percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def print_table(table: dict[str, dict[str, float | int | None]]) -> None:
    print("\nend of speech -> first audible answer, and WER on the same clips")
    print(f"  {'path':<28}{'clips':>6}{'answered':>10}{'p50':>9}{'p90':>9}{'WER':>8}")
    names = {"phone": "phone (8 kHz mu-law)", "browser": "browser (16 kHz PCM16)"}
    for path, row in table.items():

        def ms(value: float | int | None) -> str:
            return "-" if value is None else f"{value:.0f}"

        wer = "-" if row["wer"] is None else f"{row['wer']:.3f}"
        print(
            f"  {names[path]:<28}{row['clips']:>6}{row['answered']:>10}"
            f"{ms(row['latency_p50_ms']):>9}{ms(row['latency_p90_ms']):>9}{wer:>8}"
        )
    print("  (the phone figure excludes the network legs of a real call: docs/phone.md)")


async def run(args: argparse.Namespace) -> int:
    clips = [c for c in load_corpus(args.corpus) if c.is_speech and c.reference.strip()]
    if args.limit:
        clips = clips[: args.limit]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = args.out or ROOT / "bench" / "results" / f"phone-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    auth_token = secrets.token_urlsafe(24)
    outcomes: list[Outcome] = []
    with out.with_suffix(".log").open("w") as log:
        env = {"OTEL_SDK_DISABLED": "true"}
        if args.stt_model:
            env["STT_MODEL"] = args.stt_model
        config = ClusterConfig.on_free_ports(output=log, env=env)
        config.env_for = {
            "gateway": {
                "TWILIO_AUTH_TOKEN": auth_token,
                "GATEWAY_PUBLIC_URL": f"http://{config.host}:{config.gateway_port}",
                "LOG_LEVEL": "DEBUG",
            }
        }
        print(f"{len(clips)} clips x 2 paths; starting the cluster...", flush=True)
        async with Cluster(config) as cluster:
            progress = tqdm(total=len(clips) * 2, unit="call")
            for index, clip in enumerate(clips):
                # Alternate which path goes first, so drift and caches hit both alike.
                phone_first = index % 2 == 0
                for path in ("phone", "browser") if phone_first else ("browser", "phone"):
                    if path == "phone":
                        outcomes.append(await over_phone(cluster, auth_token, clip))
                    else:
                        outcomes.append(await over_browser(cluster, clip))
                    progress.update(1)
            progress.close()
    table = summarize(outcomes)
    print_table(table)
    for outcome in outcomes:
        for error in outcome.errors:
            print(f"{outcome.path} {outcome.clip}: {error}")
    report = {
        "stt_model": args.stt_model or "(the default)",
        "summary": table,
        "outcomes": [asdict(o) for o in outcomes],
    }
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {out}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description="Phone (8 kHz mu-law) vs browser (16 kHz).")
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "speech")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--limit", type=int, default=0, help="only the first N speech clips")
    parser.add_argument("--stt-model", default="", help="STT_MODEL for this run (e.g. base)")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
