"""Binance venue module: parsers against real wire samples, routing, limits."""
import json

import numpy as np
import orjson
import pytest

from pipeline.records import FLAG_LAST_IN_MSG, Kind, Side, Venue
from pipeline.venues.binance import market as B
from tests.collector_helpers import BINANCE, BSYMS, vector_messages


def test_limits_are_the_documented_ones(vectors):
    rules = json.loads((vectors / "binance/ws_control.json").read_text())["rules"]
    assert B.MAX_STREAMS_PER_CONN == rules["max_streams_per_connection"] == 1024
    assert B.MAX_OUTGOING_PER_S == 5
    assert B.MAX_LIFETIME_S == 24 * 3600
    assert B.SERVER_PING_INTERVAL_S == 20 and B.PONG_DEADLINE_S == 60


def test_trade_fields_exact():
    raw = (b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT",'
           b'"t":3735683259,"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true,'
           b'"M":true}}')
    r = B.route(orjson.loads(raw), BSYMS, 111).records
    assert len(r) == 1
    t = r[0]
    assert t["kind"] == Kind.TRADE and t["venue"] == Venue.BINANCE
    assert t["symbol"] == BINANCE["BTCUSDT"]
    assert t["side"] == Side.SELL            # m=true: buyer is maker, seller aggressed
    assert t["id"] == 3735683259
    assert t["price"] == 61837.63 and t["qty"] == 0.02
    assert t["exch_ts"] == 1723161255343 * 1_000_000 and t["local_ts"] == 111
    assert t["flags"] == FLAG_LAST_IN_MSG


def test_book_ticker_gives_bid_and_ask():
    raw = (b'{"u":50093239212,"s":"BTCUSDT","b":"61837.63000000","B":"3.78826000",'
           b'"a":"61837.64000000","A":"1.54698000"}')
    r = B.route(orjson.loads(raw), BSYMS, 5).records
    assert list(r["kind"]) == [Kind.BID, Kind.ASK]
    assert list(r["side"]) == [Side.BUY, Side.SELL]
    assert list(r["price"]) == [61837.63, 61837.64] and list(r["qty"]) == [3.78826, 1.54698]
    assert list(r["id"]) == [50093239212] * 2 and list(r["exch_ts"]) == [0, 0]
    assert list(r["flags"]) == [0, FLAG_LAST_IN_MSG]


def test_depth_diff_records():
    raw = (b'{"e":"depthUpdate","E":1633998512568,"s":"NKNUSDT","U":499869753,"u":499869754,'
           b'"b":[["0.35170000","4265.00000000"]],"a":[["0.35290000","0.00000000"]]}')
    d = B.route(orjson.loads(raw), BSYMS, 7).depth
    assert (d.first_id, d.last_id) == (499869753, 499869754)
    r = d.records()
    assert list(r["kind"]) == [Kind.BOOK_BID, Kind.BOOK_ASK]
    assert list(r["qty"]) == [4265.0, 0.0]
    assert list(r["flags"]) == [0, FLAG_LAST_IN_MSG]
    assert set(r["id"]) == {499869754}


@pytest.mark.parametrize("name", ["ws_trade.json", "ws_aggTrade.json", "ws_bookTicker.json",
                                  "ws_depthUpdate.json", "ws_combined.json"])
def test_every_recorded_vector_routes(vectors, name):
    for raw in vector_messages(vectors, name):
        obj = orjson.loads(raw)
        r = B.route(obj, BSYMS, 1)
        data = obj.get("data", obj)
        if data.get("s") in BINANCE:
            assert r.error is None, (raw, r)
            assert r.records is not None or r.depth is not None or r.control == "ignored"
        # raw form (payload only) routes the same way
        r2 = B.route(data, BSYMS, 1)
        assert (r.error, r.control) == (r2.error, r2.control)


@pytest.mark.parametrize("msg,err", [
    ({"e": "trade", "E": 1, "s": "BTCUSDT", "t": 1, "p": "1e5", "q": "1", "m": True}, "bad_price"),
    ({"e": "trade", "E": 1, "s": "BTCUSDT", "t": -1, "p": "1", "q": "1", "m": True},
     "bad_trade_id"),
    ({"e": "trade", "E": 1, "s": "BTCUSDT", "t": 1, "p": "1", "q": "1", "m": 1}, "bad_maker_flag"),
    ({"e": "trade", "E": 1, "s": "NOPE", "t": 1, "p": "1", "q": "1", "m": True}, "unknown_symbol"),
    ({"e": "aggTrade", "E": True, "s": "BTCUSDT", "a": 1, "p": "1", "q": "1", "m": True},
     "bad_event_time"),
    ({"e": "depthUpdate", "E": 1, "s": "BTCUSDT", "U": 5, "u": 4, "b": [], "a": []},
     "bad_update_range"),
    ({"e": "depthUpdate", "E": 1, "s": "BTCUSDT", "U": 1, "u": 4, "b": [["1"]], "a": []},
     "bad_levels"),
    ({"e": "mystery"}, "unknown_event"),
    ([1, 2], "not_an_object"),
])
def test_bad_messages_are_error_kinds(msg, err):
    r = B.route(msg, BSYMS, 0)
    assert r.error == err and r.records is None and r.depth is None


def test_control_messages():
    assert B.route({"e": "serverShutdown", "E": 1770123456789}, BSYMS, 0).control == "shutdown"
    assert B.route({"stream": "!serverShutdown", "data": {"e": "serverShutdown", "E": 1}},
                   BSYMS, 0).control == "shutdown"
    assert B.route({"result": None, "id": 1}, BSYMS, 0).control == "ack"


def test_adapter_streams_and_url():
    ad = B.BinanceAdapter({"BTCUSDT": 1, "ETHUSDT": 2})
    s = ad.streams(["BTCUSDT", "ETHUSDT"], ["trade", "depth@100ms"])
    assert s == ["btcusdt@trade", "ethusdt@trade", "btcusdt@depth@100ms", "ethusdt@depth@100ms"]
    assert ad.connect_url("ws://h:1", s) == "ws://h:1/stream?streams=" + "/".join(s)
    with pytest.raises(ValueError):
        ad.connect_url("ws://h", ["x@trade"] * 1025)
    msgs = ad.subscribe_messages(["a@trade"] * 450, per_message=200)
    assert [len(orjson.loads(m)["params"]) for m in msgs] == [200, 200, 50]
    assert ad.snapshot_url("http://h/", "btcusdt", 1000) == \
        "http://h/api/v3/depth?symbol=BTCUSDT&limit=1000"
    with pytest.raises(ValueError):
        B.stream_name("BTCUSDT", "kline_1m")


def test_decimal_parse_is_correctly_rounded():
    for s in ["0.1", "61837.63000000", "0.00000637", "123456789012345678901234.5", "0"]:
        assert B.dec(s, "price") == float(s)
    np.testing.assert_equal(B.dec("0.30000000000000004441", "p"), 0.30000000000000004441)
