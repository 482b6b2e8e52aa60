"""What every role process does for the launcher: status slot, heartbeats, counters, hop latency.

    tel = RoleTelemetry("strategy", main_hop="ring_to_strategy")
    tel.running()                          # after start-up: the launcher starts the next role
    while ...:
        tel.hops.record("ring_to_strategy", ns)
        tel.beat(ticks=n, signals=m)       # cheap; heartbeats at most every `every_ns`, hop
                                           # histograms to the status block once a second
    tel.close()                            # STOPPED, histograms to <run_dir>/<role>.hdr.json

Run outside the launcher it still works (private status memory, no files unless
PIPELINE_RUN_DIR is set), so role code never asks how it was started.

Every role's `python -m` entry ends through `exit_role(main)`: once main() has returned (or
raised), SIGTERM is ignored. The launcher SIGTERMs every role still alive in its stop order, and
a role that already stopped on its own (the shutdown word, its ring writer closed) may be in
interpreter finalisation then, which puts the default action back on every signal Python
handled: that SIGTERM would kill it (exit -15). SIG_IGN survives finalisation.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import time
from typing import Callable, NoReturn

from pipeline.records import RoleState
from pipeline.telemetry.latency import HopRecorder
from pipeline.telemetry.status import ENV_ROLE, RoleStatus

log = logging.getLogger(__name__)


class RoleTelemetry:
    def __init__(self, kind: str, main_hop: str | None = None, every_ns: int = 100_000_000,
                 export_every_ns: int = 1_000_000_000):
        self.kind = kind
        self.name = os.environ.get(ENV_ROLE, kind)
        self.status = RoleStatus.from_env()
        self.status.set_state(RoleState.STARTING)
        self.hops = HopRecorder([main_hop] if main_hop else [])
        self.main_hop = main_hop
        self.every_ns = every_ns
        self._next = 0
        self.export_every_ns = export_every_ns     # hop histograms → status block (Prometheus)
        self._next_export = 0
        self._closed = False

    def running(self) -> None:
        self.status.set_state(RoleState.RUNNING)

    def beat(self, **counters) -> None:
        now = time.perf_counter_ns()
        if now < self._next:
            return
        self._next = now + self.every_ns
        if counters:
            self.status.set(**counters)
        if self.main_hop:
            live = self.hops.live(self.main_hop)        # never an HdrHistogram query here
            if live:
                self.status.set(hop_p50_ns=live["p50"], hop_p99_ns=live["p99"])
        if now >= self._next_export:
            self._next_export = now + self.export_every_ns
            self.hops.export(self.status.hops)
        self.status.heartbeat()

    @property
    def halt_requested(self) -> bool:
        return self.status.halt_requested

    def close(self, **counters) -> None:
        if self._closed:
            return
        self._closed = True
        self._next = self._next_export = 0
        self.beat(**counters)
        self.status.set_state(RoleState.STOPPED)
        run_dir = os.environ.get("PIPELINE_RUN_DIR")
        if run_dir and any(h.get_total_count() for h in self.hops.hist.values()):
            try:
                self.hops.dump(os.path.join(run_dir, f"{self.name}.hdr.json"))
            except OSError as exc:
                log.warning("cannot write latency histograms to %s: %s", run_dir, exc)
        self.status.close()


def exit_role(main: Callable[[], int | None]) -> NoReturn:
    """Run a role's main() and exit with its code, a late SIGTERM ignored (see the module doc)."""
    try:
        code = main()
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.exit(code)
