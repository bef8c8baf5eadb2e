"""`kubectl modeldeploy`: read ModelDeployments' progress and send them manual intents.

Flags follow kubectl: -n/--namespace, --context and --kubeconfig go anywhere on the command line;
the namespace defaults to the kubeconfig context's; -A/--all-namespaces lists every
ModelDeployment. Intents are written through the status subresource (as Argo Rollouts does),
never the spec, so GitOps tools see no drift. The operator consumes an intent and clears it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..api import API_VERSION, KIND
from ..api.status import IntentAction
from .extras import OPERATOR, install_hint, report_missing_extra
from .report import format_status, format_summary

if TYPE_CHECKING:
    from ..kubeapi import KubeClient

PROG = "kubectl modeldeploy"

INTENTS: dict[str, str] = {
    "promote": "skip the remaining steps and promote the canary now",
    "abort": "roll the canary back now (recorded as Aborted)",
    "retry": "forget the rejection of the current spec and roll it out again",
    "pause": "hold the canary at its current step",
    "resume": "continue a paused canary",
}

__all__ = ["INTENTS", "build_parser", "format_status", "main", "send_intent"]


def send_intent(kube: KubeClient, namespace: str, name: str, action: IntentAction) -> dict[str, Any]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    patch = {"status": {"intent": {"action": action, "requestedAt": now}}}
    return kube.merge_patch(API_VERSION, KIND, namespace, name, patch, subresource="status")


def _connection_options(parser: argparse.ArgumentParser, default: Any) -> None:
    """kubectl's flags; on sub-commands with SUPPRESS defaults so a value given before them is kept."""
    parser.add_argument("-n", "--namespace", default=default,
                        help="namespace of the ModelDeployment (default: the kubeconfig context's, else default)")
    parser.add_argument("--context", default=default, help="kubeconfig context to use (default: the current one)")
    parser.add_argument("--kubeconfig", default=default, metavar="FILE",
                        help="kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
    parser.add_argument("--server", default=default, metavar="URL",
                        help="API server URL, overriding the kubeconfig's")


def _all_namespaces(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument("-A", "--all-namespaces", action="store_true", default=default,
                        help="list the ModelDeployments of every namespace")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  kubectl modeldeploy status resnet -n ml\n  kubectl modeldeploy status -A\n"
               "  kubectl modeldeploy promote resnet -n ml\n\n"
               f"Installed with the '{OPERATOR}' extra: {install_hint(OPERATOR)}")
    _connection_options(parser, None)
    _all_namespaces(parser, False)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    status = subparsers.add_parser(
        "status", help="progress, steps, weights, last analysis (no NAME: one line per ModelDeployment)")
    status.add_argument("name", nargs="?", help="the ModelDeployment (omit to list the namespace's, or use -A)")
    listing = subparsers.add_parser("list", aliases=["ls"], help="one summary line per ModelDeployment")
    for sub in (status, listing):
        _connection_options(sub, argparse.SUPPRESS)
        _all_namespaces(sub, argparse.SUPPRESS)
    for action, help_text in INTENTS.items():
        intent = subparsers.add_parser(action, help=help_text)
        intent.add_argument("name", help="the ModelDeployment")
        _connection_options(intent, argparse.SUPPRESS)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "ls":
        args.command = "list"
    if args.all_namespaces and args.command in INTENTS:
        parser.error(f"{args.command}: -A/--all-namespaces is for status and list only")
    if args.all_namespaces and getattr(args, "name", None):
        parser.error(f"{args.command} {args.name}: a NAME and -A/--all-namespaces exclude each other")
    if args.all_namespaces and args.namespace:
        parser.error("-n/--namespace and -A/--all-namespaces exclude each other")
    return args


def _run(args: argparse.Namespace) -> int:
    from ..kubeapi import KubeApiError
    from .kubeconfig import NoClusterConfig, connect

    try:
        target = connect(args.kubeconfig, args.context, args.server)
    except NoClusterConfig as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 1
    namespace = args.namespace or target.namespace
    name = getattr(args, "name", None)
    try:
        if name is None:
            scope = None if args.all_namespaces else namespace
            objects = target.kube.list(API_VERSION, KIND, scope)
            if not objects:
                where = "any namespace" if scope is None else f"namespace {scope}"
                print(f"no ModelDeployments in {where}", file=sys.stderr)
                return 0
            print(format_summary(objects, all_namespaces=scope is None))
            return 0
        obj = target.kube.get(API_VERSION, KIND, namespace, name)
        if obj is None:
            print(f"{PROG} {args.command}: modeldeployment {namespace}/{name} not found", file=sys.stderr)
            return 1
        if args.command == "status":
            print(format_status(obj))
        else:
            send_intent(target.kube, namespace, name, args.command)
            print(f"modeldeployment {namespace}/{name}: {args.command} requested")
    except KubeApiError as error:
        print(f"{PROG} {args.command}: {error}", file=sys.stderr)
        return 1
    finally:
        target.kube.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import kubernetes  # noqa: F401  (the operator extra: say so before anything else fails)
    except ImportError as error:
        return report_missing_extra(PROG, OPERATOR, error)
    try:
        return _run(args)
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # an unforeseen failure still reads as one line
        print(f"{PROG} {args.command}: unexpected {type(error).__name__}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
