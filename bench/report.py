"""Benchmark figures: the summary, the printed tables, the plot, the baseline comparison."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from bench.runner import TurnRecord
from tools.wer import word_errors

GOAL_P90_MS = 800.0
# The moments of a streaming turn, in the order the stacked bars show them.
# The gateway's moments count from stt's end of speech (where its VAD says the speech ended);
# the client's from the clip's acoustic end, usually earlier: the grey bar holds that gap too.
SEGMENTS = (
    ("llm_start", "stt's end of speech -> LLM start", "#8fb3d9"),
    ("llm_first_token", "LLM first token", "#e0a458"),
    ("first_audio_sent", "TTS first audio (gateway sends)", "#7fb685"),
    ("client_first_frame", "to the client, + acoustic vs stt's end", "#c9c9c9"),
    ("client_first_audio", "until audible", "#8c6bb1"),
)


def _percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def summarize(
    records: list[TurnRecord], sessions: int, *, score_wer: bool = True
) -> dict[str, Any]:
    speech = [r for r in records if r.kind.startswith("speech")]
    latencies = [r.latency_ms for r in speech if r.latency_ms is not None]
    # The first frame of the same (answered) turns, so the two columns compare like with like.
    frames = [
        r.first_frame_ms
        for r in speech
        if r.first_frame_ms is not None and r.latency_ms is not None
    ]
    old = [v for v in (r.old_latency_ms for r in speech) if v is not None]
    errors_words = [word_errors(r.reference, r.transcript) for r in speech]
    total_words = sum(n for _, n in errors_words)
    false_turns = [r for r in records if not r.kind.startswith("speech") and r.latency_ms]
    return {
        "turns": len(records),
        "sessions": sessions,
        "answered": len(latencies),
        "p50_ms": _percentile(latencies, 50),
        "p90_ms": _percentile(latencies, 90),
        "p99_ms": _percentile(latencies, 99),
        # End of speech -> first binary frame (audible or not), and the previous definition
        # (Silero's end of speech -> first binary frame) on the same turns.
        "first_frame_p50_ms": _percentile(frames, 50),
        "first_frame_p90_ms": _percentile(frames, 90),
        "old_definition_p50_ms": _percentile(old, 50),
        "old_definition_p90_ms": _percentile(old, 90),
        "wer": (
            round(sum(e for e, _ in errors_words) / total_words, 4)
            if total_words and score_wer
            else None
        ),
        "errors": sum(1 for r in records if r.errors),
        "false_turns": len(false_turns),
    }


def median_stages(records: list[TurnRecord]) -> dict[str, float]:
    """Each moment's median offset from the end of speech, over the answered speech turns."""
    names: dict[str, list[float]] = {}
    for record in records:
        if record.latency_ms is None:
            continue
        for name, value in record.stages.items():
            names.setdefault(name, []).append(value)
    return {name: round(float(np.median(v)), 1) for name, v in names.items()}


def overhead_ms(records: list[TurnRecord]) -> dict[str, float | None]:
    """With instant engines: what the gateway and the gRPC hops add after stt's decision."""
    values = [
        r.stages["first_audio_sent"] - r.stages["end_of_turn"]
        for r in records
        if "first_audio_sent" in r.stages and "end_of_turn" in r.stages
    ]
    return {"p50_ms": _percentile(values, 50), "p90_ms": _percentile(values, 90)}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:7.0f}"


