"""Two test sessions on one machine cut the same pod CIDRs: a pod IP held by another process's
kubelet is never handed out again (it crashed pods with "address already in use" in concurrent
runs), and is free again as soon as that process ends, however it ends."""

from __future__ import annotations

import subprocess
import sys

from modeldeploy_sandbox.addresses import PodAddressPool

CIDR = "10.244.251.0/29"  # far from the node CIDRs a cluster hands out first (10.244.0-3.0/24)
HOLDER = f"""
import sys
from modeldeploy_sandbox.addresses import PodAddressPool
print(PodAddressPool({CIDR!r}, ports=(18998,)).allocate(), flush=True)
sys.stdin.readline()
"""


def test_an_ip_held_by_another_process_is_skipped_until_that_process_ends() -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        held = holder.stdout.readline().strip()
        assert held == "10.244.251.2"  # .1 is the node's bridge
        pool = PodAddressPool(CIDR, ports=(18998,))
        mine = pool.allocate()
        assert mine == "10.244.251.3"  # nothing listens on .2 yet: only the other process's lock says it is taken
    finally:
        holder.kill()
        holder.wait(10)
    assert pool.allocate() == "10.244.251.2"  # the kernel dropped the dead holder's lock
    for ip in pool.taken():
        pool.release(ip)
    assert pool.taken() == set()
