"""Phone calls: Twilio's signature, the per-call stream token, TwiML, settings, mu-law and the
resamplers, and the media-stream messages both ways."""

from __future__ import annotations

import base64
import itertools
import json

import numpy as np
import pytest

from gateway.phone import CallTokens, connect_twiml, signature_valid, stream_url, twilio_signature
from gateway.settings import GatewaySettings
from gateway.transports.messages import ProtocolError
from gateway.transports.twilio_messages import (
    Connected,
    Dtmf,
    Mark,
    Media,
    StreamStart,
    StreamStop,
    clear_message,
    mark_message,
    media_message,
    parse_twilio_message,
)
from tools.phone import Played, _stream_from_twiml, replies
from voice.audio import Resampler
from voice.errors import SettingsError
from voice.mulaw import MulawDecoder, MulawEncoder

pytestmark = pytest.mark.unit

# Twilio's published example (its security documentation and helper libraries' tests).
URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = {
    "CallSid": ["CA1234567890ABCDE"],
    "Caller": ["+14158675309"],
    "Digits": ["1234"],
    "From": ["+14158675309"],
    "To": ["+18005551212"],
}


def test_the_signature_matches_twilios_published_example() -> None:
    assert twilio_signature("12345", URL, PARAMS) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert signature_valid("12345", URL, PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")


def test_repeated_parameters_are_signed_as_twilio_signs_them() -> None:
    # Each name's distinct values, sorted (the helper libraries' second vector).
    params = {"Sid": ["CA123"], "SidAccount": ["AC123"], "Digits": ["5678", "1234", "1234"]}
    assert twilio_signature("12345", URL, params) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="


@pytest.mark.parametrize(
    ("token", "url", "params", "signature"),
    [
        ("12345", URL, {**PARAMS, "Digits": ["9999"]}, "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        ("12345", URL + "&x=1", PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        ("other", URL, PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        ("12345", URL, PARAMS, ""),
        ("12345", URL, PARAMS, "x" * 500),
    ],
)
def test_anything_else_does_not_verify(
    token: str, url: str, params: dict[str, list[str]], signature: str
) -> None:
    assert not signature_valid(token, url, params, signature)


def start(call_sid: str, token: str) -> StreamStart:
    return StreamStart("MZ1", call_sid, "AC1", ("inbound",), {"token": token})


def test_a_stream_token_is_good_for_its_own_call_only_and_briefly() -> None:
    tokens = CallTokens("auth-token")
    token = tokens.issue("CA1", now=1000.0)
    assert tokens.accepts(start("CA1", token), now=1001.0)
    assert not tokens.accepts(start("CA2", token), now=1001.0)
    assert not tokens.accepts(start("CA1", token), now=1000.0 + 61)
    assert not tokens.accepts(start("CA1", ""), now=1001.0)
    assert not CallTokens("another-account").accepts(start("CA1", token), now=1001.0)


def test_the_twiml_connects_the_stream_with_the_token() -> None:
    url = stream_url("https://agent.example.com")
    assert url == "wss://agent.example.com/twilio/stream"
    assert stream_url("http://127.0.0.1:8000") == "ws://127.0.0.1:8000/twilio/stream"
    twiml = connect_twiml(url, 'a"b&c')
    assert twiml.startswith('<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream')
    assert twiml.endswith("</Stream></Connect></Response>")
    assert _stream_from_twiml(twiml) == (url, 'a"b&c')


def test_phone_settings() -> None:
    base = {"GATEWAY_TOKENS": "abc"}
    assert GatewaySettings.from_env(base).twilio_auth_token == ""
    on = GatewaySettings.from_env(
        {**base, "TWILIO_AUTH_TOKEN": "t", "GATEWAY_PUBLIC_URL": "https://a.example.com/"}
    )
    assert (on.twilio_auth_token, on.public_url) == ("t", "https://a.example.com")
    with pytest.raises(SettingsError, match="GATEWAY_PUBLIC_URL must be set"):
        GatewaySettings.from_env({**base, "TWILIO_AUTH_TOKEN": "t"})
    for bad in ("agent.example.com", "ftp://a.example.com", "https://a.example.com/voice"):
        with pytest.raises(SettingsError, match="GATEWAY_PUBLIC_URL must be http"):
            GatewaySettings.from_env({**base, "TWILIO_AUTH_TOKEN": "t", "GATEWAY_PUBLIC_URL": bad})


# --------------------------------------------------------------------------- audio


def snr_db(reference: np.ndarray, test: np.ndarray) -> float:
    reference, test = reference.astype(np.float64), test.astype(np.float64)
    return float(10 * np.log10(np.sum(reference**2) / np.sum((reference - test) ** 2)))


def test_mulaw_is_g711() -> None:
    encoder = MulawEncoder()
    samples = np.array([0, 32767, -32768, 1000, -1000], dtype="<i2")
    encoded = encoder.encode(samples.tobytes())
    # G.711: zero is 0xFF, the positive extreme 0x80, the negative extreme 0x00.
    assert encoded[:3] == b"\xff\x80\x00"
    decoded = np.frombuffer(MulawDecoder().decode(encoded), "<i2")
    assert decoded[0] == 0 and decoded[1] > 32000 and decoded[2] < -32000
    assert abs(int(decoded[3]) - 1000) < 40 and abs(int(decoded[4]) + 1000) < 40
    with pytest.raises(ValueError, match="even"):
        encoder.encode(b"\x00")


def band_limited_noise(rate: int, hz: int, seconds: float) -> np.ndarray:
    """Noise with nothing above ``hz`` (no periodicity: an alignment is unambiguous)."""
    rng = np.random.default_rng(20261201)
    narrow = (rng.standard_normal(int(2 * hz * seconds)) * 3000).astype("<i2").tobytes()
    return np.frombuffer(Resampler(2 * hz, rate).process(narrow, last=True), "<i2")


def in_pieces(resampler: Resampler, pcm: bytes, piece_bytes: int) -> np.ndarray:
    out = [resampler.process(pcm[i : i + piece_bytes]) for i in range(0, len(pcm), piece_bytes)]
    return np.frombuffer(b"".join(out) + resampler.process(b"", last=True), "<i2")


def test_the_callers_upsampler_is_exact_and_prompt() -> None:
    """8 -> 16 kHz in 20 ms frames, soxr's low-latency mode: every frame's audio comes out
    with the next frame at the latest, and it is the fixed mode's quality (~70 dB)."""
    wide = band_limited_noise(16000, 3000, 2.0)
    narrow = Resampler(16000, 8000).process(wide.tobytes(), last=True)
    upsampler = Resampler(8000, 16000, low_latency=True)
    lengths = [len(upsampler.process(narrow[i : i + 320])) for i in range(0, 3200, 320)]
    assert lengths[0] < 640 and all(length == 640 for length in lengths[2:])
    result = in_pieces(Resampler(8000, 16000, low_latency=True), narrow, 320)
    assert len(result) == len(wide)
    assert snr_db(wide[800:-800], result[800:-800]) > 60
    with pytest.raises(ValueError, match="only upsamples"):
        Resampler(16000, 8000, low_latency=True)


def test_the_phone_round_trip_keeps_telephone_band_audio() -> None:
    """16 kHz -> 8 kHz mu-law -> 16 kHz in 20 ms pieces, one resampler each way: what the
    agent's audio and the caller's go through. Mu-law alone keeps about 38 dB."""
    original = band_limited_noise(16000, 3000, 2.0)
    down, up = Resampler(16000, 8000), Resampler(8000, 16000, low_latency=True)
    encoder, decoder = MulawEncoder(), MulawDecoder()
    raw = original.tobytes()
    out = bytearray()
    for start in range(0, len(raw), 640):
        out += up.process(decoder.decode(encoder.encode(down.process(raw[start : start + 640]))))
    out += up.process(decoder.decode(encoder.encode(down.process(b"", last=True))), last=True)
    result = np.frombuffer(bytes(out), "<i2")
    assert len(result) == len(original)
    assert snr_db(original[800:-800], result[800:-800]) > 30


def test_chunk_joins_are_seamless() -> None:
    """The agent's audio cut at uneven points gives what one pass gives: no clicks."""
    pcm = band_limited_noise(24000, 3000, 1.0).tobytes()
    whole = np.frombuffer(Resampler(24000, 8000).process(pcm, last=True), "<i2")
    stream = Resampler(24000, 8000)
    cuts = [0, 1234, 2000, 7777, 15000, len(pcm) // 2]
    pieces = [stream.process(pcm[a * 2 : b * 2]) for a, b in itertools.pairwise(cuts)]
    joined = np.frombuffer(b"".join(pieces) + stream.process(b"", last=True), "<i2")
    assert len(joined) == len(whole)
    # Rounding aside (a few steps of 32768), the same samples.
    assert np.max(np.abs(joined.astype(int) - whole.astype(int))) <= 4


# --------------------------------------------------------------------------- messages

# The shapes of Twilio's documentation (Media Streams, WebSocket messages).
START = {
    "event": "start",
    "sequenceNumber": "1",
    "start": {
        "accountSid": "AC" + "0" * 32,
        "streamSid": "MZ18ad3ab5a668481ce02b83e7395059f0",
        "callSid": "CA" + "1" * 32,
        "tracks": ["inbound"],
        "customParameters": {"token": "abc"},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    },
    "streamSid": "MZ18ad3ab5a668481ce02b83e7395059f0",
}


def test_twilios_messages_parse() -> None:
    connected = {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    assert parse_twilio_message(json.dumps(connected)) == Connected("Call")
    started = parse_twilio_message(json.dumps(START))
    assert isinstance(started, StreamStart)
    assert started.call_sid == "CA" + "1" * 32 and started.parameters == {"token": "abc"}
    payload = base64.b64encode(b"\xff" * 160).decode()
    media = {
        "event": "media",
        "sequenceNumber": "3",
        "media": {"track": "inbound", "chunk": "1", "timestamp": "5", "payload": payload},
        "streamSid": "MZ1",
    }
    assert parse_twilio_message(json.dumps(media)) == Media(b"\xff" * 160, "inbound")
    mark = {"event": "mark", "sequenceNumber": "4", "streamSid": "MZ1", "mark": {"name": "r1.1"}}
    assert parse_twilio_message(json.dumps(mark)) == Mark("r1.1")
    dtmf = {
        "event": "dtmf",
        "streamSid": "MZ1",
        "sequenceNumber": "5",
        "dtmf": {"track": "inbound_track", "digit": "#"},
    }
    assert parse_twilio_message(json.dumps(dtmf)) == Dtmf("#")
    stop = {
        "event": "stop",
        "sequenceNumber": "6",
        "streamSid": "MZ1",
        "stop": {"accountSid": "AC1", "callSid": "CA1"},
    }
    assert parse_twilio_message(json.dumps(stop)) == StreamStop()


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", "invalid_json"),
        ("[1, 2]", "invalid_json"),
        ('{"event": "hello"}', "unknown_type"),
        ('{"event": "media"}', "invalid_message"),
        ('{"event": "media", "media": {"payload": "@@@"}}', "invalid_audio"),
        ('{"event": "media", "media": {"payload": 5}}', "invalid_audio"),
        ('{"event": "dtmf", "dtmf": {"digit": "x"}}', "invalid_message"),
        ('{"event": "mark", "mark": {"name": ""}}', "invalid_message"),
        ('{"event": "start", "start": {"streamSid": "MZ1"}}', "invalid_message"),
    ],
)
def test_malformed_messages_are_clear_errors(raw: str, code: str) -> None:
    with pytest.raises(ProtocolError) as raised:
        parse_twilio_message(raw)
    assert raised.value.code == code


def test_another_media_format_is_refused() -> None:
    other = json.loads(json.dumps(START))
    other["start"]["mediaFormat"] = {"encoding": "audio/x-l16", "sampleRate": 16000, "channels": 1}
    with pytest.raises(ProtocolError, match="audio/x-mulaw at 8000 Hz"):
        parse_twilio_message(json.dumps(other))


def test_what_we_send_has_twilios_shapes() -> None:
    media = json.loads(media_message("MZ1", b"\xff\x7f"))
    assert media == {"event": "media", "streamSid": "MZ1", "media": {"payload": "/38="}}
    assert json.loads(mark_message("MZ1", "r1.2")) == {
        "event": "mark",
        "streamSid": "MZ1",
        "mark": {"name": "r1.2"},
    }
    assert json.loads(clear_message("MZ1")) == {"event": "clear", "streamSid": "MZ1"}


def test_the_callers_side_tells_replies_apart_by_their_marks() -> None:
    """tools/phone.py: media belong to the reply whose mark follows them; the answer a call is
    timed by is its last reply."""
    media = [Played("media", at, samples=160) for at in (1.0, 1.1, 2.0, 3.0, 3.1)]
    received = [
        media[0],
        media[1],
        Played("mark", 1.2, name="r1.1"),
        media[2],
        Played("clear", 2.5),  # before media[2]'s mark: it belongs to no reply
        media[3],
        Played("mark", 3.05, name="r2.1"),
        media[4],
        Played("mark", 3.2, name="r2.end"),
    ]
    assert replies(received) == {"r1": media[:2], "r2": media[3:]}
