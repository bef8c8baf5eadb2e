"""`modeldeploy`: generate the CRD, export models, run the operator, the local sandbox (`sandbox up`, `demo`)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .extras import EXPORT, OPERATOR, missing_extra_message, report_missing_extra, sandbox_extra

PROG = "modeldeploy"


def _crd(args: argparse.Namespace) -> int:
    from ..api.crd import CRD_FILE_NAME, crd_yaml, write_crd

    if not args.write:
        sys.stdout.write(crd_yaml())
        return 0
    directory = Path(args.write)
    if not directory.is_dir():
        problem = ("is not a directory; give the directory to write it into" if directory.exists()
                   else f"does not exist; create it first (mkdir -p {directory})")
        print(f"{PROG} crd --write: {str(directory)!r} {problem} (the file written is {CRD_FILE_NAME})",
              file=sys.stderr)
        return 2
    try:
        path = write_crd(directory)
    except OSError as error:
        print(f"{PROG} crd --write: cannot write {directory / CRD_FILE_NAME}: {error.strerror or error}",
              file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


def _run(args: argparse.Namespace) -> int:
    try:
        from kopf.cli import main as kopf_main

        from .kubeconfig import FIX_WITH_ENV, NoClusterConfig, connect
    except ImportError as error:
        return report_missing_extra(f"{PROG} run", OPERATOR, error)
    # kopf would retry a missing configuration every minute with tracebacks: check it once, here.
    try:
        connect(user_agent="modeldeploy-operator", fix=FIX_WITH_ENV).kube.close()
    except NoClusterConfig as error:
        print(f"{PROG} run: {error}", file=sys.stderr)
        return 1
    scope = ["--all-namespaces"] if not args.namespace else [f"--namespace={ns}" for ns in args.namespace]
    if args.namespace:
        os.environ["MODELDEPLOY_NAMESPACED"] = "true"  # what the chart sets with watchNamespaces
    peering = ["--standalone"] if args.standalone else ["--peering=modeldeploy"]
    argv = ["run", "-m", "modeldeploy.handlers", *scope, *peering, f"--liveness={args.liveness}"]
    return int(kopf_main(argv, standalone_mode=False) or 0)


def _no_sandbox(command: str, error: ImportError) -> int:
    # The sandbox (and the control-plane sources it builds) lives in a source checkout.
    extra = sandbox_extra()
    hint = f"in the source checkout, pip install -e '.[{extra}]'"
    print(missing_extra_message(f"{PROG} {command}", extra, error, hint), file=sys.stderr)
    return 2


def _demo(args: argparse.Namespace) -> int:
    try:
        from modeldeploy_sandbox.demo import run_demo
    except ImportError as error:
        return _no_sandbox("demo", error)
    return run_demo(quick=args.quick)


def _failing(handler: Callable[[ImportError], int], error: ImportError) -> Callable[[argparse.Namespace], int]:
    return lambda _: handler(error)


def _sandbox_parser(subparsers: argparse._SubParsersAction) -> None:
    sandbox = subparsers.add_parser("sandbox", help="the local cluster: a real control plane and the sandbox kubelet",
                                    description="The local cluster for tests and demos (needs a source checkout).")
    try:
        from modeldeploy_sandbox.cli import add_arguments
    except ImportError as error:
        sandbox.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        sandbox.set_defaults(handler=_failing(lambda e: _no_sandbox("sandbox", e), error))
        return
    add_arguments(sandbox)


def _export_parser(subparsers: argparse._SubParsersAction) -> None:
    export = subparsers.add_parser("export", help="torch model -> verified ONNX -> Triton repository + manifest",
                                   description="Export a torch model to a verified ONNX model in a Triton-layout "
                                               f"repository and print its ModelDeployment (the '{EXPORT}' extra).")
    from ..export.cli import add_arguments, run

    add_arguments(export)
    export.set_defaults(handler=run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    crd = subparsers.add_parser("crd", help="print the CustomResourceDefinition generated from the API models",
                                description="Print the ModelDeployment CRD (YAML), generated from the pydantic "
                                            "API models, or write it into a directory.")
    crd.add_argument("--write", metavar="DIR", help="write the CRD file into the existing directory DIR")
    crd.set_defaults(handler=_crd)
    run = subparsers.add_parser("run", help="run the operator (kopf) against the current cluster",
                                description="Run the operator in the foreground against the cluster of the current "
                                            "kubeconfig context (or, in a pod, its ServiceAccount), as the chart's "
                                            f"Deployment does. Needs the '{OPERATOR}' extra.")
    run.add_argument("--namespace", action="append", help="watch only this namespace (repeatable)")
    run.add_argument("--standalone", action="store_true", help="no peering (a single replica)")
    run.add_argument("--liveness", default="http://0.0.0.0:8081/healthz", help="liveness endpoint URL")
    run.set_defaults(handler=_run)
    demo = subparsers.add_parser("demo", help="the local sandbox: one canary rolled back, one promoted",
                                 description="Start a real local Kubernetes control plane and the operator, then "
                                             "roll out a bad canary (rolled back) and a good one (promoted) under "
                                             "live traffic; everything is stopped at the end. Needs a source "
                                             "checkout (make demo).")
    demo.add_argument("--quick", action="store_true", help="shorter steps and intervals (about a minute)")
    demo.set_defaults(handler=_demo)
    _sandbox_parser(subparsers)
    _export_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
