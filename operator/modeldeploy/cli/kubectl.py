"""`kubectl modeldeploy`: read a ModelDeployment's progress and send it manual intents.

Intents are written through the status subresource (as Argo Rollouts does), never the spec, so
GitOps tools see no drift. The operator consumes an intent and clears it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from ..api import API_VERSION, KIND
from ..api.status import IntentAction
from ..kubeapi import KubeApiError, KubeClient

INTENTS: dict[str, str] = {
    "promote": "skip the remaining steps and promote the canary now",
    "abort": "roll the canary back now (recorded as Aborted)",
    "retry": "forget the rejection of the current spec and roll it out again",
    "pause": "hold the canary at its current step",
    "resume": "continue a paused canary",
}


def _row(cells: Sequence[object], widths: Sequence[int]) -> str:
    return "  ".join(str(cell).ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()


def format_status(obj: dict[str, Any]) -> str:
    """A readable progress report: revisions, steps, weights and the last analysis table."""
    status = obj.get("status") or {}
    spec = obj.get("spec") or {}
    meta = obj["metadata"]
    lines = [f"Name:       {meta['namespace']}/{meta['name']}",
             f"Phase:      {status.get('phase', 'Pending')}  {status.get('message', '')}".rstrip(),
             f"Stable:     {status.get('stableRevision') or '-'}",
             f"Canary:     {status.get('canaryRevision') or '-'}  weight {status.get('canaryWeight', 0)}%"]
    steps = (spec.get("rollout") or {}).get("steps") or []
    analysis = status.get("analysis") or {}
    if steps and status.get("canaryRevision"):
        current = (status.get("rollout") or {}).get("step", 0)
        marks = [("▶ " if index == current else "  ") + f"{step.get('weight')}% for {step.get('pause', '0s')}"
                 for index, step in enumerate(steps)]
        lines.append("Steps:      " + " | ".join(marks))
    checks = analysis.get("checks") or []
    if checks:
        lines.append(f"Analysis:   {analysis.get('verdict') or '-'} (failures in a row: "
                     f"{analysis.get('consecutiveFailures', 0)}, last run {analysis.get('lastRun') or '-'})")
        table = [("CHECK", "CANARY", "STABLE", "SAMPLES", "VERDICT")] + [
            (c.get("name"), _num(c.get("canary")), _num(c.get("stable")),
             f"{c.get('canarySamples', 0)}/{c.get('stableSamples', 0)}", c.get("verdict")) for c in checks]
        widths = [max(len(str(row[i])) for row in table) for i in range(5)]
        lines += ["  " + _row(row, widths) for row in table]
    for rejected in status.get("rejectedRevisions") or []:
        lines.append(f"Rejected:   {rejected.get('revision')} {rejected.get('reason')}: {rejected.get('message')}")
    for condition in status.get("conditions") or []:
        lines.append(f"Condition:  {condition['type']}={condition['status']} {condition.get('reason', '')}")
    return "\n".join(lines)


def _num(value: object) -> str:
    return "-" if value is None else f"{float(value):.4g}"  # type: ignore[arg-type]


def send_intent(kube: KubeClient, namespace: str, name: str, action: IntentAction) -> dict[str, Any]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    patch = {"status": {"intent": {"action": action, "requestedAt": now}}}
    return kube.merge_patch(API_VERSION, KIND, namespace, name, patch, subresource="status")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubectl modeldeploy", description=__doc__)
    parser.add_argument("-n", "--namespace", default="default")
    parser.add_argument("--server", help="API server URL (default: in-cluster or kubeconfig)")
    subparsers = parser.add_subparsers(dest="command", required=True)
    subparsers.add_parser("status", help="progress, steps, weights, last analysis").add_argument("name")
    for action, help_text in INTENTS.items():
        subparsers.add_parser(action, help=help_text).add_argument("name")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        kube = KubeClient(args.server) if args.server else KubeClient.from_environment()
        obj = kube.get(API_VERSION, KIND, args.namespace, args.name)
        if obj is None:
            print(f"modeldeployment {args.namespace}/{args.name} not found", file=sys.stderr)
            return 1
        if args.command == "status":
            print(format_status(obj))
        else:
            send_intent(kube, args.namespace, args.name, args.command)
            print(f"modeldeployment {args.namespace}/{args.name}: {args.command} requested")
    except KubeApiError as error:
        print(f"kubectl modeldeploy {args.command}: {error}", file=sys.stderr)
        return 1
    except Exception as error:
        print(f"kubectl modeldeploy {args.command}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
