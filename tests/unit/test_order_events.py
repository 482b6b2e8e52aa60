"""The order-event channel, gateway → strategy: the gateway's OrderFeedback writes real events
into a real shared-memory ring; a strategy process's LiveFeedback reads them, takes its own
start-up state (not another process's), and the strategy's position follows the fills."""
from __future__ import annotations

import math
import os
import stat

import numpy as np
import pytest

from pipeline.bus.events import EventReader, EventWriter, event_ring_name
from pipeline.gateway.orders import Order, OrderState, OrderTable, client_id
from pipeline.gateway.positions import Fill
from pipeline.gateway.reporting import OrderFeedback, venue_code
from pipeline.records import OrderEventKind as EK
from pipeline.strategy.base import Strategy
from pipeline.strategy.feedback import LiveFeedback
from pipeline.strategy.orders import EventKind


class LongFlat(Strategy):
    def on_trades(self, trades):
        return []


@pytest.fixture
def channel(shm_name):
    return f"{shm_name}-ch"


def order(sid, epoch, seq, side=1, qty=0.001, state=OrderState.NEW, filled=0.0):
    o = Order(cid=client_id(sid, epoch, seq), symbol="BTCUSDT", symbol_id=7, side=side,
              order_type=2, tif=0, qty=qty, price=math.nan, state=state, filled=filled)
    o.origin = (sid, epoch, seq)
    return o


def test_event_ring_is_owner_only_and_one_writer(channel):
    w = EventWriter(channel, 64)
    try:
        path = f"/dev/shm/{event_ring_name(channel)}"
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        with pytest.raises(Exception, match="writer"):
            w.ring.writer()
    finally:
        w.close()
    assert not os.path.exists(path)


def test_venue_code_is_read_from_a_rejected_reason():
    assert venue_code("400 -2010 Account has insufficient balance") == -2010
    assert venue_code("not sent: journal write failed") == 0


def test_a_strategy_takes_its_own_start_up_state_then_follows_the_fills(channel):
    table = OrderTable()
    old = order(1, 100, 5, filled=0.001, state=OrderState.FILLED)    # an earlier run's fill
    resting = order(1, 100, 6, side=-1, state=OrderState.ACK)        # still working
    table.add(old)
    table.add(resting)
    w = EventWriter(channel, 256)
    fb = OrderFeedback(w, table)
    try:
        st = LongFlat(strategy_id=1, venue=1, symbol=7, qty=0.001, ttl_ns=10**9)
        st.epoch = 200
        live = LiveFeedback(channel, "on", [st], epoch=200)
        assert live.gate                                  # nothing runs before the state
        fb.fill(old, Fill("BTCUSDT", 1, old.cid, 1, 1, 0.001, 100.0))   # the past: skipped
        fb.sync({9: 150})                                 # another process's start-up state
        assert live.service(0, False) == [] and live.gate
        for _ in range(3):
            live.service(10**12, False)                   # attach (reads from the oldest)
        assert live.gate
        fb.sync({1: 200})
        fb.sync({1: 200})                                 # answered once per (id, epoch)
        live.service(2 * 10**12, False)
        assert not live.gate and live.syncs == 1
        assert st.net_qty == pytest.approx(0.001) and st.position == 0   # long 1 - working sell
        assert (100, 6) in st.orders and st.orders[(100, 6)].side == -1
        # a new order of this run: rejected by the risk kernel → not counted, position re-synced
        new = st.target(1, 0, 0, 100.0)                   # long: 0.001 - the working sell
        assert new.side == 1 and new.qty == pytest.approx(0.001) and st.position == 1
        fb.refused(new, "THROTTLED", 28)
        # the old run's resting sell fills: the position follows the fill
        fb.state(resting, OrderState.NEW, OrderState.ACK, "x")   # repeated ACK: not sent
        resting.filled = 0.001
        resting.state = OrderState.FILLED
        fb.fill(resting, Fill("BTCUSDT", 2, resting.cid, 2, -1, 0.001, 101.0, 0.0001, "USDT"))
        live.service(3 * 10**12, False)
        assert st.rejects == 1 and new.seq not in st.orders and st.position == 0
        assert st.net_qty == pytest.approx(0.0) and (100, 6) not in st.orders
        assert st.fees_paid == pytest.approx(0.0001)
        assert live.events == 3 and live.lost == 0
    finally:
        live.close()
        w.close()


