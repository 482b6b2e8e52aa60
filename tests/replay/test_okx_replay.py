"""Replay the real 2022-05-13 OKX session (cryptofeed capture) through the parsers and the book."""
from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.records import FLAG_LAST_IN_MSG, Kind, Side, Venue
from registry_fixture import DEFAULT
from pipeline.venues.okx import market as okx
from pipeline.venues.okx.book import OkxBookSync, checksum_string, crc32_signed

REC = "okx/recorded/cryptofeed_okx_ws_public_2022-05-13.jsonl"


def _received(vectors):
    for line in (vectors / REC).read_text().splitlines():
        d = json.loads(line)
        if d["dir"] == "received":
            yield int(round(d["recv_ts"] * 1e9)), d["raw"], d["recv_ts"]


@pytest.fixture(scope="module")
def symbols():
    return okx.symbols_from_registry(DEFAULT)


def test_every_trade_recorded_exactly(vectors, symbols):
    n_msgs = 0
    got = []
    for local_ts, raw, _ in _received(vectors):
        obj = json.loads(raw)
        if okx.classify(obj) is not okx.MsgType.DATA or obj["arg"]["channel"] != "trades":
            continue
        n_msgs += 1
        recs = okx.route_data(obj, symbols, local_ts)
        assert len(recs) == len(obj["data"])
        for r, d in zip(recs, obj["data"]):
            assert r["kind"] == Kind.TRADE and r["venue"] == Venue.OKX
            assert r["symbol"] == DEFAULT.id(Venue.OKX, d["instId"])
            assert r["price"] == float(d["px"]) and r["qty"] == float(d["sz"])
            assert r["side"] == (Side.BUY if d["side"] == "buy" else Side.SELL)
            assert r["id"] == int(d["tradeId"])
            assert r["exch_ts"] == int(d["ts"]) * 1_000_000
            assert r["local_ts"] == local_ts
            got.append(int(d["tradeId"]))
        assert recs[-1]["flags"] == FLAG_LAST_IN_MSG
    assert n_msgs == 74
    assert len(got) == len(set(got)) >= 74


def test_all_290_book_checksums_verify(vectors, symbols):
    syncs: dict[int, OkxBookSync] = {}
    published = []
    n_book = 0
    for local_ts, raw, _ in _received(vectors):
        obj = json.loads(raw)
        if okx.classify(obj) is not okx.MsgType.DATA or obj["arg"]["channel"] != "books":
            continue
        for m in okx.route_data(obj, symbols, local_ts):
            n_book += 1
            assert m.checksum != 0
            s = syncs.setdefault(m.symbol, OkxBookSync(m.symbol))
            published.append(s.on_message(m))
    assert n_book == 290
    verified = sum(s.stats.checksums_verified for s in syncs.values())
    failed = sum(s.stats.checksum_failures for s in syncs.values())
    assert (verified, failed) == (290, 0)
    assert all(s.live and s.stats.resyncs == 0 for s in syncs.values())
    recs = np.concatenate(published)
    assert not np.isin(recs["kind"], [Kind.GAP, Kind.RESYNC_START]).any()
    # Every message's records end with FLAG_LAST_IN_MSG, snapshots start with BOOK_CLEAR.
    assert (recs["kind"] == Kind.BOOK_CLEAR).sum() == 3
    assert ((recs["flags"] & FLAG_LAST_IN_MSG) != 0).sum() == 290


def test_ring_records_rebuild_the_same_book(vectors, symbols):
    """A consumer rebuilding the book from the published records gets the sync's book."""
    syncs: dict[int, OkxBookSync] = {}
    books: dict[int, tuple[dict, dict]] = {}
    for local_ts, raw, _ in _received(vectors):
        obj = json.loads(raw)
        if okx.classify(obj) is not okx.MsgType.DATA or obj["arg"]["channel"] != "books":
            continue
        for m in okx.route_data(obj, symbols, local_ts):
            s = syncs.setdefault(m.symbol, OkxBookSync(m.symbol))
            for r in s.on_message(m):
                bids, asks = books.setdefault(int(r["symbol"]), ({}, {}))
                if r["kind"] == Kind.BOOK_CLEAR:
                    bids.clear(), asks.clear()
                elif r["kind"] in (Kind.BOOK_BID, Kind.BOOK_ASK):
                    side = bids if r["kind"] == Kind.BOOK_BID else asks
                    if r["qty"] == 0:
                        side.pop(float(r["price"]), None)
                    else:
                        side[float(r["price"])] = float(r["qty"])
            b, a = books[m.symbol]
            assert b == {p: float(v[1]) for p, v in s.book.bids.items()}
            assert a == {p: float(v[1]) for p, v in s.book.asks.items()}


def test_checksum_vectors_match_our_book(vectors, symbols):
    cv = json.loads((vectors / "okx/checksum_vectors.json").read_text())
    want = {(v["instId"], round(v["recv_ts"], 6)): v for v in cv["vectors"]}
    syncs: dict[int, OkxBookSync] = {}
    seen = 0
    for local_ts, raw, recv_ts in _received(vectors):
        obj = json.loads(raw)
        if okx.classify(obj) is not okx.MsgType.DATA or obj["arg"]["channel"] != "books":
            continue
        (m,) = okx.route_data(obj, symbols, local_ts)
        s = syncs.setdefault(m.symbol, OkxBookSync(m.symbol))
        s.on_message(m)
        v = want.get((obj["arg"]["instId"], round(recv_ts, 6)))
        if v is None:
            continue
        seen += 1
        b, a = s.book.top(25)
        assert [list(x) for x in b] == v["book_top25_after_apply"]["bids"]
        assert [list(x) for x in a] == v["book_top25_after_apply"]["asks"]
        assert checksum_string(b, a) == v["message"]
        assert crc32_signed(v["message"]) == v["expected"] == m.checksum
    assert seen == len(cv["vectors"]) == 9


def test_doc_check_string_cases(vectors):
    cv = json.loads((vectors / "okx/checksum_vectors.json").read_text())
    for case in cv["doc_check_string_cases"]:
        s = checksum_string([lv[:2] for lv in case["bids"]], [lv[:2] for lv in case["asks"]])
        assert s == case["expected_check_string"]
        assert crc32_signed(s) == case["crc32_signed_of_check_string"]


def test_tickers_and_events_in_the_recording(vectors, symbols):
    kinds = {}
    for local_ts, raw, _ in _received(vectors):
        obj = json.loads(raw)
        t = okx.classify(obj)
        kinds[t] = kinds.get(t, 0) + 1
        if t is okx.MsgType.SUBSCRIBE:
            ev = okx.parse_event(obj)
            assert ev.channel in ("tickers", "trades", "books") and ev.inst_id
        elif t is okx.MsgType.DATA and obj["arg"]["channel"] == "tickers":
            r = okx.route_data(obj, symbols, local_ts)
            d = obj["data"][0]
            assert list(r["kind"]) == [Kind.BID, Kind.ASK]
            assert r[0]["price"] == float(d["bidPx"]) and r[1]["qty"] == float(d["askSz"])
    assert kinds[okx.MsgType.SUBSCRIBE] == 18
    assert okx.MsgType.UNKNOWN not in kinds
