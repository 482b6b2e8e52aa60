"""The simulated venue of the event backtester: what a venue would have done with each order.

An order reaches the venue `latency` after the record that triggered it and is matched against
later records only (its arrival is the first record after the trigger with time >= trigger time +
latency, never the trigger itself). What the venue answers reaches the strategy `latency` later.

  MARKET     with L2 (BOOK_BID/BOOK_ASK records of the instrument): walks the book as it stands at
             arrival, level by level (the rest at the last level's price if the book runs out);
             with only best bid/ask (BID/ASK records): the whole quantity at the best price;
             with trades only: at the first trade at or after arrival. Then slippage_bps (plus
             the constant half-spread of [backtest]) against it. Taker fee.
  LIMIT      the marketable part (price through the best opposite price) fills at arrival like a
             market order limited to the price (taker); IOC / FOK: the rest expires (FOK: fills
             only if all of it can, else expires untouched); GTC: the rest rests (maker).
  LIMIT_MAKER  rejected ("POST_ONLY_WOULD_TAKE") if it would cross the best opposite price at
             arrival (the last trade price when no quote is known), else rests (maker).
  resting    fills when a trade goes through its price (buy: a trade below it; the level was
             swept, the whole rest fills). Queue position when the book of its side is known
             (BOOK_* or BID/ASK records): it joins behind the quantity shown at its price at
             arrival (0 if it improves the best price; unknown = behind everything until a
             record shows the level); trades at its price with the opposite aggressor take
             the queue ahead first, then fill it; a record showing the level smaller than the
             queue ahead shrinks the queue to it (cancels are assumed to be ahead of us).
             Without any book record, trades at its price never fill it (conservative).
  CANCEL / REPLACE   at arrival: a working order is cancelled (Replace then places the new order
             at once); an order already done → REJECTED "UNKNOWN_ORDER" (and no new order).

Account: cash in quote currency, a position per instrument. A buy that the free cash (cash minus
what working buys reserve) cannot pay for, fees included, is rejected "INSUFFICIENT_CASH"; in
long_flat mode a sell beyond the free position is rejected "INSUFFICIENT_POSITION"; long_short
allows negative positions (margin is not modelled). Optionally the gateway's own pre-trade risk
kernel (ext/risk.pyx through pipeline.gateway.risk) checks every new order when it is made, with
the venue filters of [backtest] (tick_size, step_size, min_notional) and the limits of [risk]:
the same reject reasons as live.

Books and resting orders (the work per record) are the matching core's: ext/matching.pyx,
compiled, or its pure-Python twin pipeline/backtest/matching_py.py (`matching="python"`); both
give the same results (tests/parity/test_matching_parity.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.backtest import matching_py
from pipeline.records import Kind, OrderType, TimeInForce
from pipeline.strategy.orders import EventKind, OrderEvent

K_TRADE, K_AGG = int(Kind.TRADE), int(Kind.AGG_TRADE)
MARKET, LIMIT, MAKER = int(OrderType.MARKET), int(OrderType.LIMIT), int(OrderType.LIMIT_MAKER)
IOC, FOK = int(TimeInForce.IOC), int(TimeInForce.FOK)
FILL, ACCEPTED = int(EventKind.FILL), int(EventKind.ACCEPTED)
CANCELLED, EXPIRED = int(EventKind.CANCELLED), int(EventKind.EXPIRED)
INF = math.inf
REJECTED = int(EventKind.REJECTED)

# OrderEvent made straight from a tuple: a NamedTuple's generated __new__ with keywords and
# defaults costs several times more, once per event. The first ten fields, then the defaults.
_EV_HEAD = ("kind", "client_id", "ts", "price", "qty", "fee", "side", "maker", "reason",
            "remaining")
if OrderEvent._fields[:len(_EV_HEAD)] != _EV_HEAD:
    raise ImportError(f"OrderEvent's fields changed: {OrderEvent._fields}")
_EV_TAIL = tuple(OrderEvent._field_defaults[f] for f in OrderEvent._fields[len(_EV_HEAD):])
_new = tuple.__new__


def order_event(kind: int, client_id: int, ts: int, price: float = 0.0, qty: float = 0.0,
                fee: float = 0.0, side: int = 0, maker: bool = False, reason: str = "",
                remaining: float = 0.0) -> OrderEvent:
    """OrderEvent(kind, client_id, ts, ...) with the other fields at their defaults."""
    return _new(OrderEvent, (kind, client_id, ts, price, qty, fee, side, maker, reason,
                             remaining) + _EV_TAIL)


@dataclass(slots=True)
class Working:
    sig: object                          # the Signal
    strategy: object
    client_id: int
    side: int
    symbol: int
    qty: float
    price: float
    order_type: int
    tif: int
    filled: float = 0.0
    queue: float = INF
    reserved: float = 0.0                # cash (buys) or base qty (sells) held for it
    handle: int = 0                      # the matcher's, while it rests

    @property
    def remaining(self) -> float:
        return self.qty - self.filled


def _core(matching: str):
    """The matching core's module: "compiled" (ext/matching.pyx) or "python" (its twin)."""
    if matching == "python":
        return matching_py
    if matching != "compiled":
        raise ValueError(f"matching must be 'compiled' or 'python', got {matching!r}")
    from pipeline._ext import matching as compiled
    return compiled


