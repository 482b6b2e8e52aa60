"""What the soak checks at the end, as pure functions (unit-tested in tests/unit/test_soak_checks.py).

- trace_orders: every order the venue holds traces back to an accepted signal (a passed risk check)
  and an order record in the gateway's journal;
- compare_orders: each venue order's status and executed quantity equal the journal's final state
  and fills; the venue's open orders equal the local ones; the position the venue's balances imply
  equals the one the journal's fills imply;
- rss_growth_pct: memory growth of each role process after its warm-up;
- TickVerifier: every tick record a reader is handed is whole (no torn or misplaced record).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from pipeline.records import Kind

# the gateway's order states a venue status maps to (Binance names)
_FINAL_OF_VENUE = {"FILLED": "FILLED", "CANCELED": "CANCELLED", "EXPIRED": "EXPIRED",
                   "EXPIRED_IN_MATCH": "EXPIRED", "REJECTED": "REJECTED",
                   "NEW": "OPEN", "PARTIALLY_FILLED": "OPEN"}
QTY_EPS = 1e-9


@dataclass
class JournalView:
    """The journal's records grouped per client order id (every gateway life of the run)."""
    accepted: set[str] = field(default_factory=set)        # cids with a passed risk check
    ordered: set[str] = field(default_factory=set)         # cids with an order record
    state: dict[str, str] = field(default_factory=dict)    # cid -> last state
    filled: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    symbol_of: dict[str, str] = field(default_factory=dict)
    base_position: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    fills: int = 0
    torn: int = 0

    @classmethod
    def of(cls, records: Iterable[dict], base_asset: dict[str, str]) -> "JournalView":
        v = cls()
        seen_trades: set[tuple[str, int]] = set()
        for r in records:
            k = r.get("k")
            cid = r.get("cid")
            if k == "signal" and r.get("decision") == "accept" and cid:
                v.accepted.add(cid)
            elif k == "order" and cid:
                v.ordered.add(cid)
                v.symbol_of[cid] = r.get("symbol", "")
                # the binary journal's ORDER record is the accept record itself
                if r.get("strategy") is not None and r.get("seq") is not None \
                        and r.get("accepted", True):
                    v.accepted.add(cid)
            elif k == "state" and cid:
                v.state[cid] = r.get("to", "")
            elif k == "fill":
                key = (r.get("symbol", ""), int(r.get("trade_id", -1)))
                if key in seen_trades:       # a second report of the same trade
                    continue
                seen_trades.add(key)
                v.fills += 1
                qty = float(r.get("qty", 0.0))
                if cid:
                    v.filled[cid] += qty
                sym = r.get("symbol", "")
                signed = qty if int(r.get("side", 0)) > 0 else -qty
                v.base_position[sym] += signed
                if r.get("commission_asset") == base_asset.get(sym):
                    v.base_position[sym] -= float(r.get("commission", 0.0))
        return v


def trace_orders(venue_orders: list[dict], view: JournalView) -> list[str]:
    """Client ids of venue orders with no accepted signal or no order record in the journal."""
    return sorted(o["clientOrderId"] for o in venue_orders
                  if o["clientOrderId"] not in view.accepted
                  or o["clientOrderId"] not in view.ordered)


def compare_orders(venue_orders: list[dict], view: JournalView, venue_open: list[dict],
                   local_open: list[str]) -> list[str]:
    """One line per disagreement between the venue and the journal (empty: they agree)."""
    out = []
    by_cid = {o["clientOrderId"]: o for o in venue_orders}
    for cid, o in sorted(by_cid.items()):
        want = _FINAL_OF_VENUE.get(o["status"], o["status"])
        have = view.state.get(cid, "")
        have_n = "OPEN" if have in ("NEW", "PARTIALLY_FILLED", "OPEN") else have
        if have_n != want:
            out.append(f"{cid}: venue {o['status']}, journal {have or 'no state'}")
            continue
        vq, lq = float(o["executedQty"]), view.filled.get(cid, 0.0)
        if abs(vq - lq) > QTY_EPS:
            out.append(f"{cid}: venue executed {vq:g}, journal fills {lq:g}")
    for cid, st in sorted(view.state.items()):
        if cid not in by_cid and st in ("FILLED", "PARTIALLY_FILLED", "NEW", "OPEN"):
            out.append(f"{cid}: journal {st}, the venue has no such order")
    vo = sorted(o["clientOrderId"] for o in venue_open)
    if vo != sorted(local_open):
        out.append(f"open orders: venue {vo}, local {sorted(local_open)}")
    return out


