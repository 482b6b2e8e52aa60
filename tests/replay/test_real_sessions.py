"""Replays of real Binance sessions through the collector's own decoder, feed and book sync.

Every trade becomes a record with exactly the right fields (checked against the trade CSV and the
raw JSON); books sync with no false gap and equal a plain reference book (written here,
independently, from the documented rules) at every update id.
"""
import csv
import json

import numpy as np
import orjson
import pytest

from pipeline.collector.book import Book
from pipeline.collector.recorder import replay
from pipeline.records import FLAG_LAST_IN_MSG, FLAG_SNAPSHOT, Kind, Side, Venue
from pipeline.venues.binance.market import BinanceAdapter
from tests.collector_helpers import BINANCE, gz_lines

REC = "binance/recorded"
ADAPTER = BinanceAdapter(BINANCE)


# ----------------------------------------------------------------------------- reference book
def reference_states(lines, snapshots):
    """Plain Binance sync per symbol: {symbol: {update_id: (nbids, nasks, best_bid, best_ask)}}
    after every applied diff (and the snapshot), plus the final books. `snapshots`: ts-ordered
    (ts, symbol, obj) inserted into the stream by time."""
    books, last, buffered, states = {}, {}, {}, {}
    events = [(ts, 1, raw) for ts, raw in lines] + [(ts, 0, s) for ts, *s in snapshots]
    events.sort(key=lambda e: (e[0], e[1]))
    for _, is_ws, item in events:
        if not is_ws:
            sym, obj = item
            L = obj["lastUpdateId"]
            b = Book()
            b.apply([(float(p), float(q)) for p, q in obj["bids"]],
                    [(float(p), float(q)) for p, q in obj["asks"]])
            books[sym], last[sym] = b, L
            states.setdefault(sym, {})[L] = summary(b)
            pending = [d for d in buffered.pop(sym, []) if d["u"] > L]
            if pending:
                assert pending[0]["U"] <= L + 1 <= pending[0]["u"]
            for d in pending:
                apply_ref(books, last, states, sym, d)
            continue
        msg = orjson.loads(item)
        d = msg.get("data", msg)
        if d.get("e") != "depthUpdate":
            continue
        sym = BINANCE[d["s"]]
        if sym not in books:
            buffered.setdefault(sym, []).append(d)
        elif d["u"] > last[sym]:
            assert d["U"] == last[sym] + 1, "the recording itself has a gap"
            apply_ref(books, last, states, sym, d)
    return states, books


def apply_ref(books, last, states, sym, d):
    books[sym].apply([(float(p), float(q)) for p, q in d["b"]],
                     [(float(p), float(q)) for p, q in d["a"]])
    last[sym] = d["u"]
    states[sym][d["u"]] = summary(books[sym])


def summary(b: Book):
    return len(b.bids), len(b.asks), b.best_bid, b.best_ask


def check_books(recs, states, final_books):
    """Walk the records as a consumer would; at every complete message compare with the
    reference at that update id."""
    books: dict[int, Book] = {}
    seen = {s: set() for s in states}
    valid = {}
    for r in recs:
        k, sym = int(r["kind"]), int(r["symbol"])
        if k == Kind.BOOK_CLEAR:
            books[sym] = Book()
            valid[sym] = False
        elif k in (Kind.BOOK_BID, Kind.BOOK_ASK):
            b = books[sym]
            (b.set_bid if k == Kind.BOOK_BID else b.set_ask)(float(r["price"]), float(r["qty"]))
            if r["flags"] & FLAG_LAST_IN_MSG and not r["flags"] & FLAG_SNAPSHOT:
                assert valid[sym]
                uid = int(r["id"])
                assert summary(b) == states[sym][uid], (sym, uid)
                seen[sym].add(uid)
        elif k == Kind.RESYNC_DONE:
            valid[sym] = True
            assert summary(books[sym]) == states[sym][int(r["id"])]
            seen[sym].add(int(r["id"]))
        elif k == Kind.GAP:
            pytest.fail(f"false gap for symbol {sym}")
    for sym, b in final_books.items():
        assert books[sym].bids == b.bids and books[sym].asks == b.asks
        assert not b.crossed()
    return seen


