"""The gateway's main loop: wait for signals, sign every waiting one, finish them in order, and
between batches the housekeeping (kill switch, replies, user-stream events, UNKNOWN orders,
audits, clock, references, loss limits, status, journal sync, garbage collection).

Main loop (single thread; the user-data stream and the order wire have their own threads):
    kill switch (SIGUSR1 flag, kill file) → HALTED + cancel every open order
    intake: wait up to poll_ms for signals/HELLOs; sign every waiting signal (admission.py: the
        compiled order path: risk, sign, and with the binary journal the ORDER record and the
        request on a connection held ready, one call), then finish each (the order's book,
        logs, the hand-over of its answer to the wire thread)
    idle: the dry run of the signal path every warm_ms (warm.py); with spin_warm_ms > 0 a
        gateway spinning on its own core (busy_spin) waits in slices of it and runs the path dry
        after each, the last thing before the spin, the housekeeping on its own period
    housekeeping: wire replies, user-stream events → fills, order states; UNKNOWN orders due for
        a status query; audits; periodic clock resync, reference prices, loss limit, status
        file, journal fsync, the loop's own GC

Nothing on the loop sleeps or blocks for long: rate pacing refuses a signal that comes too soon
(RATE_BUDGET) instead of sleeping, every REST call stamps the launcher's heartbeat before and
after, clock syncs are bounded in time, and the kill switch is also checked between the signals
of a batch. A journal that cannot write (full disk) is counted and retried; it never stops the
loop. Signal handlers only set flags.
"""
from __future__ import annotations

import logging
import signal
import time

from pipeline.gateway.journal import JournalWriteError
from pipeline.gateway.warm import run_dry

log = logging.getLogger("pipeline.gateway")