def matcher_class(matching: str = "compiled"):
    """The matching core: "compiled" (ext/matching.pyx) or "python" (its twin)."""
    return _core(matching).Matcher


def timeline_class(matching: str = "compiled"):
    """The run's times and batch ends (Timeline) of the same matching core."""
    return _core(matching).Timeline


class Exchange:
    """Orders, the account and events for one run over `recs` (see the module doc); books and
    resting orders live in the matcher (`matching`: "compiled" = ext/matching.pyx, "python" =
    its twin pipeline/backtest/matching_py.py; the same results)."""

    def __init__(self, recs: np.ndarray, model, *, risk=None, matching: str = "compiled",
                 times: np.ndarray | None = None):
        self.recs = recs
        self.t = recs["mono_ts"]
        # record times as plain ints (`times`: the caller's contiguous int64 copy of mono_ts)
        self._tv = memoryview(np.ascontiguousarray(self.t if times is None else times,
                                                   dtype=np.int64))
        self.kind = recs["kind"]
        self.sym = recs["symbol"]
        self.price = recs["price"]
        self.qty = recs["qty"]
        self.aside = recs["side"]
        self.model = model
        self.fee_taker = model.fee_taker_bps / 1e4
        self.fee_maker = model.fee_maker_bps / 1e4
        self.slip = (model.slippage_bps + model.half_spread_bps) / 1e4
        self.long_short = model.mode == "long_short"
        self.cash = float(model.initial_capital)
        self.pos: dict[int, float] = {}
        self.reserved_cash = 0.0
        self.reserved_pos: dict[int, float] = {}
        self.working: dict[tuple[int, int], Working] = {}
        self.resting: dict[int, Working] = {}    # matcher handle → order
        self.m = matcher_class(matching)(self.kind, self.sym, self.price, self.qty, self.aside)
        self.risk = risk
        self.fills: list[tuple] = []     # (record index, symbol, signed qty, price, fee, maker,
        #                                   strategy id, client id)
        self.rejects: dict[str, int] = {}
        self._trade_idx: dict[int, np.ndarray] = {}
        # what a strategy sizing by equity needs (Strategy.target): the cost of one unit of
        # notional bought as taker, and the quantity step
        self.cost_rate = (1 + self.slip) * (1 + self.fee_taker)
        self.step = float(model.step_size)

    # ------------------------------------------------------------------ helpers
    def trades_of(self, symbol: int) -> np.ndarray:
        ti = self._trade_idx.get(symbol)
        if ti is None:
            m = (self.sym == symbol) & ((self.kind == K_TRADE) | (self.kind == K_AGG))
            ti = self._trade_idx[symbol] = np.flatnonzero(m)
        return ti

    def _event(self, out, w, kind, k, reason=""):
        out.append((w.strategy, _new(OrderEvent, (kind, w.client_id, self._tv[k], 0.0, 0.0,
                                                  0.0, w.side, False, reason, w.qty - w.filled)
                                            + _EV_TAIL)))

    def _reject(self, out, st, sig, k, reason: str):
        self.rejects[reason] = self.rejects.get(reason, 0) + 1
        out.append((st, order_event(REJECTED, int(sig.seq), self._tv[k], side=int(sig.side),
                                    reason=reason)))

    def _fill(self, out, w: Working, k: int, qty: float, px: float, maker: bool) -> None:
        fee = qty * px * (self.fee_maker if maker else self.fee_taker)
        self.cash -= w.side * qty * px + fee
        self.pos[w.symbol] = self.pos.get(w.symbol, 0.0) + w.side * qty
        w.filled += qty
        if w.side > 0:
            rel = min(w.reserved, qty * w.price * (1 + self.fee_maker)) if w.reserved else 0.0
            w.reserved -= rel
            self.reserved_cash -= rel
        elif w.reserved:
            rel = min(w.reserved, qty)
            w.reserved -= rel
            self.reserved_pos[w.symbol] -= rel
        self.fills.append((k, w.symbol, w.side * qty, px, fee, maker, w.strategy.strategy_id,
                           w.client_id))
        if self.risk is not None:
            self.risk.apply_fill(w.symbol, w.side, qty)
        out.append((w.strategy, _new(OrderEvent, (FILL, w.client_id, self._tv[k], px, qty, fee,
                                                  w.side, maker, "", w.qty - w.filled)
                                            + _EV_TAIL)))

    def _release(self, w: Working) -> None:
        if w.side > 0:
            self.reserved_cash -= w.reserved
        elif w.reserved:                 # long_short sells reserve nothing
            self.reserved_pos[w.symbol] -= w.reserved
        w.reserved = 0.0
        if self.risk is not None and w.remaining > 0:
            self.risk.release_open(w.symbol, w.side, w.remaining)

    def free_cash(self) -> float:
        return self.cash - self.reserved_cash

    def free_pos(self, symbol: int) -> float:
        return self.pos.get(symbol, 0.0) - self.reserved_pos.get(symbol, 0.0)

    # ------------------------------------------------------------------ orders at arrival
    def arrive(self, st, sig, k: int, out: list) -> None:
        """A new order reaches the venue at record k (the book as it stands before k)."""
        side, sym, qty = int(sig.side), int(sig.symbol), float(sig.qty)
        ot = int(sig.order_type)
        w = Working(sig, st, int(sig.seq), side, sym, qty, float(sig.price), ot, int(sig.tif))
        m = self.m
        m.advance(sym, k)
        if ot == MARKET:
            self._market(out, w, k)
            return
        p = w.price
        best = m.best(sym, side)
        if math.isnan(best):                 # no quote: the last trade stands in for it
            ti = self.trades_of(sym)
            j = int(np.searchsorted(ti, k, "left")) - 1
            best = float(self.price[ti[j]]) if j >= 0 else math.nan
        crosses = not math.isnan(best) and ((p >= best) if side > 0 else (p <= best))
        if ot == MAKER and crosses:
            self._reject(out, st, sig, k, "POST_ONLY_WOULD_TAKE")
            if self.risk is not None:
                self.risk.release_open(sym, side, qty)
            return
        if not self._affordable(w, p * (1 + self.fee_maker) * qty if side > 0 else qty):
            self._reject(out, st, sig, k, "INSUFFICIENT_CASH" if side > 0
                         else "INSUFFICIENT_POSITION")
            if self.risk is not None:
                self.risk.release_open(sym, side, qty)
            return
        self._event(out, w, ACCEPTED, k)
        if crosses and ot == LIMIT:
            got, notional = m.walk(sym, side, qty, p)
            if got <= 0 and not m.depth(sym) and math.isnan(m.best(sym, side)):
                got, notional = qty, qty * best           # trades only: at the last price
            if w.tif == FOK and got < qty:
                self._release(w)
                self._event(out, w, EXPIRED, k, reason="FOK")
                return
            if got > 0:
                px = notional / got * (1 + self.slip * side)
                px = min(px, p) if side > 0 else max(px, p)
                self._fill(out, w, k, got, px, False)
        if w.remaining <= 1e-12 * qty:
            self._release(w)
            return
        if w.tif in (IOC, FOK):
            self._release(w)
            self._event(out, w, EXPIRED, k, reason="IOC")
            return
        w.queue = m.level_qty(sym, side, p) if m.has_book(sym) else INF
        self.working[(st.strategy_id, w.client_id)] = w
        w.handle = m.add(sym, side, p, w.qty, w.filled, w.queue)
        self.resting[w.handle] = w

    def _affordable(self, w: Working, need: float) -> bool:
        if w.side > 0:
            if need > self.free_cash() + 1e-9:
                return False
            w.reserved = need
            self.reserved_cash += need
            return True
        if not self.long_short and need > self.free_pos(w.symbol) + 1e-12:
            return False
        if not self.long_short:
            w.reserved = need
            self.reserved_pos[w.symbol] = self.reserved_pos.get(w.symbol, 0.0) + need
        return True

    def _venue_size(self, w: Working, tgt: int, px: float) -> float:
        """The quantity that takes the position to `tgt` x (fraction of equity at this fill
        price, fee included; rounded down to the step): how much a 100 %-of-equity order can
        really buy."""
        pos = self.pos.get(w.symbol, 0.0)
        want = 0.0
        if tgt != 0:
            equity = self.cash + pos * px
            unit = w.strategy.size_fraction * max(0.0, equity) / (px * (1 + self.fee_taker))
            if self.step > 0:
                unit = math.floor(unit / self.step + 1e-9) * self.step
            want = tgt * unit
        return (want - pos) * w.side

    def _market(self, out, w: Working, k: int) -> None:
        tgt = w.strategy.venue_sized.pop(w.client_id, None) if w.strategy.venue_sized else None
        side, qty, m, sym = w.side, w.qty, self.m, w.symbol
        got, notional = m.walk(sym, side, qty) if m.has_book(sym) else (0.0, 0.0)
        if got > 0:
            px = notional / got * (1 + self.slip * side)
            fk = k
        else:                                   # trades only: the first trade from arrival
            ti = self.trades_of(w.symbol)
            j = int(np.searchsorted(ti, k, "left"))
            if j >= len(ti):
                self._reject(out, w.strategy, w.sig, len(self.t) - 1, "NO_MARKET_DATA")
                return
            fk = int(ti[j])
            px = float(self.price[fk]) * (1 + self.slip * side)
        if tgt is not None:
            qty = self._venue_size(w, tgt, px)
            if got > 0 and qty > 0:                  # the book price for that quantity
                g2, n2 = m.walk(sym, side, qty)
                if g2 > 0:
                    px = n2 / g2 * (1 + self.slip * side)
                    qty = min(qty, self._venue_size(w, tgt, px))
            if qty <= 1e-12:
                self._reject(out, w.strategy, w.sig, fk, "NOTHING_TO_TRADE")
                if self.risk is not None:
                    self.risk.release_open(w.symbol, side, w.qty)
                return
            w.qty = qty
        cost = qty * px * (1 + self.fee_taker)
        if side > 0 and cost > self.free_cash() + 1e-9:
            self._reject(out, w.strategy, w.sig, fk, "INSUFFICIENT_CASH")
            if self.risk is not None:
                self.risk.release_open(w.symbol, side, qty)
            return
        if side < 0 and not self.long_short and qty > self.free_pos(w.symbol) + 1e-12:
            self._reject(out, w.strategy, w.sig, fk, "INSUFFICIENT_POSITION")
            if self.risk is not None:
                self.risk.release_open(w.symbol, side, qty)
            return
        self._event(out, w, ACCEPTED, fk)
        self._fill(out, w, fk, qty, px, False)

    def cancel(self, st, client_id: int, k: int, out: list) -> bool:
        w = self.working.pop((st.strategy_id, client_id), None)
        if w is None:
            self.rejects["UNKNOWN_ORDER"] = self.rejects.get("UNKNOWN_ORDER", 0) + 1
            out.append((st, order_event(REJECTED, int(client_id), self._tv[k],
                                        reason="UNKNOWN_ORDER")))
            return False
        self.m.remove(w.handle)
        del self.resting[w.handle]
        self._release(w)
        self._event(out, w, CANCELLED, k)
        return True

    # ------------------------------------------------------------------ resting orders
    def next_candidate(self, a: int, b: int) -> int:
        """The first record in [a, b) that could fill a resting order (b if none)."""
        return self.m.next_candidate(a, b, True)

    def scan(self, a: int, b: int, out: list) -> int:
        """Records [a, b) against the resting orders up to the first that fills one; its fills
        go out as events and the record index is returned (b if nothing filled)."""
        k, fills = self.m.scan(a, b)
        if fills:
            self.filled(k, fills, out)
        return k

    def filled(self, k: int, fills: list, out: list) -> None:
        """The matcher's fills at record k ([(handle, qty, done)]): events, account, done
        orders out of the book-keeping."""
        done = []
        for h, qty, fin in fills:
            w = self.resting[h]
            self._fill(out, w, k, qty, w.price, True)
            if fin:
                done.append(w)
        for w in done:
            del self.working[(w.strategy.strategy_id, w.client_id)]
            del self.resting[w.handle]
            self._release(w)

    def mark(self) -> float:
        return self.cash


