"""The order side of a Strategy: its own numbering, order intents, `target`, and what order
events do to its book-keeping (a mixin of pipeline.strategy.base.Strategy, which holds the
state: epoch, seq, orders, net_qty, fees_paid, feedback, account, size_fraction)."""
from __future__ import annotations

import math
import time as _time

from pipeline.bus.signals import Signal
from pipeline.records import OrderType, TimeInForce
from pipeline.strategy.orders import Cancel, EventKind, OrderEvent, OrderState, Replace

_TIF = {"GTC": int(TimeInForce.GTC), "IOC": int(TimeInForce.IOC), "FOK": int(TimeInForce.FOK)}
# event kinds as plain ints (an enum member lookup per comparison costs ~0.25 us)
_POSITION, _OPEN, _FILL = int(EventKind.POSITION), int(EventKind.OPEN), int(EventKind.FILL)
_ACCEPTED, _REJECTED = int(EventKind.ACCEPTED), int(EventKind.REJECTED)
_CANCELLED, _EXPIRED = int(EventKind.CANCELLED), int(EventKind.EXPIRED)
_UNKNOWN, _LOST = int(EventKind.UNKNOWN), int(EventKind.LOST)
_ENDS_UNFILLED = frozenset((_REJECTED, _EXPIRED, _CANCELLED, _LOST))
_DONE = frozenset(("FILLED", "CANCELLED", "REJECTED", "EXPIRED", "LOST"))   # OrderState.done
# a new order's Signal straight from a tuple (its NamedTuple __new__ with keywords costs
# several times more): the fields up to tif, then the defaults (version, action, replace_back)
_SIG_HEAD = ("epoch", "seq", "trigger_seq", "trigger_mono", "created_mono", "ttl_ns", "qty",
             "price", "strategy_id", "symbol", "venue", "side", "order_type", "tif")
if Signal._fields[:len(_SIG_HEAD)] != _SIG_HEAD:
    raise ImportError(f"Signal's fields changed: {Signal._fields}")
_SIG_TAIL = tuple(Signal._field_defaults[f] for f in Signal._fields[len(_SIG_HEAD):])
_new = tuple.__new__
_STATUS = {_ACCEPTED: "ACCEPTED", _REJECTED: "REJECTED", _CANCELLED: "CANCELLED",
           _EXPIRED: "EXPIRED", _UNKNOWN: "UNKNOWN", _LOST: "LOST"}
_MARKET = int(OrderType.MARKET)
_NAN = float("nan")


