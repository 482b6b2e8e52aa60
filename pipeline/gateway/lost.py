"""LOST orders keep their exposure until confirmed (issue 17; the hummingbot lost-order pattern).

An UNKNOWN order the venue still does not know after `unknown_max_polls` status queries and past
its request's recvWindow is declared LOST by the venue's Execution.resolve (`declare`). Its open
quantity stays reserved in the risk kernel: the venue's "does not exist" is not proof that it
never traded (a lagging order index, a stream that was down). `confirm`, run by
Execution.resolve_due every poll interval, releases it only when

  * the user stream (when configured) stayed subscribed, without a reconnect, from the LOST
    verdict to the confirmation (an executionReport of the order would have moved it on), and
  * the trade history fetched then (the venue's Execution.fetch_trades: our orders' trades are
    applied) holds no trade on the symbol we cannot attribute (a foreign trade) since the order
    was sent (Execution.foreign_mono).

Until then a venue report of the order moves it on (orders.transition allows LOST → ACK /
FILLED / ... while it holds its exposure). A foreign trade holds it (journal `lost_held`, count
`lost_unconfirmed`): the next start's reconciliation, which rebuilds open orders and positions
from the venue, settles it. Released: journal `lost_confirmed`, count `lost_confirmed`.
"""
from __future__ import annotations

import logging
import time

from pipeline.gateway.orders import Order, OrderState
from pipeline.gateway.risk import sync_own_quotes
from pipeline.logs import order_log

log = logging.getLogger("pipeline.gateway.execution")


def declare(ex, order: Order) -> None:
    """The venue does not know an UNKNOWN order after the polls and past its recvWindow:
    LOST, its exposure still reserved until confirm() (next poll interval on)."""
    ex.count("lost")
    st = ex.stream
    order.lost_stream = st.connects if st is not None and st.subscribed.is_set() else -1
    ex.set_state(order, OrderState.LOST,
                 f"venue does not know it after {order.polls} polls")
    if order.state is OrderState.LOST and not order.released:
        ex.lost_pending[order.cid] = order
        order.next_poll_mono = time.perf_counter_ns() + min(
            ex.cfg.unknown_poll_max_ms, ex.cfg.unknown_poll_ms * 2 ** order.polls) \
            * 1_000_000


def confirm(ex, order: Order) -> bool:
    """Release a LOST order's exposure once it is confirmed never to have traded: the user
    stream (if any) stayed subscribed without a reconnect since the LOST verdict (an
    executionReport would have moved the order on), and the trade history, fetched now
    (fetch_trades applies our orders' trades), holds no trade we cannot attribute since the
    order was sent. True when released; False: held, asked again later."""
    if order.state is not OrderState.LOST or order.released:
        ex.lost_pending.pop(order.cid, None)
        return False
    later = time.perf_counter_ns() + ex.cfg.unknown_poll_max_ms * 1_000_000
    st = ex.stream
    if st is not None and (not st.subscribed.is_set() or st.connects != order.lost_stream):
        # not watched the whole time: watch from now on, confirm one interval later
        order.lost_stream = st.connects if st.subscribed.is_set() else -1
        order.next_poll_mono = later
        return False
    if ex.fetch_trades(order.symbol) < 0:
        order.next_poll_mono = later             # no history: ask again
        return False
    if order.state is not OrderState.LOST:       # one of its trades turned up: not lost
        return False
    sent = order.stamps.get("written", 0)
    if ex.foreign_mono.get(order.symbol, -1) >= sent:
        # a trade on the symbol we cannot attribute, since the order was sent: it may be
        # this order's; the exposure stays (the start's reconciliation settles it)
        if not order.why.endswith("(held: a foreign trade)"):
            order.why += " (held: a foreign trade)"
            ex.count("lost_unconfirmed")
            ex.journal.write("lost_held", cid=order.cid, symbol=order.symbol,
                             why="a trade we cannot attribute since it was sent")
            log.warning("LOST order %s keeps its exposure: a trade on %s since it was sent "
                        "is not ours", order.cid, order.symbol)
        order.next_poll_mono = later
        return False
    ex.lost_pending.pop(order.cid, None)
    ex._release(order)
    if order.price == order.price and getattr(ex.risk, "self_trade", False):
        sync_own_quotes(ex.risk, ex.table.open_orders(), order.symbol_id)
    ex.count("lost_confirmed")
    ex.journal.write("lost_confirmed", cid=order.cid, symbol=order.symbol,
                     released=order.qty - order.filled)
    order_log("LOST_CONFIRMED", order.cid, symbol=order.symbol,
              why="no trade in the history, exposure released")
    return True
