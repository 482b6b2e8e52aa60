"""OKX amend-order on the simulator's engine: a resting LIMIT order gets a new size and/or price.

newSz is the order's new total size (filled part included) and must exceed what has filled;
newPx must sit on the tick and (for a post_only order) not cross. The order keeps its ids; its
locked balance follows the new remainder; a new price loses its queue place (a new sequence
number), a smaller size keeps it. The account's listeners see an executionReport with
x = "REPLACED" (the OKX private WS turns it into an orders push with amendResult "0").
"""
from __future__ import annotations

import bisect

from pipeline.sim.instruments import DecimalError, mul8, parse8
from pipeline.venues.okx import orders as ox


def _units(a: dict, name: str) -> int | None:
    v = a.get(name)
    if v in (None, ""):
        return None
    from pipeline.sim.okx_trade import OrderFail
    try:
        u = parse8(str(v))
    except DecimalError:
        raise OrderFail(ox.PARAM_ERROR, f"Parameter {name} error") from None
    if u <= 0:
        raise OrderFail(ox.PARAM_ERROR, f"Parameter {name} error")
    return u


def amend(engine, acct, order, a: dict) -> None:
    from pipeline.sim.okx_trade import OrderFail
    new_sz, new_px = _units(a, "newSz"), _units(a, "newPx")
    if new_sz is None and new_px is None:
        raise OrderFail(ox.PARAM_ERROR, "Either parameter newSz or newPx is required")
    if order.type == "MARKET":
        raise OrderFail(ox.AMEND_FAILED)
    s = engine.books[order.symbol].spec
    sz = order.qty if new_sz is None else new_sz
    px = order.price if new_px is None else new_px
    if sz <= order.executed or sz % s.step or sz > s.max_qty:
        raise OrderFail(ox.PARAM_ERROR, "Parameter newSz error")
    if px % s.tick or px < s.min_price or px > s.max_price:
        raise OrderFail(ox.PARAM_ERROR, "Parameter newPx error")
    is_buy = order.side == "BUY"
    book = engine.books[order.symbol]
    best = book.best_ask if is_buy else book.best_bid
    if order.type == "LIMIT_MAKER" and best and (best <= px if is_buy else best >= px):
        raise OrderFail(ox.WOULD_TAKE)
    asset = s.quote if is_buy else s.base
    remaining = sz - order.executed
    need = mul8(px, remaining) if is_buy else remaining
    if acct.free.get(asset, 0) + order.locked < need:
        raise OrderFail(ox.INSUFFICIENT)
    acct.unlock(asset, order.locked)
    acct.lock(asset, need)
    order.locked = need
    lst = (engine.resting_buy if is_buy else engine.resting_sell)[order.symbol]
    entry = next((e for e in lst if e[3] is order), None)
    moved = px != order.price
    order.qty, order.price = sz, px
    now = engine.clock_ms()
    order.update_ms = now
    if entry is not None and moved:
        lst.remove(entry)
        engine._seq += 1
        bisect.insort(lst, ((-px if is_buy else px), engine._seq, acct, order))
    engine._report(acct, order, "REPLACED", now)
    engine._position(acct, {asset}, now)


__all__ = ["amend"]
