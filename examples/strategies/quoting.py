"""Quoting: post-only limit orders around the best bid / ask, with an inventory limit.

Keeps one bid at best bid - `offset_ticks` and (when it holds inventory) one ask at best ask +
`offset_ticks`, each of `size`; when the best price moves so that a quote is `requote_ticks` or
more away from where it should be, it cancel/replaces it (order/cancelReplace) — once the venue
has accepted the quote (never a chain of replaces in flight, which one fill would break). No bid while the
position from fills is at `max_inventory`; the ask only sells what was bought (spot). Position
comes from fills (`on_order_event`), never from what was asked for.

Needs best bid / ask records (BID / ASK, the collector's bookTicker): it runs in the event
backtester on recorded L2 sessions and live (the gateway sends its post-only orders, cancels and
cancel/replaces, and tells it what became of each through its order-event ring). A replace whose
new order is refused (e.g. THROTTLED) leaves the old quote working: the strategy keeps tracking
it.

    kind = "examples/strategies/quoting.py:Quoter"
    params = { size = 0.001, max_inventory = 0.005, tick = 0.01, min_requote_ms = 50 }

Live, `min_requote_ms` bounds the replaces per side (each is a signal: the gateway halts on more
than [risk] runaway_signals a second, 50 by default); a quote the gateway refuses for pacing
(RATE_BUDGET, THROTTLED, HALTED, ...) holds that side (no new quote, no replace) for `backoff_ms`
(re-quoting every refusal at once would trip the runaway guard too).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from pipeline.strategy import Strategy
from pipeline.strategy.orders import EventKind

REJECTED, ACCEPTED, FILL = int(EventKind.REJECTED), int(EventKind.ACCEPTED), int(EventKind.FILL)
# the gateway's refusals that say "not now" (its pacing, the venue's budget, a halt): quoting
# again at once would only be refused again, and fast enough to trip the runaway guard
PACING = frozenset(("RATE_BUDGET", "RATE_LIMIT", "THROTTLED", "HOST_CLOSED", "RUNAWAY",
                    "HALTED"))


@dataclass(frozen=True)
class QuoterParams:
    size: float = 0.001
    max_inventory: float = 0.005
    tick: float = 0.01
    offset_ticks: int = 0
    requote_ticks: int = 1
    backoff_ms: float = 250.0      # no new quote on a side this long after the gateway refused
    #                                one for pacing (RATE_BUDGET, THROTTLED, HALTED, ...)
    min_requote_ms: float = 0.0    # at most one replace per side this often (0 = every move);
    #                                live, keep the signal rate under [risk] runaway_signals

    def __post_init__(self) -> None:
        if not (self.size > 0 and self.max_inventory >= self.size and self.tick > 0):
            raise ValueError("need size > 0, max_inventory >= size, tick > 0")
        if self.offset_ticks < 0 or self.requote_ticks < 1 or not self.backoff_ms >= 0 \
                or not self.min_requote_ms >= 0:
            raise ValueError("need offset_ticks >= 0, requote_ticks >= 1, backoff_ms >= 0 and "
                             "min_requote_ms >= 0")


class Quoter(Strategy):
    Params = QuoterParams
    kind = "quoter"
    reactive = True            # its quotes depend on fills: small batches in the backtester

    def __init__(self, params=None, **kw):
        super().__init__(params, **kw)
        self.bb = self.ba = math.nan
        self.bid_id = self.ask_id = 0       # client ids of the working quotes (0 = none)
        self.bid_px = self.ask_px = math.nan
        self.requotes = 0
        self.replaced: dict[int, int] = {}  # new quote's client id → the one it replaces
        self._bid_of = self._ask_of = math.nan  # the best bid / ask _want_* were made from
        self.hold_until = {1: 0, -1: 0}     # side → no new quote before this (clock ns)
        self.last_replace = {1: -(1 << 62), -1: -(1 << 62)}   # side → its last replace (ns)
        self.min_requote_ns = int(self.params.min_requote_ms * 1e6)
        self.backoffs = 0
        self._want_bid = self._want_ask = math.nan

    def on_trades(self, trades):
        return None

    def on_quotes(self, quotes):
        # the last best bid (kind 3) and ask (kind 4) of the run; plain lists: these runs are
        # a few records (a numpy mask per field would cost more than the loop)
        kinds = quotes["kind"].tolist()
        n = len(kinds)
        if 3 in kinds:
            self.bb = float(quotes["price"][n - 1 - kinds[::-1].index(3)])
        if 4 in kinds:
            self.ba = float(quotes["price"][n - 1 - kinds[::-1].index(4)])
        return self._quote(int(quotes["seq"][-1]), int(quotes["mono_ts"][-1]))

    def on_gap(self, rec):
        super().on_gap(rec)             # the book is unknown until fresh quotes: pull both
        out = [self.cancel(c, int(rec["seq"])) for c in (self.bid_id, self.ask_id) if c]
        self._set(1, 0, math.nan)
        self._set(-1, 0, math.nan)
        self.bb = self.ba = math.nan
        return out

    on_stale = on_gap

    def _quote(self, seq: int, mono: int) -> list:
        p = self.params
        if math.isnan(self.bb) or math.isnan(self.ba) or self.ba <= self.bb:
            return []
        out = []
        tick = p.tick
        if self._bid_of != self.bb:            # the grid prices, once per change of the best
            self._bid_of = self.bb
            self._want_bid = round(round(self.bb / tick - p.offset_ticks) * tick, 10)
        if self._ask_of != self.ba:
            self._ask_of = self.ba
            self._want_ask = round(round(self.ba / tick + p.offset_ticks) * tick, 10)
        want_bid, want_ask = self._want_bid, self._want_ask
        can_buy = self.net_qty + p.size <= p.max_inventory + 1e-12
        can_sell = self.net_qty >= p.size - 1e-12
        out += self._side(1, want_bid, can_buy, seq, mono)
        out += self._side(-1, want_ask, can_sell, seq, mono)
        return out

    def _side(self, side: int, want: float, allowed: bool, seq: int, mono: int) -> list:
        p = self.params
        cid = self.bid_id if side > 0 else self.ask_id
        px = self.bid_px if side > 0 else self.ask_px
        if not allowed:
            if cid:
                self._set(side, 0, math.nan)
                return [self.cancel(cid, trigger_seq=seq)]
            return []
        if self.hold_until[side] and self.clock.mono_ns() < self.hold_until[side]:
            return []              # refused for pacing a moment ago: no new quote, no replace
        if not cid:
            o = self.post_only(side, p.size, want, trigger_seq=seq, trigger_mono=mono)
            self._set(side, o.seq, want)
            return [o]
        o = self.orders.get(cid)
        if o is None or o.status != "ACCEPTED":
            return []              # still on its way (or just done): act on its answer first
        if abs(want - px) >= p.requote_ticks * p.tick - 1e-12:
            if self.min_requote_ns:
                now = self.clock.mono_ns()
                if now - self.last_replace[side] < self.min_requote_ns:
                    return []      # replaced a moment ago: the next move will do it
                self.last_replace[side] = now
            r = self.replace(cid, want, p.size, trigger_seq=seq, trigger_mono=mono)
            self.replaced[r.new.seq] = cid
            self._set(side, r.new.seq, want)
            self.requotes += 1
            return [r]
        return []

    def _set(self, side: int, cid: int, px: float) -> None:
        if side > 0:
            self.bid_id, self.bid_px = cid, px
        else:
            self.ask_id, self.ask_px = cid, px

    def on_order_event(self, ev):
        if ev.kind == REJECTED and ev.reason.split(":")[0].strip() in PACING and \
                ev.client_id in (self.bid_id, self.ask_id):
            side = 1 if ev.client_id == self.bid_id else -1
            self.hold_until[side] = self.clock.mono_ns() + int(self.params.backoff_ms * 1e6)
            self.backoffs += 1
        if ev.client_id not in self.orders:          # done: filled, cancelled, rejected, expired
            old = self.replaced.pop(ev.client_id, 0)
            back = self.orders.get(old) if ev.kind == REJECTED else None
            # a refused replacement: the quote it was to replace still works
            cid, px = (old, back.price) if back is not None else (0, math.nan)
            if ev.client_id == self.bid_id:
                self._set(1, cid, px)
            elif ev.client_id == self.ask_id:
                self._set(-1, cid, px)
        elif ev.kind == ACCEPTED:
            self.replaced.pop(ev.client_id, None)
        if ev.kind == FILL:                 # inventory changed: quote again now
            return self._quote(-1, ev.ts)
        return None
