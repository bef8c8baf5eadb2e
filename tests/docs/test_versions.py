"""The Kubernetes versions we claim are the ones the tests run on, everywhere they are written."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from modeldeploy_sandbox.binaries import NEWEST, OLDEST

ROOT = Path(__file__).resolve().parents[2]


def _minor(version: str) -> str:
    return ".".join(version.lstrip("v").split(".")[:2])


def test_the_makefile_builds_and_tests_the_pinned_releases() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(rf"^KUBE_VERSION \?= {re.escape(NEWEST)}$", makefile, re.M)
    assert re.search(rf"^KUBE_OLDEST \?= {re.escape(OLDEST)}$", makefile, re.M)


def test_each_release_has_a_go_module_pinning_it() -> None:
    for version in (NEWEST, OLDEST):
        go_mod = (ROOT / "hack" / "kube" / f"v{_minor(version)}" / "go.mod").read_text()
        assert re.search(rf"^\s*k8s\.io/kubernetes {re.escape(version)}\b", go_mod, re.M), version
        replaced = set(re.findall(r"^\s*(k8s\.io/[\w-]+) => k8s\.io/[\w-]+ (v0\.\S+)", go_mod, re.M))
        staging = f"v0.{version.split('.', 1)[1]}"
        assert replaced and {tag for _, tag in replaced} == {staging}, "staging modules at the matching v0.x"


def test_chart_and_docs_state_the_tested_range() -> None:
    chart = yaml.safe_load((ROOT / "charts" / "modeldeploy" / "Chart.yaml").read_text())
    assert chart["kubeVersion"] == f">={_minor(OLDEST)}.0-0"
    for doc in ("docs/install.md", "README.md"):
        text = (ROOT / doc).read_text()
        assert f"{_minor(OLDEST)} to {_minor(NEWEST)}" in text and NEWEST in text and OLDEST in text, doc
