"""New-order requests on a helper thread, so the gateway's loop never waits for a venue's answer.

With one synchronous HTTP client the loop sat in the order's round trip (~1.5 ms to the simulator)
and a signal arriving meanwhile waited for it: in the demo, every tick → signed order above
~250 µs was such a signal. The loop now journals the request (write-ahead), hands the signed body
to the wire and goes back to the signal ring; the wire thread sends it on its own keep-alive HTTP
session (a requests.Session is not shared between threads) and queues the reply, which the loop
takes with `replies()` and acts on (Execution.on_reply). Only POST /api/v3/order goes through here;
queries and cancels stay on the loop's own client. The rate-limit gate is shared (its counters are
updated from both threads' response headers).
"""
from __future__ import annotations

import logging
import os
import queue
import threading
import time

from pipeline.gateway.rest import Outcome, Reply, RestClient

log = logging.getLogger(__name__)


def helper_cores() -> set[int] | None:
    """Where the gateway's helper threads (order wire, user stream, status writer) should run:
    every CPU this process may use except the ones its loop is pinned to, or None (no pinning,
    or nothing else to use). Call it from the main thread. A loop spinning alone on its core then
    keeps that core, and a helper holding the GIL is not descheduled behind the spinner."""
    rest = set(range(os.cpu_count() or 1)) - os.sched_getaffinity(0)
    return rest or None


def pin_this_thread(cores: set[int] | None) -> None:
    """Move the calling thread (Linux affinity is per thread) onto `cores`, if given."""
    if cores:
        try:
            os.sched_setaffinity(0, cores)
        except OSError as exc:
            log.warning("helper thread %s: cannot move to CPUs %s: %s",
                        threading.current_thread().name, sorted(cores), exc)


WIRE_NICE = -10


class Wire:
    def __init__(self, rest: RestClient, cores: set[int] | None = None):
        self.rest = rest                  # used by the wire thread only
        self.cores = cores
        self._in: queue.SimpleQueue = queue.SimpleQueue()
        self._out: queue.SimpleQueue = queue.SimpleQueue()
        self.sent = 0
        self.expired = 0                  # dropped unsent: queued past their signal's TTL
        self._thread = threading.Thread(target=self._run, name="order-wire", daemon=True)
        self._thread.start()

    def put(self, cid: str, body: bytes, not_after_mono: int = 0) -> None:
        """Send `body` for order `cid`, unless the wire only gets to it after `not_after_mono`
        (the signal's TTL): then it answers NOT_SENT without sending (nothing went out)."""
        self._in.put((cid, body, not_after_mono))

    def replies(self) -> list[tuple[str, Reply]]:
        """Every (cid, reply) that came back, without waiting."""
        out = []
        while True:
            try:
                out.append(self._out.get_nowait())
            except queue.Empty:
                return out

    def wait_reply(self, timeout: float) -> tuple[str, Reply] | None:
        try:
            return self._out.get(timeout=timeout)
        except queue.Empty:
            return None

    def _run(self) -> None:
        pin_this_thread(self.cores)
        try:        # per thread on Linux: ahead of the simulator and collector it shares a core with
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WIRE_NICE)
        except OSError:
            pass    # not permitted (no CAP_SYS_NICE): normal priority
        while True:
            item = self._in.get()
            if item is None:
                return
            cid, body, not_after = item
            if not_after and time.perf_counter_ns() > not_after:
                self.expired += 1
                self._out.put((cid, Reply(Outcome.NOT_SENT, msg="signal TTL passed while queued "
                                          "for the wire; not sent",
                                          done_mono=time.perf_counter_ns())))
                continue
            try:
                reply = self.rest.send("POST", "/api/v3/order", body=body)
            except Exception as exc:  # noqa: BLE001 - the request may be out: UNKNOWN, never resent
                log.exception("order %s: error while sending; outcome unknown", cid)
                reply = Reply(Outcome.UNKNOWN, msg=f"internal error while sending: "
                                                   f"{type(exc).__name__}",
                              done_mono=time.perf_counter_ns())
            self.sent += 1
            self._out.put((cid, reply))

    def close(self, timeout: float = 5.0) -> None:
        self._in.put(None)
        self._thread.join(timeout)
        self.rest.close()
