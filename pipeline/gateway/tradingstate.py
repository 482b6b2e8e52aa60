"""The gateway's trading state (ACTIVE / REDUCING / HALTED): its one setter, the halt with its
cancel of every open order, and the best-effort journal commit.

The state lives in the risk kernel (`risk.set_state`, the one judge of HALTED and REDUCE_ONLY)
and is mirrored in `gw.trading` for status and logs; every change is journalled, so the last one
is restored at start (HALTED persists until `python -m pipeline.gateway reset`). A halt sends its
cancel before the journal is written (the kill switch must work on a full disk).
"""
from __future__ import annotations

import logging
import time

from pipeline.gateway.journal import JournalWriteError
from pipeline.gateway.orders import OrderState
from pipeline.logs import event_log

log = logging.getLogger("pipeline.gateway")

STATES = ("ACTIVE", "REDUCING", "HALTED")


class TradingControl:
    """Gateway mixin: uses gw.risk, gw.journal, gw.ex, gw.cfg.symbols, gw.phase."""

    def _set_trading(self, state: str, why: str, commit: bool = True) -> None:
        if state not in STATES:
            raise ValueError(f"trading state must be one of {STATES}, got {state!r}")
        if state == self.trading and self.journal is not None and self.phase == "RUNNING":
            return
        old = self.trading
        self.trading = state
        self.risk.set_state(STATES.index(state))
        if state == "HALTED":
            self.halt_reason = why
        self.journal.write("trading", state=state, frm=old, why=why)
        event_log(state, logging.ERROR if state == "HALTED" else logging.INFO, frm=old, why=why,
                  open_orders=len(self.ex.table.open_orders()) if self.ex else 0)
        if commit:
            self._commit()

    def _commit(self) -> bool:
        """Commit the journal, best effort: a full or failing disk is counted and logged by the
        journal (the records stay buffered for the next try) and must not stop the loop."""
        try:
            self.journal.commit()
            return True
        except JournalWriteError:
            return False

    def halt(self, why: str) -> None:
        """HALTED now, and every open order cancelled (idempotent). The cancel goes out first;
        the journal follows, best effort (the kill switch must work on a full disk). The
        trading record is buffered before the cancel, so its "m" is the moment of the halt."""
        if self.trading != "HALTED":
            self._set_trading("HALTED", why, commit=False)
        self.cancel_pending = True
        try:
            self._cancel_open(why)
        finally:
            self._commit()

    def _cancel_open(self, why: str) -> None:
        self._last_cancel_try = time.perf_counter_ns()
        syms = sorted(set(self.cfg.symbols) | set(self.ex.open_symbols()))
        self.ex.cancel_all(syms, why)
        # an order still on the wire may land after the cancel: keep retrying until its reply
        if not self.ex.inflight and not any(o.state is not OrderState.UNKNOWN
                                            for o in self.ex.table.open_orders()):
            self.cancel_pending = False
