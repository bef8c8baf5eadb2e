"""``modelserver serve`` (Triton's flag spelling) and ``modelserver fetch`` (init container)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelserver.access import AuthConfig

log = logging.getLogger("modelserver.cli")


def _size(text: str) -> int:
    """Bytes, with an optional Ki/Mi/Gi suffix (64Mi, 1048576)."""
    units = {"ki": 1024, "mi": 1024**2, "gi": 1024**3, "k": 1000, "m": 1000**2, "g": 1000**3}
    t = text.strip().lower()
    for suffix, mult in units.items():
        if t.endswith(suffix):
            return int(float(t[: -len(suffix)]) * mult)
    return int(t)


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model-repository", required=True, type=Path, help="Triton-layout model repository")
    p.add_argument("--host", default="0.0.0.0", help="address to bind (default 0.0.0.0)")
    p.add_argument("--http-port", type=int, default=8000)
    p.add_argument("--grpc-port", type=int, default=8001)
    p.add_argument("--metrics-port", type=int, default=8002)
    p.add_argument(
        "--max-batch-size", type=int, default=0,
        help="dynamic batching limit for models without config.pbtxt (0: no batching)",
    )  # fmt: skip
    p.add_argument(
        "--max-queue-delay-us", type=int, default=0,
        help="how long a batch may wait for more requests (models without config.pbtxt)",
    )  # fmt: skip
    p.add_argument("--instances", type=int, default=1, help="model instances (ORT runs in parallel)")
    p.add_argument("--intra-op-threads", type=int, default=0, help="ORT threads per run (0: ORT default)")
    p.add_argument("--max-request-bytes", type=_size, default=64 * 1024 * 1024, help="body limit (413 beyond)")
    p.add_argument(
        "--max-request-memory", type=_size, default=256 * 1024 * 1024,
        help="what decoding one request's inputs may allocate, estimated before allocating (413 beyond)",
    )  # fmt: skip
    p.add_argument("--device", choices=["cpu", "cuda", "auto"], default="auto")
    p.add_argument(
        "--model-control-mode", choices=["none", "explicit", "poll"], default="none",
        help="Triton's modes: none refuses load/unload requests, explicit allows them (poll: not supported)",
    )  # fmt: skip
    p.add_argument(
        "--cache-config", default="local,size=67108864", metavar="local,size=BYTES",
        help="response cache shared by models with response_cache { enable: true } (size=0: off)",
    )  # fmt: skip
    p.add_argument("--drain-timeout", type=float, default=30.0, help="seconds to finish in-flight requests")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    add_worker_arguments(p)
    add_auth_arguments(p)


def add_auth_arguments(p: argparse.ArgumentParser) -> None:
    """Access control: bearer tokens reviewed by the Kubernetes TokenReview API (modelserver.access)."""
    p.add_argument(
        "--auth-token-review", action="store_true",
        help="refuse requests without the bearer token of an allowed caller (401/403); probes and /metrics stay open",
    )  # fmt: skip
    p.add_argument("--auth-audience", default="", help="audience callers' tokens must carry (the model's)")
    p.add_argument(
        "--auth-allow-namespace", action="append", default=[], metavar="NAMESPACE",
        help="ServiceAccounts of this namespace may call (repeatable)",
    )  # fmt: skip
    p.add_argument(
        "--auth-allow-service-account", action="append", default=[], metavar="NAMESPACE/NAME",
        help="this ServiceAccount may call (repeatable)",
    )  # fmt: skip
    p.add_argument(
        "--auth-service-account-dir", type=Path, default=Path("/var/run/secrets/kubernetes.io/serviceaccount"),
        help="the server's own ServiceAccount token and ca.crt, used to call TokenReview",
    )  # fmt: skip
    p.add_argument(
        "--auth-api-server", default="",
        help="API server URL (default: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT)",
    )  # fmt: skip
    p.add_argument("--auth-cache-seconds", type=float, default=60.0, help="how long a verdict is reused")
    p.add_argument("--auth-cache-entries", type=int, default=10_000, help="verdicts kept at most (oldest go first)")


def _workers(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"--workers must be at least 1, got {n}")
    return n


def add_worker_arguments(p: argparse.ArgumentParser) -> None:
    """Several server processes sharing the ports (modelserver.workers)."""
    p.add_argument(
        "--workers", type=_workers, default=None,
        help="server processes sharing the HTTP/gRPC ports (default: the whole cores of the container's "
             "CPU limit, 1 without a limit or with a GPU)",
    )  # fmt: skip
    # Set by the supervisor for its workers only.
    p.add_argument("--worker-dir", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--worker-channel-fd", type=int, default=None, help=argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelserver", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    add_serve_arguments(sub.add_parser("serve", help="serve a model repository"))
    fetch = sub.add_parser("fetch", help="download a model, verify its digest, write the repository")
    try:
        from modelserver import fetch as fetch_mod  # lazily: serve must work without it
    except ImportError:
        pass
    else:
        fetch_mod.add_arguments(fetch)
    return parser


RUNTIME_EXTRA = "runtime"


def missing_runtime(command: str, error: ImportError) -> int:
    """One line naming the extra to install, instead of a ModuleNotFoundError traceback (exit 2)."""
    module = (getattr(error, "name", None) or str(error)).split(".")[0]
    print(f"modelserver {command}: needs the '{RUNTIME_EXTRA}' extra (missing Python module {module!r}): "
          f"pip install 'modeldeploy[{RUNTIME_EXTRA}]'", file=sys.stderr)
    return 2


def run_serve(args: argparse.Namespace, argv: Sequence[str] = ()) -> int:
    from modelserver.logs import setup_logging

    try:
        from modelserver.server import ServerConfig, StartupError, serve
    except ImportError as error:
        return missing_runtime("serve", error)

    from modelserver.repository_control import check_mode
    from modelserver.response_cache import parse_cache_config

    setup_logging(args.log_level)
    if args.worker_dir is None:
        from modelserver.workers import resolve_workers, run_supervisor

        try:
            workers = resolve_workers(args)
        except ValueError as exc:
            print(f"modelserver: error: {exc}", file=sys.stderr)
            return 2
        if workers > 1:
            return run_supervisor(args, argv, workers, _event_loop_runner())
    try:
        config = ServerConfig(
            model_repository=args.model_repository,
            host=args.host,
            http_port=args.http_port,
            grpc_port=args.grpc_port,
            metrics_port=args.metrics_port,
            max_batch_size=args.max_batch_size,
            max_queue_delay_us=args.max_queue_delay_us,
            instances=args.instances,
            intra_op_threads=args.intra_op_threads,
            max_request_bytes=args.max_request_bytes,
            max_request_memory=args.max_request_memory,
            device=args.device,
            drain_timeout_s=args.drain_timeout,
            model_control_mode=check_mode(args.model_control_mode),
            response_cache_bytes=parse_cache_config(args.cache_config),
            auth=auth_config(args),
            worker_dir=args.worker_dir,
            worker_index=args.worker_index,
            http_channel_fd=args.worker_channel_fd,
        )
    except ValueError as exc:  # e.g. a malformed MODELSERVER_FAULT_* value
        log.error("bad configuration", extra={"error": str(exc)})
        return 2
    try:
        _event_loop_runner()(serve(config, install_signal_handlers=True))
    except StartupError as exc:
        log.error("startup failed", extra={"error": str(exc)})
        print(f"modelserver: error: {exc}", file=sys.stderr)
        return 1
    return 0


def auth_config(args: argparse.Namespace) -> AuthConfig | None:
    from modelserver.access import AuthConfig

    if not args.auth_token_review:
        if args.auth_allow_namespace or args.auth_allow_service_account or args.auth_audience:
            raise ValueError("--auth-audience/--auth-allow-* need --auth-token-review")
        return None
    return AuthConfig(
        audience=args.auth_audience,
        service_account_dir=args.auth_service_account_dir,
        api_server=args.auth_api_server,
        namespaces=tuple(args.auth_allow_namespace),
        service_accounts=tuple(args.auth_allow_service_account),
        cache_seconds=args.auth_cache_seconds,
        cache_entries=args.auth_cache_entries,
    )


def _event_loop_runner() -> Callable[[Coroutine[Any, Any, None]], None]:
    """uvloop when installed (less per-request loop overhead); MODELSERVER_EVENT_LOOP=asyncio opts out."""
    if os.environ.get("MODELSERVER_EVENT_LOOP", "auto") != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run
    return asyncio.run


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return run_serve(args, sys.argv[1:] if argv is None else argv)
    try:
        from modelserver import fetch as fetch_mod
    except ImportError as exc:
        print(f"modelserver: error: fetch is not available: {exc}", file=sys.stderr)
        return 2
    return int(fetch_mod.run(args))


if __name__ == "__main__":
    sys.exit(main())
