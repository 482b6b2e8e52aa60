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
  * `on_start()` / `on_stop()` run once each (idempotent) around the run.

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
from pipeline.records import Kind, OrderType, Venue
from pipeline.registry import SymbolRegistry

log = logging.getLogger(__name__)

TRADE_KINDS = (int(Kind.TRADE), int(Kind.AGG_TRADE))
GAP_KINDS = (int(Kind.GAP), int(Kind.RESYNC_START))
STALE_KINDS = (int(Kind.STALE),)
CONTROL_MIN = int(Kind.GAP)   # kinds >= this are the pipeline's own records
TRADE_SET = frozenset(TRADE_KINDS)
SMALL_BATCH = 32              # on_ticks: batches up to this size take the plain-Python pass


@dataclass(frozen=True)
class NoParams:
    pass


class Strategy:
    """Base class. Subclasses implement `on_trades` and may override the hooks."""

    Params: ClassVar[type] = NoParams
    kind: ClassVar[str] = "base"

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

    def on_gap(self, rec: np.void) -> None:
        """A GAP or RESYNC_START record concerning this strategy. Default: suspend."""
        self.suspended = True

    def on_stale(self, rec: np.void) -> None:
        """A STALE record concerning this strategy. Default: suspend."""
        self.suspended = True

    def on_trades(self, trades: np.ndarray) -> list[Signal]:
        """Trade records of this strategy's instrument, in order. Return signals."""
        raise NotImplementedError

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
            sel = self._mine(batch) & np.isin(kind, TRADE_KINDS)
            return self._run(batch[sel]) if sel.any() else []
        mine = self._mine(batch)
        out: list[Signal] = []
        start = 0
        for i in np.flatnonzero(ctl & (mine | (batch["symbol"] == 0))).tolist():
            seg = batch[start:i]
            sel = mine[start:i] & np.isin(seg["kind"], TRADE_KINDS)
            if sel.any():
                out += self._run(seg[sel])
            rec = batch[i]
            k = int(rec["kind"])
            if k in GAP_KINDS:
                self.gaps += 1
                self.on_gap(rec)
            elif k in STALE_KINDS:
                self.stales += 1
                self.on_stale(rec)
            start = i + 1
        seg = batch[start:]
        sel = mine[start:] & np.isin(seg["kind"], TRADE_KINDS)
        if sel.any():
            out += self._run(seg[sel])
        return out

    def _on_ticks_small(self, batch: np.ndarray) -> list[Signal]:
        kinds = batch["kind"].tolist()
        sym, ven = self.symbol, self.venue
        if sym:
            syms = batch["symbol"].tolist()
            vens = batch["venue"].tolist()
        out: list[Signal] = []
        pending: list[int] = []           # my trades since the last control record that counts
        for i, k in enumerate(kinds):
            if k >= CONTROL_MIN:
                if sym and syms[i] != 0 and not (syms[i] == sym and vens[i] == ven):
                    continue                  # another instrument's control record
                if pending:
                    out += self._run(batch[pending])
                    pending = []
                if k in GAP_KINDS:
                    self.gaps += 1
                    self.on_gap(batch[i])
                elif k in STALE_KINDS:
                    self.stales += 1
                    self.on_stale(batch[i])
            elif k in TRADE_SET and (not sym or (syms[i] == sym and vens[i] == ven)):
                pending.append(i)
        if pending:
            out += self._run(batch[pending])
        return out

    def _run(self, trades: np.ndarray) -> list[Signal]:
        # Fresh market data ends a suspension (the subclass has reset whatever it needs).
        self.suspended = False
        return self.on_trades(trades)

    # ------------------------------------------------------------------ helpers
    def target(self, direction: int, trigger_seq: int, trigger_mono: int,
               price: float) -> Signal | None:
        """Move the intended position towards `direction` (+1 up / -1 down); the order that does
        it as a MARKET signal, or None if already there. Long/flat maps down to 0."""
        tgt = direction if (direction > 0 or self.allow_short) else 0
        delta = tgt - self.position
        if delta == 0:
            return None
        self.position = tgt
        return Signal(trigger_seq=int(trigger_seq), trigger_mono=int(trigger_mono),
                      created_mono=self.clock.mono_ns(), ttl_ns=self.ttl_ns,
                      qty=abs(delta) * self.qty, price=float("nan"),
                      strategy_id=self.strategy_id, symbol=self.symbol, venue=self.venue,
                      side=1 if delta > 0 else -1, order_type=int(OrderType.MARKET), tif=0)

    def describe(self) -> dict:
        return {"kind": self.kind, "id": self.strategy_id, "symbol": self.symbol,
                "venue": self.venue, "params": dataclasses.asdict(self.params),
                "position": self.position, "gaps": self.gaps, "stales": self.stales}
