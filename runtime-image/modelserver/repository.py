"""Discover models in a Triton-layout repository: ``<repo>/<model>/<version>/model.onnx``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modelserver.config_pbtxt import ModelSettings, load_config


class RepositoryError(Exception):
    pass


@dataclass(frozen=True)
class ModelEntry:
    name: str
    versions: dict[int, Path]  # version -> model.onnx
    settings: ModelSettings

    @property
    def latest(self) -> int:
        return max(self.versions)


def scan_repository(root: Path) -> list[ModelEntry]:
    """Every ``<model>`` directory with at least one numeric version holding model.onnx.

    Directories without a servable version are skipped (Triton refuses them; we log
    nothing here and let the caller report an empty repository).
    """
    if not root.is_dir():
        raise RepositoryError(f"model repository {root} is not a directory")
    entries: list[ModelEntry] = []
    for model_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        versions: dict[int, Path] = {}
        for vdir in model_dir.iterdir():
            if vdir.is_dir() and vdir.name.isascii() and vdir.name.isdigit() and (vdir / "model.onnx").is_file():
                versions[int(vdir.name)] = vdir / "model.onnx"
        if not versions:
            continue
        try:
            settings = load_config(model_dir / "config.pbtxt")
        except Exception as exc:
            raise RepositoryError(f"model {model_dir.name}: {exc}") from None
        entries.append(ModelEntry(model_dir.name, dict(sorted(versions.items())), settings))
    return entries
