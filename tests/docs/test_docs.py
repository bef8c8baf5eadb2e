"""The docs: the generated field reference is current, every failure reason is explained, links resolve."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, get_args

import pytest

from modeldeploy.api.crd import custom_resource_definition
from modeldeploy.api.reference import constraints, reference_markdown, type_name
from modeldeploy.api.status import FailureReason, HoldReason, Phase
from modeldeploy.rollout.errors import RECONCILE_REASONS

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
MY_PAGES = ["concepts.md", "reference.md", "troubleshooting.md", "install.md", "gitops.md"]


def test_reference_is_generated_from_the_current_crd() -> None:
    committed = (DOCS / "reference.md").read_text()
    assert committed == reference_markdown(), (
        "docs/reference.md is stale: python -m modeldeploy.api.reference > docs/reference.md")


def _schema_paths(node: dict[str, Any], path: str) -> list[str]:
    paths = []
    for name, child in node.get("properties", {}).items():
        paths.append(f"{path}.{name}")
        paths += _schema_paths(child, f"{path}.{name}")
        if "properties" in child.get("items", {}):
            paths += _schema_paths(child["items"], f"{path}.{name}[]")
    return paths


def test_reference_lists_every_field_and_cel_rule() -> None:
    schema = custom_resource_definition()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    text = reference_markdown()
    sections = set(re.findall(r"^### `([^`]+)`$", text, flags=re.MULTILINE))
    for part in ("spec", "status"):
        for path in _schema_paths(schema["properties"][part], part):
            parent, _, field = path.rpartition(".")
            assert parent in sections, f"no section for {parent}"
            section = text.split(f"### `{parent}`\n", 1)[1].split("\n### ", 1)[0]
            assert re.search(rf"\| (\[)?`{re.escape(field)}`", section), f"{path} missing from {parent}"
    rules = re.findall(r"'rule': '([^']*)'|\"rule\": \"([^\"]*)\"", repr(schema))
    assert rules
    for rule in (a or b for a, b in rules):
        assert rule.replace("\\\\", "\\") in text or rule in text, rule


def test_reference_type_and_constraint_rendering() -> None:
    assert type_name({"type": "array", "items": {"type": "object", "properties": {}}}) == "[]object"
    assert type_name({"type": "object", "additionalProperties": {"x-kubernetes-int-or-string": True}}) == (
        "map[string]int-or-string")
    assert constraints({"minimum": 30, "maximum": 86400, "enum": ["a", "b"]}) == ["one of `a`, `b`", ">= 30",
                                                                                  "<= 86400"]
    assert constraints({"minimum": 0, "exclusiveMinimum": True}) == ["> 0"]


@pytest.mark.parametrize("reason", get_args(FailureReason) + RECONCILE_REASONS)
def test_every_failure_reason_has_a_troubleshooting_section(reason: str) -> None:
    text = (DOCS / "troubleshooting.md").read_text()
    match = re.search(rf"^## {reason}\n(.*?)(?=^## |\Z)", text, flags=re.MULTILINE | re.DOTALL)
    assert match, f"docs/troubleshooting.md has no '## {reason}' section"
    body = match.group(1)
    assert "**Means.**" in body and "**What to do.**" in body


def test_troubleshooting_names_no_unknown_reason() -> None:
    text = (DOCS / "troubleshooting.md").read_text()
    headings = re.findall(r"^## (\w+)$", text, flags=re.MULTILINE)
    known = {*get_args(FailureReason), *get_args(HoldReason), *RECONCILE_REASONS}
    assert set(headings) - known <= {"The"}


def test_concepts_and_gitops_cover_every_phase() -> None:
    for page in ("concepts.md", "gitops.md"):
        text = (DOCS / page).read_text()
        for phase in get_args(Phase):
            assert f"`{phase}`" in text, f"{page} does not mention phase {phase}"


@pytest.mark.parametrize("page", MY_PAGES)
def test_relative_links_resolve(page: str) -> None:
    text = (DOCS / page).read_text()
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith(("http://", "https://", "#")):
            continue
        path, _, anchor = target.partition("#")
        resolved = (DOCS / path).resolve()
        assert resolved.exists(), f"{page}: broken link {target}"
        if anchor and resolved.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", resolved.read_text(), flags=re.MULTILINE)
            slugs = {re.sub(r"[^a-z0-9 _-]", "", heading.lower()).replace(" ", "-") for heading in headings}
            assert anchor in slugs, f"{page}: no heading for #{anchor} in {path}"


def test_gitops_retry_and_health_docs_match_the_files() -> None:
    text = (DOCS / "gitops.md").read_text()
    assert "kubectl modeldeploy retry NAME" in text
    assert "resource.customizations.health.serving.modeldeploy.dev_ModelDeployment" in text
    for name in ("argocd/health.lua", "argocd/argocd-cm-patch.yaml", "flux/kustomization.yaml",
                 "flux/helmrelease.yaml"):
        assert (ROOT / "gitops" / name).is_file()


def test_install_documents_every_chart_value_group() -> None:
    import yaml

    values = yaml.safe_load((ROOT / "charts" / "modeldeploy" / "values.yaml").read_text())
    text = (DOCS / "install.md").read_text()
    missing = [key for key in values if f"`{key}" not in text and f"{key}:" not in text]
    assert missing == []
