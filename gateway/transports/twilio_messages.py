"""Twilio Media Streams messages: what Twilio sends on the stream, and what we send back.

In (JSON text frames): ``connected``, ``start`` (stream and call ids, tracks, custom parameters,
media format), ``media`` (base64 mu-law 8 kHz), ``mark`` (a mark of ours played), ``dtmf`` (a key
pressed) and ``stop``. Out: ``media``, ``mark`` and ``clear``, each naming the stream. A message
that cannot be used raises ProtocolError (the transport logs it and drops it).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from gateway.transports.messages import ProtocolError

MEDIA_ENCODING = "audio/x-mulaw"
MEDIA_RATE = 8000
DTMF_DIGITS = frozenset("0123456789*#")
# A media message carries 20 ms (160 bytes); this allows far larger ones, not absurd ones.
MAX_MEDIA_BYTES = 16000


@dataclass(frozen=True)
class Connected:
    protocol: str


@dataclass(frozen=True)
class StreamStart:
    stream_sid: str
    call_sid: str
    account_sid: str
    tracks: tuple[str, ...]
    parameters: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Media:
    payload: bytes
    track: str


@dataclass(frozen=True)
class Mark:
    name: str


@dataclass(frozen=True)
class Dtmf:
    digit: str


@dataclass(frozen=True)
class StreamStop:
    pass


TwilioMessage = Connected | StreamStart | Media | Mark | Dtmf | StreamStop


def _object(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise ProtocolError(
            "invalid_message", f"a {data.get('event')} message needs a {key!r} object"
        )
    return value


def _string(data: dict[str, Any], key: str, limit: int = 128) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value or len(value) > limit:
        raise ProtocolError("invalid_message", f"{key!r} must be a string of 1-{limit} characters")
    return value


def _start(data: dict[str, Any]) -> StreamStart:
    start = _object(data, "start")
    media_format = start.get("mediaFormat")
    if isinstance(media_format, dict):
        encoding, rate = media_format.get("encoding"), media_format.get("sampleRate")
        if encoding != MEDIA_ENCODING or rate != MEDIA_RATE or media_format.get("channels", 1) != 1:
            raise ProtocolError(
                "invalid_audio",
                f"media must be {MEDIA_ENCODING} at {MEDIA_RATE} Hz mono "
                f"(got {encoding} at {rate} Hz)",
            )
    raw_parameters = start.get("customParameters") or {}
    if not isinstance(raw_parameters, dict):
        raise ProtocolError("invalid_message", "customParameters must be an object")
    parameters = {str(k): str(v) for k, v in raw_parameters.items() if isinstance(v, str | int)}
    tracks = start.get("tracks") or ["inbound"]
    if not isinstance(tracks, list):
        raise ProtocolError("invalid_message", "tracks must be a list")
    return StreamStart(
        stream_sid=_string(start, "streamSid"),
        call_sid=_string(start, "callSid"),
        account_sid=str(start.get("accountSid", "")),
        tracks=tuple(str(track) for track in tracks),
        parameters=parameters,
    )


def _media(data: dict[str, Any]) -> Media:
    media = _object(data, "media")
    payload = media.get("payload")
    if not isinstance(payload, str) or len(payload) > MAX_MEDIA_BYTES * 4 // 3 + 4:
        raise ProtocolError("invalid_audio", "media.payload must be base64 mu-law audio")
    try:
        audio = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError("invalid_audio", "media.payload is not valid base64") from None
    return Media(audio, str(media.get("track", "inbound")))


def _dtmf(data: dict[str, Any]) -> Dtmf:
    digit = _object(data, "dtmf").get("digit")
    if not isinstance(digit, str) or digit not in DTMF_DIGITS:
        raise ProtocolError("invalid_message", "dtmf.digit must be one of 0-9, * and #")
    return Dtmf(digit)


def parse_twilio_message(raw: str) -> TwilioMessage:
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as error:
        raise ProtocolError(
            "invalid_json", f"stream messages must be JSON objects: {error}"
        ) from None
    if not isinstance(data, dict):
        raise ProtocolError("invalid_json", "stream messages must be JSON objects")
    kind = data.get("event")
    if kind == "media":
        return _media(data)
    if kind == "mark":
        return Mark(_string(_object(data, "mark"), "name"))
    if kind == "dtmf":
        return _dtmf(data)
    if kind == "start":
        return _start(data)
    if kind == "connected":
        return Connected(str(data.get("protocol", "")))
    if kind == "stop":
        return StreamStop()
    raise ProtocolError("unknown_type", f"unknown stream event {kind!r}")


def _message(kind: str, stream_sid: str, **fields: Any) -> str:
    return json.dumps({"event": kind, "streamSid": stream_sid, **fields}, separators=(",", ":"))


def media_message(stream_sid: str, mulaw: bytes) -> str:
    payload = base64.b64encode(mulaw).decode("ascii")
    return _message("media", stream_sid, media={"payload": payload})


def mark_message(stream_sid: str, name: str) -> str:
    return _message("mark", stream_sid, mark={"name": name})


def clear_message(stream_sid: str) -> str:
    return _message("clear", stream_sid)
