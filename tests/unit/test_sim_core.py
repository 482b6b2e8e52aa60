"""Simulator pieces without sockets: decimals, book bookkeeping, the synthetic tape, signing rules,
the matching engine and the rate limiter."""
from __future__ import annotations

import hashlib
import hmac
import json

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.config import SIM_TEST_SECRET, SimAccountConfig, SimConfig, ConfigError, loads
from pipeline.sim import auth
from pipeline.sim.accounts import Account, RateLimiter
from pipeline.sim.book import Book
from pipeline.sim.errors import ApiError
from pipeline.sim.instruments import DecimalError, fmt8, parse8, spec
from pipeline.sim.matching import Engine
from pipeline.sim.tape import SyntheticTape


# ----------------------------------------------------------------------------- decimals

@given(st.integers(min_value=0, max_value=10**20))
def test_fmt8_parse8_roundtrip(units):
    assert parse8(fmt8(units)) == units


def test_parse8_examples_and_errors():
    assert parse8("61837.63") == 6_183_763_000_000
    assert fmt8(6_183_763_000_000) == "61837.63000000"
    assert parse8("0.00000001") == 1
    for bad in ("abc", "1e", "", "0.000000001", "NaN", "inf"):
        with pytest.raises(DecimalError):
            parse8(bad)


# ----------------------------------------------------------------------------- config

def test_sim_config_rejects_non_loopback_and_bad_rate():
    with pytest.raises(ConfigError, match="allow_remote"):
        loads('[sim]\nhost = "0.0.0.0"\n')
    assert loads('[sim]\nhost = "0.0.0.0"\nallow_remote = true\n').sim.host == "0.0.0.0"
    with pytest.raises(ConfigError, match="rate"):
        loads("[sim]\nrate = 500000\n")
    with pytest.raises(ConfigError, match="sim.colour"):
        loads("[sim]\ncolour = 1\n")


def test_account_repr_hides_secret():
    assert SIM_TEST_SECRET not in repr(SimAccountConfig())
    assert SIM_TEST_SECRET not in repr(SimConfig())


# ----------------------------------------------------------------------------- book and tape

def test_book_diff_ids_cover_changes_and_snapshot_sits_inside():
    b = Book(spec("BTCUSDT"), update_id=100)
    b.track({"100ms"})                       # as when someone subscribes to @depth@100ms
    b.set_level(True, parse8("100"), parse8("1"))
    b.set_level(False, parse8("101"), parse8("2"))
    snap = b.snapshot(10)
    assert snap["lastUpdateId"] == 102
    b.set_level(True, parse8("100"), 0)
    d = orjson.loads(b.flush_diff("100ms", 1))
    assert (d["U"], d["u"]) == (101, 103)
    assert d["U"] <= snap["lastUpdateId"] + 1 <= d["u"]      # the documented straddle rule
    assert d["b"] == [["100.00000000", "0.00000000"]] and d["a"] == [["101.00000000", "2.00000000"]]
    assert b.flush_diff("100ms", 2) is None
    assert b.flush_diff("1000ms", 2) is None          # not tracked: nobody subscribed
    b.set_level(False, parse8("102"), parse8("1"))
    d2 = orjson.loads(b.flush_diff("100ms", 3))
    assert d2["U"] == d["u"] + 1


