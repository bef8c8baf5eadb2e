"""Docs that agree with the code and with each other, where a cheap check can tell."""

from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from modeldeploy.cli.main import build_parser
from modeldeploy_sandbox import chart

ROOT = Path(__file__).resolve().parents[2]
USER_DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "runtime-image" / "README.md",
             ROOT / "charts" / "modeldeploy" / "README.md"]
# Values passed through to Kubernetes objects as a whole: documented as one value, not key by key.
WHOLE_VALUES = {"resources", "labels", "annotations", "namespaceSelector", "podSelector", "clientNamespaceSelector"}


def _value_paths(values: dict[str, Any], prefix: str = "") -> list[str]:
    paths = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and key not in WHOLE_VALUES:
            paths += _value_paths(value, f"{path}.")
        else:
            paths.append(path)
    return paths


def test_install_md_documents_every_chart_value_by_its_full_path() -> None:
    values = yaml.safe_load((ROOT / "charts" / "modeldeploy" / "values.yaml").read_text())
    text = (ROOT / "docs" / "install.md").read_text()
    paths = _value_paths(values)
    assert {"operator.extraEnv", "peering.name", "podMonitor.namespaces", "serviceMonitor.interval"} <= set(paths)
    assert [path for path in paths if f"`{path}`" not in text] == []


def test_user_docs_cite_no_internal_design_document() -> None:
    for page in USER_DOCS:
        assert "DESIGN.md" not in page.read_text(), f"{page.relative_to(ROOT)} cites DESIGN.md, which users do not have"


def test_digests_in_the_docs_are_whole() -> None:
    """A digest copied from a doc must pass the CRD's pattern: 64 hex digits, never `sha256:9f2c...`."""
    for page in [*USER_DOCS, *sorted((ROOT / "samples").glob("*.yaml"))]:
        for match in re.finditer(r"sha256:([0-9a-f]+)(\.\.\.)?", page.read_text()):
            assert len(match.group(1)) == 64 and not match.group(2), f"{page.relative_to(ROOT)}: {match.group(0)}"


def _relabelings(text: str) -> dict[str, str]:
    """target label -> the pod label it comes from, in a PodMonitor's relabelings."""
    pairs = re.findall(r"sourceLabels: \[__meta_kubernetes_pod_label_(\w+)\]\s+targetLabel: (\w+)", text)
    return {target: source for source, target in pairs}


def test_analysis_podmonitor_example_relabels_like_the_chart() -> None:
    rendered = [obj for obj in chart.render({"podMonitor": {"enabled": True}}) if obj["kind"] == "PodMonitor"]
    assert len(rendered) == 1
    chart_labels = {
        r["targetLabel"]: r["sourceLabels"][0].removeprefix("__meta_kubernetes_pod_label_")
        for endpoint in rendered[0]["spec"]["podMetricsEndpoints"] for r in endpoint.get("relabelings", [])
        if r.get("sourceLabels", [""])[0].startswith("__meta_kubernetes_pod_label_")}
    assert {"revision", "modeldeploy_name", "role"} <= set(chart_labels)
    analysis = (ROOT / "docs" / "analysis.md").read_text()
    example = analysis.split("kind: PodMonitor", 1)[1].split("```", 1)[0]
    assert _relabelings(example) == chart_labels
    scrape = analysis.split("scrape_configs:", 1)[1].split("```", 1)[0]
    scrape_labels = dict((t, s) for s, t in re.findall(
        r"source_labels: \[__meta_kubernetes_pod_label_(\w+)\]\s+target_label: (\w+)", scrape))
    assert scrape_labels == chart_labels
    install = (ROOT / "docs" / "install.md").read_text()
    for label in chart_labels:
        assert f"`{label}`" in install


def test_chart_notes_point_at_what_a_chart_user_has() -> None:
    notes = (ROOT / "charts" / "modeldeploy" / "templates" / "NOTES.txt").read_text()
    assert "samples/cpu-onnx.yaml" not in notes  # not in the chart
    for path in re.findall(r"-f (\S+)", notes):
        assert path.startswith("<") or (ROOT / path).exists(), path  # <model>.yaml: the user's own
    assert "charts/modeldeploy/crds/" in notes
    crds = {p.name for p in (ROOT / "charts" / "modeldeploy" / "crds").glob("*.yaml")}
    assert {"kopf-peerings.yaml", "serving.modeldeploy.dev_modeldeployments.yaml"} <= crds


def test_flux_helmrelease_source_is_a_branch_or_an_existing_tag() -> None:
    source, release = list(yaml.safe_load_all((ROOT / "gitops" / "flux" / "helmrelease.yaml").read_text()))
    ref = source["spec"]["ref"]
    if "tag" in ref:
        tags = subprocess.run(["git", "tag", "--list"], cwd=ROOT, capture_output=True, text=True).stdout.split()
        assert ref["tag"] in tags, f"gitops/flux/helmrelease.yaml points at tag {ref['tag']}, which does not exist"
    else:
        assert ref == {"branch": "main"}
    assert (ROOT / release["spec"]["chart"]["spec"]["chart"].removeprefix("./") / "Chart.yaml").is_file()


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices) if actions else {}


def test_every_modeldeploy_command_and_demo_quick_are_documented() -> None:
    text = "\n".join(page.read_text() for page in USER_DOCS)
    commands = _subcommands(build_parser())
    assert {"crd", "run", "demo", "export"} <= set(commands)
    for name in commands:
        assert re.search(rf"modeldeploy {name}\b", text), f"`modeldeploy {name}` is documented nowhere"
    assert "modeldeploy demo --quick" in text
    assert "modeldeploy run --standalone" in text
