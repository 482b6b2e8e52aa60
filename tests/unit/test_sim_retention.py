"""The simulator's history is bounded as a venue's is (pipeline/sim/accounts.py Retention): final
orders past the newest `orders` (or older than `order_age_ms`) and trades past the newest `trades`
are dropped; open orders always stay; a dropped order answers like an order the venue no longer
keeps (-2013 on query, -2011 on cancel), and its client id is free again, as on Binance."""
from __future__ import annotations

import tracemalloc

import pytest

from pipeline.config import ConfigError, SimAccountConfig, loads
from pipeline.sim.accounts import Account, Retention
from pipeline.sim.book import Book
from pipeline.sim.errors import ApiError
from pipeline.sim.instruments import parse8, spec
from pipeline.sim.matching import Engine


def _engine(retention: Retention, now: list[int] | None = None):
    b = Book(spec("BTCUSDT"), update_id=10)
    for p, q in (("100.00", "100000"), ("99.99", "100000")):
        b.set_level(True, parse8(p), parse8(q))
    for p, q in (("100.01", "100000"), ("100.02", "100000")):
        b.set_level(False, parse8(p), parse8(q))
    b.last_price = parse8("100.00")
    acct = Account(SimAccountConfig(balances={"USDT": "100000000", "BTC": "1000000"}), 1,
                   retention=retention)
    clock = now if now is not None else [1_000]
    eng = Engine({"BTCUSDT": b}, {acct.api_key: acct}, clock_ms=lambda: clock[0])
    return eng, b, acct


def _ioc(eng, acct, i: int, fills: bool = True):
    """An IOC order that fills at once (one trade) or expires unfilled: final either way."""
    return eng.place(acct, {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
                            "timeInForce": "IOC", "quantity": "0.2",
                            "price": "100.01" if fills else "99.00",
                            "newClientOrderId": f"c{i}"})[0]


def test_final_orders_and_trades_past_the_bound_are_dropped_and_open_ones_stay():
    eng, _, acct = _engine(Retention(orders=100, trades=150))
    resting = [eng.place(acct, {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
                                "timeInForce": "GTC", "quantity": "0.2", "price": "90.00",
                                "newClientOrderId": f"rest{i}"})[0] for i in range(3)]
    first = _ioc(eng, acct, 0)
    for i in range(1, 2_000):
        _ioc(eng, acct, i, fills=i % 2 == 0)
    slack = 64                                   # retire() looks every max(64, cap // 8) orders
    assert len(acct.orders) <= 100 + len(resting) + slack
    assert len(acct.by_client_id) <= 100 + len(resting) + slack
    assert all(acct.orders.get(o.order_id) is o for o in resting)   # open: always kept
    assert len(acct.trades) == 150 and acct.trades_pruned == 1_000 - 150
    assert sum(len(v) for v in acct.trades_of.values()) == 150
    assert acct.orders_pruned == 2_003 - len(acct.orders)
    newest = max(acct.orders)
    assert acct.orders[newest].client_id == "c1999"          # the newest final ones are kept
    # the pruned order answers as one the venue does not keep
    with pytest.raises(ApiError) as e:
        eng.find(acct, {"symbol": "BTCUSDT", "orderId": str(first.order_id)})
    assert (e.value.code, e.value.msg) == (-2013, "Order does not exist.")
    with pytest.raises(ApiError) as e:
        eng.find(acct, {"symbol": "BTCUSDT", "origClientOrderId": "c0"})
    assert e.value.code == -2013
    with pytest.raises(ApiError) as e:
        eng.cancel(acct, {"symbol": "BTCUSDT", "origClientOrderId": "c0"})
    assert (e.value.code, e.value.msg) == (-2011, "Unknown order sent.")
    # its client id may be used again (Binance refuses a client id only while its order is open)
    again = _ioc(eng, acct, 0)
    assert again.order_id != first.order_id and acct.by_client_id["c0"] is again


def test_a_final_order_older_than_the_age_limit_goes_within_a_quarter_of_it():
    now = [1_000]
    eng, _, acct = _engine(Retention(orders=0, order_age_ms=60_000), now)
    old = _ioc(eng, acct, 1)
    now[0] += 59_000
    kept = _ioc(eng, acct, 2)
    assert old.order_id in acct.orders                        # 59 s: still kept
    now[0] += 16_000              # 75 s since it filled: the age is looked at every 15 s
    _ioc(eng, acct, 3)
    assert old.order_id not in acct.orders and "c1" not in acct.by_client_id
    assert kept.order_id in acct.orders and acct.orders_pruned == 1


def test_memory_stays_flat_past_the_bound():
    """Ten times the orders after the history filled up: the traced heap does not grow with
    them. What is traced is the kept history that replaced the one allocated before tracing
    (~0.2 MB); without the bound it grows ~0.6 KB per order and trade (~11 MB here)."""
    eng, _, acct = _engine(Retention(orders=200, trades=200))
    for i in range(2_000):                                    # fill the history, warm caches
        _ioc(eng, acct, i, fills=i % 2 == 0)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for i in range(2_000, 20_000):
            _ioc(eng, acct, i, fills=i % 2 == 0)
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert len(acct.orders) <= 200 + 64 and len(acct.trades) == 200
    assert grown < 1024 * 1024, f"heap grew {grown} bytes over 18 000 orders"


def test_no_limit_keeps_everything():
    eng, _, acct = _engine(Retention(orders=0, trades=0))
    for i in range(300):
        _ioc(eng, acct, i)
    assert len(acct.orders) == 300 and len(acct.trades) == 300 and acct.orders_pruned == 0


def test_the_okx_side_forgets_a_pruned_orders_metadata_and_client_id():
    from pipeline.sim.okx_trade import OkxTrade

    class _Sim:
        cfg = None

    eng, _, acct = _engine(Retention(orders=100))
    sim = _Sim()
    sim.engine = eng
    okx = OkxTrade(sim, venue=None)
    gone = []
    eng.on_retire.append(lambda a, orders: gone.extend(orders))
    first = _ioc(eng, acct, 0)
    okx.meta[first.order_id] = ("ioc", "")
    okx.used_cids[acct.api_key] = {"c0"}
    for i in range(1, 400):
        _ioc(eng, acct, i)
    assert first in gone
    assert first.order_id not in okx.meta and "c0" not in okx.used_cids[acct.api_key]


def test_the_config_keys_default_and_validate():
    cfg = loads("[sim]\n")
    assert (cfg.sim.order_history, cfg.sim.order_history_s, cfg.sim.trade_history) == \
        (10_000, 0.0, 20_000)
    r = Retention.of(loads("[sim]\norder_history = 5\norder_history_s = 2.5\n"
                           "trade_history = 7\n").sim)
    assert r == Retention(orders=5, order_age_ms=2_500, trades=7)
    with pytest.raises(ConfigError, match="order_history"):
        loads("[sim]\norder_history = -1\n")
