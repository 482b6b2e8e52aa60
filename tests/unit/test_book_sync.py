"""Binance book sync state machine (pure): buffering, snapshot rules, gaps, crossed books."""
import numpy as np
import pytest

from pipeline._ext import wsdecode as C
from pipeline.venues.binance import wsdecode_py as P
from pipeline.records import FLAG_LAST_IN_MSG, FLAG_SNAPSHOT, FLAG_SYNTHETIC, Kind
from pipeline.venues.binance.market import DepthDiff, DepthSnapshot
from pipeline.venues.binance.book import BinanceBookSync
from tests.collector_helpers import BSYMS

SYM = 1


def diff(U, u, bids=(), asks=()):
    return DepthDiff(SYM, U, u, 1_000_000 * u, 7, list(bids), list(asks), 2)


def snap(L, bids=((10.0, 1.0),), asks=((11.0, 1.0),)):
    return DepthSnapshot(SYM, L, 9, list(bids), list(asks))


def kinds(out):
    return [int(k) for a in out.records for k in a["kind"]]


@pytest.fixture(params=[C, P], ids=["cython", "python"])
def state(request):
    return request.param.SymbolState(BSYMS, 2)


def test_documented_sequence_with_straddling_diff(state):
    s = BinanceBookSync(SYM, 2)
    assert kinds(s.start(state, 1)) == [Kind.RESYNC_START]
    o = s.on_diff(state, diff(90, 95, [(10.0, 2.0)]))
    assert o.fetch and o.records == []                 # buffered; snapshot asked once
    assert not s.on_diff(state, diff(96, 99)).fetch
    o = s.on_diff(state, diff(100, 104, [(9.0, 3.0)]))   # straddles L = 101
    o = s.on_snapshot(state, snap(101))
    ks = kinds(o)
    assert ks[:4] == [Kind.BOOK_CLEAR, Kind.BOOK_BID, Kind.BOOK_ASK, Kind.RESYNC_DONE]
    assert ks[4:] == [Kind.BOOK_BID]                     # only the straddling diff applies
    clear, done = o.records[0][0], o.records[1][0]
    assert clear["flags"] == FLAG_SNAPSHOT | FLAG_SYNTHETIC and clear["id"] == 101
    assert o.records[0]["flags"][-1] == FLAG_SNAPSHOT | FLAG_LAST_IN_MSG
    assert done["id"] == 101
    assert state.depth_synced(SYM) and state.depth_last(SYM) == 104
    assert state.top(SYM, 5) == ([(10.0, 1.0), (9.0, 3.0)], [(11.0, 1.0)])
    # contiguous, duplicate, then a gap
    assert kinds(s.on_diff(state, diff(105, 106, [(9.5, 1.0)]))) == [Kind.BOOK_BID]
    assert s.on_diff(state, diff(100, 106)).events == ["duplicate"]
    o = s.on_diff(state, diff(110, 112))
    assert kinds(o) == [Kind.GAP, Kind.RESYNC_START] and o.fetch
    assert o.records[0][0]["id"] == 3                    # update ids 107..109 lost
    assert not state.depth_synced(SYM)


def test_snapshot_too_old_is_refetched(state):
    s = BinanceBookSync(SYM, 2)
    s.start(state, 1)
    s.on_diff(state, diff(200, 205))
    o = s.on_snapshot(state, snap(150))
    assert o.fetch and o.records == [] and "snapshot_too_old" in o.events
    o = s.on_snapshot(state, snap(202))
    assert Kind.RESYNC_DONE in kinds(o) and state.depth_last(SYM) == 205


def test_crossed_snapshot_is_never_published(state):
    s = BinanceBookSync(SYM, 2)
    s.start(state, 1)
    s.on_diff(state, diff(10, 11))
    o = s.on_snapshot(state, snap(10, bids=[(12.0, 1.0)], asks=[(11.0, 1.0)]))
    assert o.records == [] and o.fetch and not state.depth_synced(SYM)
    # a buffered diff that would cross the book also blocks the sync
    o = s.on_snapshot(state, snap(10))
    assert Kind.RESYNC_DONE in kinds(o)
    o = s.on_diff(state, diff(12, 12, bids=[(11.5, 1.0)]))
    assert kinds(o) == [Kind.GAP, Kind.RESYNC_START] and not state.depth_synced(SYM)


def test_overlapping_diff_applies_once_synced(state):
    s = BinanceBookSync(SYM, 2)
    s.start(state, 1)
    s.on_diff(state, diff(1, 5))
    s.on_snapshot(state, snap(5))
    s.on_diff(state, diff(6, 8))
    o = s.on_diff(state, diff(7, 9, asks=[(12.0, 1.0)]))   # a second connection's cut
    assert kinds(o) == [Kind.BOOK_ASK] and "overlap" in o.events
    assert state.depth_last(SYM) == 9


def test_gap_inside_the_buffer_restarts_it(state):
    s = BinanceBookSync(SYM, 2)
    s.start(state, 1)
    s.on_diff(state, diff(1, 5))
    o = s.on_diff(state, diff(9, 10))
    assert "buffer_gap" in o.events and len(s.buffer) == 1
    o = s.on_snapshot(state, snap(4))
    assert "snapshot_too_old" in o.events


def test_diff_records_layout():
    r = diff(5, 6, bids=[(1.0, 2.0)], asks=[(3.0, 0.0), (4.0, 1.0)]).records()
    assert list(r["kind"]) == [Kind.BOOK_BID, Kind.BOOK_ASK, Kind.BOOK_ASK]
    assert list(r["flags"]) == [0, 0, FLAG_LAST_IN_MSG]
    assert (r["id"] == 6).all() and (r["venue"] == 2).all()
    assert np.array_equal(r["qty"], [2.0, 0.0, 1.0])
