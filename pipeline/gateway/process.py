"""The gateway process: its phases, its entry points, and shutdown; the parts live in their own
files (docs/gateway.md, "Layout"):

    assembly.py      building it from config (STARTING: lock, credentials, journal, bind, venue
                     adapter, rebuild, reconcile)
    venues/binance/gateway.py the venue adapter (signer, REST, instruments, streams, order wire)
    loop.py          the main loop and its housekeeping
    admission.py     one signal: the compiled order path, the refusals, the hand-over
    tradingstate.py  ACTIVE / REDUCING / HALTED, the halt and its cancels
    reporting.py     hops, the launcher's role slot, status.json
    execution.py     the order book of record and the venue conversation for orders

Phases: INIT → STARTING (assembly.assemble) → RUNNING (loop.Loop.run) → STOPPING (shutdown) →
STOPPED (close). The signal channel is bound early (a second gateway fails fast) but HELLOs are
answered with READY only once reconciliation is done, so no signal is taken before the state is
known.

Trading state: ACTIVE / REDUCING / HALTED, journalled; the last journalled state is restored at
start (HALTED persists until `python -m pipeline.gateway reset`). REDUCING (only risk-reducing
orders) on `python -m pipeline.gateway reduce` (SIGUSR2) or PnL below -reduce_at_loss.
Automatic HALTED on: repeated rejects, runaway signal rate (the risk engine trips it), loss limit,
clock skew, HTTP 418, the launcher's halt word.

Shutdown (SIGTERM/SIGINT): stop intake, drain (resolve UNKNOWN orders for up to drain_s), cancel
our open orders or keep them per config, stop the stream, flush and close the journal. Signal
handlers only set flags.
"""
from __future__ import annotations

import fcntl
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from pipeline.gateway.admission import Admission
from pipeline.gateway.assembly import GatewayError, assemble, read_pid, state_paths
from pipeline.gateway.execution import Execution
from pipeline.gateway.journal import Journal
from pipeline.gateway.loop import Loop
from pipeline.gateway.reporting import Reporting
from pipeline.gateway.statusfile import StatusFile
from pipeline.gateway.tradingstate import STATES, TradingControl
from pipeline.hotloop import LoopGC

log = logging.getLogger("pipeline.gateway")

GIL_SWITCH_S = 50e-6            # sys.setswitchinterval: how long the loop may wait for the GIL


