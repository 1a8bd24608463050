"""The real Whisper decoder's languages: tiny.en says it is English-only, and decodes an English
clip the same whether the stream asked for "en" or for nothing."""

from __future__ import annotations

import wave

import numpy as np
import pytest

from services.stt.engine import LanguageDecoder
from services.stt.servicer import stream_language
from services.stt.settings import SttSettings
from services.stt.whisper import WhisperDecoder
from tests.conftest import Clip, clip_named

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def decoder() -> WhisperDecoder:
    return WhisperDecoder(SttSettings.from_env({}), workers=1)


def test_tiny_en_is_a_language_decoder_for_english_only(decoder: WhisperDecoder) -> None:
    assert isinstance(decoder, LanguageDecoder)
    assert decoder.english_only and decoder.languages == frozenset({"en"})
    assert decoder.name == "whisper tiny.en"
    assert stream_language("en-US", decoder) == "en"
    assert stream_language("", decoder) == ""
    with pytest.raises(ValueError, match=r"'de' is not supported: stt runs whisper tiny\.en"):
        stream_language("de", decoder)


def test_english_asked_for_decodes_as_the_default_does(
    decoder: WhisperDecoder, speech_clips: list[Clip]
) -> None:
    clip = clip_named(speech_clips, "036_")
    with wave.open(str(clip.path)) as handle:
        pcm = np.frombuffer(handle.readframes(handle.getnframes()), "<i2")
    samples = pcm.astype(np.float32) / 32768
    assert decoder.decode(samples, language="en").text == decoder.decode(samples).text
