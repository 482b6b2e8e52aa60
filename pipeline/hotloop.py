"""What the roles' hot loops share: garbage collection on the loop's own schedule.

A cyclic collection can run at any allocation and take milliseconds; in a loop that signs orders
or reacts to ticks that is a stall at a random moment. `LoopGC` moves the start-up objects out of
the collector's generations (gc.freeze), turns automatic collection off, and lets the loop collect
young objects once a second and everything once a minute, at a point the loop chooses.
"""
from __future__ import annotations

import gc
import time

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
