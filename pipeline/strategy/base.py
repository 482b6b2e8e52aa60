"""The Strategy base: typed parameters from the config, `on_ticks(batch)` over numpy records.

A strategy sees every record the ring delivers, as TICK_DTYPE arrays, and returns the signals it
wants sent (`pipeline.bus.signals.Signal`, epoch/seq left at 0: the sender numbers them). The base
class splits a batch for the subclass:

  * market records of its own (venue, symbol) with a trade kind go to `on_trades(trades)` as one
    contiguous array per run between control records;
  * GAP / STALE / RESYNC_START records that concern it (symbol 0 = everything, or its own) call
    `on_gap(rec)` / `on_stale(rec)`; by default both mark the strategy `suspended` until fresh
    market data for its instrument arrives (signals come only from `on_trades`, so none is made
    in between). RESYNC_START counts as a gap. Subclasses that keep state over the data (windows)
    reset it in `on_gap`/`on_stale`, so "fresh data" means a full window of it;
  * `on_start()` / `on_stop()` run once each (idempotent) around the run;
  * a strategy that overrides `on_quotes` (BID/ASK records) or `on_book` (BOOK_BID / BOOK_ASK /
    BOOK_CLEAR) — or `on_market`, which gets every market record of its instrument in order —
    receives those too: `on_market` splits a run into consecutive groups of one family and calls
    on_trades / on_quotes / on_book in record order. Without such an override nothing changes
    (only trades are selected, the fast path the SMA uses);
  * `timer_ns` > 0: `on_timer(now_ns)` every timer_ns (data time in the backtester, the monotonic
    clock live);
  * `on_order_event(ev)` gets what happened to each order (pipeline.strategy.orders.OrderEvent)
    after the base has applied it to `orders`, `net_qty` (signed base quantity from fills) and
    `fees_paid`. The backtester delivers them; live feedback from the gateway is not built yet.

Hooks return a list of intents (or None): new orders (`Signal`, made with `market`, `limit`,
`post_only` or `target`), `Cancel`, `Replace` (pipeline.strategy.orders). Each instance numbers
its own orders (epoch, seq): seq is the order's client id, so two instances in one process never
interleave one sequence (the gateway tracks numbering per strategy id).

Parameters: a subclass sets `Params` to a frozen dataclass; `from_config` builds it strictly from
the `params` table of its [[strategy.instances]] entry (unknown or mistyped keys are ConfigErrors).
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from pipeline import config as _config
from pipeline.bus.signals import Signal
from pipeline.clock import LIVE, Clock
from pipeline.records import Kind, Venue
from pipeline.strategy.intents import OrderIntents
from pipeline.strategy.orders import OrderEvent, OrderState
from pipeline.registry import SymbolRegistry

log = logging.getLogger(__name__)

TRADE_KINDS = (int(Kind.TRADE), int(Kind.AGG_TRADE))
GAP_KINDS = (int(Kind.GAP), int(Kind.RESYNC_START))
STALE_KINDS = (int(Kind.STALE),)
CONTROL_MIN = int(Kind.GAP)   # kinds >= this are the pipeline's own records
TRADE_SET = frozenset(TRADE_KINDS)
QUOTE_SET = frozenset((int(Kind.BID), int(Kind.ASK)))
BOOK_SET = frozenset((int(Kind.BOOK_BID), int(Kind.BOOK_ASK), int(Kind.BOOK_CLEAR)))
MARKET_SET = TRADE_SET | QUOTE_SET | BOOK_SET
SMALL_BATCH = 32              # on_ticks: batches up to this size take the plain-Python pass
_FAMILY = [0, 0, 0, 1, 1] + [2] * 251   # kind → 0 trades, 1 best bid/ask, 2 L2 (on_market)


def _take(batch: np.ndarray, idx: list[int]) -> np.ndarray:
    """batch[idx] for ascending indices: a view (slice) when they are contiguous, as a
    strategy's own records of a live batch mostly are (a fancy-indexed copy costs ~3 us warm and
    ~65 us cold after the process's wait for the ring; a slice ~0.2 / ~14 us)."""
    if idx[-1] - idx[0] == len(idx) - 1:
        return batch if len(idx) == len(batch) else batch[idx[0]:idx[-1] + 1]
    return batch[idx]


