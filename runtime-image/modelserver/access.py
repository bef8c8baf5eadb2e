"""Bearer-token access control (``--auth-token-review``): who may call the model, over REST and gRPC.

A request's ``Authorization: Bearer <token>`` is reviewed by the Kubernetes TokenReview API with the
model's audience; the verdict is cached (:mod:`modelserver.verdicts`), so a repeated token costs a
dict lookup. No token or an invalid one: 401 / UNAUTHENTICATED. A valid token of a caller that is not
allowed: 403 / PERMISSION_DENIED. The API server unreachable: 503 / UNAVAILABLE (never cached).

Open without a token: liveness and readiness (the kubelet's probes carry none) and the metrics port
(Prometheus and the operator scrape it; the NetworkPolicy limits who reaches it).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import grpc

from modelserver import jsonio
from modelserver.errors import ServingError
from modelserver.rest import Pending, Reply
from modelserver.token_review import Review, ReviewUnavailable, TokenReviewer, api_server_url
from modelserver.verdicts import Verdict, VerdictCache

log = logging.getLogger("modelserver.access")

SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
OPEN_REST_ROUTES = frozenset({"live", "server_ready"})
MAX_CONCURRENT_REVIEWS = 8  # distinct unknown tokens reviewed at once; more wait their turn
DEFAULT_CACHE_SECONDS = 60.0
DEFAULT_CACHE_ENTRIES = 10_000


class Unauthenticated(ServingError):
    http_status = 401
    grpc_code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(ServingError):
    http_status = 403
    grpc_code = grpc.StatusCode.PERMISSION_DENIED


class AuthUnavailable(ServingError):
    http_status = 503
    grpc_code = grpc.StatusCode.UNAVAILABLE


@dataclass(frozen=True)
class AccessPolicy:
    """The audience tokens must carry and the callers allowed (ServiceAccounts, by namespace or by name)."""

    audience: str
    namespaces: frozenset[str] = frozenset()
    service_accounts: frozenset[str] = frozenset()  # "namespace/name"

    def judge(self, review: Review) -> Verdict:
        if not review.authenticated:
            reason = f": {review.error}" if review.error else ""
            return Verdict("unauthenticated", f"invalid bearer token{reason}")
        if review.audiences and self.audience not in review.audiences:
            return Verdict("unauthenticated", f"the token is not for audience {self.audience}")
        if not review.username.startswith(SERVICE_ACCOUNT_PREFIX):
            return Verdict("forbidden", f"{review.username} is not a ServiceAccount allowed to call this model",
                           review.username)
        namespace, _, name = review.username.removeprefix(SERVICE_ACCOUNT_PREFIX).partition(":")
        if namespace in self.namespaces or f"{namespace}/{name}" in self.service_accounts:
            return Verdict("allowed", caller=review.username)
        return Verdict("forbidden", f"ServiceAccount {namespace}/{name} is not allowed to call this model",
                       review.username)


class Reviewer(Protocol):
    async def review(self, token: str, audience: str) -> Review: ...

    async def close(self) -> None: ...


def _expires_in(token: str, now: float) -> float | None:
    """Seconds until the JWT's ``exp`` (read unverified: only to cut the cache short), None if unreadable."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"]) - now
    except (IndexError, ValueError, KeyError, TypeError):
        return None


@dataclass
class Guard:
    policy: AccessPolicy
    reviewer: Reviewer
    cache: VerdictCache = field(default_factory=lambda: VerdictCache(DEFAULT_CACHE_SECONDS, DEFAULT_CACHE_ENTRIES))
    wall_clock: Callable[[], float] = time.time
    _inflight: dict[bytes, asyncio.Future[Verdict]] = field(default_factory=dict, init=False)
    _slots: asyncio.Semaphore | None = field(default=None, init=False)

    @staticmethod
    def token_of(header: bytes | None) -> bytes | None:
        """The token of an ``Authorization: Bearer <token>`` header, None when absent or another scheme."""
        if header is None or len(header) < 8 or header[:7].lower() != b"bearer ":
            return None
        token = header[7:].strip()
        return token or None

    def cached(self, token: bytes) -> Verdict | None:
        return self.cache.get(token)

    async def verdict(self, token: bytes) -> Verdict:
        """Review an uncached token; concurrent requests with the same token share one review."""
        pending = self._inflight.get(token)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Verdict] = asyncio.get_running_loop().create_future()
        self._inflight[token] = future
        try:
            verdict = await self._review(token)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else has to
            raise
        finally:
            del self._inflight[token]
        future.set_result(verdict)
        return verdict

    async def _review(self, token: bytes) -> Verdict:
        if self._slots is None:
            self._slots = asyncio.Semaphore(MAX_CONCURRENT_REVIEWS)
        text = token.decode("latin-1")
        async with self._slots:
            try:
                review = await self.reviewer.review(text, self.policy.audience)
            except ReviewUnavailable as exc:
                log.warning("token review unavailable", extra={"error": str(exc)})
                raise AuthUnavailable(f"cannot verify the bearer token now: {exc}") from None
        verdict = self.policy.judge(review)
        self.cache.put(token, verdict, _expires_in(text, self.wall_clock()))
        if not verdict.allowed:
            log.info("caller refused", extra={"outcome": verdict.outcome, "caller": verdict.caller})
        return verdict

    async def close(self) -> None:
        await self.reviewer.close()