class OrderIntents:
    # ------------------------------------------------------------------ numbering, intents
    def next_seq(self) -> int:
        if self.epoch <= 0:
            self.epoch = _time.time_ns()
        self.seq += 1
        return self.seq

    def stamp(self, sig: Signal) -> Signal:
        """Number a signal made without one (epoch/seq 0, e.g. by `target`) from this instance's
        own stream, and track it as a working order."""
        if sig.seq == 0:
            sig = sig._replace(seq=self.next_seq(), epoch=self.epoch)
        if sig.seq not in self.orders:
            self.orders[sig.seq] = OrderState(sig.seq, sig.side, sig.qty, sig.price,
                                              sig.order_type, sig.tif)
        return sig

    def _order(self, side: int, qty: float, order_type: int, tif: int, price: float,
               trigger_seq: int, trigger_mono: int) -> Signal:
        if side not in (1, -1):
            raise ValueError(f"side must be +1 (buy) or -1 (sell), got {side!r}")
        seq = self.next_seq()
        self.orders[seq] = OrderState(seq, side, float(qty), float(price), order_type, tif)
        return _new(Signal, (self.epoch, seq, int(trigger_seq), int(trigger_mono),
                             self.clock.mono_ns(), self.ttl_ns, float(qty), float(price),
                             self.strategy_id, self.symbol, self.venue, int(side), order_type,
                             tif) + _SIG_TAIL)

    def market(self, side: int, qty: float, trigger_seq: int = -1,
               trigger_mono: int = 0) -> Signal:
        """A MARKET order; its `seq` is the client id."""
        return self._order(side, qty, int(OrderType.MARKET), 0, float("nan"), trigger_seq,
                           trigger_mono)

    def limit(self, side: int, qty: float, price: float, tif: str = "GTC",
              trigger_seq: int = -1, trigger_mono: int = 0) -> Signal:
        """A LIMIT order, time in force GTC, IOC or FOK."""
        try:
            t = _TIF[tif.upper()]
        except (KeyError, AttributeError):
            raise ValueError(f"tif must be GTC, IOC or FOK, got {tif!r}") from None
        return self._order(side, qty, int(OrderType.LIMIT), t, price, trigger_seq, trigger_mono)

    def post_only(self, side: int, qty: float, price: float, trigger_seq: int = -1,
                  trigger_mono: int = 0) -> Signal:
        """A post-only limit (LIMIT_MAKER): rejected instead of taking liquidity."""
        return self._order(side, qty, int(OrderType.LIMIT_MAKER), 0, price, trigger_seq,
                           trigger_mono)

    def cancel(self, client_id, trigger_seq: int = -1) -> Cancel:
        """Cancel a working order: its seq, or the (epoch, seq) key of an earlier run's order."""
        key = client_id if isinstance(client_id, tuple) else int(client_id)
        return Cancel(self.strategy_id, key, int(trigger_seq))

    def replace(self, client_id: int, price: float, qty: float | None = None,
                trigger_seq: int = -1, trigger_mono: int = 0) -> Replace:
        """Cancel a working order and place the same kind of order at `price` (and `qty`)."""
        old = self.orders.get(int(client_id))
        if old is None:
            raise KeyError(f"strategy {self.strategy_id}: no working order {client_id}")
        q = old.remaining if qty is None else qty
        new = self._order(old.side, q, old.order_type, old.tif, price, trigger_seq, trigger_mono)
        return Replace(self.strategy_id, int(client_id), new)

    def working(self) -> list[OrderState]:
        return [o for o in self.orders.values() if not o.done]

    def _order_key(self, ev: OrderEvent):
        """The `orders` key of an event's order: its seq for this instance's own epoch, (epoch,
        seq) for an order of an earlier run (reported OPEN at start)."""
        return ev.client_id if ev.epoch in (0, self.epoch) else (ev.epoch, ev.client_id)

    def order_event(self, ev: OrderEvent) -> list:
        """Apply an order event (position from fills), then the subclass's on_order_event."""
        k = ev.kind
        if k == _POSITION:                    # start-up state: the gateway's position from fills
            self.net_qty = float(ev.qty)
            if self.feedback:
                self.sync_position()
            return self.on_order_event(ev) or []
        key = ev.client_id if (ev.epoch == 0 or ev.epoch == self.epoch) else \
            (ev.epoch, ev.client_id)            # as _order_key
        if k == _OPEN:                        # start-up state: a working order (any epoch)
            if key not in self.orders:
                self.orders[key] = OrderState(ev.client_id, ev.side, float(ev.qty),
                                              float(ev.price), 1, 1, filled=float(ev.filled),
                                              status="ACCEPTED",
                                              epoch=0 if key == ev.client_id else ev.epoch)
            if self.feedback:
                self.sync_position()
            return self.on_order_event(ev) or []
        o = self.orders.get(key)
        if k == _FILL:
            side = ev.side or (o.side if o is not None else 0)
            self.net_qty += side * ev.qty
            self.fees_paid += ev.fee
            if o is not None:
                o.filled += ev.qty
                o.qty = o.filled + ev.remaining      # the venue's view (it may size the order)
                if ev.remaining <= 1e-12 * max(1.0, o.qty):
                    o.status = "FILLED"
        elif o is not None:
            st = _STATUS.get(k)               # UNKNOWN: still counted as working until resolved
            if st is not None:
                o.status = st
                if k == _REJECTED:
                    self.rejects += 1
        elif k == _REJECTED:
            self.rejects += 1
        if o is not None and o.status in _DONE:
            del self.orders[key]
        if self.feedback and k in _ENDS_UNFILLED:
            self.sync_position()
        return self.on_order_event(ev) or []

    def target(self, direction: int, trigger_seq: int, trigger_mono: int,
               price: float) -> Signal | None:
        """Move the position towards `direction` (+1 up / -1 down); the MARKET order that does
        it, or None if already there. Long/flat maps down to 0. Without order feedback (live
        today) the position is the intended one; with it (`feedback`, the backtester) the
        order is for the difference between the target and the position from fills plus
        what is still working, so a rejected order is not counted as done."""
        tgt = direction if (direction > 0 or self.allow_short) else 0
        if self.feedback:
            w = 0                             # sum(o.side * o.remaining ...), no generator
            for o in self.orders.values():
                w += o.side * (o.qty - o.filled)
            have = self.net_qty + w
            unit = self.qty
            acct = self.account
            if self.size_fraction > 0 and acct is not None and tgt != 0 and price > 0:
                # a fraction of equity, sized so that price + slippage + fee fit the cash
                equity = acct.cash + self.net_qty * price
                unit = self.size_fraction * max(0.0, equity) / (price * acct.cost_rate)
                if acct.step > 0:
                    unit = math.floor(unit / acct.step + 1e-9) * acct.step
            dq = tgt * unit - have
            self.position = tgt
            if abs(dq) <= 1e-9 * max(unit, self.qty):
                return None
            # numbered and tracked now: the next target() of the same batch counts it
            sig = self._order(1 if dq > 0 else -1, abs(dq), _MARKET, 0, _NAN, trigger_seq,
                              trigger_mono)
            if self.size_fraction > 0 and acct is not None:
                self.venue_sized[sig.seq] = tgt     # the venue sizes it from the cash it finds
            return sig
        else:
            delta = tgt - self.position
            if delta == 0:
                return None
            self.position = tgt
            side, qty = (1 if delta > 0 else -1), abs(delta) * self.qty
        return _new(Signal, (0, 0, int(trigger_seq), int(trigger_mono), self.clock.mono_ns(),
                             self.ttl_ns, qty, _NAN, self.strategy_id, self.symbol, self.venue,
                             side, _MARKET, 0) + _SIG_TAIL)

    def sync_position(self) -> None:
        """With feedback: an order ended without (all of) its fills; the intended position
        becomes the one from fills and working orders again."""
        w = 0                         # as sum(o.side * o.remaining ...), without a generator
        for o in self.orders.values():
            w += o.side * (o.qty - o.filled)
        have = self.net_qty + w
        u = round(have / self.qty) if self.qty > 0 else 0
        self.position = max(-1, min(1, int(u)))
