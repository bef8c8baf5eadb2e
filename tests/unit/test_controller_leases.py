"""Which daemon ends when: a ModelDeployment has no finalizer, so the watch cache's DELETED event ends its
lease, whatever order it arrives in relative to kopf starting the daemon."""

from __future__ import annotations

from typing import Any, cast

from modeldeploy.api import KIND
from modeldeploy.controller import Controller, Lease
from modeldeploy.kubeapi import KubeClient
from modeldeploy.reconciler import Context, Reconciler

KEY = ("ml", "resnet")


class NoReconciler:
    def __init__(self, context: Context, stopped: Any = None) -> None:
        pass


def controller() -> Controller:
    return Controller(Context(kube=cast(KubeClient, None)), workers=1, resync_seconds=300)


def served(ctl: Controller, uid: str, version: int, told: list[str]) -> Lease:
    factory = cast(type[Reconciler], NoReconciler)
    return ctl.serve(KEY, lambda: False, factory, uid=uid, version=version, on_gone=lambda: told.append(uid))


def deleted(ctl: Controller, uid: str, version: str) -> None:
    ctl.on_event(KIND, "DELETED", {"metadata": {"namespace": KEY[0], "name": KEY[1], "uid": uid,
                                                "resourceVersion": version}})


def test_a_deletion_ends_the_lease_of_that_object_only() -> None:
    ctl, told = controller(), list[str]()
    lease = served(ctl, "u2", 10, told)
    deleted(ctl, "u1", "12")  # an older object of the same name
    assert not lease.ended() and told == []
    deleted(ctl, "u2", "15")
    assert lease.gone and lease.ended() and told == ["u2"]
    deleted(ctl, "u2", "15")  # told once
    assert told == ["u2"]


def test_a_deletion_seen_before_the_daemon_started_ends_it_at_once() -> None:
    ctl, told = controller(), list[str]()
    deleted(ctl, "u1", "12")  # created and deleted before kopf started its daemon
    lease = served(ctl, "u1", 11, told)
    assert lease.gone and told == ["u1"]


def test_an_object_relabelled_out_of_the_shard_and_back_is_served_again() -> None:
    ctl, told = controller(), list[str]()
    deleted(ctl, "u1", "20")  # it left this shard's watch...
    back = served(ctl, "u1", 21, told)  # ...and came back: kopf started a new daemon after that
    assert not back.ended() and told == []
    deleted(ctl, "u1", "20")  # the same old event, late: not about the object that came back
    assert not back.ended() and told == []


def test_a_new_object_of_the_same_name_ends_the_old_ones_lease_and_keeps_its_own() -> None:
    ctl, told = controller(), list[str]()
    old = served(ctl, "u1", 10, told)
    new = served(ctl, "u2", 30, told)  # delete and re-create; the old DELETED not seen (yet)
    assert old.gone and not new.ended() and told == ["u1"]
    assert ctl.release(KEY, lease=old) is None  # the old daemon's release leaves the new lease
    assert ctl.lease(KEY) is new


def test_a_failing_notification_does_not_reach_the_watch_thread() -> None:
    ctl = controller()

    def closed_loop() -> None:
        raise RuntimeError("Event loop is closed")

    lease = ctl.serve(KEY, lambda: False, cast(type[Reconciler], NoReconciler), uid="u1", on_gone=closed_loop)
    deleted(ctl, "u1", "5")  # raises nothing
    assert lease.gone