def refusal(verdict: Verdict) -> ServingError:
    if verdict.outcome == "unauthenticated":
        return Unauthenticated(verdict.message)
    return PermissionDenied(verdict.message)


def missing_token(policy: AccessPolicy) -> Unauthenticated:
    return Unauthenticated(f"authentication required: send 'Authorization: Bearer <token>' with a ServiceAccount "
                           f"token for audience {policy.audience}")


def _reply(error: ServingError) -> Reply:
    return Reply(error.http_status, jsonio.dumps({"error": error.message}))


class RestGuard:
    """The HTTP front end's hook: ``screen`` answers a refusal, or dispatches the request once allowed."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard

    def screen(self, route_kind: str, header: bytes | None, dispatch: Callable[[], Reply | Pending]) -> Reply | Pending:
        if route_kind in OPEN_REST_ROUTES:
            return dispatch()
        token = Guard.token_of(header)
        if token is None:
            return _reply(missing_token(self.guard.policy))
        verdict = self.guard.cached(token)
        if verdict is not None:  # the hot path: one dict lookup
            return dispatch() if verdict.allowed else _reply(refusal(verdict))
        return asyncio.ensure_future(self._reviewed(token, dispatch)), _result

    async def _reviewed(self, token: bytes, dispatch: Callable[[], Reply | Pending]) -> Reply:
        try:
            verdict = await self.guard.verdict(token)
        except AuthUnavailable as exc:
            return _reply(exc)
        if not verdict.allowed:
            return _reply(refusal(verdict))
        result = dispatch()
        if isinstance(result, Reply):
            return result
        future, finish = result
        await asyncio.wait([future])
        return finish(future)


def _result(future: asyncio.Future[Reply]) -> Reply:
    return future.result()


# ----------------------------------------------------------------------------------------------- gRPC

OPEN_GRPC_METHODS = frozenset({"/inference.GRPCInferenceService/ServerLive",
                               "/inference.GRPCInferenceService/ServerReady"})


def _refusing_handler(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same RPC shape that only aborts with ``code``."""

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(code, message)

    async def streaming(requests: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(code, message)

    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(unary, handler.request_deserializer, handler.response_serializer)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(unary, handler.request_deserializer, handler.response_serializer)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(streaming, handler.request_deserializer,
                                                    handler.response_serializer)
    return grpc.stream_stream_rpc_method_handler(streaming, handler.request_deserializer, handler.response_serializer)


def _authorization(metadata: Iterable[Any] | None) -> bytes | None:
    for key, value in metadata or ():
        if key == "authorization":
            return value.encode("latin-1") if isinstance(value, str) else bytes(value)
    return None


class GrpcGuard(grpc.aio.ServerInterceptor):
    def __init__(self, guard: Guard) -> None:
        self.guard = guard

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Any],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        if handler_call_details.method in OPEN_GRPC_METHODS:
            return await continuation(handler_call_details)
        token = Guard.token_of(_authorization(handler_call_details.invocation_metadata))
        error: ServingError | None = None
        if token is None:
            error = missing_token(self.guard.policy)
        else:
            verdict = self.guard.cached(token)
            if verdict is None:
                try:
                    verdict = await self.guard.verdict(token)
                except AuthUnavailable as exc:
                    error = exc
            if verdict is not None and not verdict.allowed:
                error = refusal(verdict)
        handler = await continuation(handler_call_details)
        if error is None or handler is None:
            return handler
        return _refusing_handler(handler, error.grpc_code, error.message)


@dataclass(frozen=True)
class AuthConfig:
    """The ``--auth-*`` flags of ``modelserver serve``."""

    audience: str
    service_account_dir: Path
    api_server: str = ""  # empty: from KUBERNETES_SERVICE_HOST/PORT, as in-cluster clients do
    namespaces: tuple[str, ...] = ()
    service_accounts: tuple[str, ...] = ()  # "namespace/name"
    cache_seconds: float = DEFAULT_CACHE_SECONDS
    cache_entries: int = DEFAULT_CACHE_ENTRIES


def build_guard(config: AuthConfig) -> Guard:
    """The guard ``serve`` installs (raises ValueError naming the flag when a setting is unusable)."""
    if not config.audience:
        raise ValueError("--auth-audience is required with --auth-token-review")
    for account in config.service_accounts:
        namespace, slash, name = account.partition("/")
        if not (namespace and slash and name):
            raise ValueError(f"--auth-allow-service-account {account!r}: expected NAMESPACE/NAME")
    policy = AccessPolicy(config.audience, frozenset(config.namespaces), frozenset(config.service_accounts))
    reviewer = TokenReviewer(config.api_server or api_server_url(), config.service_account_dir)
    return Guard(policy, reviewer, VerdictCache(config.cache_seconds, config.cache_entries))
