"""``make bench-llm``: the embedded model over a conversation, in-process, no gRPC.

Three measurements of the local provider as the llm service runs it (same settings, same slot
pool, same history trimming):

1. A 10-turn conversation in one session: first-token time, tokens/s, prompt and cached prompt
   tokens at every turn. With the prompt cache the first-token time stays flat while the prompt
   grows, since only the newest user text is read.
2. Cancel -> engine free: a long reply is cancelled after a few tokens; the time from the cancel
   to the engine's slot being free again, and the next turn's first-token time. Once more while
   a long uncached prompt is still being read.
3. Two sessions taking turns on the shared engine: each follow-up finds its own prefix cached.
4. A conversation past its history budget: the oldest turns are dropped, and the rest of the
   cached history is shifted into place (llama.cpp's n_cache_reuse), not read again.

Settings come from the environment like the service's (LLM_THREADS, LLM_PARALLEL, ...).
Numbers depend on the machine and on what else runs on it; the load average is printed.

    .venv/bin/python -m bench.llm_turns [--turns 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from services.llm.engine import Turn
from services.llm.history import History
from services.llm.local import LocalLlama
from services.llm.settings import LlmSettings

QUESTIONS = [
    "Hi there, who am I talking to?",
    "What's a good way to start the morning?",
    "How long should I boil an egg?",
    "Why is the sky blue?",
    "Can you suggest a name for a grey cat?",
    "What is the capital of Australia?",
    "How far away is the moon, roughly?",
    "Give me a tip for falling asleep faster.",
    "What should I cook tonight with rice and eggs?",
    "Thanks. What did I ask you first?",
]
LONG_REPLY = "Tell me a long, detailed story about a lighthouse keeper and a storm."
CANCEL_AFTER_DELTAS = 5
TIGHT_BUDGET_TOKENS = 200


@dataclass
class TurnResult:
    turn: int
    session: str
    first_token_ms: float
    total_ms: float
    completion_tokens: int
    tokens_per_s: float
    prompt_tokens: int
    cached_tokens: int
    queue_ms: float
    reply: str


@dataclass
class CancelResult:
    when: str
    cancel_to_free_ms: float
    next_first_token_ms: float


async def run_turn(
    engine: LocalLlama, history: History, session: str, text: str, max_tokens: int, number: int
) -> TurnResult:
    turn = Turn(history.prompt_for(text), max_tokens, session_id=session)
    started = time.perf_counter()
    first = 0.0
    reply: list[str] = []
    async for delta in engine.generate(turn):
        if not isinstance(delta, str):
            continue  # no tools are offered here
        if not reply:
            first = time.perf_counter() - started
        reply.append(delta)
    total = time.perf_counter() - started
    history.record(text, "".join(reply))
    return TurnResult(
        turn=number,
        session=session,
        first_token_ms=first * 1000,
        total_ms=total * 1000,
        completion_tokens=turn.stats.completion_tokens,
        tokens_per_s=turn.stats.tokens_per_s,
        prompt_tokens=turn.stats.prompt_tokens,
        cached_tokens=turn.stats.cached_tokens,
        queue_ms=turn.stats.queue_ms,
        reply="".join(reply).strip(),
    )


async def first_token_ms(engine: LocalLlama, history: History, session: str, text: str) -> float:
    turn = Turn(history.prompt_for(text), 8, session_id=session)
    started = time.perf_counter()
    stream = engine.generate(turn)
    try:
        await anext(stream)
        return (time.perf_counter() - started) * 1000
    finally:
        await stream.aclose()  # type: ignore[attr-defined]


async def cancel_while_generating(
    engine: LocalLlama, history: History, session: str
) -> CancelResult:
    turn = Turn(history.prompt_for(LONG_REPLY), 400, session_id=session)
    stream = engine.generate(turn)
    for _ in range(CANCEL_AFTER_DELTAS):
        await anext(stream)
    cancelled = time.perf_counter()
    await stream.aclose()  # type: ignore[attr-defined]
    free = (time.perf_counter() - cancelled) * 1000
    assert engine.pool.busy == 0, "the slot is still held after the stream closed"
    return CancelResult(
        "generating", free, await first_token_ms(engine, history, session, "Go on.")
    )


async def cancel_while_reading(
    engine: LocalLlama, history: History, session: str, delay_s: float
) -> CancelResult:
    facts = " ".join(f"Note {i}: the parcel for flat {i} is at the desk." for i in range(60))
    turn = Turn(history.prompt_for(facts + " Which flats have parcels?"), 64, session_id=session)
    stream = engine.generate(turn)
    reader = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(delay_s)
    if reader.done():
        raise RuntimeError("the prompt was read before the cancel; use a longer one")
    reader.cancel()
    cancelled = time.perf_counter()
    await asyncio.gather(reader, return_exceptions=True)
    await stream.aclose()  # type: ignore[attr-defined]
    free = (time.perf_counter() - cancelled) * 1000
    assert engine.pool.busy == 0, "the slot is still held after the stream closed"
    return CancelResult(
        "reading a long prompt", free, await first_token_ms(engine, history, session, "Hello.")
    )


def show_turns(title: str, results: list[TurnResult]) -> None:
    print(f"\n{title}")
    columns = ("turn", "session", "first token", "total", "tokens", "tok/s", "prompt", "cached")
    widths = (4, 7, 12, 9, 6, 6, 6, 6)
    print("  " + " ".join(f"{c:>{w}}" for c, w in zip(columns, widths, strict=True)) + "  reply")
    for r in results:
        cells = (
            f"{r.turn}",
            r.session,
            f"{r.first_token_ms:.0f} ms",
            f"{r.total_ms:.0f} ms",
            f"{r.completion_tokens}",
            f"{r.tokens_per_s:.1f}",
            f"{r.prompt_tokens}",
            f"{r.cached_tokens}",
        )
        row = " ".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=True))
        print(f"  {row}  {r.reply[:48]!r}")


async def main(args: argparse.Namespace) -> dict[str, object]:
    settings = LlmSettings.from_env()
    print(
        f"embedded model, {settings.parallel} slots, batch {settings.batch_tokens}, "
        f"{settings.threads or os.cpu_count()} threads, "
        f"max reply {settings.max_reply_tokens} tokens; "
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    )
    started = time.perf_counter()
    engine = await asyncio.to_thread(LocalLlama, settings)
    await asyncio.to_thread(engine.warm_up, settings.system_prompt)
    print(f"loaded and warmed up in {time.perf_counter() - started:.1f}s")
    budget = settings.context_tokens - settings.max_reply_tokens

    history = History(settings.system_prompt, budget)
    turns = [
        await run_turn(engine, history, "one", text, settings.max_reply_tokens, index)
        for index, text in enumerate(QUESTIONS[: args.turns], 1)
    ]
    show_turns(f"1. one session, {len(turns)} turns", turns)

    cancels = [await cancel_while_generating(engine, history, "one") for _ in range(args.cancels)]
    cancels.append(
        await cancel_while_reading(engine, History(settings.system_prompt, budget), "other", 0.3)
    )
    print(
        f"\n2. cancel -> engine free (cancelled after {CANCEL_AFTER_DELTAS} deltas, or mid-prompt)"
    )
    for c in cancels:
        print(
            f"  while {c.when:<22} free after {c.cancel_to_free_ms:6.1f} ms; "
            f"next first token {c.next_first_token_ms:6.0f} ms"
        )

    histories = {name: History(settings.system_prompt, budget) for name in ("alice", "bob")}
    shared = []
    for index, text in enumerate(QUESTIONS[:6]):
        name = "alice" if index % 2 == 0 else "bob"
        shared.append(await run_turn(engine, histories[name], name, text, 32, index + 1))
    show_turns("3. two sessions taking turns on the shared engine", shared)

    # Room for two or three exchanges besides the system prompt: the oldest go from turn 3 or 4.
    tight = History(settings.system_prompt, TIGHT_BUDGET_TOKENS)
    trimmed = []
    for index, text in enumerate(QUESTIONS[:8], 1):
        trimmed.append(await run_turn(engine, tight, "tight", text, 32, index))
    show_turns(f"4. past a history budget of {TIGHT_BUDGET_TOKENS} tokens", trimmed)

    generated = [r for r in turns if r.completion_tokens > 1]
    summary = {
        "first_token_ms_turn_1": turns[0].first_token_ms,
        "first_token_ms_last_turn": turns[-1].first_token_ms,
        "first_token_ms_median": statistics.median(r.first_token_ms for r in turns),
        "tokens_per_s_median": statistics.median(r.tokens_per_s for r in generated)
        if generated
        else 0.0,
        "prompt_tokens_last_turn": turns[-1].prompt_tokens,
        "cached_tokens_last_turn": turns[-1].cached_tokens,
        "cancel_to_free_ms_generating_median": statistics.median(
            c.cancel_to_free_ms for c in cancels if c.when == "generating"
        ),
        "cancel_to_free_ms_reading": cancels[-1].cancel_to_free_ms,
        "next_first_token_after_cancel_ms_median": statistics.median(
            c.next_first_token_ms for c in cancels if c.when == "generating"
        ),
        "cached_percent_past_budget_min": min(
            100 * r.cached_tokens / r.prompt_tokens for r in trimmed
        ),
    }
    print("\nsummary")
    for key, value in summary.items():
        print(f"  {key:<42} {value:8.1f}")
    return {
        "settings": {"parallel": settings.parallel, "batch_tokens": settings.batch_tokens},
        "load_average": os.getloadavg()[0],
        "turns": [asdict(r) for r in turns],
        "cancels": [asdict(c) for c in cancels],
        "two_sessions": [asdict(r) for r in shared],
        "past_budget": [asdict(r) for r in trimmed],
        "summary": summary,
    }


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--turns", type=int, default=10, choices=range(1, len(QUESTIONS) + 1))
    parser.add_argument("--cancels", type=int, default=5, help="cancel trials while generating")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results = asyncio.run(main(args))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    cli()
