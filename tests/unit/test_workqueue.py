"""The work queue's contract: deduplicated, one worker per key, FIFO, due timers, rate-limited retries."""

from __future__ import annotations

import threading

import pytest

from modeldeploy.ratelimit import TokenBucket
from modeldeploy.workqueue import ShutDown, WorkQueue


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_key_waits_once_and_keys_come_out_first_in_first_out() -> None:
    queue = WorkQueue()
    for key in ("a", "b", "a", "c", "b"):
        queue.add(key)
    assert len(queue) == 3
    assert [queue.get(0), queue.get(0), queue.get(0)] == ["a", "b", "c"]
    assert queue.get(0) is None


def test_a_key_added_while_processed_is_served_again_after_done_never_twice_at_once() -> None:
    queue = WorkQueue()
    queue.add("a")
    assert queue.get(0) == "a"
    queue.add("a")  # an event during the reconcile
    assert queue.get(0) is None, "a second worker must not get a key that is being processed"
    queue.done("a")
    assert queue.get(0) == "a"


def test_a_woken_key_is_served_behind_only_the_keys_woken_before_it() -> None:
    """Fairness: a thousand objects with timers later do not delay a spec change."""
    clock = FakeClock()
    queue = WorkQueue(clock=clock)
    for index in range(1000):
        queue.add_after(f"busy-{index}", 5.0)
    queue.add("changed")
    assert queue.get(0) == "changed"
    assert queue.pending_timers() == 1000


def test_timers_come_due_in_order_and_an_earlier_timer_wins() -> None:
    clock = FakeClock()
    queue = WorkQueue(clock=clock)
    queue.add_after("late", 10)
    queue.add_after("soon", 2)
    queue.add_after("soon", 30)  # a later timer of a key with an earlier one: the earlier one stays
    assert queue.get(0) is None
    clock.now += 2
    assert queue.get(0) == "soon"
    clock.now += 8
    assert queue.get(0) == "late"
    assert queue.pending_timers() == 0


def test_a_cancelled_timer_never_fires() -> None:
    clock = FakeClock()
    queue = WorkQueue(clock=clock)
    queue.add_after("gone", 1)
    queue.cancel_timers("gone")
    clock.now += 5
    assert queue.get(0) is None


def test_a_blocked_get_wakes_when_a_key_arrives() -> None:
    queue = WorkQueue()
    got: list[object] = []
    worker = threading.Thread(target=lambda: got.append(queue.get(10)))
    worker.start()
    queue.add("a")
    worker.join(5)
    assert got == ["a"]


def test_retries_back_off_per_key_and_forget_resets_them() -> None:
    clock = FakeClock()
    queue = WorkQueue(retry_bucket=TokenBucket(1000, 1000, clock=clock), clock=clock)
    delays = [queue.add_rate_limited("a", lambda failures: 2.0 ** failures) for _ in range(4)]
    assert delays == [1.0, 2.0, 4.0, 8.0]
    assert queue.failures("a") == 4
    queue.forget("a")
    assert queue.add_rate_limited("a", lambda failures: 2.0 ** failures) == 1.0


def test_the_overall_bucket_spreads_many_keys_retries() -> None:
    clock = FakeClock()
    queue = WorkQueue(retry_bucket=TokenBucket(10, 5, clock=clock), clock=clock)
    delays = [queue.add_rate_limited(f"k{index}", lambda failures: 0.0) for index in range(25)]
    assert delays[:5] == [0.0] * 5  # the burst
    assert delays[5:] == pytest.approx([(index + 1) / 10 for index in range(20)])  # then 10 a second


def test_shut_down_ends_waiting_workers() -> None:
    queue = WorkQueue()
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            queue.get()
        except ShutDown as error:
            errors.append(error)

    worker = threading.Thread(target=wait)
    worker.start()
    queue.shut_down()
    worker.join(5)
    assert len(errors) == 1


def test_a_token_bucket_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="rate > 0"):
        TokenBucket(0, 1)


def test_an_urgent_key_goes_before_the_backlog_and_is_served_once() -> None:
    queue = WorkQueue()
    for index in range(1000):
        queue.add(f"catching-up-{index}")
    queue.add("catching-up-500", urgent=True)  # the same object, now with a spec change
    queue.add("applied", urgent=True)
    assert len(queue) == 1001
    assert [queue.get(0), queue.get(0)] == ["catching-up-500", "applied"]
    served = [queue.get(0) for _ in range(999)]
    assert "catching-up-500" not in served and served[0] == "catching-up-0"
    assert queue.get(0) is None


def test_an_urgent_add_during_processing_is_urgent_when_requeued() -> None:
    queue = WorkQueue()
    queue.add("a")
    assert queue.get(0) == "a"
    queue.add("b")
    queue.add("a", urgent=True)
    queue.done("a")
    assert queue.get(0) == "a"
