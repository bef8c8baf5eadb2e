"""`modeldeploy`: generate the CRD, export models, run the operator, the local sandbox (`sandbox up`, `demo`)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path


def _crd(args: argparse.Namespace) -> int:
    from ..api.crd import crd_yaml, write_crd

    if args.write:
        path = write_crd(Path(args.write))
        print(f"wrote {path}")
    else:
        sys.stdout.write(crd_yaml())
    return 0


def _run(args: argparse.Namespace) -> int:
    from kopf.cli import main as kopf_main

    scope = ["--all-namespaces"] if not args.namespace else [f"--namespace={ns}" for ns in args.namespace]
    if args.namespace:
        os.environ["MODELDEPLOY_NAMESPACED"] = "true"  # what the chart sets with watchNamespaces
    peering = ["--standalone"] if args.standalone else ["--peering=modeldeploy"]
    argv = ["run", "-m", "modeldeploy.handlers", *scope, *peering, f"--liveness={args.liveness}"]
    return int(kopf_main(argv, standalone_mode=False) or 0)


SANDBOX_MISSING = ("needs the sandbox package modeldeploy_sandbox (test and demo infrastructure in sandbox/ of a "
                   "source checkout, not in the operator image): from the checkout, pip install -e '.[dev]'")


def _no_sandbox(command: str, reason: str) -> int:
    print(f"modeldeploy {command}: {SANDBOX_MISSING} ({reason})", file=sys.stderr)
    return 2


def _demo(args: argparse.Namespace) -> int:
    try:
        from modeldeploy_sandbox.demo import run_demo
    except ImportError as error:
        return _no_sandbox("demo", str(error))
    return run_demo(quick=args.quick)


def _sandbox_parser(subparsers: argparse._SubParsersAction) -> None:
    sandbox = subparsers.add_parser("sandbox", help="the local cluster: a real control plane and the sandbox kubelet")
    try:
        from modeldeploy_sandbox.cli import add_arguments
    except ImportError as error:
        reason = str(error)
        sandbox.add_argument("rest", nargs=argparse.REMAINDER)
        sandbox.set_defaults(handler=lambda _: _no_sandbox("sandbox", reason))
        return
    add_arguments(sandbox)


def _export_parser(subparsers: argparse._SubParsersAction) -> None:
    export = subparsers.add_parser("export", help="torch model -> verified ONNX -> Triton repository + manifest")
    try:
        from ..export.cli import add_arguments, run
    except ImportError as error:
        reason = str(error)
        export.set_defaults(handler=lambda _: _missing("export", reason))
        return
    add_arguments(export)
    export.set_defaults(handler=run)


def _missing(command: str, reason: str) -> int:
    print(f"modeldeploy {command}: needs the export extra (pip install 'modeldeploy[export]'): {reason}",
          file=sys.stderr)
    return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modeldeploy", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    crd = subparsers.add_parser("crd", help="print the CustomResourceDefinition generated from the API models")
    crd.add_argument("--write", metavar="DIR", help="write crds/<file> into DIR instead of printing")
    crd.set_defaults(handler=_crd)
    run = subparsers.add_parser("run", help="run the operator (kopf) against the current cluster")
    run.add_argument("--namespace", action="append", help="watch only this namespace (repeatable)")
    run.add_argument("--standalone", action="store_true", help="no peering (a single replica)")
    run.add_argument("--liveness", default="http://0.0.0.0:8081/healthz", help="liveness endpoint URL")
    run.set_defaults(handler=_run)
    demo = subparsers.add_parser("demo", help="the local sandbox: one canary rolled back, one promoted")
    demo.add_argument("--quick", action="store_true", help="shorter steps and intervals")
    demo.set_defaults(handler=_demo)
    _sandbox_parser(subparsers)
    _export_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
