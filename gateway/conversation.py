"""Turn taking: the session's state machine, driven by stt's events (see docs/gateway.md).

```
              speech_started                final transcript
  LISTENING ─────────────────▶ USER_SPEAKING ─────────────────▶ THINKING
      ▲                          │  ▲   (early turn held from the pause)    │ first audio sent
      │ playback over            │  └──────────────── barge-in ◀──┐        ▼
      └──────────────────────────┴──────────────────────────── AGENT_SPEAKING
```

- **Early thinking**: the transcript decoded at the user's first pause starts a held turn; the
  final transcript releases it when its text is the same, and it is dropped silently if the
  user goes on speaking.
- **Barge-in**: speech that starts while the agent is thinking or speaking interrupts it once
  it has lasted ``barge_in_s``; a shorter sound (a cough, "mm-hm") is ignored, transcript and
  all, so it neither stops the agent nor starts a turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway.metrics import GatewayMetrics
from gateway.protocol import event
from gateway.timeline import Timeline
from gateway.turn import AgentTurn, TurnChannels
from voice.v1 import stt_pb2
from voice.wer import normalize_transcript

log = logging.getLogger(__name__)

CANCEL_TIMEOUT_S = 1.0


class State(enum.Enum):
    LISTENING = "listening"
    USER_SPEAKING = "user_speaking"
    THINKING = "thinking"
    AGENT_SPEAKING = "agent_speaking"


@dataclass(frozen=True)
class ConversationConfig:
    session_id: str
    serial: bool
    barge_in_s: float
    early_thinking: bool
    turn_timeout_s: float


def _same_text(a: str, b: str) -> bool:
    return normalize_transcript(a) == normalize_transcript(b)


class Conversation:
    def __init__(
        self,
        config: ConversationConfig,
        channels: TurnChannels,
        arrival_time: Callable[[float], float],
        metrics: GatewayMetrics,
        unavailable: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.config = config
        self._unavailable = unavailable
        self.state = State.LISTENING
        self.turn: AgentTurn | None = None
        self._channels = channels
        self._arrival_time = arrival_time
        self._metrics = metrics
        self._task: asyncio.Task[None] | None = None
        self._turns = 0
        self._attempts = 0
        self._end_of_turn_at: float | None = None
        # The utterance that began while the agent was busy, and the timer that makes it a
        # barge-in once it has lasted long enough.
        self._overlapping: str | None = None
        self._barge_in: asyncio.TimerHandle | None = None
        self._listening_again: asyncio.TimerHandle | None = None
        self._background: set[asyncio.Task[None]] = set()
        metrics.session_states.labels(self.state.value).inc()

    @property
    def next_turn_id(self) -> str:
        return f"{self.config.session_id}-{self._turns + 1}"

    # ----------------------------------------------------------------- stt events

    async def on_speech_event(self, speech: stt_pb2.SpeechEvent) -> None:
        kind = speech.kind
        if kind in (
            stt_pb2.SpeechEvent.KIND_SPEECH_STARTED,
            stt_pb2.SpeechEvent.KIND_SPEECH_RESUMED,
        ):
            if kind == stt_pb2.SpeechEvent.KIND_SPEECH_RESUMED:
                await self._discard_early_turn()
            if self._agent_busy():
                self._overlapping = speech.utterance_id
                self._arm_barge_in()
            else:
                await self._discard_early_turn()
                self._set_state(State.USER_SPEAKING)
        elif kind == stt_pb2.SpeechEvent.KIND_PAUSE:
            self._disarm_barge_in()
        elif kind == stt_pb2.SpeechEvent.KIND_END_OF_TURN:
            self._disarm_barge_in()
            self._end_of_turn_at = self._arrival_time(speech.stream_time_s)

    def forget_speech(self) -> None:
        """The stt stream broke: what it said about speech in progress no longer holds (a new
        stream starts afresh, with its own utterance ids and stream times)."""
        self._disarm_barge_in()
        self._overlapping = None
        self._end_of_turn_at = None
        if self.state is State.USER_SPEAKING or self.turn is None:
            self._set_state(State.LISTENING)

    def ignores(self, transcript: stt_pb2.Transcript) -> bool:
        """Whether the transcript is of a short sound made while the agent spoke (a cough)."""
        if not transcript.utterance_id or transcript.utterance_id != self._overlapping:
            return False
        duration = transcript.speech_end_s - transcript.speech_start_s
        if not self._agent_busy() or duration >= self.config.barge_in_s:
            return False
        if transcript.final:
            log.info(
                "%s: ignored a %.2fs sound while the agent spoke", self.config.session_id, duration
            )
            self._overlapping = None
        return True

    async def on_transcript(self, transcript: stt_pb2.Transcript) -> None:
        text = transcript.text.strip()
        if transcript.at_pause and text and self.config.early_thinking and not self.config.serial:
            if self.state is not State.USER_SPEAKING:
                self._set_state(State.USER_SPEAKING)
            await self._start_turn(transcript, early=True)
        elif transcript.final:
            self._overlapping = None
            turn = self.turn
            if turn is not None and turn.early and turn.held and _same_text(turn.text, text):
                self._confirm(turn.timeline)
                turn.early = False
                self._metrics.early_starts.labels("confirmed").inc()
                self._set_state(State.THINKING)
                await turn.release()
            elif text:
                await self._discard_early_turn()
                await self._start_turn(transcript, early=False)
                self._set_state(State.THINKING)
            else:
                await self._discard_early_turn()
                self._set_state(State.LISTENING)

    # ----------------------------------------------------------------- turns

    def _confirm(self, timeline: Timeline) -> None:
        self._turns += 1
        timeline.mark("stt_complete")
        if self._end_of_turn_at is not None:
            timeline.mark("end_of_turn", self._end_of_turn_at)
            self._end_of_turn_at = None

    async def _start_turn(self, transcript: stt_pb2.Transcript, *, early: bool) -> None:
        await self.cancel_turn()
        down = self._unavailable()
        if down is not None:
            if not early:
                await self._channels.send_error(
                    "upstream_unavailable",
                    f"the {down} service is unavailable; this turn cannot be answered",
                    stage=down,
                )
                self._set_state(State.LISTENING)
            return
        self._attempts += 1
        timeline = Timeline(self._arrival_time(transcript.speech_end_s))
        number = self._turns + 1
        if not early:
            self._confirm(timeline)
        sid = self.config.session_id
        turn = AgentTurn(
            turn_id=f"{sid}-{number}",
            stage_id=f"{sid}-a{self._attempts}",
            number=number,
            text=transcript.text.strip(),
            timeline=timeline,
            utterance_id=transcript.utterance_id,
            session_id=sid,
            early=early,
            serial=self.config.serial,
            channels=self._channels,
            on_first_audio=self._on_first_audio,
            turn_timeout_s=self.config.turn_timeout_s,
        )
        self.turn = turn
        self._task = asyncio.create_task(self._run(turn), name=turn.stage_id)

    async def _run(self, turn: AgentTurn) -> None:
        try:
            await turn.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("turn %s failed", turn.turn_id)
            self._metrics.turns.labels("error").inc()
            await self._channels.send_error(
                "turn_failed", "the agent could not answer", turn_id=turn.turn_id
            )
            self._set_state(State.LISTENING)
            return
        self._metrics.turns.labels("error" if turn.failed else "complete").inc()
        self._metrics.observe_waterfall(turn.timeline.waterfall_ms())
        remaining = turn.playback_ends_at() - time.perf_counter()
        loop = asyncio.get_running_loop()
        self._listening_again = loop.call_later(max(remaining, 0.0), self._playback_over, turn)

    def _on_first_audio(self, turn: AgentTurn) -> None:
        if turn is self.turn:
            self._set_state(State.AGENT_SPEAKING)

    def _playback_over(self, turn: AgentTurn) -> None:
        if turn is self.turn and self.state is State.AGENT_SPEAKING:
            self._set_state(State.LISTENING)

    async def _discard_early_turn(self) -> None:
        if self.turn is not None and self.turn.early:
            self._metrics.early_starts.labels("discarded").inc()
            await self.cancel_turn()

    async def cancel_turn(self) -> bool:
        """Stop the current turn. The client hears of it only if it saw or heard any of it.

        Returns whether the client was told (``interrupted``).
        """
        task, turn = self._task, self.turn
        self._task, self.turn = None, None
        if self._listening_again is not None:
            self._listening_again.cancel()
        if task is None or turn is None:
            return False
        audible = not turn.early and (not task.done() or turn.playing())
        turn.discarded = turn.early
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), CANCEL_TIMEOUT_S)
        if audible:
            self._metrics.interruptions.inc()
            self._metrics.turns.labels("interrupted").inc()
            await self._channels.send_text(event("interrupted", turn_id=turn.turn_id))
        return audible

    async def drain(self, timeout_s: float) -> None:
        """Let the current turn finish (for a graceful shutdown), at most ``timeout_s``."""
        if self._task is not None and not self._task.done():
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._task), timeout_s)

    async def close(self) -> None:
        self._disarm_barge_in()
        await self.cancel_turn()
        self._metrics.session_states.labels(self.state.value).dec()

    # ----------------------------------------------------------------- barge-in and state

    def _agent_busy(self) -> bool:
        turn = self.turn
        if turn is None or turn.early:
            return False
        return self.state in (State.THINKING, State.AGENT_SPEAKING) or turn.playing()

    def _arm_barge_in(self) -> None:
        if self._barge_in is None:
            loop = asyncio.get_running_loop()
            self._barge_in = loop.call_later(self.config.barge_in_s, self._barge_in_now)

    def _disarm_barge_in(self) -> None:
        if self._barge_in is not None:
            self._barge_in.cancel()
            self._barge_in = None

    def _barge_in_now(self) -> None:
        self._barge_in = None
        self._overlapping = None
        self._set_state(State.USER_SPEAKING)
        task = asyncio.get_running_loop().create_task(self._interrupt(time.perf_counter()))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _interrupt(self, decided_at: float) -> None:
        if await self.cancel_turn():
            self._metrics.barge_in.observe(time.perf_counter() - decided_at)

    def _set_state(self, state: State) -> None:
        if state is self.state:
            return
        log.debug("%s: %s -> %s", self.config.session_id, self.state.value, state.value)
        self._metrics.session_states.labels(self.state.value).dec()
        self._metrics.session_states.labels(state.value).inc()
        self.state = state