@dataclass(frozen=True)
class NoParams:
    pass


class Strategy(OrderIntents):
    """Base class. Subclasses implement `on_trades` and may override the hooks."""

    Params: ClassVar[type] = NoParams
    kind: ClassVar[str] = "base"
    timer_ns: int = 0          # > 0: on_timer every this many ns
    reactive: ClassVar[bool] = False   # decisions depend on order events: the backtester feeds
    #                                    it small batches so it learns of them in time

    def __init__(self, params: Any = None, *, strategy_id: int = 0, venue: int = 0,
                 symbol: int = 0, qty: float = 1.0, allow_short: bool = False,
                 ttl_ns: int = 1_000_000_000, clock: Clock = LIVE):
        self.params = self.Params() if params is None else params
        if not isinstance(self.params, self.Params):
            raise TypeError(f"{type(self).__name__} needs {self.Params.__name__}, "
                            f"got {type(self.params).__name__}")
        self.strategy_id = int(strategy_id)
        self.venue = int(venue)
        self.symbol = int(symbol)
        self.qty = float(qty)
        self.allow_short = bool(allow_short)
        self.ttl_ns = int(ttl_ns)
        self.clock = clock
        self.position = 0          # the strategy's intended position in units of qty: -1, 0, 1
        self.suspended = False
        self.gaps = 0
        self.stales = 0
        self._started = False
        self._stopped = False
        self.epoch = 0             # numbering (epoch, seq) of this instance's orders; the
        self.seq = 0               # process sets the epoch, 0 = time.time_ns() at first use
        self.net_qty = 0.0         # signed base quantity from fills (order events)
        self.fees_paid = 0.0
        self.orders: dict[int, OrderState] = {}     # client id → state, working orders only
        self.rejects = 0
        self.feedback = False      # order events arrive (the backtester sets it; live: not yet)
        self.account = None        # backtester: the simulated account (cash, cost_rate, step)
        self.size_fraction = 0.0   # > 0 with an account: target() sizes a fraction of equity
        self.venue_sized: dict[int, int] = {}   # seq → target: sized at the venue (backtester)
        c = type(self)
        self.wants_market = (c.on_market is not Strategy.on_market
                             or c.on_quotes is not Strategy.on_quotes
                             or c.on_book is not Strategy.on_book)
        self._own_split = c.on_market is Strategy.on_market   # the default split: no call
        self._kinds = MARKET_SET if self.wants_market else TRADE_SET
        self._kinds_arr = np.array(sorted(self._kinds), dtype=np.uint8)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, inst: "_config.StrategyInstanceConfig",
                    registry: SymbolRegistry, clock: Clock = LIVE,
                    source: str = "<config>") -> "Strategy":
        params = _config.from_dict(cls.Params, dict(inst.params), source=source,
                                   where=f"strategy.instances[id={inst.id}].params")
        try:
            venue = Venue[inst.venue.upper()]
        except KeyError:
            raise _config.ConfigError(
                f"{source}: strategy {inst.id}: unknown venue {inst.venue!r} "
                f"(one of {', '.join(v.name for v in Venue if v)})") from None
        symbol = registry.id(venue, inst.symbol)
        return cls(params, strategy_id=inst.id, venue=int(venue), symbol=symbol, qty=inst.qty,
                   allow_short=inst.allow_short, ttl_ns=inst.ttl_ms * 1_000_000, clock=clock)

    # ------------------------------------------------------------------ hooks
    def on_start(self) -> None:
        """Called once before the first batch."""

    def on_stop(self) -> None:
        """Called once after the last batch."""

    def on_gap(self, rec: np.void) -> list | None:
        """A GAP or RESYNC_START record concerning this strategy. Default: suspend. May return
        intents (e.g. cancel the quotes)."""
        self.suspended = True

    def on_stale(self, rec: np.void) -> list | None:
        """A STALE record concerning this strategy. Default: suspend. May return intents."""
        self.suspended = True

    def on_trades(self, trades: np.ndarray) -> list[Signal]:
        """Trade records of this strategy's instrument, in order. Return signals."""
        raise NotImplementedError

    def on_quotes(self, quotes: np.ndarray) -> list | None:
        """BID / ASK records (best bid / ask) of this strategy's instrument, in order."""
        return None

    def on_book(self, levels: np.ndarray) -> list | None:
        """BOOK_BID / BOOK_ASK level changes (qty 0 = level removed) and BOOK_CLEAR."""
        return None

    def on_market(self, recs: np.ndarray) -> list | None:
        """Every market record of the instrument in order (only called for strategies that
        override on_quotes, on_book or this). Default: consecutive groups of one family to
        on_trades / on_quotes / on_book, in record order."""
        return self._split_market(recs, None)

    def _split_market(self, recs: np.ndarray, kinds: list | None) -> list:
        """on_market's default: `kinds` = recs["kind"].tolist() when the caller has it."""
        n = len(recs)
        if n <= SMALL_BATCH:
            if kinds is None:
                kinds = recs["kind"].tolist()
            prev = _FAMILY[kinds[0]]
            fams = [prev]                      # each run's family, and where runs start
            cut = []
            for i in range(1, n):
                f = _FAMILY[kinds[i]]
                if f != prev:
                    cut.append(i)
                    fams.append(f)
                    prev = f
        else:
            k = recs["kind"]
            fam = np.where(k <= 2, 0, np.where(k <= 4, 1, 2))
            cut = (np.flatnonzero(fam[1:] != fam[:-1]) + 1).tolist()
            fams = fam[[0] + cut].tolist()
        out: list = []
        a = 0
        for b, f in zip(cut + [n], fams):
            seg = recs[a:b]
            if f == 0:
                self.suspended = False
                r = self.on_trades(seg)
            elif f == 1:
                r = self.on_quotes(seg)
            else:
                r = self.on_book(seg)
            if r:
                out += r
            a = b
        return out

    def on_timer(self, now_ns: int) -> list | None:
        """Every timer_ns (set timer_ns > 0)."""
        return None

    def on_order_event(self, ev: OrderEvent) -> list | None:
        """What happened to one of this strategy's orders (after the base's book-keeping)."""
        return None

    def compiled(self):
        """A compiled equivalent of on_ticks for the strategy process's hot path, or None.
        When not None it is `fn(batch, out, ring=None, epoch=0, seq=0) -> n`: it runs the batch
        (same rule, same hooks' effects) and writes n SIGNAL_DTYPE records into `out`, numbered
        later by the sender; or, given the sender's signal ring core and numbering
        (SignalSender.ring_target), numbers them epoch/seq+1.. and publishes each into the ring
        as it is made. The process then uses only it for this strategy; on_ticks stays the
        reference (its twin)."""
        return None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if not self._started:
            self._started = True
            self.on_start()

    def stop(self) -> None:
        if self._started and not self._stopped:
            self._stopped = True
            self.on_stop()

    # ------------------------------------------------------------------ dispatch
    def _mine(self, batch: np.ndarray) -> np.ndarray:
        """Mask of the records of this strategy's instrument (symbol 0 in the strategy = all)."""
        if self.symbol == 0:
            return np.ones(len(batch), dtype=bool)
        return (batch["symbol"] == self.symbol) & (batch["venue"] == self.venue)

    def on_ticks(self, batch: np.ndarray) -> list[Signal]:
        """Every record of a batch, in ring order. Returns the signals to send.

        Live batches are mostly a few records: below SMALL_BATCH one pass over plain Python lists
        (~3 us) replaces the masks and np.isin of the vectorized pass (~27 us for 3 records, more
        with cold caches); both hand on_trades the same sub-arrays and call the hooks in the
        same order (tests/unit/test_strategy.py compares them)."""
        n = len(batch)
        if n == 0:
            return []
        if n <= SMALL_BATCH:
            return self._on_ticks_small(batch)
        kind = batch["kind"]
        ctl = kind >= CONTROL_MIN
        if not ctl.any():
            sel = self._mine(batch) & np.isin(kind, self._kinds_arr)
            return self._run(batch[sel]) if sel.any() else []
        mine = self._mine(batch)
        out: list[Signal] = []
        start = 0
        for i in np.flatnonzero(ctl & (mine | (batch["symbol"] == 0))).tolist():
            seg = batch[start:i]
            sel = mine[start:i] & np.isin(seg["kind"], self._kinds_arr)
            if sel.any():
                out += self._run(seg[sel])
            rec = batch[i]
            k = int(rec["kind"])
            if k in GAP_KINDS:
                self.gaps += 1
                r = self.on_gap(rec)
            elif k in STALE_KINDS:
                self.stales += 1
                r = self.on_stale(rec)
            else:
                r = None
            if r:
                out += r
            start = i + 1
        seg = batch[start:]
        sel = mine[start:] & np.isin(seg["kind"], self._kinds_arr)
        if sel.any():
            out += self._run(seg[sel])
        return out

    def _on_ticks_small(self, batch: np.ndarray) -> list[Signal]:
        # One pass over plain lists, as few numpy calls as the batch needs (after the process's
        # wait for the ring every call runs cold, 10-60x its warm cost: scripts/bench_strategy.py
        # --mixed): the records of this instrument of wanted kinds between control records go
        # on as one slice when contiguous (the common case: the whole batch, or its trades after
        # a best bid/ask), a control record that concerns it calls its hook in between.
        kinds = batch["kind"].tolist()
        sym = self.symbol
        if sym:
            syms = batch["symbol"].tolist()
            vens = batch["venue"].tolist()
            ven = self.venue
        out: list[Signal] = []
        pending: list[int] = []           # my records since the last control record that counts
        kinds_set = self._kinds
        for i, k in enumerate(kinds):
            if k >= CONTROL_MIN:
                if sym and syms[i] != 0 and not (syms[i] == sym and vens[i] == ven):
                    continue                  # another instrument's control record
                if pending:
                    r = self._run(_take(batch, pending), kinds, pending)
                    if r:
                        out += r
                    pending = []
                r = None
                if k in GAP_KINDS:
                    self.gaps += 1
                    r = self.on_gap(batch[i])
                elif k in STALE_KINDS:
                    self.stales += 1
                    r = self.on_stale(batch[i])
                if r:
                    out += r
            elif k in kinds_set and (not sym or (syms[i] == sym and vens[i] == ven)):
                pending.append(i)
        if pending:
            if self.wants_market:
                r = self._run(_take(batch, pending), kinds, pending)
            else:                             # trades only: _run's hop saved
                self.suspended = False
                r = self.on_trades(_take(batch, pending))
            if r:
                out += r
        return out

    def _run(self, trades: np.ndarray, kinds: list | None = None,
             idx: list[int] | None = None) -> list[Signal]:
        """`trades` to the hooks; `kinds`: the batch's kinds as a list, of records `idx` when
        given (else `kinds` are the records' own)."""
        if self.wants_market:
            if self._own_split:
                if kinds is not None and idx is not None:
                    kinds = [kinds[i] for i in idx]
                return self._split_market(trades, kinds) or []
            return self.on_market(trades) or []
        # Fresh market data ends a suspension (the subclass has reset whatever it needs).
        self.suspended = False
        return self.on_trades(trades) or []

    def describe(self) -> dict:
        return {"kind": self.kind, "id": self.strategy_id, "symbol": self.symbol,
                "venue": self.venue, "params": dataclasses.asdict(self.params),
                "position": self.position, "gaps": self.gaps, "stales": self.stales,
                "seq": self.seq, "net_qty": self.net_qty, "working_orders": len(self.orders),
                "rejects": self.rejects, "fees_paid": self.fees_paid}