class Gateway(Admission, Loop, TradingControl, Reporting):
    """One gateway process: the phases; the parts are the mixins' and assembly's (see above)."""

    def __init__(self, cfg, *, ready_file: str | None = None, environ: dict | None = None):
        self.root_cfg = cfg
        self.cfg = cfg.gateway
        self.paths = state_paths(self.cfg)
        self.ready_file = ready_file
        self.environ = environ
        self.phase = "INIT"
        self.trading = "ACTIVE"
        self.halt_reason = ""
        self.lift_to = ""       # the state to go back to when the launcher lifts its HALT
        self.stop_requested = False
        self.kill_requested = False
        self.reduce_requested = False
        self.cancel_pending = False
        self._last_cancel_try = 0
        self.rejects: dict[str, int] = {}
        self.accepted = 0
        self.refs: dict[str, float] = {}
        self.reconcile_report: dict[str, Any] = {}
        self.internal_errors = 0
        self._lock_fd = -1
        self.intake = None
        self.warm_runs = 0               # dry runs of the signal path (_warm)
        self.gc = LoopGC()               # the loop's own garbage collection (automatic is off)
        self.status_writer: StatusFile | None = None
        self.journal: Journal | None = None
        self.stream = None
        self.ws = None
        self.rest = None
        self.ex: Execution | None = None
        self.feedback = None             # reporting.OrderFeedback (the order-event ring)

    # ================================================================== phases
    def start(self) -> None:
        """STARTING → RUNNING: build every part (assembly.py), then open for signals."""
        self.phase = "STARTING"
        assemble(self)
        self._enter_running()

    def _enter_running(self) -> None:
        from pipeline.records import RoleState
        cfg = self.cfg
        if self.trading == "HALTED":
            self.cancel_pending = True
        self.phase = "RUNNING"
        self._next = {"status": 0, "kill": 0,
                      "audit": time.perf_counter_ns() + int(cfg.open_order_audit_s * 1e9)}
        self._stream_seen = self.stream.connects if self.stream is not None else 0
        self.role.set_state(RoleState.RUNNING)
        # the mark that READY may be answered from here on (no signal is taken before it)
        self.journal.write("ready", trading=self.trading)
        self.journal.commit()
        # a helper thread holding the GIL when a signal comes gives it up within this (default 5 ms)
        sys.setswitchinterval(GIL_SWITCH_S)
        # no collection at a random allocation inside a signal: the loop collects in housekeeping
        self.gc.start()
        self.write_status(sync=True)
        self.status_writer = StatusFile(self.paths["status"], background=True,
                                        cores=self.helper_cores)
        if self.ready_file:
            tmp = Path(self.ready_file + ".tmp")
            tmp.write_bytes(orjson.dumps({"pid": os.getpid(), "trading": self.trading}))
            os.replace(tmp, self.ready_file)

    def shutdown(self) -> int:
        self.phase = "STOPPING"
        log.info("gateway stopping: intake closed, draining")
        if self.intake is not None:
            self.intake.close()
        ex = self.ex
        if ex is not None:
            # orders on the wire get their answer first (bounded by the request timeout)
            ex.drain_inflight(self.cfg.request_timeout_s + self.cfg.connect_timeout_s)
            deadline = time.monotonic() + self.cfg.drain_s
            while ex.table.unknown() and time.monotonic() < deadline:
                self._guarded(self._housekeeping)
                time.sleep(0.02)
            if self.cfg.on_shutdown == "cancel" and ex.table.open_orders():
                n = ex.cancel_ours("shutdown")      # UNKNOWN ones too (-2011 is harmless)
                log.info("shutdown: %d open order(s) cancelled", n)
            time.sleep(0.05)
            if self.stream is not None:
                while True:
                    try:
                        ev = self.stream.events.get_nowait()
                    except Exception:  # noqa: BLE001 - queue.Empty
                        break
                    self._guarded(ex.on_event, ev)
        self.close()
        return 0

    def close(self) -> None:
        role = getattr(self, "role", None)
        if role is not None and self.ex is not None:
            from pipeline.records import RoleState
            from pipeline.telemetry.latency import run_dir_recorder_path
            try:
                self._record_hops()
                self._publish_role(self.ex.book.pnl(self.refs))
                path = run_dir_recorder_path(role.role)
                if path is not None:
                    self.hops.dump(path)
            except (OSError, ValueError) as exc:
                log.warning("telemetry at exit: %s", exc)
            role.set_state(RoleState.FAILED if self.phase == "FAILED" else RoleState.STOPPED)
        if self.stream is not None:
            self.stream.stop()
        if self.ex is not None and self.ex.wire is not None:
            self.ex.wire.close()
        if self.ws is not None:
            self.ws.close()
        if self.rest is not None:
            self.rest.close()
        if getattr(self, "references", None) is not None:
            self.references.close()
        if self.intake is not None:
            self.intake.close()
        if self.feedback is not None:
            self.feedback.writer.close()
            self.feedback = None
        if self.journal is not None and not self.journal.closed:
            if self.phase == "STOPPING":
                self.journal.write("stop", open_orders=[o.cid for o in self.ex.table.open_orders()]
                                   if self.ex else [])
            self.phase = "STOPPED"
            try:
                self.write_status(sync=True)
                run_dir = os.environ.get("PIPELINE_RUN_DIR")
                if run_dir and role is not None:     # the launcher folds it into its summary
                    shutil.copyfile(self.paths["status"],
                                    os.path.join(run_dir, f"{role.role}.summary.json"))
            except (OSError, AttributeError):
                pass
            self.journal.close()
        if self._lock_fd >= 0:
            try:
                self.paths["pid"].unlink(missing_ok=True)
            finally:
                os.close(self._lock_fd)
                self._lock_fd = -1


def gateway_running(gcfg) -> int:
    """The pid of the gateway holding this state dir, or 0."""
    paths = state_paths(gcfg)
    if not paths["lock"].exists():
        return 0
    fd = os.open(paths["lock"], os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return read_pid(paths["pid"]) or -1
    finally:
        os.close(fd)
    return 0


def run_gateway(cfg, *, ready_file: str | None = None, environ: dict | None = None) -> int:
    """Start and run a gateway until SIGTERM; the launcher's entry point. Returns an exit code."""
    gw = Gateway(cfg, ready_file=ready_file, environ=environ)
    gw.install_signal_handlers()
    try:
        gw.start()
    except Exception:
        gw.phase = "FAILED"
        gw.close()
        raise
    return gw.run()


__all__ = ["Gateway", "GatewayError", "run_gateway", "gateway_running", "state_paths", "STATES"]