def test_every_order_state_the_strategy_needs_is_an_event(channel):
    w = EventWriter(channel, 64)
    fb = OrderFeedback(w)
    r = EventReader.attach(channel)
    try:
        o = order(3, 300, 1)
        fb.state(o, OrderState.NEW, OrderState.UNKNOWN, "outcome unknown: timeout")
        fb.state(o, OrderState.UNKNOWN, OrderState.ACK, "venue NEW (query)")   # its resolution
        fb.state(o, OrderState.ACK, OrderState.CANCELED, "venue CANCELED (cancel)")
        p = order(3, 300, 2)
        fb.state(p, OrderState.NEW, OrderState.REJECTED, "400 -2010 Account has insufficient "
                                                         "balance for requested action.")
        q = order(3, 300, 3)
        fb.state(q, OrderState.UNKNOWN, OrderState.LOST, "venue does not know it")
        fb.state(q, OrderState.NEW, OrderState.FILLED, "filled")          # fills tell that
        recs = r.poll().copy()
        kinds = [EK(int(k)).name for k in recs["kind"]]
        assert kinds == ["UNKNOWN", "ACCEPTED", "CANCELLED", "REJECTED", "LOST"]
        assert recs["seq"].tolist() == [0, 1, 2, 3, 4]                    # its own numbering
        assert int(recs[3]["venue_code"]) == -2010
        assert bytes(recs[3]["reason"]).startswith(b"400 -2010 Account")
        assert (recs["strategy_id"] == 3).all() and (recs["epoch"] == 300).all()
        assert recs["client_seq"].tolist() == [1, 1, 1, 2, 3]
        assert int(EventKind.FILL) == int(EK.FILL)                         # one definition
    finally:
        r.close()
        w.close()


def test_a_lapped_reader_waits_for_the_gateways_state_again_instead_of_missing_fills(channel):
    """The strategy process falls more than a ring behind the gateway: it does not trade on the
    position it pieced together from the fills it happened to read; it asks for a resync and
    takes the gateway's state (the one of record) again."""
    table = OrderTable()
    buy = order(1, 200, 1, qty=1.0, state=OrderState.ACK)
    table.add(buy)
    w = EventWriter(channel, 64)
    fb = OrderFeedback(w, table)
    st = LongFlat(strategy_id=1, venue=1, symbol=7, qty=1.0, ttl_ns=10**9)
    st.epoch = 200
    live = LiveFeedback(channel, "on", [st], epoch=200)
    try:
        live.service(10**12, False)                       # attach
        fb.sync({1: 200})
        live.service(2 * 10**12, False)
        assert not live.gate and 1 in st.orders and st.net_qty == 0.0
        for i in range(100):                              # 100 fills, the reader sleeps
            buy.filled = round(buy.filled + 0.01, 10)
            if i == 99:
                buy.state = OrderState.FILLED
            fb.fill(buy, Fill("BTCUSDT", 10 + i, buy.cid, 1, 1, 0.01, 100.0))
        live.service(3 * 10**12, False)
        assert live.lost > 0 and live.gate                # no decision on a partial picture
        assert live.resyncs_requested == 1 and st.net_qty < 1.0 - 1e-9
        fb.sync({1: 200})                                 # the gateway's loop: the request
        assert fb.resyncs == 1
        live.service(4 * 10**12, False)
        assert not live.gate and live.syncs == 2
        assert st.net_qty == pytest.approx(1.0) and 1 not in st.orders
        fb.sync({1: 200})                                 # answered once
        assert fb.resyncs == 1
    finally:
        live.close()
        w.close()