# ----------------------------------------------------------------------------- 2024 sessions
@pytest.mark.parametrize("sym,days", [("BTCUSDT", (8, 9)), ("ETHUSDT", (8,))])
def test_hftbacktest_2024_session(vectors, sym, days):
    """BTCUSDT across both files (the sync continues over the file boundary); ETHUSDT day 1."""
    files = [vectors / REC / f"hftbacktest_spot/{sym.lower()}_2024080{d}.gz" for d in days]
    lines = [ln for f in files for ln in gz_lines(f)]
    sid = BINANCE[sym]
    feeds = []
    recs = replay(lines, ADAPTER, depth_symbols=[sid], bare_snapshot_symbol=sid, feed_out=feeds)
    feed = feeds[0]
    assert feed.errors() == {}
    assert feed.counters["book_gap"] == 0 and feed.counters["book_synced"] == 1
    # trades: exactly the CSV's fields, in order, none lost or added
    csvp = vectors / f"ticks/binance_spot_{sym}_trades_2024-08-08T235415Z_2024-08-09T000505Z.csv"
    with open(csvp) as f:
        rows = list(csv.DictReader(f))
    last_ts = lines[-1][0]
    rows = [r for r in rows if int(r["local_recv_ts_ns"]) <= last_ts]
    t = recs[recs["kind"] == Kind.TRADE]
    assert len(t) == len(rows)
    assert (t["id"] == np.array([int(r["trade_id"]) for r in rows])).all()
    assert (t["price"] == np.array([float(r["price"]) for r in rows])).all()
    assert (t["qty"] == np.array([float(r["qty"]) for r in rows])).all()
    assert (t["exch_ts"] == np.array([int(r["event_time_ms"]) * 1_000_000 for r in rows])).all()
    assert (t["local_ts"] == np.array([int(r["local_recv_ts_ns"]) for r in rows])).all()
    side = np.array([Side.SELL if r["is_buyer_maker"] == "True" else Side.BUY for r in rows])
    assert (t["side"] == side).all()
    assert (t["symbol"] == sid).all() and (t["venue"] == Venue.BINANCE).all()
    # books: the snapshot line is interleaved in the recording
    snaps = [(ts, sid, orjson.loads(raw)) for ts, raw in lines
             if raw.startswith(b'{"lastUpdateId"')]
    ws = [(ts, raw) for ts, raw in lines if not raw.startswith(b'{"lastUpdateId"')]
    states, final = reference_states(ws, snaps[:1])
    seen = check_books(recs, states, final)
    # every update id of the reference was matched by a published message
    assert seen[sid] == set(states[sid]) and len(seen[sid]) > 3000
    # the straddling diff was applied first (no false gap at the start)
    first = recs[(recs["kind"] == Kind.BOOK_BID) | (recs["kind"] == Kind.BOOK_ASK)]
    first = first[(first["flags"] & FLAG_SNAPSHOT) == 0][0]
    L = snaps[0][2]["lastUpdateId"]
    assert first["id"] > L


def test_hftbacktest_excerpt_python_twin_matches(vectors):
    with open(vectors / REC / "hftbacktest_btcusdt_2024-08-08_first1500.jsonl") as f:
        lines = [(d["local_ts_ns"], d["raw"].encode()) for d in map(json.loads, f)]
    sid = BINANCE["BTCUSDT"]
    a = replay(lines, ADAPTER, depth_symbols=[sid], bare_snapshot_symbol=sid, backend="cython")
    b = replay(lines, ADAPTER, depth_symbols=[sid], bare_snapshot_symbol=sid, backend="python")
    assert a.tobytes() == b.tobytes() and len(a) > 1000


# ----------------------------------------------------------------------------- 2021 session
def test_cryptofeed_2021_session_with_four_snapshots(vectors):
    with open(vectors / REC / "cryptofeed_binance_spot_ws_2021-10-12.jsonl") as f:
        lines = [(int(d["recv_ts"] * 1e9), d["raw"].encode()) for d in map(json.loads, f)]
    ex = json.loads((vectors / "binance/rest_depth_snapshot.json").read_text())["examples"]
    snaps = []
    for e in ex:
        if e["kind"] == "recorded" and "recv_ts" in e:
            sym = e["request"].split("symbol=")[1].split("&")[0]
            snaps.append((int(float(e["recv_ts"]) * 1e9), BINANCE[sym], e["message"]))
    assert len(snaps) == 4
    depth_syms = [s for _, s, _ in snaps]
    # merge the snapshots into the stream as the recorder does (`snapshot` meta lines)
    merged = [(ts, raw, 1) for ts, raw in lines]
    merged += [(ts, orjson.dumps({"_pl": "snapshot", "symbol": s, "data": o}), 0)
               for ts, s, o in snaps]
    merged.sort(key=lambda x: (x[0], x[2]))
    feeds = []
    recs = replay([(ts, raw) for ts, raw, _ in merged], ADAPTER, depth_symbols=depth_syms,
                  feed_out=feeds)
    feed = feeds[0]
    assert feed.errors() == {}
    assert feed.counters["book_gap"] == 0 and feed.counters["book_synced"] == 4
    # aggTrades: exactly the fields of the raw JSON
    exp = []
    for ts, raw in lines:
        d = orjson.loads(raw)["data"]
        if d.get("e") == "aggTrade":
            exp.append((BINANCE[d["s"]], d["a"], float(d["p"]), float(d["q"]), d["E"] * 10**6,
                        Side.SELL if d["m"] else Side.BUY, ts))
    a = recs[recs["kind"] == Kind.AGG_TRADE]
    got = list(zip(a["symbol"].tolist(), a["id"].tolist(), a["price"].tolist(),
                   a["qty"].tolist(), a["exch_ts"].tolist(), a["side"].tolist(),
                   a["local_ts"].tolist()))
    assert got == exp and len(exp) > 0
    bbo = recs[recs["kind"] == Kind.BID]
    assert len(bbo) == sum(1 for _, r in lines if b"@bookTicker" in r)
    states, final = reference_states(lines, [(ts, s, o) for ts, s, o in snaps])
    seen = check_books(recs, states, final)
    assert all(seen[s] == set(states[s]) and len(seen[s]) > 1 for s in depth_syms)
