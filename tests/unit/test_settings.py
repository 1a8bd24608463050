"""The settings loader: defaults, blanks, aliases' order, range checks, every problem at once.

Shown through the stt and gateway settings; each service's own rules are in its
test_<service>_settings.py.
"""

from __future__ import annotations

import pytest

from gateway.settings import GatewaySettings
from services.stt.settings import SttSettings
from voice.errors import SettingsError
from voice.settings import Env

pytestmark = pytest.mark.unit

SECRET = "s" * 16


def problems(error: pytest.ExceptionInfo[SettingsError]) -> list[str]:
    lines = str(error.value).splitlines()
    return [line.strip() for line in lines[1:]]


def test_gateway_defaults_with_a_token() -> None:
    settings = GatewaySettings.from_env({"GATEWAY_TOKENS": "abc"})
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.tokens == ("abc",)
    assert settings.token_secret == ""
    assert settings.allowed_origins == ("*",)
    assert (settings.input_sample_rate, settings.output_sample_rate) == (16000, 24000)


def test_values_are_read_and_stripped() -> None:
    settings = SttSettings.from_env(
        {"STT_LISTEN": " 0.0.0.0:9000 ", "STT_VAD_THRESHOLD": "0.7", "LOG_LEVEL": "DEBUG"}
    )
    assert settings.listen == "0.0.0.0:9000"
    assert settings.vad_threshold == 0.7
    assert settings.common.log_level == "DEBUG"


def test_blank_values_mean_the_default() -> None:
    assert SttSettings.from_env({"STT_PAUSE_MS": "", "STT_DEVICE": "   "}).pause_ms == 160


def test_every_problem_is_listed_in_one_error() -> None:
    environ = {
        "STT_DEVICE": "tpu",
        "STT_CPU_THREADS": "many",
        "STT_VAD_THRESHOLD": "2",
        "STT_LISTEN": "nohost",
        "STT_MAX_UTTERANCE_S": "soon",
        "LOG_LEVEL": "LOUD",
    }
    with pytest.raises(SettingsError) as error:
        SttSettings.from_env(environ)
    assert str(error.value).startswith("invalid stt settings:")
    found = problems(error)
    assert len(found) == len(environ)
    for name in environ:
        assert any(line.startswith(name) for line in found), (name, found)


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf"])
def test_non_finite_numbers_are_refused(value: str) -> None:
    with pytest.raises(SettingsError, match="STT_VAD_THRESHOLD"):
        SttSettings.from_env({"STT_VAD_THRESHOLD": value})


@pytest.mark.parametrize("value", ["1.5", "1e3", "ten", "0x10"])
def test_integers_must_be_whole_numbers(value: str) -> None:
    with pytest.raises(SettingsError, match=r"STT_PAUSE_MS=.*expected a whole number"):
        SttSettings.from_env({"STT_PAUSE_MS": value})


@pytest.mark.parametrize("address", ["localhost", ":50051", "host:", "host:port", "host:-1"])
def test_addresses_need_host_and_port(address: str) -> None:
    with pytest.raises(SettingsError, match=r"STT_LISTEN=.*expected host:port"):
        SttSettings.from_env({"STT_LISTEN": address})


def test_ipv6_address_is_accepted() -> None:
    assert SttSettings.from_env({"STT_LISTEN": "[::1]:50051"}).listen == "[::1]:50051"


def test_gateway_needs_tokens_or_a_secret() -> None:
    with pytest.raises(SettingsError, match="set GATEWAY_TOKENS or GATEWAY_TOKEN_SECRET"):
        GatewaySettings.from_env({})
    with pytest.raises(SettingsError, match="set GATEWAY_TOKENS or GATEWAY_TOKEN_SECRET"):
        GatewaySettings.from_env({"GATEWAY_TOKENS": " , "})
    assert GatewaySettings.from_env({"GATEWAY_TOKEN_SECRET": SECRET}).token_secret == SECRET
    assert GatewaySettings.from_env({"GATEWAY_TOKENS": "a, b"}).tokens == ("a", "b")


def test_gateway_secret_must_be_at_least_16_characters() -> None:
    with pytest.raises(SettingsError, match="at least 16 characters"):
        GatewaySettings.from_env({"GATEWAY_TOKEN_SECRET": SECRET[:-1]})
    with pytest.raises(SettingsError, match="at least 16 characters"):
        GatewaySettings.from_env({"GATEWAY_TOKEN_SECRET": "short", "GATEWAY_TOKENS": "a"})


def test_gateway_ranges() -> None:
    with pytest.raises(SettingsError) as error:
        GatewaySettings.from_env(
            {
                "GATEWAY_TOKENS": "a",
                "GATEWAY_PORT": "70000",
                "GATEWAY_INPUT_SAMPLE_RATE": "4000",
                "GATEWAY_MAX_FRAME_BYTES": "1023",
            }
        )
    found = problems(error)
    assert [line.split("=")[0] for line in found] == [
        "GATEWAY_PORT",
        "GATEWAY_INPUT_SAMPLE_RATE",
        "GATEWAY_MAX_FRAME_BYTES",
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", True),
        ("TRUE", True),
        ("yes", True),
        ("on", True),
        ("0", False),
        ("false", False),
        ("No", False),
        ("off", False),
    ],
)
def test_env_flag(value: str, expected: bool) -> None:
    env = Env({"FLAG": value})
    assert env.flag(not expected, "FLAG") is expected
    env.check("test")


def test_env_flag_problem_and_default() -> None:
    env = Env({"FLAG": "maybe"})
    assert env.flag(True, "FLAG") is True
    assert Env({}).flag(False, "FLAG") is False
    with pytest.raises(SettingsError, match="FLAG='maybe': expected true or false"):
        env.check("test")


def test_env_reads_os_environ_when_none_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICE_TEST_SETTING", "from-os")
    assert Env().text("default", "VOICE_TEST_SETTING") == "from-os"
    assert Env({}).text("default", "VOICE_TEST_SETTING") == "default"
