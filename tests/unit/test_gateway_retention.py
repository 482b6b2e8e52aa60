"""The gateway's per-order memory is bounded (pipeline/gateway/orders.py OrderTable.retire,
positions.Book.forget): a final order with every fill in leaves the order table after a grace
period and beyond the newest `keep`; what later readers need stays: its client id is still
refused, a late copy of its trade or of its execution report is a duplicate (never applied
twice, never reported as a foreign trade), its fills stay in the strategies' start-up positions.
Orders that may still change (open, UNKNOWN, LOST holding exposure, fills still to come) stay.
The venue is the scripted fake REST client of test_gateway_defects; the journal is real."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from pipeline.gateway.orders import ClientIdReused, Order, OrderState, OrderTable, transition
from pipeline.gateway.positions import Book, Fill
from tests.unit.test_gateway_defects import SID, SYM, FakeRest, make_ex, ok, trade

GRACE_NS = 60 * 10**9


def _final(table: OrderTable, i: int, *, state=OrderState.FILLED, filled=None, oid=None,
           cid=None, released=True, final_ns=1) -> Order:
    o = Order(cid=cid or f"pl1.1.{i:x}", symbol=SYM, symbol_id=SID, side=1, order_type=1,
              tif=1, qty=0.5, price=100.0, state=state)
    o.filled = 0.5 if filled is None else filled
    o.released = released
    o.final_ns = final_ns
    table.add(o)
    table.set_order_id(o, 1000 + i if oid is None else oid)
    return o


def test_final_settled_orders_past_the_bound_leave_the_table_and_open_ones_stay():
    t = OrderTable(keep=100, grace_s=60.0)
    t.started_ns = 0
    opens = []
    for i in range(5):
        o = Order(cid=f"pl1.1.{i:x}", symbol=SYM, symbol_id=SID, side=1, order_type=1, tif=1,
                  qty=0.5, price=100.0, state=OrderState.ACK)
        opens.append(t.add(o))
    for i in range(5, 3_000):
        _final(t, i)
    assert t.maybe_retire(10**12) == 3_000 - 5 - 100
    assert len(t) == 100 + 5 and t.maybe_retire(10**12 + 1) == 0   # at most once a second
    assert all(t.get(o.cid) is o for o in opens)
    assert t.retired == 2_995 - (len(t) - 5)
    assert "pl1.1.5" in t and t.is_retired("pl1.1.5")   # still ours: refused if sent again
    with pytest.raises(ClientIdReused):
        t.add(Order(cid="pl1.1.5", symbol=SYM, symbol_id=SID, side=1, order_type=1, tif=1,
                    qty=0.5, price=100.0))
    t.add(Order(cid="pl1.1.fffff", symbol=SYM, symbol_id=SID, side=1, order_type=1, tif=1,
                qty=0.5, price=100.0))                  # a new seq is fine
    assert t.retired_order(SYM, 1005) == "pl1.1.5" and t.by_order_id(SYM, 1005) is None
    assert t.retired_pos == {(1, SID): pytest.approx(0.5 * t.retired)}
    assert t.retired_states == {"FILLED": t.retired}


def test_orders_that_may_still_change_are_kept():
    t = OrderTable(keep=0 + 1, grace_s=60.0)
    t.started_ns = 0
    now = 10 * GRACE_NS
    waiting = _final(t, 1, state=OrderState.CANCELED, filled=0.1)   # venue executed 0.3
    waiting.executed = 0.3
    short = _final(t, 2, state=OrderState.FILLED, filled=0.2)       # fills still to come
    lost = _final(t, 3, state=OrderState.LOST, filled=0.0, released=False)   # holds exposure
    young = _final(t, 4, final_ns=now - GRACE_NS // 2)              # final 30 s ago
    foreign_id = _final(t, 5, cid="abc123")                          # not one of our ids
    _final(t, 6)
    _final(t, 7)                                                     # the newest is kept anyway
    gone = t.retire(now)
    assert [o.cid for o in gone] == ["pl1.1.6"]
    for o in (waiting, short, lost, young, foreign_id):
        assert t.get(o.cid) is o
    waiting.filled = 0.3                                            # its last fill came in
    assert waiting in t.retire(now)


def test_transition_stamps_when_an_order_became_final():
    o = Order(cid="pl1.1.1", symbol=SYM, symbol_id=SID, side=1, order_type=1, tif=1, qty=1.0,
              price=1.0, state=OrderState.ACK)
    transition(o, OrderState.PARTIALLY_FILLED)
    assert o.final_ns == 0
    transition(o, OrderState.CANCELED)
    assert o.final_ns > 0


def test_a_retired_orders_trades_stay_duplicates_then_leave_the_dedup_set_after_the_window():
    b = Book(window=1000)
    for i in range(1500):
        assert b.apply(Fill(SYM, i, f"pl1.1.{i:x}", i, 1, 0.1, 100.0))
    b.forget(SimpleNamespace(cid="pl1.1.0"))
    assert (SYM, 0) in b.seen and not b.apply(Fill(SYM, 0, "pl1.1.0", 0, 1, 0.1, 100.0))
    for i in range(1, 1500):
        b.forget(SimpleNamespace(cid=f"pl1.1.{i:x}"))
    assert len(b.seen) == 1000 and b.forgotten == 500 and not b.keys_of
    assert (SYM, 1499) in b.seen and (SYM, 0) not in b.seen


def _retire_all(ex):
    ex.table.keep, ex.table.grace_ns, ex.table.started_ns = 0, 0, 0
    return ex.table.retire()


def test_a_late_copy_of_a_retired_orders_fill_is_a_duplicate_not_a_foreign_trade(tmp_path):
    """The order filled (response + stream), was retired; then the trade history (LOST
    confirmation, reconciliation) and a late stream event bring its trade again."""
    rest = FakeRest()
    ex = make_ex(tmp_path, rest)
    o = Order(cid="pl1.1.1", symbol=SYM, symbol_id=SID, side=1, order_type=1, tif=1, qty=0.5,
              price=100.0, state=OrderState.ACK)
    ex.table.add(o)
    ex.table.set_order_id(o, 555)
    assert ex.fill(o, symbol=SYM, trade_id=7, side=1, qty=0.5, price=100.0, source="stream")
    assert o.state is OrderState.FILLED
    assert _retire_all(ex) == [o] and ex.table.get("pl1.1.1") is None
    # the trade history has it again: neither applied nor foreign
    rest.on("GET", "/api/v3/myTrades", ok([trade(7, 555)]))
    assert ex.fetch_trades(SYM) == 0
    assert ex.book.positions[SYM].qty == pytest.approx(0.5)
    assert ex.counts.get("foreign_fills", 0) == 0 and not ex.foreign_mono
    # so is a late executionReport of it (by client id), and its trade
    ex.on_event({"e": "executionReport", "s": SYM, "c": "pl1.1.1", "i": 555, "x": "TRADE",
                 "X": "FILLED", "t": 7, "l": "0.5", "L": "100.0", "z": "0.5", "S": "BUY"})
    assert ex.book.positions[SYM].qty == pytest.approx(0.5)
    assert not ex.foreign and ex.counts["events_of_retired"] == 1
    # even once the trade left the dedup window, the order's venue id still names it ours
    ex.book.seen.discard((SYM, 7))
    rest.on("GET", "/api/v3/myTrades", ok([trade(7, 555)]))
    assert ex.fetch_trades(SYM) == 0 and ex.counts["fills_of_retired"] >= 1
    assert ex.book.positions[SYM].qty == pytest.approx(0.5) and not ex.foreign_mono


def test_a_cancelled_order_waits_for_the_fills_the_venue_executed_before_it_retires(tmp_path):
    """CANCELED with 0.3 executed at the venue, 0.1 of it in: kept (its rest released, the
    executed part reserved) until the other 0.2 arrives, which then still applies."""
    ex = make_ex(tmp_path)
    o = Order(cid="pl1.1.1", symbol=SYM, symbol_id=SID, side=1, order_type=1, tif=1, qty=0.5,
              price=100.0, state=OrderState.ACK)
    ex.table.add(o)
    ex.table.set_order_id(o, 555)
    ex.fill(o, symbol=SYM, trade_id=7, side=1, qty=0.1, price=100.0, source="stream")
    ex.apply_status(o, {"orderId": 555, "status": "CANCELED", "executedQty": "0.3"}, "query")
    assert o.state is OrderState.CANCELED and o.executed == pytest.approx(0.3)
    assert _retire_all(ex) == []
    ex.fill(o, symbol=SYM, trade_id=8, side=1, qty=0.2, price=100.0, source="query")
    assert ex.book.positions[SYM].qty == pytest.approx(0.3)
    assert _retire_all(ex) == [o]


def test_the_strategies_start_up_positions_keep_retired_orders_fills():
    from pipeline.gateway.reporting import OrderFeedback
    t = OrderTable(keep=1, grace_s=0.0)
    for i in range(1, 40):
        _final(t, i)
    t.retire()
    assert t.retired == 38 and len(t) == 1
    published = []
    fb = OrderFeedback.__new__(OrderFeedback)
    fb.table = t
    fb.writer = SimpleNamespace(publish=lambda kind, **kw: published.append((kind, kw)))
    fb.snapshot(1)
    qty = [kw["qty"] for kind, kw in published if "qty" in kw and "client_seq" not in kw]
    assert qty == [pytest.approx(0.5 * 39)]


def test_the_gateway_keys_default_and_validate():
    from pipeline.config import ConfigError, loads
    g = loads("[gateway]\n").gateway
    assert (g.keep_final_orders, g.final_order_grace_s, g.fills_window) == (1000, 60.0, 50_000)
    with pytest.raises(ConfigError, match="keep_final_orders"):
        loads("[gateway]\nkeep_final_orders = -1\n")
