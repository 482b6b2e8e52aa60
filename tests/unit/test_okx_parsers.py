"""OKX parsers on the documented samples, events, requests, and malformed input (hypothesis)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.records import FLAG_LAST_IN_MSG, Kind, Side, Venue
from registry_fixture import DEFAULT
from pipeline.venues.okx import market as okx

SYMS = okx.symbols_from_registry(DEFAULT)


def examples(vectors, name):
    return json.loads((vectors / "okx" / name).read_text())["examples"]


def test_symbols_come_from_the_registry():
    assert SYMS["BTC-USDT"] == DEFAULT.id(Venue.OKX, "BTC-USDT")
    assert set(SYMS) == {"BTC-USDT", "ETH-USDT", "UNI-USD-SWAP", "BTC-USD-220527"}


def test_doc_trade_sample(vectors):
    (ex,) = [e for e in examples(vectors, "ws_trades.json")
             if e["kind"] == "doc" and "data" in e["message"]]
    r = okx.route_data(ex["message"], SYMS, 7)
    assert len(r) == 1 and r[0]["kind"] == Kind.TRADE and r[0]["venue"] == Venue.OKX
    assert (r[0]["price"], r[0]["qty"], r[0]["side"]) == (42219.9, 0.12060306, Side.BUY)
    assert r[0]["id"] == 130639474 and r[0]["exch_ts"] == 1630048897897 * 10**6
    assert r[0]["local_ts"] == 7 and r[0]["flags"] == FLAG_LAST_IN_MSG


def test_bbo_doc_sample(vectors):
    ex = examples(vectors, "ws_bbo_tbt.json")[0]["message"]
    syms = {"BCH-USDT-SWAP": 99}
    r = okx.route_data(ex, syms, 1)
    assert list(r["kind"]) == [Kind.BID, Kind.ASK]
    assert (r[0]["price"], r[0]["qty"]) == (111.05, 57745)
    assert (r[1]["price"], r[1]["qty"]) == (111.06, 55154)
    assert list(r["id"]) == [363996337] * 2 and list(r["symbol"]) == [99, 99]
    assert list(r["flags"]) == [0, FLAG_LAST_IN_MSG]


def test_books_doc_samples(vectors):
    for e in examples(vectors, "ws_books.json"):
        m = e["message"]
        if okx.classify(m) is not okx.MsgType.DATA or m["arg"]["channel"] != "books":
            continue
        if m["arg"]["instId"] not in SYMS:
            continue
        (b,) = okx.route_data(m, SYMS, 1)
        assert b.snapshot == (m["action"] == "snapshot")
        d = m["data"][0]
        assert b.bids[0] == tuple(d["bids"][0][:2]) and b.checksum == d.get("checksum", 0)
        assert b.seq_id == d.get("seqId") and b.prev_seq_id == d.get("prevSeqId")


def test_subscribe_acks_and_errors(vectors):
    for e in examples(vectors, "ws_subscribe.json"):
        m = e["message"]
        if "op" in m:
            continue
        ev = okx.parse_event(m)
        assert ev.type in (okx.MsgType.SUBSCRIBE, okx.MsgType.UNSUBSCRIBE, okx.MsgType.ERROR)
        if ev.type is okx.MsgType.ERROR:
            assert ev.code == "60012" and ev.msg.startswith("Invalid request")
        else:
            assert ev.channel and ev.inst_id


def test_notice_64008_asks_for_reconnect(vectors):
    d = json.loads((vectors / "okx/ws_connect_ping_pong.json").read_text())
    ev = okx.parse_event(d["notice_event"]["example"]["message"])
    assert ev.type is okx.MsgType.NOTICE and ev.reconnect
    for c in d["connection_count_events"]:
        assert not okx.parse_event(c["message"]).reconnect
    assert okx.classify("pong") is okx.MsgType.PONG and okx.classify(b"pong") is okx.MsgType.PONG
    errs = json.loads((vectors / "okx/ws_errors.json").read_text())["error_codes"]
    for e in errs:
        ev = okx.parse_event({"event": "error", "code": e["code"], "msg": e["message"]})
        assert ev.type is okx.MsgType.ERROR and ev.code == e["code"] and not ev.reconnect


def test_subscribe_requests():
    args = okx.subscribe_args(["BTC-USDT", "ETH-USDT"])
    assert {"channel": "books", "instId": "ETH-USDT"} in args and len(args) == 6
    (text,) = okx.op_messages("subscribe", args, first_id=3)
    assert json.loads(text) == {"id": "3", "op": "subscribe", "args": args}
    many = okx.op_messages("subscribe", [{"channel": "trades", "instId": "X" * 100}] * 2000)
    assert len(many) > 1 and all(len(m) < okx.MAX_SUBSCRIBE_BYTES for m in many)
    with pytest.raises(ValueError):
        okx.subscribe_args(["BTC-USDT"], ["nope"])
    assert okx.books_snapshot_url("http://h:1/", "BTC-USDT") == \
        "http://h:1/api/v5/market/books?instId=BTC-USDT&sz=400"


GOOD = {"arg": {"channel": "trades", "instId": "BTC-USDT"},
        "data": [{"instId": "BTC-USDT", "tradeId": "1", "px": "1.5", "sz": "2", "side": "sell",
                  "ts": "1"}]}


@pytest.mark.parametrize("field,value,kind", [
    ("px", 1.5, "bad_px"), ("px", "1e5", "bad_px"), ("px", "", "bad_px"), ("sz", None, "bad_sz"),
    ("side", "BUY", "bad_side"), ("tradeId", "-1", "bad_tradeId"), ("ts", "x", "bad_ts"),
    ("ts", "99999999999999999", "bad_ts"), ("tradeId", 1.0, "bad_tradeId"),
])
def test_bad_trade_fields_are_named(field, value, kind):
    m = json.loads(json.dumps(GOOD))
    m["data"][0][field] = value
    with pytest.raises(okx.BadMessage) as ei:
        okx.route_data(m, SYMS, 0)
    assert ei.value.args[0] == kind


def test_unknown_symbol_and_channel():
    m = json.loads(json.dumps(GOOD))
    m["arg"]["instId"] = "DOGE-USDT"
    with pytest.raises(okx.BadMessage, match="unknown_symbol"):
        okx.route_data(m, SYMS, 0)
    m["arg"] = {"channel": "candle1m", "instId": "BTC-USDT"}
    with pytest.raises(okx.BadMessage, match="unknown_channel"):
        okx.route_data(m, SYMS, 0)


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                      st.floats(allow_nan=False), st.text(max_size=12),
                      st.sampled_from(["1", "0.5", "buy", "sell", "-1", "BTC-USDT", "books",
                                       "trades", "bbo-tbt", "tickers", "snapshot", "update"]))
json_val = st.recursive(json_leaf, lambda c: st.one_of(st.lists(c, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), c,
                                                                       max_size=5)), max_leaves=20)


def _mutations():
    keys = ["instId", "tradeId", "px", "sz", "side", "ts", "bids", "asks", "seqId", "prevSeqId",
            "checksum", "bidPx", "askPx", "bidSz", "askSz"]
    channel = st.sampled_from(["trades", "bbo-tbt", "tickers", "books", "x"])
    item = st.dictionaries(st.sampled_from(keys), json_val, max_size=8)
    return st.fixed_dictionaries({
        "arg": st.fixed_dictionaries({"channel": channel,
                                      "instId": st.sampled_from(["BTC-USDT", "nope", ""])}),
        "action": st.sampled_from(["snapshot", "update", "x"]),
        "data": st.one_of(st.lists(item, max_size=3), json_val)})


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutations())
def test_fuzzed_messages_only_raise_badmessage(m):
    try:
        out = okx.route_data(m, SYMS, 0)
    except okx.BadMessage as exc:
        assert exc.args[0]
        return
    if isinstance(out, np.ndarray):
        assert len(out) >= 1 and np.isfinite(out["price"]).all()
    else:
        assert all(isinstance(b, okx.BookMsg) for b in out)


@settings(max_examples=150, deadline=None)
@given(json_val)
def test_fuzzed_events_classify_without_crash(v):
    t = okx.classify(v)
    if t in (okx.MsgType.DATA, okx.MsgType.UNKNOWN):
        with pytest.raises(okx.BadMessage):
            okx.parse_event(v)
    else:
        okx.parse_event(v)
