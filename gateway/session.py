"""One client session: wiring only.

A transport (the client), three stage links (stt, llm, tts), the arrival clock, and the turn
machine with its driver. The client's audio goes to stt as it arrives; the stages' responses
become turn-machine events; the machine's actions come back out through the driver. See
docs/gateway.md for the path of the data and the machine's states.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

from gateway.arrival import ArrivalClock
from gateway.driver import StageSenders, TurnDriver
from gateway.echo import EchoTransport
from gateway.links import StageFailure, StageLink
from gateway.metrics import GatewayMetrics
from gateway.settings import GatewaySettings
from gateway.stage_events import from_llm, from_stt, from_tts
from gateway.transports.base import (
    ClientAudio,
    ClientDigits,
    ClientPlayed,
    ClientStop,
    StartRequest,
    Transport,
)
from gateway.turns import events as ev
from gateway.turns.barge_in import phrases_of, words_of
from gateway.turns.machine import TurnMachine
from gateway.turns.policy import (
    BargeIn,
    CheckIn,
    EarlyThinking,
    EndOfTurn,
    Playout,
    ReplyStyle,
    TurnPolicy,
)
from gateway.upstream import Upstreams
from voice.v1 import audio_pb2, llm_pb2, stt_pb2, tts_pb2

log = logging.getLogger(__name__)

# The start field each stage may refuse, and the error code the client gets for it.
REFUSED_FIELD = {"stt": ("language", "unsupported_language"), "tts": ("voice", "unsupported_voice")}


@dataclass
class SessionOptions:
    language: str
    voice: str
    serial: bool
    early_thinking: bool
    end_of_turn: str


def new_session_id() -> str:
    return uuid.uuid4().hex[:12]


class Session:
    def __init__(
        self,
        session_id: str,
        transport: Transport,
        upstreams: Upstreams,
        settings: GatewaySettings,
        metrics: GatewayMetrics,
    ) -> None:
        self.id = session_id
        # With echo cancelling, the transport is seen through: the agent's audio that goes out
        # is the far end the microphone's audio is cleaned of (gateway/echo.py).
        self._echo = EchoTransport(transport, time.perf_counter) if settings.echo_cancel else None
        self._transport: Transport = transport if self._echo is None else self._echo
        self._upstreams = upstreams
        self._settings = settings
        self._metrics = metrics
        self._options = SessionOptions(
            "", "", settings.pipeline == "serial", settings.early_thinking, settings.end_of_turn
        )
        self._clock = ArrivalClock(transport.input_rate)
        self._links: dict[str, StageLink[Any, Any]] = {}
        self._driver: TurnDriver | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._failure: asyncio.Future[StageFailure] = asyncio.get_running_loop().create_future()

    # ----------------------------------------------------------------- the client

    async def run(self) -> None:
        await self._ready()
        reader = asyncio.create_task(self._read_client())
        try:
            waitables: list[asyncio.Future[Any]] = [reader, self._failure]
            done, _ = await asyncio.wait(waitables, return_when=asyncio.FIRST_COMPLETED)
            if self._failure in done:
                failure = self._failure.result()
                log.warning("session %s: upstream failed: %s", self.id, failure)
                await self.send_error(
                    "upstream_unavailable",
                    f"the {failure.stage} service is unavailable ({failure.code.name}); "
                    "please reconnect shortly",
                )
                await self.close(code=1011, reason="upstream unavailable")
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            await self._stop()
        if reader.done() and not reader.cancelled() and reader.exception() is not None:
            raise reader.exception()  # type: ignore[misc]

    async def _ready(self) -> None:
        transport = self._transport
        await transport.send_event(
            "ready",
            session_id=self.id,
            sample_rate=transport.input_rate,
            output_sample_rate=transport.output_rate,
            codec=transport.codec,
        )

    async def _read_client(self) -> None:
        while (item := await self._transport.receive()) is not None:
            if isinstance(item, ClientStop):
                return
            if isinstance(item, StartRequest):
                await self._start(item)
            elif isinstance(item, ClientAudio):
                self._audio(item)
            elif isinstance(item, ClientDigits):
                self._digits(item)
            elif isinstance(item, ClientPlayed):
                self._post(ev.PlaybackReported(item.turn_id, item.ms / 1000))

    async def _start(self, request: StartRequest) -> None:
        if self._links:
            await self.send_error("already_started", "start must come before any audio")
            return
        self._transport.configure(request)
        options = self._options
        options.language, options.voice = request.language, request.voice
        if request.pipeline:
            options.serial = request.pipeline == "serial"
        if request.early_thinking is not None:
            options.early_thinking = request.early_thinking
        options.end_of_turn = request.end_of_turn or options.end_of_turn
        self._open_links()
        # The stages check what they serve (stt the language, tts the voice) before `ready`.
        for code, text in await self._accepted():
            await self.send_error(code, text)
        self._start_links()
        await self._ready()

    def _audio(self, audio: ClientAudio) -> None:
        if not self._links:
            self._open_links()
            self._start_links()
        if self._echo is not None:
            self._echo.clean(audio, self._to_stt)
        else:
            self._to_stt(audio.pcm, audio.at)

    def _to_stt(self, pcm: bytes, at: float) -> None:
        self._clock.record(len(pcm) // 2, at)
        chunk = audio_pb2.AudioChunk(pcm=pcm, sample_rate=self._transport.input_rate)
        self._links["stt"].send(stt_pb2.TranscribeRequest(audio=chunk))

    def _digits(self, digits: ClientDigits) -> None:
        """Keys pressed on a phone: a user turn of their own, ``[pressed 1 2 3]`` (what the
        agent and its tools read), as if the caller had said it; it interrupts the agent."""
        if not self._links:
            return
        text = f"[pressed {' '.join(digits.digits)}]"
        log.info("session %s: the caller pressed %d key(s)", self.id, len(digits.digits))
        self._post(
            ev.TranscriptReceived(
                "", text, final=True, at_pause=False, duration_s=0.0, speech_end_at=digits.at
            )
        )

    async def send_error(self, code: str, message: str, **fields: Any) -> None:
        self._metrics.errors.labels(code).inc()
        await self._transport.send_event("error", code=code, message=message, **fields)

    # ----------------------------------------------------------------- the stages

    def _open_links(self) -> None:
        up = self._upstreams
        self._links = {
            "stt": self._link("stt", up.opener("stt"), self._stt_config, self._stt_event),
            "llm": self._link("llm", up.opener("llm"), self._llm_config, from_llm),
            "tts": self._link("tts", up.opener("tts"), self._tts_config, from_tts),
        }
        for link in self._links.values():
            link.open()

    def _link(
        self, stage: str, open_call: Any, config: Any, to_event: Callable[[Any], ev.Event | None]
    ) -> StageLink[Any, Any]:
        async def handle(response: Any) -> None:
            event = to_event(response)
            if event is not None:
                self._post(event)

        async def down(failure: StageFailure) -> None:
            await self.send_error(
                "upstream_unavailable",
                f"the {stage} service is unavailable ({failure.code.name}); retrying",
                stage=stage,
            )
            self._post(ev.StageDown(stage))
            if stage == "stt":
                self._post(ev.SpeechForgotten())

        async def up() -> None:
            log.info("session %s: %s stream reopened", self.id, stage)
            self._post(ev.StageUp(stage))

        async def serving() -> bool:
            return await self._upstreams.serving(stage)

        return StageLink(stage, open_call, config, serving, handle, down, up, name=self.id)

    def _stt_config(self) -> stt_pb2.TranscribeRequest:
        # The new stream's time 0 is the next sample sent to it.
        self._clock.restart(self._transport.input_rate)
        end_of_turn = self._end_of_turn()
        config = stt_pb2.TranscribeConfig(
            session_id=self.id,
            sample_rate=self._transport.input_rate,
            language=self._options.language,
            # Deciding at the pause itself, the gateway asks stt to wait longer for the rest.
            end_of_turn_ms=end_of_turn.max_silence_ms if end_of_turn.decides_at_pause else 0,
        )
        return stt_pb2.TranscribeRequest(config=config)

    def _llm_config(self) -> llm_pb2.ConverseRequest:
        return llm_pb2.ConverseRequest(config=llm_pb2.ConverseConfig(session_id=self.id))

    def _tts_config(self) -> tts_pb2.SynthesizeRequest:
        config = tts_pb2.SynthesizeConfig(
            session_id=self.id,
            sample_rate=self._transport.output_rate,
            voice=self._options.voice or self._settings.agent_voice,
        )
        return tts_pb2.SynthesizeRequest(config=config)

    async def _accepted(self) -> list[tuple[str, str]]:
        """Wait until stt and tts have accepted their configs.

        A stage that refuses the start's language (stt) or voice (tts) gets its stream opened
        again with its default, and the refusal is returned as an error (code, message) for
        the client; the rest of the start applies. Any other refusal is left to the link (it
        ends the session); a stage that cannot be reached is waited for as always.
        """
        refusals: list[tuple[str, str]] = []
        pending = ["stt", "tts"]
        while pending:
            reasons = await asyncio.gather(*(self._links[s].refusal() for s in pending))
            retry = []
            for stage, reason in zip(pending, reasons, strict=True):
                field, code = REFUSED_FIELD[stage]
                if reason is None or not getattr(self._options, field):
                    continue
                log.info("session %s: %s refused the %s: %s", self.id, stage, field, reason)
                refusals.append((code, f"{reason}; the session goes on with the default {field}"))
                setattr(self._options, field, "")
                self._links[stage].open()
                retry.append(stage)
            pending = retry
        return refusals

    def _end_of_turn(self) -> EndOfTurn:
        settings = self._settings
        return EndOfTurn(
            self._options.end_of_turn,
            max_silence_ms=settings.end_of_turn_max_ms,
            short_silence_ms=settings.end_of_turn_short_ms,
            threshold=settings.end_of_turn_threshold,
        )

    def _barge_in(self) -> BargeIn:
        settings = self._settings
        longest = settings.barge_in_max_backchannel_ms
        return BargeIn(
            settings.barge_in_ms / 1000,
            # 0: decided by time alone, as before (the agent plays on meanwhile).
            max_backchannel_s=longest / 1000 if longest else None,
            duck=bool(longest),
            duck_gain=settings.barge_in_duck_gain,
            backchannels=words_of(settings.backchannels),
            interrupts=phrases_of(settings.interrupt_words),
            echo_overlap=settings.barge_in_echo_overlap,
        )

    def _start_links(self) -> None:
        options = self._options
        policy = TurnPolicy(
            session_id=self.id,
            early_thinking=EarlyThinking(options.early_thinking),
            barge_in=self._barge_in(),
            playout=Playout(self._settings.playout_lead_ms / 1000),
            check_in=CheckIn(
                self._settings.check_in_ms / 1000,
                self._settings.check_in_text,
                self._settings.check_in_then,
            ),
            style=ReplyStyle(options.serial),
            stage_timeout_s=self._settings.turn_timeout_s,
            end_of_turn=self._end_of_turn(),
        )
        links = self._links
        senders = StageSenders(links["stt"].send, links["llm"].send, links["tts"].send)
        self._driver = TurnDriver(TurnMachine(policy), self._transport, senders, self._metrics)
        self._tasks = [asyncio.create_task(self._driver.run(), name=f"driver-{self.id}")]
        self._tasks += [link.start() for link in links.values()]
        for task in self._tasks:
            task.add_done_callback(self._task_ended)

    def _task_ended(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled() or self._failure.done():
            return
        error = task.exception()
        if isinstance(error, BaseException):
            log.error("session %s: %s failed", self.id, task.get_name(), exc_info=error)
            self._failure.set_result(StageFailure("gateway", grpc.StatusCode.INTERNAL, str(error)))
        elif isinstance(task.result(), StageFailure):
            self._failure.set_result(task.result())

    def _post(self, event: ev.Event) -> None:
        if self._driver is not None:
            self._driver.post(event)

    def _stt_event(self, response: stt_pb2.TranscribeResponse) -> ev.Event | None:
        return from_stt(response, self._clock.arrival_time)

    # ----------------------------------------------------------------- the end

    async def _stop(self) -> None:
        """Stop everything, whatever failed before: the links always close."""
        if self._echo is not None:
            await self._echo.stop()
        try:
            if self._tasks:
                self._tasks[0].cancel()  # the driver
                await asyncio.gather(self._tasks[0], return_exceptions=True)
            if self._driver is not None:
                # The machine cancels what still runs (its requests go out before links close).
                await self._driver.close()
        except Exception:
            log.exception("session %s: closing the turn machine failed", self.id)
        finally:
            for link in self._links.values():
                try:
                    await link.close()
                except Exception:
                    log.exception("session %s: closing the %s link failed", self.id, link.stage)

    async def drain(self, timeout_s: float) -> None:
        """Let the current reply finish, then close the socket with 1001 (going away)."""
        if self._driver is not None:
            await self._driver.wait_idle(timeout_s)
        await self.close(code=1001, reason="the gateway is shutting down")

    async def close(self, *, code: int, reason: str) -> None:
        """Close the client's socket (the session's run then ends)."""
        await self._transport.close(code=code, reason=reason)
