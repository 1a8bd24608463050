"""The shape of a speech engine: one speakable chunk of text in, a stream of PCM16 audio out.

Every engine, local or remote, has the same asynchronous face, so the turn pipeline, the
fallback chain and the test fakes share one shape:

- ``stream(text, voice)`` yields PCM16 mono pieces at ``sample_rate`` as they are made. It must
  never block the event loop (a local model runs on a worker thread, a remote one over a
  socket). Closing the iterator early (``aclose()``, or cancelling the task that iterates it)
  stops the synthesis at once and frees what it holds.
- A failure before the first piece raises :class:`~voice.errors.EngineError` (or an
  ``OSError``/``TimeoutError`` from the network); the chain then tries the next engine.
- ``prepare()`` is a hint that a chunk will soon be asked for: an engine with a network
  connection opens it now, so the handshake is done by the time the text is. It never raises.
- ``available()`` is False while an engine knows it cannot work (a remote service that just
  failed), so the chain skips it without paying for another failure.
- ``voice`` is the session's voice name ("" for the engine's own). An engine that has voices
  says which it speaks with ``serves_voice(voice)`` and describes them in ``voices`` (see
  :func:`serves`); the chain gives a turn only to engines that serve its voice.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Protocol


class SpeechEngine(Protocol):
    name: str
    sample_rate: int

    def stream(self, text: str, voice: str = "") -> AsyncGenerator[bytes, None]: ...

    def prepare(self) -> None: ...

    def available(self) -> bool: ...

    async def aclose(self) -> None: ...


def serves(engine: SpeechEngine, voice: str) -> bool:
    """Whether ``engine`` can speak in ``voice``. Every engine serves "" (its own voice); an
    engine without ``serves_voice`` (the instant tone) takes any name, having no voices."""
    if not voice:
        return True
    check = getattr(engine, "serves_voice", None)
    return True if check is None else bool(check(voice))


def voices(engine: SpeechEngine) -> str:
    """What voices an engine speaks, for error messages."""
    return str(getattr(engine, "voices", "any voice name (it has no voices)"))
