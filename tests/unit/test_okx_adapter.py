"""The OKX adapter behind the generic collector: routing of every message type, the fast path,
the book-sync wrapper, and the collector's Feed driving it (replay of the real 2022 session)."""
from __future__ import annotations

import json

import numpy as np
import orjson
import pytest

from pipeline.collector.feed import Feed
from pipeline.records import TICK_DTYPE, Kind, Venue
from registry_fixture import DEFAULT
from pipeline.venues.okx import market as okx
from pipeline.venues.okx.adapter import OkxAdapter

SYMS = okx.symbols_from_registry(DEFAULT)
REC = "okx/recorded/cryptofeed_okx_ws_public_2022-05-13.jsonl"


@pytest.fixture
def adapter():
    return OkxAdapter(SYMS)


def test_streams_urls_and_subscribe(adapter):
    st = adapter.streams(["btc-usdt"], ["trades", "books"])
    assert st == ["trades:BTC-USDT", "books:BTC-USDT"]
    assert adapter.stream_symbol(st[1]) == "BTC-USDT" and adapter.is_depth_channel("books")
    assert not adapter.url_streams
    assert adapter.connect_url("ws://127.0.0.1:5/", st) == "ws://127.0.0.1:5/ws/v5/public"
    assert adapter.connect_url(okx.WS_PUBLIC, st) == okx.WS_PUBLIC
    (m,) = adapter.subscribe_messages(st)
    assert json.loads(m)["args"] == [{"channel": "trades", "instId": "BTC-USDT"},
                                     {"channel": "books", "instId": "BTC-USDT"}]
    assert adapter.snapshot_url("http://h", "BTC-USDT", 1000).endswith("instId=BTC-USDT&sz=400")
    with pytest.raises(ValueError):
        adapter.streams(["BTC-USDT"], ["bbo-tbt", "tickers"])


def test_route_every_kind_of_message(adapter, vectors):
    ping = json.loads((vectors / "okx/ws_connect_ping_pong.json").read_text())
    notice = ping["notice_event"]["example"]["message"]
    r = adapter.route(notice, 1)
    assert r.control == "shutdown"
    assert adapter.route({"event": "subscribe", "arg": {"channel": "books", "instId": "BTC-USDT"}},
                         1).control == "ack"
    r = adapter.route({"event": "error", "code": "60018", "msg": "Wrong URL"}, 1)
    assert r.error == "venue_error" and "60018" in r.detail
    assert adapter.route({"what": 1}, 1).error == "unknown_message"
    bad = {"arg": {"channel": "books", "instId": "BTC-USDT"}, "action": "update",
           "data": [{"asks": [["x", "1"]], "bids": [], "ts": "1"}]}
    r = adapter.route(bad, 1)
    assert r.error == "bad_px" and r.extra["depth_symbol"] == "BTC-USDT"
    trades = {"arg": {"channel": "trades", "instId": "BTC-USDT"},
              "data": [{"instId": "BTC-USDT", "tradeId": "9", "px": "1", "sz": "2", "side": "buy",
                        "ts": "5"}]}
    assert adapter.route(trades, 1).records["id"][0] == 9
    out = np.zeros(8, dtype=TICK_DTYPE)
    assert adapter.fast_decode(orjson.dumps(trades), 1, out) == 1 and out[0]["id"] == 9
    assert adapter.fast_decode(b"pong", 1, out) == -1
    assert adapter.keepalive_reply == b"pong" and adapter.keepalive_ping == "ping"


def _received(vectors):
    for line in (vectors / REC).read_text().splitlines():
        d = json.loads(line)
        if d["dir"] == "received":
            yield d["raw"].encode(), int(d["recv_ts"] * 1e9)


def test_feed_replays_the_recording(adapter, vectors):
    """The collector's Feed with the OKX adapter: all trades (fast path) and books (290 checksums)
    exactly as the parsers make them; snapshots end in RESYNC_DONE; nothing counted as an error."""
    out: list[np.ndarray] = []
    ids = sorted(SYMS.values())
    feed = Feed(adapter, lambda a: out.append(a.copy()), depth_symbols=ids, backend="python")
    feed.start_books(0)
    for raw, ts in _received(vectors):
        feed.cool(raw, 1, ts)          # reason 1: not a hot message
    recs = np.concatenate(out)
    assert feed.errors() == {}
    assert feed.counters["fast_messages"] == 74
    trades = recs[recs["kind"] == Kind.TRADE]
    want = [json.loads(r) for r, _ in _received(vectors)]
    want = [d for d in want if d.get("arg", {}).get("channel") == "trades" and "data" in d]
    assert len(trades) == sum(len(d["data"]) for d in want)
    assert (trades["venue"] == Venue.OKX).all()
    syncs = [s.sync for s in feed.syncs.values() if s.sync.stats.snapshots]
    assert sum(s.stats.checksums_verified for s in syncs) == 290
    assert sum(s.stats.checksum_failures for s in syncs) == 0
    assert (recs["kind"] == Kind.RESYNC_DONE).sum() == 3
    assert not (recs["kind"] == Kind.GAP).any()
    # the same trades twice (two connections during a switch) are published once
    n = len(out)
    trade_raw = [r for r, _ in _received(vectors) if b'"channel":"trades"' in r and b'"data"' in r]
    feed.cool(trade_raw[-1], 0, 1)
    assert len(out) == n and feed.counters["duplicates"] == 1


SAMPLES = [
    b'{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"7",'
    b'"px":"1.5","sz":"2","side":"sell","ts":"1"}]}',
    b'{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":[["2","1",'
    b'"0","1"]],"bids":[["1","1","0","1"]],"ts":"1","checksum":0,"prevSeqId":1,"seqId":2}]}',
    b'{"arg":{"channel":"bbo-tbt","instId":"BTC-USDT"},"data":[{"asks":[["2","1","0","1"]],'
    b'"bids":[["1","1","0","1"]],"ts":"1","seqId":3}]}',
    b'{"event":"notice","code":"64008","msg":"x"}', b"pong",
]


def _mutate(data, draw_ops):
    b = bytearray(data)
    for op, i, x in draw_ops:
        if not b:
            break
        i %= len(b)
        if op == 0:
            b[i] = x
        elif op == 1:
            del b[i:i + 1 + x % 8]
        else:
            b[i:i] = bytes([x]) * (1 + x % 3)
    return bytes(b)


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(SAMPLES),
                          st.lists(st.tuples(st.integers(0, 2), st.integers(0, 10**6),
                                             st.integers(0, 255)), max_size=4)),
                min_size=1, max_size=6))
def test_fuzzed_frames_through_the_feed_are_only_counted(frames):
    out: list[np.ndarray] = []
    a = OkxAdapter(SYMS)
    feed = Feed(a, lambda r: out.append(r.copy()), depth_symbols=[SYMS["BTC-USDT"]],
                backend="python")
    for sample, ops in frames:
        feed.cool(_mutate(sample, ops), 1, 1)     # must not raise
    for r in out:
        assert r.dtype == TICK_DTYPE and len(r) and (r["venue"] == Venue.OKX).all()
        assert np.isfinite(r["price"]).all()
