"""How every process reads its settings: once, from the environment, validated at start.

Each process builds one frozen settings object with ``<Kind>Settings.from_env()``, which reads
the variables through :class:`Env` and adds the :class:`CommonSettings` every process has. Each
process's class lives with it (``services/stt/settings.py``, ``services/llm/...``,
``services/tts/...``, ``gateway/settings.py``). A bad value raises :class:`SettingsError` naming
the variable (every problem at once), so the process fails at once with a clear message.
In the four processes nothing else reads ``os.environ``, except for the standard ``OTEL_*``
variables: ``voice/telemetry.py`` reads whether and where to export traces, and the
OpenTelemetry SDK reads the rest. (What starts the processes, ``launcher/``, ``bench/`` and
``loadtest/``, hands its environment on to them, with its own variables added.)
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from voice.errors import SettingsError

N = TypeVar("N", int, float)


class Env:
    """Typed access to environment variables that collects every problem before failing."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = dict(os.environ if environ is None else environ)
        self._problems: list[str] = []

    def raw(self, *names: str) -> tuple[str, str] | None:
        for name in names:
            value = self._environ.get(name)
            if value is not None and value.strip() != "":
                return name, value.strip()
        return None

    def text(self, default: str, *names: str, choices: tuple[str, ...] = ()) -> str:
        found = self.raw(*names)
        if found is None:
            return default
        name, value = found
        if choices and value not in choices:
            self._problems.append(f"{name}={value!r}: expected one of {', '.join(choices)}")
            return default
        return value

    def integer(
        self, default: int, *names: str, low: int | None = None, high: int | None = None
    ) -> int:
        found = self.raw(*names)
        if found is None:
            return default
        name, value = found
        try:
            number = int(value)
        except ValueError:
            self._problems.append(f"{name}={value!r}: expected a whole number")
            return default
        return self._in_range(name, number, low, high, default)

    def number(
        self, default: float, *names: str, low: float | None = None, high: float | None = None
    ) -> float:
        found = self.raw(*names)
        if found is None:
            return default
        name, value = found
        try:
            number = float(value)
        except ValueError:
            self._problems.append(f"{name}={value!r}: expected a number")
            return default
        if not math.isfinite(number):
            self._problems.append(f"{name}={value!r}: expected a finite number")
            return default
        return self._in_range(name, number, low, high, default)

    def flag(self, default: bool, *names: str) -> bool:
        found = self.raw(*names)
        if found is None:
            return default
        name, value = found
        lowered = value.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        self._problems.append(f"{name}={value!r}: expected true or false")
        return default

    def items(self, default: tuple[str, ...], *names: str) -> tuple[str, ...]:
        found = self.raw(*names)
        if found is None:
            return default
        return tuple(item.strip() for item in found[1].split(",") if item.strip())

    def address(self, default: str, *names: str) -> str:
        """A ``host:port`` (``[::1]:50051`` too)."""
        value = self.text(default, *names)
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit():
            self.problem(f"{names[0]}={value!r}: expected host:port")
        return value

    def problem(self, message: str) -> None:
        self._problems.append(message)

    def check(self, what: str) -> None:
        if self._problems:
            lines = "\n  ".join(self._problems)
            raise SettingsError(f"invalid {what} settings:\n  {lines}")

    def _in_range(self, name: str, number: N, low: N | None, high: N | None, default: N) -> N:
        if (low is not None and number < low) or (high is not None and number > high):
            self._problems.append(f"{name}={number}: expected a value in [{low}, {high}]")
            return default
        return number


@dataclass(frozen=True)
class CommonSettings:
    log_level: str
    cache_dir: Path
    # Where the process serves Prometheus metrics over HTTP (0: not at all).
    metrics_port: int

    @staticmethod
    def read(env: Env, metrics_port: int = 0) -> CommonSettings:
        return CommonSettings(
            log_level=env.text("INFO", "LOG_LEVEL", choices=("DEBUG", "INFO", "WARNING", "ERROR")),
            cache_dir=Path(env.text(".cache/models", "VOICE_CACHE_DIR")),
            metrics_port=env.integer(metrics_port, "METRICS_PORT", low=0, high=65535),
        )