def risk_kernel(risk_cfg, model, *, venue: int, name: str, symbol_id: int):
    """The gateway's compiled risk engine (pipeline.gateway.risk) for one instrument: the venue
    filters from [backtest] (tick_size, step_size, min_notional), our limits from [risk] (its
    [risk.symbols."VENUE:SYMBOL"] entry, or no per-symbol limit beyond the notional ones)."""
    from decimal import Decimal

    from pipeline.gateway.risk import InstrumentRules, engine_from_config
    from pipeline.records import Venue
    eng = engine_from_config(risk_cfg)
    key = f"{Venue(venue).name}:{name}"
    lim = risk_cfg.symbols.get(key)

    def dec(x: float) -> str:
        return format(Decimal(repr(float(x))).normalize(), "f")
    tick = model.tick_size or model.price_increment
    eng.set_instrument(InstrumentRules.build(
        symbol_id=symbol_id, venue=venue, name=name, tick=dec(tick), step=dec(model.step_size),
        min_notional=dec(model.min_notional),
        max_order_qty=dec(lim.max_order_qty) if lim else "10000",
        max_position_qty=dec(lim.max_position_qty) if lim else "10000",
        max_order_notional=float(risk_cfg.order_notional_for(Venue(venue).name, name))
        if lim else risk_cfg.max_order_notional))
    eng.set_max_tick_age(symbol_id, risk_cfg.tick_age_ms_for(Venue(venue).name, name) * 1_000_000)
    return eng