def compare_positions(venue_delta: dict[str, float], view: JournalView) -> list[str]:
    """The base-asset change the venue's balances show against the journal's fills."""
    out = []
    for sym in sorted(set(venue_delta) | set(view.base_position)):
        v, l_ = venue_delta.get(sym, 0.0), view.base_position.get(sym, 0.0)
        if abs(v - l_) > 1e-8:
            out.append(f"position {sym}: venue {v:+.8f}, journal fills {l_:+.8f}")
    return out


def rss_growth_pct(samples: dict[int, list[tuple[float, int]]], warmup_s: float) -> dict[int, float]:
    """Per process (pid -> [(age_s, rss_bytes)]): growth from its first sample at or after
    `warmup_s` of age to its last, in percent. A process that never reached the warm-up age
    with two samples after it is left out."""
    out = {}
    for pid, s in samples.items():
        after = [(t, r) for t, r in s if t >= warmup_s]
        if len(after) >= 2 and after[0][1] > 0:
            out[pid] = (after[-1][1] - after[0][1]) / after[0][1] * 100.0
    return out


_VALID_KINDS = np.array(sorted(int(k) for k in Kind if k != Kind.NONE), dtype=np.uint8)
_PRICED = np.array([Kind.TRADE, Kind.AGG_TRADE, Kind.BID, Kind.ASK], dtype=np.uint8)
_LEVELS = np.array([Kind.BOOK_BID, Kind.BOOK_ASK], dtype=np.uint8)


@dataclass
class TickVerifier:
    """Checks every tick record a reader is handed: a known kind; market records of the run's
    venue and instruments with finite, positive prices and sizes (a level may be size 0: removed)
    and a local timestamp inside the run; CLOCK_MONOTONIC publish stamps that never go back; and
    sequences contiguous except across a GAP record. A record that fails is a torn or misplaced
    read (`torn`)."""
    venue: int
    symbols: frozenset[int]
    t0_ns: int
    torn: int = 0
    received: int = 0
    gaps: int = 0
    examples: list[str] = field(default_factory=list)
    _next_seq: int = -1
    _last_mono: int = 0

    def check(self, batch: np.ndarray, now_ns: int) -> None:
        if not len(batch):
            return
        kind = batch["kind"]
        bad = ~np.isin(kind, _VALID_KINDS)
        market = np.isin(kind, _PRICED) | np.isin(kind, _LEVELS)
        price, qty = batch["price"], batch["qty"]
        with np.errstate(invalid="ignore"):
            shape = ((batch["venue"] != self.venue)
                     | ~np.isin(batch["symbol"], np.fromiter(self.symbols, np.uint32))
                     | ~np.isfinite(price) | (price <= 0) | ~np.isfinite(qty)
                     | (np.isin(kind, _PRICED) & (qty <= 0)) | (qty < 0)
                     | (batch["local_ts"] < self.t0_ns) | (batch["local_ts"] > now_ns + 1_000_000_000))
        bad |= market & shape
        mono = batch["mono_ts"][market]
        if len(mono):
            back = np.diff(np.concatenate(([self._last_mono], mono))) < 0
            mbad = np.zeros(len(batch), dtype=bool)
            mbad[np.flatnonzero(market)[back]] = True
            bad |= mbad
            self._last_mono = max(self._last_mono, int(mono.max()))
        seq = batch["seq"]
        is_gap = kind == Kind.GAP
        expect = np.empty(len(batch), dtype=np.int64)
        expect[0] = seq[0] if self._next_seq < 0 else self._next_seq
        expect[1:] = seq[:-1] + 1
        after_gap = np.concatenate(([False], is_gap[:-1]))
        bad |= (seq != expect) & ~is_gap & ~after_gap
        self._next_seq = int(seq[-1]) + 1
        n = int(np.count_nonzero(bad))
        if n:
            self.torn += n
            for i in np.flatnonzero(bad)[: max(0, 5 - len(self.examples))]:
                r = batch[i]
                self.examples.append(f"seq {int(r['seq'])} kind {int(r['kind'])} venue {int(r['venue'])} "
                                     f"symbol {int(r['symbol'])} price {float(r['price'])!r} "
                                     f"qty {float(r['qty'])!r}")
        self.gaps += int(np.count_nonzero(is_gap))
        self.received += len(batch) - int(np.count_nonzero(is_gap))

    def restart(self) -> None:
        """A new ring (the launcher was restarted): sequences start again."""
        self._next_seq = -1
