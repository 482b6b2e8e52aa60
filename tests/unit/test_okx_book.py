"""OKX book sync: seqId/prevSeqId rules, heartbeats, resets, REST bridging, checksums."""
from __future__ import annotations

import numpy as np

from pipeline.records import FLAG_LAST_IN_MSG, FLAG_SNAPSHOT, FLAG_SYNTHETIC, Kind
from pipeline.venues.okx.market import parse_books, parse_rest_books
from pipeline.venues.okx.book import OkxBook, OkxBookSync, checksum_string, crc32_signed

SYM = {"BTC-USDT": 14}


def msg(action, bids, asks, seq=None, prev=None, checksum=0, ts="1700000000000"):
    d = {"asks": [[p, s, "0", "1"] for p, s in asks], "bids": [[p, s, "0", "1"] for p, s in bids],
         "ts": ts, "checksum": checksum}
    if seq is not None:
        d["seqId"], d["prevSeqId"] = seq, prev
    (m,) = parse_books({"arg": {"channel": "books", "instId": "BTC-USDT"}, "action": action,
                        "data": [d]}, SYM, 1)
    return m


def rest(bids, asks, seq=None, ts="1700000000000"):
    d = {"asks": [[p, s, "0", "1"] for p, s in asks], "bids": [[p, s, "0", "1"] for p, s in bids],
         "ts": ts}
    if seq is not None:
        d["seqId"] = seq
    return parse_rest_books({"code": "0", "msg": "", "data": [d]}, 14, 2)


def kinds(r):
    return [Kind(k) for k in r["kind"]]


SNAP_B = [("100.5", "1"), ("100.4", "2")]
SNAP_A = [("100.6", "3"), ("100.7", "4")]


def live(seq=10):
    s = OkxBookSync(14)
    r = s.on_message(msg("snapshot", SNAP_B, SNAP_A, seq, -1))
    assert kinds(r) == [Kind.BOOK_CLEAR] + [Kind.BOOK_BID] * 2 + [Kind.BOOK_ASK] * 2 + \
        [Kind.RESYNC_DONE]
    assert (r["flags"][:-1] & FLAG_SNAPSHOT).all() and r[-2]["flags"] & FLAG_LAST_IN_MSG
    assert r[-1]["id"] == seq and r[-1]["flags"] == FLAG_SYNTHETIC
    assert s.live and s.last_seq == seq
    return s


def test_update_chain_and_heartbeat():
    s = live()
    r = s.on_message(msg("update", [("100.5", "0")], [("100.65", "1")], 15, 10))
    assert kinds(r) == [Kind.BOOK_BID, Kind.BOOK_ASK] and list(r["id"]) == [15, 15]
    assert r[0]["qty"] == 0 and r[1]["flags"] == FLAG_LAST_IN_MSG
    hb = msg("update", [], [], 15, 15)
    assert hb.heartbeat
    assert len(s.on_message(hb)) == 0 and s.stats.heartbeats == 1 and s.live
    r = s.on_message(msg("update", [("100.45", "1")], [], 16, 15))
    assert kinds(r) == [Kind.BOOK_BID] and s.last_seq == 16
    assert s.book.best() == (100.45, 100.6)


def test_gap_then_rest_snapshot_resync():
    s = live()
    r = s.on_message(msg("update", [("100.5", "2")], [], 20, 17))
    assert kinds(r) == [Kind.GAP, Kind.RESYNC_START] and r[0]["id"] == 7
    assert (r["flags"] == FLAG_SYNTHETIC).all()
    assert not s.live and s.need_snapshot and s.stats.gaps == 1
    # updates arriving while the snapshot is fetched are buffered
    assert len(s.on_message(msg("update", [("100.3", "5")], [], 22, 20))) == 0
    assert len(s.on_message(msg("update", [("100.2", "6")], [], 23, 22))) == 0
    r = s.on_snapshot(rest([("100.5", "2"), ("100.4", "2")], SNAP_A, seq=22))
    k = kinds(r)
    assert k[0] == Kind.BOOK_CLEAR and Kind.RESYNC_DONE in k
    assert r[k.index(Kind.RESYNC_DONE)]["id"] == 22
    assert k[-1] == Kind.BOOK_BID and r[-1]["price"] == 100.2   # seq 23 bridged, 22 dropped
    assert s.live and not s.need_snapshot and s.last_seq == 23
    assert set(s.book.bids) == {100.5, 100.4, 100.2}
    assert len(s.on_message(msg("update", [], [("100.8", "1")], 24, 23))) == 1


def test_rest_snapshot_straddle_is_bridged():
    s = live()
    s.on_message(msg("update", [], [], 30, 12))     # gap
    s.on_message(msg("update", [("100.1", "1")], [], 35, 30))
    r = s.on_snapshot(rest(SNAP_B, SNAP_A, seq=32))   # 30 < 32 < 35: straddles
    assert s.live and s.last_seq == 35 and 100.1 in s.book.bids
    assert Kind.RESYNC_DONE in kinds(r)


def test_rest_snapshot_too_old_resyncs_again():
    s = live()
    s.on_message(msg("update", [], [], 30, 12))
    s.on_message(msg("update", [("100.1", "1")], [], 35, 31))
    r = s.on_snapshot(rest(SNAP_B, SNAP_A, seq=20))    # 31 > 20: a hole between
    assert kinds(r)[-2:] == [Kind.GAP, Kind.RESYNC_START]
    assert not s.live and s.need_snapshot