def _run_tape(seed, n=20_000, spreads=None):
    t = SyntheticTape(["BTCUSDT", "ETHUSDT"], seed=seed, levels=30)
    t.wanted.update(s.encode() for s in t.stream_names())
    out = []
    for _ in range(n // 1000):
        t.generate(1000, 1_700_000_000_000, out)
        if spreads is not None:
            spreads += [(b.best_ask - b.best_bid) // b.spec.tick for b in t.books.values()]
    return t, out


def test_synthetic_tape_is_seeded_and_well_formed():
    spreads = []
    t1, out1 = _run_tape(7, spreads=spreads)
    _, out2 = _run_tape(7)
    _, out3 = _run_tape(8)
    assert out1 == out2 and out1 != out3
    kinds = {}
    for name, payload in out1:
        msg = json.loads(payload)
        kinds[name.decode().split("@", 1)[1]] = msg
    assert set(kinds) == {"trade", "aggTrade", "bookTicker"}
    assert set(kinds["trade"]) == {"e", "E", "s", "t", "p", "q", "T", "m", "M"}   # no b/a since 2024
    assert set(kinds["aggTrade"]) == {"e", "E", "s", "a", "p", "q", "f", "l", "T", "m", "M"}
    assert set(kinds["bookTicker"]) == {"u", "s", "b", "B", "a", "A"}
    for book in t1.books.values():
        assert 0 < book.best_bid < book.best_ask                    # never crossed
        assert 5 <= len(book.bids) <= 45 and 5 <= len(book.asks) <= 45   # ladder stays bounded

        assert book.best_bid == max(book.bids) and book.best_ask == min(book.asks)
    assert sorted(spreads)[len(spreads) // 2] <= 3             # spreads stay realistic
    # the mid moved (a random walk, not a constant)
    prices = {json.loads(p)["p"] for n, p in out1 if n.endswith(b"@trade")}
    assert len(prices) > 10


def test_tape_encodes_only_wanted_streams():
    t = SyntheticTape(["BTCUSDT"], seed=1, levels=20)
    t.wanted.add(b"btcusdt@trade")
    out = []
    produced = t.generate(5000, 0, out)
    assert produced >= 5000
    assert out and all(n == b"btcusdt@trade" for n, _ in out)


# ----------------------------------------------------------------------------- signing rules

def test_rest_signature_payload_is_query_plus_body_without_signature():
    q, sig = auth.strip_signature(b"symbol=LTCBTC&side=BUY&signature=abc")
    assert (q, sig) == (b"symbol=LTCBTC&side=BUY", "abc")
    # Binance's documented example (rest-api.md, HMAC): query and body concatenated
    query = b"symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC"
    body = b"quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
    want = "0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77"
    assert hmac.new(SIM_TEST_SECRET.encode(), query + body, hashlib.sha256).hexdigest() == want
    acct = Account(SimAccountConfig(), 1)
    assert acct.signature_ok(query + body, want)
    assert not acct.signature_ok(query + body.replace(b"0.1", b"0.2"), want)


def test_ws_api_payload_matches_documented_example():
    params = {"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC",
              "price": "23416.10000000", "quantity": "0.00847000",
              "apiKey": "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A",
              "signature": "15af09e41c36f3cc61378c2fbe2c33719a03dd5eba8d0f9206fbda44de717c88",
              "timestamp": 1660801715431}
    acct = Account(SimAccountConfig(), 1)
    assert acct.signature_ok(auth.ws_payload(params), params["signature"])


def test_timestamp_rules():
    now = 1_700_000_000_000
    auth.check_timestamp({"timestamp": str(now - 4000)}, now)
    auth.check_timestamp({"timestamp": str((now - 100) * 1000)}, now)      # microseconds
    with pytest.raises(ApiError, match="outside of the recvWindow") as e:
        auth.check_timestamp({"timestamp": str(now - 6000)}, now)
    assert e.value.code == -1021
    auth.check_timestamp({"timestamp": str(now - 6000), "recvWindow": "10000"}, now)
    with pytest.raises(ApiError, match="1000ms ahead"):
        auth.check_timestamp({"timestamp": str(now + 1000)}, now)
    with pytest.raises(ApiError) as e:
        auth.check_timestamp({"timestamp": str(now), "recvWindow": "60001"}, now)
    assert e.value.code == -1131
    with pytest.raises(ApiError) as e:
        auth.check_timestamp({}, now)
    assert e.value.code == -1102


def test_duplicate_parameter_is_rejected_and_query_wins():
    assert auth.parse_params(b"a=1", b"a=2&b=3") == {"a": "1", "b": "3"}
    with pytest.raises(ApiError) as e:
        auth.parse_params(b"a=1&a=2", b"")
    assert e.value.code == -1101


# ----------------------------------------------------------------------------- matching

def _engine(rate=0.0):
    b = Book(spec("BTCUSDT"), update_id=10)
    for p, q in (("100.00", "1"), ("99.99", "2"), ("99.98", "3")):
        b.set_level(True, parse8(p), parse8(q))
    for p, q in (("100.01", "1"), ("100.02", "2"), ("100.03", "3")):
        b.set_level(False, parse8(p), parse8(q))
    b.last_price = parse8("100.00")
    acct = Account(SimAccountConfig(balances={"USDT": "1000", "BTC": "2"}), 1)
    events: list[dict] = []
    acct.listeners[1] = events.append
    eng = Engine({"BTCUSDT": b}, {acct.api_key: acct}, commission_rate=rate, clock_ms=lambda: 42)
    return eng, b, acct, events


def test_market_buy_walks_the_book_with_partial_level():
    eng, book, acct, events = _engine()
    order, fills, rt = eng.place(acct, {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                        "quantity": "2.5"})
    assert rt == "FULL" and order.status == "FILLED"
    assert [(f["price"], f["qty"]) for f in fills] == [("100.01000000", "1.00000000"),
                                                       ("100.02000000", "1.50000000")]
    cost = parse8("100.01") + parse8("150.03")
    assert acct.free["USDT"] == parse8("1000") - cost
    assert acct.free["BTC"] == parse8("4.5")
    kinds = [(e["e"], e.get("x")) for e in events]
    assert kinds == [("executionReport", "NEW"), ("executionReport", "TRADE"),
                     ("executionReport", "TRADE"), ("outboundAccountPosition", None)]
    assert events[-2]["X"] == "FILLED" and events[-3]["X"] == "PARTIALLY_FILLED"


def test_market_order_beyond_liquidity_expires_partially_filled():
    eng, _, acct, _ = _engine()
    order, fills, _ = eng.place(acct, {"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET",
                                       "quantity": "2"})
    assert order.status == "FILLED"
    acct.free["BTC"] = parse8("10")
    order, fills, _ = eng.place(acct, {"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET",
                                       "quantity": "7"})
    assert order.status == "EXPIRED" and order.executed == parse8("6") and len(fills) == 3


def test_quote_order_qty_market_buy():
    eng, _, acct, _ = _engine()
    order, fills, _ = eng.place(acct, {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                       "quoteOrderQty": "150"})
    assert order.status == "FILLED"
    assert order.cum_quote <= parse8("150") and order.executed == parse8("1.4998")   # 1 @ 100.01 + 0.4998 @ 100.02


def test_limit_rests_locks_and_fills_when_tape_trades_through():
    eng, book, acct, events = _engine(rate=0.001)
    order, fills, _ = eng.place(acct, {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
                                       "timeInForce": "GTC", "quantity": "2", "price": "99.50"})
    assert not fills and order.status == "NEW"
    assert acct.locked["USDT"] == parse8("199") and acct.free["USDT"] == parse8("801")
    events.clear()
    eng.on_tape_trade(book, parse8("99.50"), parse8("5"), False)      # at the price: not through
    assert order.executed == 0
    eng.on_tape_trade(book, parse8("99.49"), parse8("0.5"), False)    # through: partial fill
    assert order.status == "PARTIALLY_FILLED" and order.executed == parse8("0.5")
    eng.on_tape_trade(book, parse8("99.40"), parse8("3"), False)
    assert order.status == "FILLED"
    assert acct.locked["USDT"] == 0 and acct.free["USDT"] == parse8("801")
    assert acct.free["BTC"] == parse8("2") + parse8("2") - parse8("0.002")   # commission in BTC
    trades = [e for e in events if e.get("x") == "TRADE"]
    assert len(trades) == 2 and all(e["m"] for e in trades) and trades[-1]["X"] == "FILLED"
    assert sum(1 for e in events if e["e"] == "outboundAccountPosition") == 2


def test_limit_crossing_takes_then_rests_the_rest():
    eng, book, acct, _ = _engine()
    order, fills, _ = eng.place(acct, {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
                                       "timeInForce": "GTC", "quantity": "4", "price": "100.02"})
    assert [f["qty"] for f in fills] == ["1.00000000", "2.00000000"]
    assert order.status == "PARTIALLY_FILLED" and acct.locked["USDT"] == parse8("100.02")
    eng.cancel(acct, {"symbol": "BTCUSDT", "orderId": str(order.order_id)})
    assert order.status == "CANCELED" and acct.locked["USDT"] == 0


@pytest.mark.parametrize("params,code,msg", [
    ({"price": "100.001"}, -1013, "Filter failure: PRICE_FILTER"),
    ({"quantity": "0.000001"}, -1013, "Filter failure: LOT_SIZE"),
    ({"quantity": "0.00001"}, -1013, "Filter failure: NOTIONAL"),
    ({"quantity": "1000"}, -2010, "Account has insufficient balance for requested action."),
    ({"symbol": "NOPE"}, -1121, "Invalid symbol."),
    ({"side": "UP"}, -1117, "Invalid side."),
    ({"timeInForce": None}, -1102, "Mandatory parameter 'timeInForce'"),
    ({"type": "LIMIT_MAKER", "timeInForce": None, "price": "100.01"}, -2010,
     "Order would immediately match and take."),
])
def test_order_rejections(params, code, msg):
    eng, _, acct, _ = _engine()
    p = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
         "quantity": "1", "price": "99"}
    p.update(params)
    p = {k: v for k, v in p.items() if v is not None}
    with pytest.raises(ApiError) as e:
        eng.place(acct, p)
    assert e.value.code == code and msg in e.value.msg
    assert acct.free["USDT"] == parse8("1000") and not acct.orders


def test_unknown_orders():
    eng, _, acct, _ = _engine()
    with pytest.raises(ApiError) as e:
        eng.cancel(acct, {"symbol": "BTCUSDT", "orderId": "999"})
    assert (e.value.code, e.value.msg) == (-2011, "Unknown order sent.")
    with pytest.raises(ApiError) as e:
        eng.find(acct, {"symbol": "BTCUSDT", "orderId": "999"})
    assert (e.value.code, e.value.msg) == (-2013, "Order does not exist.")


# ----------------------------------------------------------------------------- limits

def test_rate_limiter_429_then_418():
    now = [1000.0]
    lim = RateLimiter(10, 2, 100, ban_s=120, clock=lambda: now[0])
    assert lim.check_ip("a", 10) == 10
    with pytest.raises(ApiError) as e:
        lim.check_ip("a", 1)
    assert e.value.status == 429 and int(e.value.headers["Retry-After"]) >= 1
    with pytest.raises(ApiError) as e:
        lim.check_ip("a", 1)
    assert e.value.status == 418 and e.value.code == -1003
    now[0] += 61
    with pytest.raises(ApiError) as e:       # still banned past the minute
        lim.check_ip("a", 1)
    assert e.value.status == 418
    lim.check_order("k")
    lim.check_order("k")
    with pytest.raises(ApiError) as e:
        lim.check_order("k")
    assert e.value.code == -1015 and e.value.status == 429


# ----------------------------------------------------------------------------- replay reader

def test_replay_reader_skips_bad_lines_and_loops(tmp_path):
    from pipeline.sim.tape import ReplayTape
    f = tmp_path / "rec.txt"
    trade = ('{"stream":"btcusdt@trade","data":{"e":"trade","E":1000,"s":"BTCUSDT","t":1,'
             '"p":"100.00000000","q":"1.00000000","T":1000,"m":true,"M":true}}')
    f.write_text(f"1000 {trade}\nnot-a-number {{}}\n2000 {{not json\n3000 {trade}\n")
    seen = []
    t = ReplayTape([str(f)], on_trade=lambda b, p, q, buy: seen.append((p, q, buy)), loop=True,
                   rebase_time=False)
    t.wanted.add(b"btcusdt@trade")
    out = []
    for _ in range(6):                     # 3 good-or-bad lines per pass, looping
        t.step(0, out)
    assert [n for n, _ in out] == [b"btcusdt@trade"] * 4
    assert out[0][1] == trade[trade.index('"data":') + 7:-1].encode()
    assert seen[0] == (parse8("100"), parse8("1"), False)
    assert not t.done


def test_replay_of_an_empty_file_ends(tmp_path):
    from pipeline.sim.tape import ReplayTape
    f = tmp_path / "rec.txt"
    f.write_text('1 {"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT"}}\n')
    t = ReplayTape([str(f)], loop=True)
    f.write_text("")                        # emptied after the symbol scan: must not spin
    assert t.peek_ts() is None and t.done


def test_resting_orders_fill_best_price_then_time_first():
    eng, book, acct, _ = _engine()
    ids = []
    for price in ("99.50", "99.60", "99.60", "99.40"):
        o, _, _ = eng.place(acct, {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
                                   "timeInForce": "GTC", "quantity": "1", "price": price})
        ids.append(o.order_id)
    eng.on_tape_trade(book, parse8("99.45"), parse8("2.5"), False)
    filled = {o.order_id: o.executed for o in acct.orders.values()}
    # 99.60 (older), 99.60 (newer), then 99.50 partly; 99.40 is not traded through
    assert [filled[i] for i in ids] == [parse8("0.5"), parse8("1"), parse8("1"), 0]
    assert [o.order_id for _, _, _, o in eng.resting_buy["BTCUSDT"]] == [ids[0], ids[3]]
    eng.cancel(acct, {"symbol": "BTCUSDT", "orderId": str(ids[3])})
    assert [o.order_id for _, _, _, o in eng.resting_buy["BTCUSDT"]] == [ids[0]]
