"""The barge-in bench's plots: the decision case's trials, and for the other cases onset ->
ducked and onset -> audio stopped, and each case's outcomes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.barge_in_cases import CASES, CaseTrial

DUCK_GOAL_MS = 150.0
STOP_GOAL_MS = 400.0


def plot_cases(trials: list[CaseTrial], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [
        (f"{case}\n(echo cancel {s})", [t for t in trials if t.case == case and t.echo_cancel == s])
        for case in CASES
        for s in ("on", "off")
    ]
    groups = [(name, group) for name, group in groups if group]
    timed = [(n, g) for n, g in groups if n.startswith(("interrupt", "echo-interrupt"))]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 1.0 + 0.9 * max(len(groups), 2)))
    for row, (_name, group) in enumerate(timed):
        ducks = [t.onset_to_duck_ms for t in group if t.onset_to_duck_ms is not None]
        stops = [t.onset_to_stop_ms for t in group if t.onset_to_stop_ms is not None]
        left.plot(
            ducks,
            [row + 0.12] * len(ducks),
            "v",
            color="#d08020",
            label="onset -> ducked" if row == 0 else None,
        )
        left.plot(
            stops,
            [row - 0.12] * len(stops),
            "s",
            color="#3060b0",
            mfc="none",
            label="onset -> audio stopped" if row == 0 else None,
        )
    left.axvline(DUCK_GOAL_MS, color="#d08020", ls=":", lw=1)
    left.axvline(STOP_GOAL_MS, color="#3060b0", ls=":", lw=1)
    left.set_yticks(range(len(timed)), [n for n, _ in timed], fontsize=8)
    left.set_xlabel("ms after the overlap's acoustic onset (dotted: goals, p90)")
    left.set_title("Interruptions: the agent's audio at the client")
    if timed:
        left.legend(fontsize=7, loc="lower right")
    colours = {
        "interrupted": "#3a9a3a",
        "kept": "#3a9a3a",
        "resumed": "#8cc084",
        "clean": "#3a9a3a",
        "missed": "#c03030",
        "lost": "#c03030",
        "self-interrupted": "#c03030",
        "answer over": "#bbbbbb",
        "error": "#555555",
    }
    for row, (_name, group) in enumerate(groups):
        left_at = 0
        for outcome, colour in colours.items():
            count = sum(1 for t in group if ("error" if t.error else t.outcome) == outcome)
            if count:
                right.barh(row, count, left=left_at, color=colour)
                right.text(
                    left_at + count / 2,
                    row,
                    f"{outcome} {count}",
                    ha="center",
                    va="center",
                    fontsize=7,
                )
                left_at += count
    right.set_yticks(range(len(groups)), [n for n, _ in groups], fontsize=8)
    right.set_xlabel("trials")
    right.set_title("Outcomes per case")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_decisions(trials: list[Any], barge_in_ms: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    good = [t for t in trials if t.detect_ms is not None]
    fig, ax = plt.subplots(figsize=(11, 0.45 * len(good) + 1.6))
    for row, t in enumerate(good):
        assert t.detect_ms is not None and t.interrupted_ms is not None
        decided = t.detect_ms + barge_in_ms
        ax.barh(row, t.detect_ms, color="#9bbcd8", label="detect" if row == 0 else None)
        ax.barh(
            row,
            barge_in_ms,
            left=t.detect_ms,
            color="#d8d8d8",
            label="barge-in time" if row == 0 else None,
        )
        ax.plot(decided + t.interrupted_ms, row, "rv", label="interrupted" if row == 0 else None)
        if t.last_frame_ms is not None:
            ax.plot(t.last_frame_ms, row, "k|", markersize=14, label="last agent frame")
    names = [f"{t.question[:22]} ({t.answer_state})" for t in good]
    ax.set_yticks(range(len(good)), names, fontsize=7)
    ax.set_xlabel("ms after the interrupting voice was sent")
    ax.set_title("Barge-in: when the agent's audio stopped reaching the client")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    ax.legend(
        unique.values(), unique.keys(), loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
