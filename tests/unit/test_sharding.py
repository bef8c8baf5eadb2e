"""Shards: which ModelDeployments a replica owns, the kopf filter and the API selector that say so."""

from __future__ import annotations

from typing import Any

import kopf
import pytest
from hypothesis import given
from hypothesis import strategies as st

from modeldeploy.sharding import SHARD_LABEL, Shard, ShardConfigError, shard_from_env


def labels(value: str | None) -> dict[str, str]:
    return {} if value is None else {SHARD_LABEL: value, "app": "x"}


def kopf_label_filter_passes(shard: Shard, value: str | None) -> bool:
    """What kopf does with `labels=` (kopf._core.intents.registries._matches_metadata), for our one key."""
    wanted: Any = shard.kopf_filters().get("labels", {}).get(SHARD_LABEL)
    if wanted is None:
        return True
    if callable(wanted):
        return bool(wanted(value, body={}, meta={}, spec={}, status={}, logger=None))
    return value is not None and value == wanted


def test_no_shard_owns_everything_and_filters_nothing() -> None:
    shard = Shard()
    assert all(shard.owns(labels(v)) for v in (None, "a", "b"))
    assert shard.owns(None)
    assert shard.kopf_filters() == {} and shard.label_selector() is None


def test_a_label_shard_owns_its_value_only() -> None:
    shard = Shard("a")
    assert [shard.owns(labels(v)) for v in (None, "a", "b", "A")] == [False, True, False, False]
    assert shard.kopf_filters() == {"labels": {SHARD_LABEL: "a"}}
    assert shard.label_selector() == "modeldeploy.dev/shard=a"


def test_the_default_shard_owns_what_no_other_shard_names() -> None:
    shard = Shard("a", default=True, other_values=frozenset({"c", "b"}))
    assert [shard.owns(labels(v)) for v in (None, "a", "b", "c", "typo")] == [True, True, False, False, True]
    # `notin` also matches objects without the label: one server-side selector for all of it.
    assert shard.label_selector() == "modeldeploy.dev/shard notin (b,c)"
    assert [kopf_label_filter_passes(shard, v) for v in (None, "a", "b", "c", "typo")] == [
        True, True, False, False, True]
    assert Shard("a", default=True).label_selector() is None  # the only shard owns everything


@given(values=st.lists(st.from_regex(r"[a-z][a-z0-9]{0,5}", fullmatch=True), min_size=1, max_size=5, unique=True),
       default_index=st.integers(min_value=-1, max_value=4),
       probe=st.one_of(st.none(), st.from_regex(r"[a-z][a-z0-9]{0,5}", fullmatch=True)))
def test_shards_of_one_release_never_share_an_object(values: list[str], default_index: int,
                                                      probe: str | None) -> None:
    """As the chart configures them (MODELDEPLOY_SHARDS = every value): at most one owner, exactly one with a
    default shard; and kopf's filter agrees with `owns`."""
    shards = [shard_from_env({"MODELDEPLOY_SHARD": v, "MODELDEPLOY_SHARDS": ",".join(values),
                              "MODELDEPLOY_SHARD_DEFAULT": str(i == default_index).lower()})
              for i, v in enumerate(values)]
    owners = [s for s in shards if s.owns(labels(probe))]
    has_default = 0 <= default_index < len(values)
    assert len(owners) == (1 if has_default or probe in values else 0)
    for shard in shards:
        assert kopf_label_filter_passes(shard, probe) == shard.owns(labels(probe))


def test_shard_from_env() -> None:
    assert shard_from_env({}) == Shard()
    assert shard_from_env({"MODELDEPLOY_SHARD": " a "}) == Shard("a")
    shard = shard_from_env({"MODELDEPLOY_SHARD": "a", "MODELDEPLOY_SHARDS": "a, b,,c",
                            "MODELDEPLOY_SHARD_DEFAULT": "True"})
    assert shard == Shard("a", default=True, other_values=frozenset({"b", "c"}))
    assert shard_from_env({"MODELDEPLOY_SHARD": "a", "MODELDEPLOY_SHARDS": "a,b",
                           "MODELDEPLOY_SHARD_DEFAULT": "false"}) == Shard("a", other_values=frozenset({"b"}))


@pytest.mark.parametrize(("environ", "message"), [
    ({"MODELDEPLOY_SHARD": "a", "MODELDEPLOY_SHARD_DEFAULT": "maybe"}, "MODELDEPLOY_SHARD_DEFAULT"),
    ({"MODELDEPLOY_SHARD_DEFAULT": "true"}, "MODELDEPLOY_SHARD_DEFAULT=true needs MODELDEPLOY_SHARD"),
    ({"MODELDEPLOY_SHARD": "a b"}, "MODELDEPLOY_SHARD: 'a b' is not a label value"),
    ({"MODELDEPLOY_SHARD": "a", "MODELDEPLOY_SHARDS": "a,-b"}, "MODELDEPLOY_SHARDS: '-b' is not a label value"),
    ({"MODELDEPLOY_SHARD": "x" * 64}, "is not a label value"),
])
def test_bad_shard_settings_name_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ShardConfigError, match=message.replace("(", r"\(")):
        shard_from_env(environ)


def test_kopf_watches_only_the_shards_objects_on_the_server() -> None:
    settings = kopf.OperatorSettings()
    Shard().configure_kopf(settings, "serving.modeldeploy.dev", "modeldeployments")
    assert list(settings.watching.label_selectors) == []
    Shard("a", default=True, other_values=frozenset({"b"})).configure_kopf(
        settings, "serving.modeldeploy.dev", "modeldeployments")
    model_deployments = kopf.Resource("serving.modeldeploy.dev", "v1alpha1", "modeldeployments",
                                      kind="ModelDeployment", namespaced=True)
    deployments = kopf.Resource("apps", "v1", "deployments", kind="Deployment", namespaced=True)
    assert settings.watching.label_selectors.collect(model_deployments) == ["modeldeploy.dev/shard notin (b)"]
    assert settings.watching.label_selectors.collect(deployments) == []  # children: not sharded by label
