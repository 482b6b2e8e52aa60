"""What the roles' hot loops share: garbage collection on the loop's own schedule, and helper
threads that leave the loop's signals to the loop.

A cyclic collection can run at any allocation and take milliseconds; in a loop that signs orders
or reacts to ticks that is a stall at a random moment. `LoopGC` moves the start-up objects out of
the collector's generations (gc.freeze), turns automatic collection off, and lets the loop collect
young objects once a second and everything once a minute, at a point the loop chooses.
"""
from __future__ import annotations

import gc
import signal
import time

# what a role's loop is told by signals (stop, kill switch, reduce): its handlers set a flag and
# wake its wait (pipeline/gateway/loop.py). A signal sent to the process goes to any thread that
# does not block it; one taken by a helper thread would leave the loop asleep until its wait timed
# out, so helper threads block these (`quiet_signals`, first thing in the thread).
LOOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2})


def quiet_signals() -> None:
    """Block the loop's signals in the calling (helper) thread; they reach the main thread."""
    signal.pthread_sigmask(signal.SIG_BLOCK, LOOP_SIGNALS)


def import_numpy_quietly() -> None:
    """Import numpy with the loop's signals blocked: the threads its BLAS starts at import
    (native, never running Python) inherit the mask and so never take a SIGTERM meant for the
    loop (one did, 2 times in 8: the gateway slept on in a 60 s wait). A role's entry point
    calls this before anything imports numpy."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, LOOP_SIGNALS)
    try:
        import numpy  # noqa: F401
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)

GC_EVERY_NS = 1_000_000_000     # young objects this often
FULL_EVERY = 60                 # every this many collections, a full one


class LoopGC:
    def __init__(self, every_ns: int = GC_EVERY_NS, full_every: int = FULL_EVERY):
        self.every_ns = every_ns
        self.full_every = full_every
        self.runs = 0
        self.next_ns = 1 << 62          # nothing until start()

    def start(self) -> None:
        gc.collect()
        gc.freeze()
        gc.disable()
        self.next_ns = time.perf_counter_ns() + self.every_ns

    def maybe(self, now_ns: int) -> None:
        """Collect if due (call it where a pause does no harm: after a batch, in housekeeping)."""
        if now_ns >= self.next_ns:
            self.next_ns = now_ns + self.every_ns
            self.runs += 1
            gc.collect(2 if self.runs % self.full_every == 0 else 0)

    def stop(self) -> None:
        """Automatic collection back on, the frozen objects back in the generations."""
        gc.unfreeze()
        gc.enable()
