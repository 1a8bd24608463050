"""Property-based tests: no input, however strange, escapes the documented error paths."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.auth import TokenVerifier, sign_token
from gateway.transports.messages import ProtocolError, Start, Stop, parse_client_message
from services.tts.chunking import SpeakableChunker
from tools.wer import normalize_transcript, word_error_rate
from voice.audio import pcm16_to_float

pytestmark = pytest.mark.unit

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


@given(st.text(max_size=200))
def test_any_text_frame_parses_or_raises_a_protocol_error(raw: str) -> None:
    try:
        message = parse_client_message(raw)
    except ProtocolError as error:
        assert error.code in {
            "invalid_json",
            "unknown_type",
            "invalid_sample_rate",
            "invalid_message",
        }
        return
    assert isinstance(message, Start | Stop)


@given(
    st.dictionaries(
        st.sampled_from(
            ["type", "sample_rate", "output_sample_rate", "voice", "language", "pipeline", "x"]
        ),
        json_values,
        max_size=6,
    )
)
def test_any_json_object_parses_or_raises_a_protocol_error(data: dict[str, Any]) -> None:
    try:
        message = parse_client_message(json.dumps(data))
    except ProtocolError:
        return
    if isinstance(message, Start):
        assert message.sample_rate is None or 8000 <= message.sample_rate <= 48000
        assert message.pipeline in ("", "streaming", "serial")


@given(st.text(max_size=300))
def test_a_forged_or_random_token_is_never_accepted(token: str) -> None:
    verifier = TokenVerifier(("the-one-fixed-token",), "a-secret-of-enough-length")
    assert verifier.verify(token) is None or token == "the-one-fixed-token"


@given(st.text(min_size=1, max_size=30), st.floats(min_value=1, max_value=1e6))
def test_signed_tokens_round_trip_and_tampering_breaks_them(subject: str, ttl: float) -> None:
    secret = "a-secret-of-enough-length"
    token = sign_token(secret, subject, ttl)
    identity = TokenVerifier((), secret).verify(token)
    assert identity is not None and identity.subject == subject
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert TokenVerifier((), secret).verify(tampered) is None
    assert TokenVerifier((), secret + "x").verify(token) is None


@settings(max_examples=200)
@given(st.lists(st.text(max_size=12), max_size=40))
def test_chunking_keeps_every_word_in_order(deltas: list[str]) -> None:
    chunker = SpeakableChunker()
    chunks = [chunk for delta in deltas for chunk in chunker.push(delta)] + chunker.flush()
    assert " ".join(chunks).split() == "".join(deltas).split()
    assert all(chunk == chunk.strip() and chunk for chunk in chunks)


@given(st.binary(max_size=2000))
def test_pcm_decoding_accepts_even_lengths_and_refuses_odd_ones(data: bytes) -> None:
    if len(data) % 2:
        with pytest.raises(ValueError, match="even"):
            pcm16_to_float(data)
    else:
        samples = pcm16_to_float(data)
        assert samples.size == len(data) // 2
        assert samples.size == 0 or float(abs(samples).max()) <= 1.0


@given(st.text(max_size=80), st.text(max_size=80))
def test_wer_is_zero_for_identical_text_and_never_negative(a: str, b: str) -> None:
    assert word_error_rate(a, a) == 0.0
    assert word_error_rate(a, b) >= 0.0
    assert normalize_transcript(normalize_transcript(a)) == normalize_transcript(a)