class Loop:
    """Gateway mixin: the loop and its housekeeping (uses the parts assembly.py built)."""

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT → stop (drain), SIGUSR1 → kill switch, SIGUSR2 → REDUCING; handlers
        only set flags."""
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        signal.signal(signal.SIGUSR1, self._on_kill)
        signal.signal(signal.SIGUSR2, self._on_reduce)

    def run(self) -> int:
        warm_ms = self.cfg.warm_ms
        poll_ms = min(self.cfg.poll_ms, warm_ms) if warm_ms else self.cfg.poll_ms
        # spinning on a core of its own: wait in short slices, the signal path run dry after
        # each (the last thing before the spin), the housekeeping only every poll_ms
        spin = getattr(self.intake, "ring_wait", "") == "busy_spin" and warm_ms \
            and self.cfg.spin_warm_ms
        slice_ms = min(poll_ms, self.cfg.spin_warm_ms) if spin else poll_ms
        house_ns = int(poll_ms * 1_000_000)
        next_house = 0
        perf = time.perf_counter_ns
        while not self.stop_requested:
            self._guarded(self._check_kill)
            if not self.intake.wait(slice_ms):
                if spin:
                    now = perf()
                    if now >= next_house:
                        next_house = now + house_ns
                        self._guarded(self._housekeeping)
                    self._guarded(self._warm)
                    continue
                if warm_ms:
                    self._guarded(self._warm)
            else:
                # every waiting signal is signed (and, with the binary journal and a connection
                # held ready, journalled and written on the socket in the same compiled call)
                # before any is finished (the order's bookkeeping): a signal never waits for
                # the bookkeeping of the one before it
                signed = []
                halted_before = self.trading == "HALTED"
                for _ in range(256):
                    raw = self.intake.recv_raw()
                    if raw is None:
                        break
                    if signed and (self.kill_requested
                                   or time.perf_counter_ns() >= self._next["kill"]):
                        # between two signals of a batch: the kill switch does not wait for
                        # the batch (signals after it are refused HALTED by the kernel)
                        self._guarded(self._check_kill)
                    try:
                        signed.append(self.sign_signal(raw))
                    except Exception:  # noqa: BLE001 - counted and logged; the loop goes on
                        self.internal_errors += 1
                        log.exception("gateway: internal error signing a signal (continuing)")
                for one in signed:
                    self._guarded(self.finish_signal, one)
                    self._commit()
                    if self.kill_requested or time.perf_counter_ns() >= self._next["kill"]:
                        self._guarded(self._check_kill)
                if not halted_before and self.trading == "HALTED" and any(
                        len(one) > 9 and self.ex.maybe_out(one[9]) for one in signed):
                    # halted during the batch: an order written on the socket before the halt
                    # was booked after its cancel-all went out, and may rest at the venue: cancel
                    # again, and keep at it until nothing of ours is in flight
                    self.cancel_pending = True
                    self._guarded(self._cancel_open, "halted during a batch of sent orders")
                if spin:
                    next_house = perf() + house_ns
                    self._guarded(self._housekeeping)
                    self._guarded(self._warm)
                    continue
            self._guarded(self._housekeeping)
        return self.shutdown()

    def _on_term(self, signum, frame) -> None:
        self.stop_requested = True

    def _on_reduce(self, signum, frame) -> None:
        self.reduce_requested = True

    def _on_kill(self, signum, frame) -> None:
        self.kill_requested = True

    def _check_kill(self) -> None:
        now = time.perf_counter_ns()
        if not self.kill_requested and now >= self._next["kill"]:
            self._next["kill"] = now + 20_000_000
            if self.paths["kill"].exists() and (self.trading != "HALTED" or self.cancel_pending):
                self.kill_requested = True
        if self.reduce_requested:
            self.reduce_requested = False
            if self.trading == "ACTIVE":
                self._set_trading("REDUCING", "operator: reduce only")
                self._guarded(self.write_status, True)
        if self.kill_requested:
            self.kill_requested = False
            log.error("KILL SWITCH: halting and cancelling every open order")
            self.halt("kill switch")
            self._guarded(self.write_status, True)

    def _guarded(self, fn, *args) -> None:
        try:
            fn(*args)
        except Exception:  # noqa: BLE001 - one bad signal or event must not stop the gateway
            self.internal_errors += 1
            log.exception("gateway: internal error in %s (counted; continuing)", fn.__name__)

    def _housekeeping(self) -> None:
        ex = self.ex
        role = self.role
        role.heartbeat()
        if ex.wire is not None or ex.ws is not None:
            self._guarded(ex.pump)              # the replies of orders sent by the wire thread
        if ex.wire is not None:
            ex.wire.arm()                       # a connection held ready for the next signal
        if role.halt_requested:
            if self.trading != "HALTED":
                before = self.trading
                self.halt("launcher requested HALT (a role died or stalled)", liftable=True)
                self.lift_to = before
        elif self.lift_to and self.trading == "HALTED":
            # the launcher cleared its halt word: the role that died is back and fresh
            self._set_trading(self.lift_to, "launcher lifted its HALT (the role is back)")
            self.lift_to = ""
        # The launcher's shutdown flag is not a stop request: the launcher stops the roles in
        # order (collectors, strategies, then this gateway with SIGTERM), so intake drains last.
        if self.stream is not None:
            q = self.stream.events
            while True:
                try:
                    ev = q.get_nowait()
                except Exception:  # noqa: BLE001 - queue.Empty
                    break
                self._guarded(ex.on_event, ev)
        self._guarded(ex.resolve_due)
        self._guarded(self._feedback_sync)      # start-up state for new strategy HELLOs
        now = time.perf_counter_ns()
        self._guarded(self._audit, now)
        if self.cancel_pending and now - self._last_cancel_try > 200_000_000:
            self._guarded(self._cancel_open, "retry cancel")
        if self.clock.due():
            self._guarded(self._periodic_sync)
        self._guarded(self.references.update, now)
        if now >= self._next["status"]:
            self._next["status"] = now + self.cfg.status_every_ms * 1_000_000
            self._guarded(self.gate.poll_shared)   # a 429/418 told to another role of the run
            self._guarded(ex.table.maybe_retire, now)   # bounded memory (orders.py, #17)
            pnl = ex.book.pnl(self.refs)
            self._record_hops()
            self._publish_role(pnl)
            rk = self.cfg.risk
            if pnl < -rk.max_loss and self.trading != "HALTED":
                self.halt(f"loss limit: PnL {pnl:.2f} below -{rk.max_loss}")
            elif rk.reduce_at_loss and pnl < -rk.reduce_at_loss and self.trading == "ACTIVE":
                self._set_trading("REDUCING", f"soft loss limit: PnL {pnl:.2f} below "
                                              f"-{rk.reduce_at_loss}")
            self._guarded(self.write_status)
        try:
            self.journal.maybe_sync()
        except JournalWriteError:
            pass                    # counted and logged by the journal; retried next turn
        # the next ORDER record's page writable again after that msync: its write fault (~10-30
        # us on ext4) here, not in the order path between signed and on the wire
        self.journal.prefault()
        self.gc.maybe(now)

    def _periodic_sync(self) -> None:
        self.clock.sync()           # bounded by CLOCK_SYNC_BUDGET_S
        self.role.heartbeat()
        self.journal.write("clock", why="periodic", **self.clock.snapshot())
        if self.clock.skewed:
            self.halt(f"clock skew: offset {self.clock.offset_ns / 1e6:.1f} ms")

    def _warm(self) -> None:
        run_dry(self)       # the signal path dry, between signals (pipeline/gateway/warm.py)

    def _audit(self, now: int) -> None:
        """No fill may hide in a user-stream gap: after the stream (re)subscribes, and every
        open_order_audit_s while it is down or disabled, query our open orders."""
        st = self.stream
        if st is not None and st.subscribed.is_set():
            if st.connects != self._stream_seen:
                first = self._stream_seen == 0
                self._stream_seen = st.connects
                if not first and self.ex.table.open_orders():
                    log.warning("user stream reconnected: auditing open orders")
                    self.ex.audit(self.ex.table.open_orders(), "stream gap")
            return
        if now >= self._next["audit"]:
            self._next["audit"] = now + int(self.cfg.open_order_audit_s * 1e9)
            if self.ex.table.open_orders():
                self.ex.audit(self.ex.table.open_orders(), "no user stream")
