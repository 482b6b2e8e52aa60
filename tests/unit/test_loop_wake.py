"""Waking a waiting loop from another thread of its process: the ring reader's nudge (both
backends, every wait strategy) and the signal channel's wake, on the ring and on ZeroMQ.

Every wait here is given a minute; a wake must end it. The waiting thread is joined with a bound
far below the minute, so the tests tell "woken" from "timed out" without measuring latency."""
from __future__ import annotations

import threading
import time

import pytest
from conftest import unique_shm_name

from pipeline.bus import signals as S
from pipeline.bus.ring import TickRing

pytestmark = pytest.mark.timeout(60)

MINUTE_S = 60.0
JOIN_S = 10.0


def _waiting(fn):
    """Run fn() in a thread; returns (thread, box) where box holds its result once done."""
    box: list = []
    started = threading.Event()

    def run():
        started.set()
        box.append(fn())
    t = threading.Thread(target=run, daemon=True)
    t.start()
    assert started.wait(JOIN_S)
    time.sleep(0.05)                 # into the wait (a wake before it is kept for it anyway)
    return t, box


@pytest.mark.parametrize("backend", ["cython", "python"])
@pytest.mark.parametrize("wait", ["blocking", "sleeping", "busy_spin"])
def test_a_nudge_ends_a_ring_wait_without_a_record(shm_name, backend, wait):
    with TickRing.create(shm_name, 16, backend=backend) as ring:
        ring.writer()
        r = ring.reader(wait=wait)
        minute_ns = int(MINUTE_S * 1e9)
        core = r.core                # the kernel's wait (Reader.wait loops in 100 ms slices)
        t, box = _waiting(lambda: core.wait(minute_ns))
        core.nudge()
        t.join(JOIN_S)
        assert not t.is_alive(), "the nudge did not end the wait"
        assert box == [False]                       # woken, nothing published
        core.nudge()                                # a nudge before a wait: that wait returns
        t0 = time.monotonic()
        assert core.wait(minute_ns) is False
        assert time.monotonic() - t0 < JOIN_S
        t0 = time.monotonic()
        assert core.wait(20_000_000) is False       # taken: the next wait waits its time out
        assert time.monotonic() - t0 >= 0.015


@pytest.mark.parametrize("ring_capacity", [16, 0], ids=["ring", "zeromq"])
def test_the_signal_channel_wake_ends_the_receivers_wait(ring_capacity):
    with S.SignalReceiver(unique_shm_name(), ring_capacity=ring_capacity,
                          ring_wait="blocking") as rx:
        t, box = _waiting(lambda: rx.wait(int(MINUTE_S * 1000)))
        rx.wake()
        t.join(JOIN_S)
        assert not t.is_alive(), "wake() did not end the wait"
        assert box == [False]
        assert rx.recv_raw() is None                # no signal came
        rx.wake()                                   # before the wait: that wait returns
        t0 = time.monotonic()
        assert rx.wait(int(MINUTE_S * 1000)) is False
        assert time.monotonic() - t0 < JOIN_S
    rx.wake()                                       # closed: a no-op, never an error
