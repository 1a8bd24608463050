"""CPU time and resident memory of the cluster's processes, read from /proc (Linux)."""

from __future__ import annotations

import os
from pathlib import Path

import psutil

from loadtest.report import parse_stat_cpu_s

TICKS_PER_S = float(os.sysconf("SC_CLK_TCK"))


def _tree(pid: int) -> list[int]:
    try:
        return [pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))]
    except psutil.NoSuchProcess:
        return []


def cpu_s(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds (user + system) each process and its live children have used so far."""
    total: dict[str, float] = {}
    for name, pid in pids.items():
        for member in _tree(pid):
            try:
                stat = Path(f"/proc/{member}/stat").read_text()
            except OSError:
                continue
            total[name] = total.get(name, 0.0) + parse_stat_cpu_s(stat, TICKS_PER_S)
    return total


def rss_mb(pids: dict[str, int]) -> dict[str, float]:
    """Resident memory of each process and its children, in MB."""
    sizes: dict[str, float] = {}
    for name, pid in pids.items():
        for member in _tree(pid):
            try:
                rss = psutil.Process(member).memory_info().rss
            except psutil.NoSuchProcess:
                continue
            sizes[name] = round(sizes.get(name, 0.0) + rss / 1e6, 1)
    return sizes