def print_tables(modes: dict[str, dict[str, Any]]) -> None:
    print(
        "\nEnd of user speech (the clip's acoustic end) -> first audible agent audio, "
        "at the client (ms)"
    )
    print(
        f"  {'mode':<12}{'turns':>6}{'p50':>9}{'p90':>9}{'p99':>9}{'WER':>8}{'errors':>8}"
        f"{'frame p50':>11}{'frame p90':>11}"
    )
    for mode, data in modes.items():
        s = data["summary"]
        wer = "-" if s.get("wer") is None else f"{s['wer']:.3f}"
        print(
            f"  {mode:<12}{s['turns']:>6}{_ms(s['p50_ms']):>9}{_ms(s['p90_ms']):>9}"
            f"{_ms(s['p99_ms']):>9}{wer:>8}{s['errors']:>8}"
            f"{_ms(s.get('first_frame_p50_ms')):>11}{_ms(s.get('first_frame_p90_ms')):>11}"
        )
    print(f"  {'goal':<12}{'':>6}{'':>9}{_ms(GOAL_P90_MS):>9}")
    print("  (frame: end of speech -> the answer's first binary frame, audible or not)")
    _print_definitions(modes)
    _print_caches(modes)
    streaming = modes.get("streaming", {}).get("summary", {})
    serial = modes.get("serial", {}).get("summary", {})
    if streaming.get("p50_ms") and serial.get("p50_ms"):
        print(
            f"\n  streaming vs serial: p50 {serial['p50_ms'] / streaming['p50_ms']:.2f}x faster, "
            f"p90 {serial['p90_ms'] / streaming['p90_ms']:.2f}x faster"
        )
    _print_early_thinking(modes)
    if "streaming" in modes:
        stages = modes["streaming"]["median_stages"]
        order = sorted(stages.items(), key=lambda item: item[1])
        print("\n  median moments of a streaming turn (ms after the end of speech):")
        for name, value in order:
            print(f"    {name:<26}{value:8.0f}")
    if "overhead" in modes:
        over = modes["overhead"]["overhead"]
        print(
            f"\n  overhead (instant engines; gateway + gRPC hops after stt's end of turn): "
            f"p50 {_ms(over['p50_ms']).strip()} ms, p90 {_ms(over['p90_ms']).strip()} ms"
        )


def _print_definitions(modes: dict[str, dict[str, Any]]) -> None:
    print("\n  the same turns by the previous definition (Silero's end -> first binary frame):")
    for mode, data in modes.items():
        s = data["summary"]
        if s.get("old_definition_p50_ms") is None or s.get("p50_ms") is None:
            continue
        print(
            f"    {mode:<12} old p50 {_ms(s['old_definition_p50_ms'])} / p90 "
            f"{_ms(s['old_definition_p90_ms'])}  ->  new p50 {_ms(s['p50_ms'])} / p90 "
            f"{_ms(s['p90_ms'])}"
        )


def caches(counters: dict[str, float]) -> dict[str, float]:
    """What the TTS phrase cache and the LLM prompt cache served during a mode."""
    hits = counters.get("tts_cache_hits", 0.0)
    lookups = hits + counters.get("tts_cache_misses", 0.0)
    cached = counters.get("llm_prompt_tokens_cached", 0.0)
    prompt = cached + counters.get("llm_prompt_tokens_read", 0.0)
    return {
        "tts_cache_hits": hits,
        "tts_cache_lookups": lookups,
        "tts_cache_hit_share": round(hits / lookups, 3) if lookups else 0.0,
        "llm_prompt_tokens_cached": cached,
        "llm_prompt_tokens": prompt,
        "llm_cached_share": round(cached / prompt, 3) if prompt else 0.0,
    }


def _print_caches(modes: dict[str, dict[str, Any]]) -> None:
    print("\n  caches (a later turn, session or run would hit them too):")
    for mode, data in modes.items():
        c = caches(data.get("counters", {}))
        print(
            f"    {mode:<12} TTS phrase cache {c['tts_cache_hits']:.0f} hits of "
            f"{c['tts_cache_lookups']:.0f} short chunks ({c['tts_cache_hit_share']:.0%}); "
            f"LLM prompt cache served {c['llm_prompt_tokens_cached']:.0f} of "
            f"{c['llm_prompt_tokens']:.0f} prompt tokens ({c['llm_cached_share']:.0%})"
        )


def early_thinking(modes: dict[str, dict[str, Any]]) -> dict[str, float] | None:
    """What starting at the user's pause gained (latency) and cost (generations thrown away)."""
    gain = gain_over(modes, "no-early")
    if gain is None:
        return None
    counters = modes["streaming"].get("counters", {})
    confirmed = counters.get("early_confirmed", 0.0)
    discarded = counters.get("early_discarded", 0.0)
    wasted = counters.get("llm_tokens_discarded", 0.0)
    generated = wasted + counters.get("llm_tokens_complete", 0.0)
    return {
        **gain,
        "early_confirmed": confirmed,
        "early_discarded": discarded,
        "discarded_completion_tokens": wasted,
        "discarded_prompt_tokens": counters.get("llm_prompt_tokens_discarded", 0.0),
        "wasted_token_share": round(wasted / generated, 3) if generated else 0.0,
    }


