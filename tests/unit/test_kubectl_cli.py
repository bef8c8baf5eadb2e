"""`kubectl modeldeploy` follows kubectl's conventions (issue 13, item 1): flags anywhere, the context's
namespace by default, -A for every namespace. The cluster side is in tests/cli/test_plugin_cluster.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from modeldeploy.cli.kubeconfig import NoClusterConfig, connect
from modeldeploy.cli.kubectl import parse_args


@pytest.mark.parametrize("argv", [
    ["status", "resnet", "-n", "ml"],
    ["-n", "ml", "status", "resnet"],
    ["status", "-n", "ml", "resnet"],
    ["status", "--namespace=ml", "resnet"],
    ["--namespace", "other", "status", "resnet", "-n", "ml"],  # the last one wins, as in kubectl
])
def test_the_namespace_goes_anywhere(argv: list[str]) -> None:
    args = parse_args(argv)
    assert (args.command, args.name, args.namespace) == ("status", "resnet", "ml")


def test_context_and_kubeconfig_go_anywhere_and_are_not_reset_by_the_subcommand() -> None:
    before = parse_args(["--context", "prod", "--kubeconfig", "/k", "pause", "resnet"])
    after = parse_args(["pause", "resnet", "--context", "prod", "--kubeconfig", "/k"])
    for args in (before, after):
        assert (args.command, args.name, args.context, args.kubeconfig, args.namespace) == (
            "pause", "resnet", "prod", "/k", None)


@pytest.mark.parametrize("argv", [["status", "-A"], ["-A", "status"], ["list", "--all-namespaces"], ["ls", "-A"]])
def test_all_namespaces_on_status_and_list(argv: list[str]) -> None:
    args = parse_args(argv)
    assert args.all_namespaces and args.command in ("status", "list")
    assert getattr(args, "name", None) is None


@pytest.mark.parametrize(("argv", "message"), [
    (["status", "resnet", "-A"], "a NAME and -A/--all-namespaces exclude each other"),
    (["-A", "promote", "resnet"], "-A/--all-namespaces is for status and list only"),
    (["status", "-A", "-n", "ml"], "-n/--namespace and -A/--all-namespaces exclude each other"),
    (["pause"], "the following arguments are required: name"),
])
def test_contradictions_are_refused_naming_the_arguments(argv: list[str], message: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_help_names_every_flag_and_the_argument(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["status", "--help"])
    text = capsys.readouterr().out
    for flag in ("-n NAMESPACE, --namespace NAMESPACE", "--context CONTEXT", "--kubeconfig FILE",
                 "-A, --all-namespaces", "the ModelDeployment (omit to list"):
        assert flag in text, text


def _kubeconfig(path: Path, current: str, namespaces: dict[str, str | None]) -> Path:
    contexts = [{"name": name, "context": {"cluster": "c", "user": "u", **({"namespace": ns} if ns else {})}}
                for name, ns in namespaces.items()]
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": current, "contexts": contexts,
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "u", "user": {"token": "t"}}]}))
    return path


def test_the_default_namespace_is_the_contexts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _kubeconfig(tmp_path / "config", "dev", {"dev": "ml", "prod": "serving", "bare": None})
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(config))
    assert (connect().namespace, connect().context) == ("ml", "dev")
    assert connect(context="prod").namespace == "serving"
    assert connect(context="bare").namespace == "default"
    monkeypatch.delenv("KUBECONFIG")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert connect(kubeconfig=str(config), context="prod").namespace == "serving"
    target = connect(kubeconfig=str(config), server="https://10.0.0.1:443")
    assert target.kube.host == "https://10.0.0.1:443" and target.namespace == "ml"


def test_kubeconfig_list_in_the_environment_is_merged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = _kubeconfig(tmp_path / "a", "dev", {"dev": "ml"})
    second = tmp_path / "b"
    second.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "contexts": [
        {"name": "other", "context": {"cluster": "c", "user": "u", "namespace": "elsewhere"}}]}))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", f"{first}:{second}")
    assert connect(context="other").namespace == "elsewhere"


def test_no_configuration_says_where_it_looked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(NoClusterConfig) as missing:
        connect()
    assert str(missing.value) == (
        f"no cluster configuration found: kubeconfig from the default: {tmp_path}/.kube/config (no such file); "
        "not in a pod (KUBERNETES_SERVICE_HOST is unset); pass --kubeconfig FILE or set KUBECONFIG=FILE")
    config = _kubeconfig(tmp_path / "config", "dev", {"dev": "ml"})
    with pytest.raises(NoClusterConfig, match=r"context 'nope' is not in the kubeconfig .*its contexts: dev"):
        connect(kubeconfig=str(config), context="nope")
    (tmp_path / "broken").write_text("clusters: [")
    with pytest.raises(NoClusterConfig, match=r"the kubeconfig .*broken cannot be used: while parsing"):
        connect(kubeconfig=str(tmp_path / "broken"))
