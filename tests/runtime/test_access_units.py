"""modelserver.access without a cluster: the verdict cache's bounds and expiry, the policy, the guard's
sharing of reviews and its answers. The real TokenReview API is exercised in tests/operator/test_access.py.
"""

from __future__ import annotations

import asyncio
import base64
import json

import grpc
import pytest

from modelserver import jsonio
from modelserver.access import AccessPolicy, Guard, RestGuard, refusal
from modelserver.rest import Reply
from modelserver.token_review import Review, ReviewUnavailable
from modelserver.verdicts import Verdict, VerdictCache

AUDIENCE = "modeldeploy.dev/ml/resnet"
ALLOWED = Verdict("allowed", caller="system:serviceaccount:apps:web")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingReviewer:
    """Answers from a table and counts the calls: what the cache must save."""

    def __init__(self, answers: dict[str, Review], gate: asyncio.Event | None = None) -> None:
        self.answers, self.calls, self.gate = answers, [], gate

    async def review(self, token: str, audience: str) -> Review:
        self.calls.append((token, audience))
        if self.gate is not None:
            await self.gate.wait()
        if token not in self.answers:
            raise ReviewUnavailable("connection refused")
        return self.answers[token]

    async def close(self) -> None:
        pass


def _jwt(exp: float) -> str:
    payload = base64.urlsafe_b64encode(json.dumps({"exp": exp}).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJSUzI1NiJ9.{payload}.c2ln"


# --------------------------------------------------------------------------- VerdictCache


def test_a_verdict_expires_after_its_ttl() -> None:
    clock = Clock()
    cache = VerdictCache(ttl_s=60, max_entries=10, clock=clock)
    cache.put(b"t", ALLOWED)
    clock.now += 59.9
    assert cache.get(b"t") == ALLOWED
    clock.now += 0.1
    assert cache.get(b"t") is None and len(cache) == 0


def test_a_verdict_never_outlives_its_token() -> None:
    clock = Clock()
    cache = VerdictCache(ttl_s=60, max_entries=10, clock=clock)
    cache.put(b"short", ALLOWED, token_expires_in_s=5)
    cache.put(b"expired", ALLOWED, token_expires_in_s=-1)
    assert cache.get(b"expired") is None
    clock.now += 5
    assert cache.get(b"short") is None


def test_the_cache_keeps_at_most_max_entries_and_drops_the_oldest() -> None:
    cache = VerdictCache(ttl_s=60, max_entries=3, clock=Clock())
    for token in (b"a", b"b", b"c", b"d"):
        cache.put(token, ALLOWED)
    assert len(cache) == 3
    assert cache.get(b"a") is None and cache.get(b"b") == cache.get(b"d") == ALLOWED
    cache.put(b"b", ALLOWED)  # refreshed: now the youngest, so c goes next
    cache.put(b"e", ALLOWED)
    assert cache.get(b"c") is None and cache.get(b"b") == ALLOWED and len(cache) == 3


@pytest.mark.parametrize("ttl,size,message", [(-1, 1, "ttl"), (1, 0, "size")])
def test_bad_cache_bounds_are_named(ttl: float, size: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VerdictCache(ttl_s=ttl, max_entries=size)


# --------------------------------------------------------------------------- AccessPolicy


POLICY = AccessPolicy(AUDIENCE, frozenset({"apps"}), frozenset({"batch/scorer"}))


@pytest.mark.parametrize("review,outcome", [
    (Review(True, "system:serviceaccount:apps:web", (AUDIENCE,)), "allowed"),  # by namespace
    (Review(True, "system:serviceaccount:batch:scorer", (AUDIENCE,)), "allowed"),  # by name
    (Review(True, "system:serviceaccount:batch:other", (AUDIENCE,)), "forbidden"),
    (Review(True, "alice", (AUDIENCE,)), "forbidden"),  # not a ServiceAccount
    (Review(True, "system:serviceaccount:apps:web", ("https://kubernetes.default.svc",)), "unauthenticated"),
    (Review(False, error="token has expired"), "unauthenticated"),
])
def test_the_policy_judges_reviews(review: Review, outcome: str) -> None:
    assert POLICY.judge(review).outcome == outcome


def test_refusals_carry_the_http_and_grpc_codes() -> None:
    assert (refusal(Verdict("unauthenticated", "x")).http_status,
            refusal(Verdict("unauthenticated", "x")).grpc_code) == (401, grpc.StatusCode.UNAUTHENTICATED)
    assert (refusal(Verdict("forbidden", "x")).http_status,
            refusal(Verdict("forbidden", "x")).grpc_code) == (403, grpc.StatusCode.PERMISSION_DENIED)


@pytest.mark.parametrize("header,token", [
    (b"Bearer abc", b"abc"), (b"bearer abc ", b"abc"), (b"Basic abc", None), (b"Bearer ", None), (None, None),
])
def test_the_token_is_read_from_a_bearer_header(header: bytes | None, token: bytes | None) -> None:
    assert Guard.token_of(header) == token


# --------------------------------------------------------------------------- Guard


def _guard(reviewer: CountingReviewer, clock: Clock | None = None) -> Guard:
    clock = clock or Clock()
    return Guard(POLICY, reviewer, VerdictCache(60, 100, clock=clock), wall_clock=lambda: 0.0)


async def test_concurrent_requests_with_one_token_share_one_review() -> None:
    gate = asyncio.Event()
    reviewer = CountingReviewer({"t": Review(True, "system:serviceaccount:apps:web", (AUDIENCE,))}, gate)
    guard = _guard(reviewer)
    waiting = [asyncio.ensure_future(guard.verdict(b"t")) for _ in range(5)]
    await asyncio.sleep(0)
    gate.set()
    verdicts = await asyncio.gather(*waiting)
    assert [v.outcome for v in verdicts] == ["allowed"] * 5 and len(reviewer.calls) == 1
    assert reviewer.calls == [("t", AUDIENCE)]
    assert guard.cached(b"t") is not None  # the next request is served from the cache


async def test_a_review_that_could_not_be_made_is_never_cached() -> None:
    reviewer = CountingReviewer({})
    guard = _guard(reviewer)
    for _ in range(2):
        with pytest.raises(Exception, match="cannot verify the bearer token now") as failed:
            await guard.verdict(b"unknown")
        assert failed.value.http_status == 503  # type: ignore[attr-defined]
    assert len(reviewer.calls) == 2 and guard.cached(b"unknown") is None


async def test_the_verdict_of_a_token_is_kept_no_longer_than_its_exp() -> None:
    token = _jwt(exp=30.0)  # wall clock 0: expires in 30 s
    reviewer = CountingReviewer({token: Review(True, "system:serviceaccount:apps:web", (AUDIENCE,))})
    clock = Clock()
    guard = _guard(reviewer, clock)
    await guard.verdict(token.encode())
    clock.now += 29
    assert guard.cached(token.encode()) is not None
    clock.now += 1
    assert guard.cached(token.encode()) is None


def _body(reply: Reply) -> dict[str, str]:
    return dict(jsonio.loads(reply.body))


async def test_the_rest_guard_answers_401_and_403_as_triton_json_and_leaves_probes_open() -> None:
    reviewer = CountingReviewer({"bad": Review(True, "system:serviceaccount:other:x", (AUDIENCE,)),
                                 "good": Review(True, "system:serviceaccount:apps:web", (AUDIENCE,))})
    rest = RestGuard(_guard(reviewer))
    served = Reply(200, b"{}")

    def dispatch() -> Reply:
        return served

    assert rest.screen("live", None, dispatch) is served and rest.screen("server_ready", None, dispatch) is served
    missing = rest.screen("infer", None, dispatch)
    assert isinstance(missing, Reply) and missing.status == 401
    assert "Bearer" in _body(missing)["error"] and AUDIENCE in _body(missing)["error"]
    replies: dict[bytes, Reply] = {}
    for token, status in ((b"bad", 403), (b"good", 200)):
        pending = rest.screen("metadata", b"Bearer " + token, dispatch)
        assert not isinstance(pending, Reply)  # first sight: reviewed
        future, finish = pending
        await future
        first = finish(future)
        again = rest.screen("metadata", b"Bearer " + token, dispatch)  # cached: answered at once
        assert isinstance(again, Reply) and first.status == again.status == status
        replies[token] = again
    assert _body(replies[b"bad"]) == {"error": "ServiceAccount other/x is not allowed to call this model"}
    assert replies[b"good"] is served and len(reviewer.calls) == 2