def gain_over(modes: dict[str, dict[str, Any]], other: str) -> dict[str, float] | None:
    """How much faster streaming is than ``other`` (a mode with one feature turned off)."""
    if "streaming" not in modes or other not in modes:
        return None
    on, off = modes["streaming"]["summary"], modes[other]["summary"]
    if not (on.get("p50_ms") and off.get("p50_ms")):
        return None
    return {
        "p50_gain_ms": round(off["p50_ms"] - on["p50_ms"], 1),
        "p90_gain_ms": round(off["p90_ms"] - on["p90_ms"], 1),
    }


def _print_early_thinking(modes: dict[str, dict[str, Any]]) -> None:
    gain = early_thinking(modes)
    if gain is None:
        return
    print(
        f"\n  early thinking (streaming vs no-early): p50 {gain['p50_gain_ms']:+.0f} ms, "
        f"p90 {gain['p90_gain_ms']:+.0f} ms gained\n"
        f"    early starts: {gain['early_confirmed']:.0f} confirmed, "
        f"{gain['early_discarded']:.0f} discarded (the user went on); thrown away: "
        f"{gain['discarded_completion_tokens']:.0f} completion and "
        f"{gain['discarded_prompt_tokens']:.0f} prompt tokens "
        f"({gain['wasted_token_share']:.0%} of all completion tokens)"
    )


def plot(modes: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (dist, bars) = plt.subplots(1, 2, figsize=(14, 6), gridspec_kw={"width_ratios": [1, 1.3]})
    for mode, data in modes.items():
        values = sorted(t["latency_ms"] for t in data["turns"] if t["latency_ms"] is not None)
        if not values or mode == "overhead":
            continue
        share = np.arange(1, len(values) + 1) / len(values)
        dist.step(
            values, share, where="post", label=f"{mode} (p90 {np.percentile(values, 90):.0f} ms)"
        )
    dist.axvline(GOAL_P90_MS, color="green", linestyle="--", label="goal p90 800 ms")
    dist.axhline(0.9, color="black", linewidth=0.5)
    dist.set_xlabel("end of speech (acoustic) -> first audible agent audio (ms)")
    dist.set_ylabel("share of turns")
    dist.set_title("Latency distribution")
    dist.legend(loc="lower right", fontsize=8)

    turns = [t for t in modes.get("streaming", {}).get("turns", []) if t["latency_ms"] is not None]
    turns.sort(key=lambda t: t["latency_ms"])
    for row, turn in enumerate(turns):
        previous = 0.0
        for key, label, color in SEGMENTS:
            value = turn["stages"].get(key)
            if value is None:
                continue
            bars.barh(
                row, value - previous, left=previous, color=color, label=label if row == 0 else None
            )
            previous = value
        if "stt_complete" in turn["stages"]:
            bars.plot(
                turn["stages"]["stt_complete"],
                row,
                "k|",
                markersize=8,
                label="final transcript" if row == 0 else None,
            )
    bars.set_yticks(range(len(turns)), [t["clip"][:22] for t in turns], fontsize=7)
    bars.axvline(GOAL_P90_MS, color="green", linestyle="--")
    bars.set_xlabel("ms after the end of speech (gateway: stt's; client: the acoustic end)")
    bars.set_title("Where each streaming turn's time goes")
    bars.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def compare_baseline(summary: dict[str, Any], baseline_path: Path, tolerance: float) -> list[str]:
    """Regressions against the saved baseline: p50/p90 worse by more than ``tolerance``."""
    if not baseline_path.exists():
        return []
    baseline = json.loads(baseline_path.read_text())
    problems = []
    for key in ("p50_ms", "p90_ms"):
        now, before = summary.get(key), baseline.get(key)
        if now is not None and before and now > before * (1 + tolerance):
            problems.append(f"{key} {now:.0f} ms is over {before:.0f} ms x {1 + tolerance:.2f}")
    now_wer, before_wer = summary.get("wer"), baseline.get("wer")
    if now_wer is not None and before_wer is not None and now_wer > before_wer + 0.02:
        problems.append(f"WER {now_wer:.3f} is over {before_wer:.3f} + 0.02")
    return problems
