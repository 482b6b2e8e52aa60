"""Reference prices for the risk engine's collar and for marking positions.

Two sources: "rest" polls GET /api/v3/depth (limit 5) per symbol every reference_poll_ms and takes
the mid; "ring" reads the tick ring the collector writes (the risk engine's own apply_ticks when it
has it: GAP/STALE/RESYNC records invalidate its reference, so a stale book rejects risk-increasing
orders), and keeps the mid of the latest bid/ask per symbol for PnL. "none": no reference (every
order is rejected NO_REFERENCE by the engine; only useful for tests of the intake).
"""
from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np

from pipeline.gateway.rest import Outcome
from pipeline.records import Kind

log = logging.getLogger(__name__)
LOG_EVERY_NS = 5_000_000_000        # a bad-reference warning at most every 5 s


def good_price(x: float) -> bool:
    return math.isfinite(x) and x > 0


class ReferenceSourceError(RuntimeError):
    """The configured reference source cannot be used."""


class References:
    def __init__(self, *, source: str, risk, rules: dict[int, Any], rest, ring_name: str,
                 poll_ms: int):
        self.source = source
        self.risk = risk
        self.rules = rules
        self.rest = rest
        self.ring_name = ring_name
        self.poll_ns = poll_ms * 1_000_000
        self.next_poll = 0
        self.refs: dict[str, float] = {}          # symbol → mid (for PnL and the status)
        self.ring = None
        self.reader = None
        self._bbo: dict[int, list[float]] = {sid: [0.0, 0.0] for sid in rules}
        self.bad = 0                              # NaN / inf / <= 0 prices skipped
        self._last_bad_log = 0
        if source == "ring":
            from pipeline.bus.ring import TickRing
            try:
                self.ring = TickRing.attach(ring_name, timeout=2.0)
            except Exception as exc:  # noqa: BLE001 - any attach failure is a clear start error
                raise ReferenceSourceError(f"reference = 'ring': cannot attach tick ring "
                                     f"{ring_name!r}: {exc}") from None
            self.reader = self.ring.reader(wait="sleeping", start="oldest")

    def update(self, now: int | None = None, force: bool = False) -> None:
        """Called every loop turn: drains the ring, or polls REST when due."""
        if self.reader is not None:
            self.read_ring()
            return
        if self.source != "rest":
            return
        now = time.perf_counter_ns() if now is None else now
        if force or now >= self.next_poll:
            self.next_poll = now + self.poll_ns
            self.poll_rest()

    def read_ring(self) -> None:
        batch = self.reader.poll()
        if not len(batch):
            return
        apply = getattr(self.risk, "apply_ticks", None)
        now = time.perf_counter_ns()
        for sid, bbo in self._bbo.items():
            sel = batch[batch["symbol"] == sid]
            if not len(sel):
                continue
            for k, i in ((Kind.BID, 0), (Kind.ASK, 1)):
                px = sel["price"][sel["kind"] == int(k)]
                if len(px):
                    p = float(px[-1])
                    if good_price(p):
                        bbo[i] = p
                    else:
                        self._bad(sid, f"{k.name} {p}")
            if bbo[0] > 0 and bbo[1] > 0:
                mid = (bbo[0] + bbo[1]) / 2
            else:
                trades = sel["price"][np.isin(sel["kind"], (int(Kind.TRADE), int(Kind.AGG_TRADE)))]
                mid = float(trades[-1]) if len(trades) else 0.0
            if good_price(mid):
                self.refs[self.rules[sid].name] = mid
                if apply is None:
                    self.risk.set_reference(sid, mid, now)
            elif mid != 0.0:
                self._bad(sid, f"mid {mid}")
        if apply is not None:
            apply(batch)

    def poll_rest(self) -> None:
        top = getattr(self.rest, "top_of_book", None)     # a venue client's own (OKX)
        for sid, rules in self.rules.items():
            if top is not None:
                got = top(rules.name)
                if got is None:
                    continue
                bid, ask = got
            else:
                r = self.rest.public("/api/v3/depth", {"symbol": rules.name, "limit": 5})
                if r.outcome is not Outcome.OK or not isinstance(r.data, dict):
                    continue
                try:
                    bid = float(r.data["bids"][0][0])
                    ask = float(r.data["asks"][0][0])
                except (KeyError, IndexError, TypeError, ValueError):
                    continue
            mid = (bid + ask) / 2
            if not (good_price(bid) and good_price(ask) and good_price(mid)):
                self._bad(sid, f"bid {bid} ask {ask}")
                continue
            self.refs[rules.name] = mid
            self.risk.set_reference(sid, mid, time.perf_counter_ns())

    def _bad(self, sid: int, what: str) -> None:
        """A non-finite or non-positive price: counted, logged (rate-limited), skipped."""
        self.bad += 1
        now = time.perf_counter_ns()
        if now - self._last_bad_log >= LOG_EVERY_NS:
            self._last_bad_log = now
            log.warning("bad_reference: %s %s skipped (%d so far)",
                        self.rules[sid].name, what, self.bad)

    def close(self) -> None:
        self.reader = None
        if self.ring is not None:
            self.ring.close()
            self.ring = None