def test_seq_reset_resyncs_without_crash():
    s = live(100)
    r = s.on_message(msg("update", [("100.5", "3")], [], 3, 100))
    assert kinds(r) == [Kind.GAP, Kind.RESYNC_START] and s.stats.seq_resets == 1
    s.on_message(msg("update", [("100.3", "1")], [], 5, 3))
    r = s.on_snapshot(rest(SNAP_B, SNAP_A, seq=5))
    assert s.live and s.last_seq == 5 and Kind.RESYNC_DONE in kinds(r)
    assert len(s.on_message(msg("update", [("100.3", "1")], [], 6, 5))) == 1


def test_ws_snapshot_also_ends_resync():
    s = live()
    s.on_message(msg("update", [], [], 30, 12))
    r = s.on_message(msg("snapshot", SNAP_B, SNAP_A, 40, -1))
    assert kinds(r)[-1] == Kind.RESYNC_DONE and s.live and s.last_seq == 40


def test_checksum_zero_is_not_a_failure_nonzero_is_checked():
    s = live()
    for i in range(5):
        assert len(s.on_message(msg("update", [(f"100.{i}", "1")], [], 11 + i, 10 + i, 0))) == 1
    assert s.stats.checksum_failures == 0 and s.stats.checksums_verified == 0
    b, a = s.book.top()
    good = crc32_signed(checksum_string(b, a))
    assert len(s.on_message(msg("update", [], [], 15, 15, checksum=good))) == 0   # heartbeat
    assert s.stats.heartbeats == 1 and s.stats.checksums_verified == 1
    assert len(s.on_message(msg("update", [], [], 16, 15))) == 0
    upd = msg("update", [("99", "1")], [], 17, 16)
    s.book.apply(upd.bids, upd.asks)
    good = s.book.checksum()
    s.book.bids.pop(99.0)
    r = s.on_message(msg("update", [("99", "1")], [], 17, 16, checksum=good))
    assert kinds(r) == [Kind.BOOK_BID] and s.stats.checksums_verified == 2
    r = s.on_message(msg("update", [("98", "1")], [], 18, 17, checksum=good))
    assert kinds(r) == [Kind.GAP, Kind.RESYNC_START] and s.stats.checksum_failures == 1
    assert not s.live and len(s.book.bids) == 0


def test_crossed_update_is_never_published():
    s = live()
    r = s.on_message(msg("update", [("100.9", "1")], [], 11, 10))
    assert kinds(r) == [Kind.GAP, Kind.RESYNC_START] and s.stats.crossed == 1


def test_update_before_any_snapshot_asks_for_one():
    s = OkxBookSync(14)
    assert len(s.on_message(msg("update", [("1", "1")], [], 5, 4))) == 0
    assert s.need_snapshot and not s.live
    r = s.on_snapshot(rest(SNAP_B, SNAP_A, seq=4))
    assert s.live and s.last_seq == 5 and kinds(r)[-2:] == [Kind.RESYNC_DONE, Kind.BOOK_BID]


def test_rest_snapshot_without_seqid_bridges_by_ts():
    s = OkxBookSync(14)
    s.on_message(msg("update", [("99", "1")], [], 5, 4, ts="1700000000000"))
    s.on_message(msg("update", [("98", "1")], [], 6, 5, ts="1700000000200"))
    s.on_snapshot(rest(SNAP_B, SNAP_A, ts="1700000000100"))
    assert s.live and 98.0 in s.book.bids and 99.0 not in s.book.bids and s.last_seq == 6


def test_book_top_and_crc():
    b = OkxBook()
    b.apply([(str(100 - i), "1") for i in range(30)], [(str(101 + i), "2") for i in range(3)])
    bids, asks = b.top()
    assert len(bids) == 25 and bids[0] == ("100", "1") and asks[-1] == ("103", "2")
    assert b.checksum() == crc32_signed(checksum_string(bids, asks))
    assert isinstance(np.int32(b.checksum()), np.int32)


def test_second_connection_snapshot_and_duplicates_are_ignored():
    """make-before-break: the new connection's snapshot (older than where we are) and its
    updates that we already applied publish nothing; the chain then continues."""
    s = live(10)
    s.on_message(msg("update", [("100.45", "1")], [], 12, 10))
    s.on_message(msg("update", [("100.44", "1")], [], 13, 12))
    assert len(s.on_message(msg("snapshot", SNAP_B, SNAP_A, 12, -1))) == 0
    assert len(s.on_message(msg("update", [("100.44", "1")], [], 13, 12))) == 0
    assert s.stats.snapshots_unused == 1 and s.stats.duplicates == 1 and s.live
    assert len(s.on_message(msg("update", [("100.43", "1")], [], 14, 13))) == 1
    assert s.stats.resyncs == 0 and 100.45 in s.book.bids


def test_second_connection_snapshot_at_the_first_snapshot_seq_is_ignored():
    s = live(10)
    s.on_message(msg("update", [("100.45", "1")], [], 12, 10))
    assert len(s.on_message(msg("snapshot", SNAP_B, SNAP_A, 10, -1))) == 0
    assert len(s.on_message(msg("update", [("100.45", "1")], [], 12, 10))) == 0
    assert len(s.on_message(msg("update", [("100.44", "1")], [], 13, 12))) == 1
    assert s.stats.resyncs == 0 and s.stats.snapshots_unused == 1
