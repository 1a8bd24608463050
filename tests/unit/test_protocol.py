"""The client protocol: JSON control messages in, JSON events out."""

from __future__ import annotations

import json

import pytest

from gateway.transports.messages import (
    VALID_RATES,
    ProtocolError,
    Start,
    Stop,
    event,
    parse_client_message,
)

pytestmark = pytest.mark.unit


def error_code(raw: str) -> str:
    with pytest.raises(ProtocolError) as caught:
        parse_client_message(raw)
    return caught.value.code


def test_bare_start_uses_defaults() -> None:
    assert parse_client_message('{"type": "start"}') == Start()


def test_start_with_every_field() -> None:
    raw = json.dumps(
        {
            "type": "start",
            "sample_rate": 48000,
            "output_sample_rate": 22050,
            "voice": "amy",
            "language": "en",
            "extra": "ignored",
        }
    )
    assert parse_client_message(raw) == Start(48000, 22050, "amy", "en")


def test_start_with_pipeline_early_thinking_and_codec() -> None:
    raw = json.dumps(
        {"type": "start", "pipeline": "serial", "early_thinking": False, "codec": "opus"}
    )
    assert parse_client_message(raw) == Start(pipeline="serial", early_thinking=False, codec="opus")


@pytest.mark.parametrize(
    ("field", "value"),
    [("pipeline", "fast"), ("early_thinking", "yes"), ("early_thinking", 1), ("codec", "mp3")],
)
def test_bad_choices_are_invalid_messages(field: str, value: object) -> None:
    assert error_code(json.dumps({"type": "start", field: value})) == "invalid_message"


def test_opus_needs_an_opus_output_rate() -> None:
    raw = json.dumps({"type": "start", "codec": "opus", "output_sample_rate": 22050})
    assert error_code(raw) == "invalid_sample_rate"
    ok = json.dumps({"type": "start", "codec": "opus", "output_sample_rate": 48000})
    assert parse_client_message(ok) == Start(output_sample_rate=48000, codec="opus")


def test_null_fields_mean_defaults() -> None:
    raw = '{"type": "start", "sample_rate": null, "voice": null, "language": null}'
    assert parse_client_message(raw) == Start()


@pytest.mark.parametrize("rate", VALID_RATES)
def test_every_valid_rate_is_accepted(rate: int) -> None:
    message = parse_client_message(json.dumps({"type": "start", "sample_rate": rate}))
    assert message == Start(sample_rate=rate)


def test_stop() -> None:
    assert parse_client_message('{"type": "stop"}') == Stop()


@pytest.mark.parametrize("raw", ["", "not json", "{", '{"type": "start"', "{'type': 'start'}"])
def test_invalid_json(raw: str) -> None:
    assert error_code(raw) == "invalid_json"


@pytest.mark.parametrize("raw", ["[]", '["start"]', '"start"', "42", "null", "true", "NaN"])
def test_non_object_json(raw: str) -> None:
    assert error_code(raw) == "invalid_json"


def test_deeply_nested_json_is_an_error_not_a_crash() -> None:
    assert error_code("[" * 100_000 + "]" * 100_000) == "invalid_json"


def test_huge_integer_is_an_error_not_a_crash() -> None:
    raw = '{"type": "start", "sample_rate": ' + "1" * 5000 + "}"
    assert error_code(raw) == "invalid_json"


@pytest.mark.parametrize("raw", ["{}", '{"type": "Start"}', '{"type": "audio"}', '{"type": 1}'])
def test_unknown_type(raw: str) -> None:
    assert error_code(raw) == "unknown_type"


@pytest.mark.parametrize(
    "rate", [0, -16000, 7999, 16001, 96000, 16000.0, "16000", True, False, [16000], {}]
)
@pytest.mark.parametrize("field", ["sample_rate", "output_sample_rate"])
def test_bad_sample_rates(field: str, rate: object) -> None:
    assert error_code(json.dumps({"type": "start", field: rate})) == "invalid_sample_rate"


@pytest.mark.parametrize(
    ("field", "value"),
    [("voice", 7), ("voice", "v" * 65), ("language", ["en"]), ("language", "l" * 17)],
)
def test_bad_text_fields(field: str, value: object) -> None:
    assert error_code(json.dumps({"type": "start", field: value})) == "invalid_message"


def test_text_fields_at_their_limits_are_accepted() -> None:
    raw = json.dumps({"type": "start", "voice": "v" * 64, "language": "l" * 16})
    assert parse_client_message(raw) == Start(voice="v" * 64, language="l" * 16)


def test_protocol_error_is_a_value_error_with_a_message() -> None:
    with pytest.raises(ValueError, match="sample_rate must be one of 8000"):
        parse_client_message('{"type": "start", "sample_rate": 5}')


def test_event_is_compact_json_with_the_type_first() -> None:
    text = event("transcript", text="hi there", final=True, n=3)
    assert text == '{"type":"transcript","text":"hi there","final":true,"n":3}'
    assert json.loads(event("ready")) == {"type": "ready"}


def test_event_escapes_text() -> None:
    text = event("error", message='bad "quote"\n')
    assert json.loads(text) == {"type": "error", "message": 'bad "quote"\n'}
