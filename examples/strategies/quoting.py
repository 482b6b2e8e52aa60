"""Quoting: post-only limit orders around the best bid / ask, with an inventory limit.

Keeps one bid at best bid - `offset_ticks` and (when it holds inventory) one ask at best ask +
`offset_ticks`, each of `size`; when the best price moves so that a quote is `requote_ticks` or
more away from where it should be, it cancel/replaces it (order/cancelReplace) — once the venue
has accepted the quote (never a chain of replaces in flight, which one fill would break). No bid while the
position from fills is at `max_inventory`; the ask only sells what was bought (spot). Position
comes from fills (`on_order_event`), never from what was asked for.

It takes its market records through `on_market`, in one pass over each batch: at the end of each
run of best bid / ask records it quotes from the last bid and ask seen (what the base's default
split into `on_quotes` per run does, without a sub-array and a call per run;
tests/unit/test_examples.py compares the two bit for bit).

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
GRID_MEMO = 1 << 16       # best prices whose grid price is kept (then the memo starts again)
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
        self._grid_bid: dict[float, float] = {}   # best bid → its grid price (memo: round is
        self._grid_ask: dict[float, float] = {}   # the dearest step of a quote)
        self._src, self._src_i = None, 0          # the trigger record while _quote runs
        p = self.params
        self._size = p.size
        self._buy_max = p.max_inventory + 1e-12             # net_qty + size within: may buy
        self._sell_min = p.size - 1e-12                     # net_qty at least this: may sell
        self._requote_dist = p.requote_ticks * p.tick - 1e-12

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

    def on_market(self, recs):
        # every market record of the instrument in one pass (what on_market's default split
        # does for this class, without a sub-array and a call per run of one family): trades
        # and L2 levels do nothing here; the end of each run of best bid / ask records quotes
        # from the last bid and ask seen, as on_quotes does for that run
        kinds = recs["kind"].tolist()
        if 3 not in kinds and 4 not in kinds:
            if 1 in kinds or 2 in kinds:
                self.suspended = False
            return None
        prices = recs["price"].tolist()
        out = None
        n = len(kinds)
        last = n - 1
        for i in range(n):
            k = kinds[i]
            if k == 3:
                self.bb = prices[i]
            elif k == 4:
                self.ba = prices[i]
            else:
                if k <= 2:
                    self.suspended = False      # fresh trades (the default split's rule)
                continue
            if i == last or not (kinds[i + 1] == 3 or kinds[i + 1] == 4):
                r = self._quote(i, 0, recs)
                if r:
                    if out is None:
                        out = r
                    else:
                        out += r
        return out

    def on_gap(self, rec):
        super().on_gap(rec)             # the book is unknown until fresh quotes: pull both
        out = [self.cancel(c, int(rec["seq"])) for c in (self.bid_id, self.ask_id) if c]
        self._set(1, 0, math.nan)
        self._set(-1, 0, math.nan)
        self.bb = self.ba = math.nan
        return out

    on_stale = on_gap

    def _quote(self, seq: int, mono: int, recs=None) -> list:
        """Quote both sides from the best bid / ask; the intents. `recs` given: `seq` is the
        index of the trigger record in it (its seq and time are read only for an order)."""
        bb, ba = self.bb, self.ba
        if bb != bb or ba != ba or ba <= bb:         # NaN: no quote known yet
            return []
        if self._bid_of != bb:               # the grid prices, once per change of the best
            self._bid_of = bb
            w = self._grid_bid.get(bb)
            if w is None:
                if len(self._grid_bid) > GRID_MEMO:
                    self._grid_bid.clear()
                p = self.params
                w = self._grid_bid[bb] = round(round(bb / p.tick - p.offset_ticks) * p.tick, 10)
            self._want_bid = w
        if self._ask_of != ba:
            self._ask_of = ba
            w = self._grid_ask.get(ba)
            if w is None:
                if len(self._grid_ask) > GRID_MEMO:
                    self._grid_ask.clear()
                p = self.params
                w = self._grid_ask[ba] = round(round(ba / p.tick + p.offset_ticks) * p.tick, 10)
            self._want_ask = w
        if recs is not None:
            self._src, self._src_i = recs, seq
        else:
            self._src = None
        q = self.net_qty
        b = self._side(1, self._want_bid, q + self._size <= self._buy_max, seq, mono)
        a = self._side(-1, self._want_ask, q >= self._sell_min, seq, mono)
        self._src = None
        if b is None:
            return [] if a is None else [a]
        return [b] if a is None else [b, a]

    def _trigger(self, seq: int, mono: int) -> tuple[int, int]:
        src = self._src
        if src is None:
            return seq, mono
        i = self._src_i
        return int(src["seq"][i]), int(src["mono_ts"][i])

    def _side(self, side: int, want: float, allowed: bool, seq: int, mono: int):
        """The intent for one side, or None."""
        if side > 0:
            cid, px = self.bid_id, self.bid_px
        else:
            cid, px = self.ask_id, self.ask_px
        if not allowed:
            if cid:
                self._set(side, 0, math.nan)
                seq, mono = self._trigger(seq, mono)
                return self.cancel(cid, trigger_seq=seq)
            return None
        hold = self.hold_until[side]
        if hold and self.clock.mono_ns() < hold:
            return None            # refused for pacing a moment ago: no new quote, no replace
        p = self.params
        if not cid:
            seq, mono = self._trigger(seq, mono)
            o = self.post_only(side, p.size, want, trigger_seq=seq, trigger_mono=mono)
            self._set(side, o.seq, want)
            return o
        o = self.orders.get(cid)
        if o is None or o.status != "ACCEPTED":
            return None            # still on its way (or just done): act on its answer first
        if abs(want - px) >= self._requote_dist:
            if self.min_requote_ns:
                now = self.clock.mono_ns()
                if now - self.last_replace[side] < self.min_requote_ns:
                    return None    # replaced a moment ago: the next move will do it
                self.last_replace[side] = now
            seq, mono = self._trigger(seq, mono)
            r = self.replace(cid, want, p.size, trigger_seq=seq, trigger_mono=mono)
            self.replaced[r.new.seq] = cid
            self._set(side, r.new.seq, want)
            self.requotes += 1
            return r
        return None

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
