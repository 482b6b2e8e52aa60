"""The collector with the OKX adapter against the simulator's OKX endpoint, in separate processes
over real WebSockets: ticks in the ring, a seq gap → GAP/RESYNC and a correct book, a seqId reset
→ resync without a crash, checksums 0 on every frame, idle → text ping/pong, silence → STALE
and reconnect, notice 64008 → proactive switch to a new connection."""
from __future__ import annotations


import numpy as np
import pytest
import requests

from collector_fixtures import CollectorRun, collector_runs
from pipeline.records import FLAG_LAST_IN_MSG, Kind, Venue
from registry_fixture import DEFAULT
from pipeline.sim import testing as sim_testing
from pipeline.venues.okx import market as okx

pytestmark = pytest.mark.timeout(60)
INST = "BTC-USDT"
SID = DEFAULT.id(Venue.OKX, INST)


class Run(CollectorRun):
    """A collector process (venue okx) writing ring `name`, and this process's reader of it."""

    def __init__(self, tmp_path, shm_name, sim, **over):
        cfg = {"venue": "okx", "venue_id": "OKX", "ws_url": sim.ws_url, "rest_url": sim.rest_url,
               "symbols": [INST], "channels": ["trades", "bbo-tbt", "books"],
               "stale_after_s": 2.0, "snapshot_limit": 400}
        super().__init__(tmp_path, shm_name, {**cfg, **over})


@pytest.fixture(scope="module")
def sim_proc(tmp_path_factory):
    s = sim_testing.start_sim(tmp_path_factory.mktemp("okxcol"), symbols=["BTCUSDT", "ETHUSDT"],
                              rate=1500.0, paused=False)
    yield s
    s.stop()


@pytest.fixture
def sim(sim_proc):
    sim_proc.tape(action="resume")
    sim_proc.fault("okx_set", checksum=False, snapshot_push=True, idle_close_s=30.0)
    yield sim_proc


@pytest.fixture
def run(tmp_path, shm_name, sim):
    with collector_runs(lambda **over: Run(tmp_path, shm_name, sim, **over)) as start:
        yield start


def of(recs, kind):
    return recs[(recs["kind"] == kind) & (recs["symbol"] == SID)]


def synced(recs) -> bool:
    return len(of(recs, Kind.RESYNC_DONE)) > 0


def rebuild(recs) -> tuple[dict, dict, bool]:
    """A ring consumer's book from BOOK_* records; valid between RESYNC_DONE and the next break."""
    bids: dict = {}
    asks: dict = {}
    valid = False
    for r in recs[recs["symbol"] == SID]:
        k = r["kind"]
        if k == Kind.BOOK_CLEAR:
            bids.clear(), asks.clear()
        elif k in (Kind.BOOK_BID, Kind.BOOK_ASK):
            side = bids if k == Kind.BOOK_BID else asks
            if r["qty"] == 0:
                side.pop(float(r["price"]), None)
            else:
                side[float(r["price"])] = float(r["qty"])
        elif k == Kind.RESYNC_DONE:
            valid = True
        elif k in (Kind.GAP, Kind.RESYNC_START, Kind.STALE):
            valid = False
    return bids, asks, valid


def book_matches_venue(r: Run, sim) -> None:
    sim.tape(action="pause")
    recs = r.pump(1.0)
    d = requests.get(okx.books_snapshot_url(sim.rest_url, INST), timeout=5).json()["data"][0]
    bids, asks, valid = rebuild(recs)
    assert valid
    assert bids == {float(p): float(s) for p, s, *_ in d["bids"]}
    assert asks == {float(p): float(s) for p, s, *_ in d["asks"]}
    last = recs[(recs["symbol"] == SID) & np.isin(recs["kind"], [Kind.BOOK_BID, Kind.BOOK_ASK])]
    assert int(last[-1]["id"]) == d["seqId"]


def test_ticks_reach_the_ring_and_the_book_matches_the_venue(run, sim):
    # UNI-USD-SWAP is in our registry but not listed by the simulator: its subscriptions are
    # refused with error events, counted, and the rest of the feed is unaffected
    r = run(symbols=[INST, "UNI-USD-SWAP"])
    recs = r.pump(10, until=lambda x: synced(x) and len(of(x, Kind.TRADE)) > 5)
    assert synced(recs)
    trades = of(recs, Kind.TRADE)
    assert len(trades) > 5 and (trades["venue"] == Venue.OKX).all()
    assert (np.diff(trades["id"]) > 0).all()
    assert (trades["flags"] & FLAG_LAST_IN_MSG).all()
    assert len(of(recs, Kind.BID)) and len(of(recs, Kind.ASK))
    book_matches_venue(r, sim)
    stats = r.stop()
    assert stats["errors"] == {"venue_error": 3}              # trades, bbo-tbt, books of UNI
    assert stats.get("feed_fast_messages", 0) > 0           # trades took the Cython kernel
    assert stats.get("feed_control_ack") == 3
    assert not stats.get("feed_book_checksum_failures")      # checksum 0 is never a failure


def test_seq_gap_gives_gap_resync_and_a_correct_book(run, sim):
    r = run()
    r.pump(10, until=synced)
    sim.fault("okx_gap", instId=INST, count=2)
    recs = r.pump(10, until=lambda x: len(of(x, Kind.RESYNC_DONE)) >= 2)
    k = [int(x) for x in recs[recs["symbol"] == SID]["kind"]]
    gap = k.index(Kind.GAP)
    assert k[gap + 1] == Kind.RESYNC_START and Kind.RESYNC_DONE in k[gap:]
    book_matches_venue(r, sim)
    stats = r.stop()
    assert stats.get("feed_book_gaps", 0) >= 1 and stats["errors"] == {}


def test_seq_reset_resyncs_without_crash(run, sim):
    r = run()
    r.pump(10, until=synced)
    sim.fault("okx_seq_reset", instId=INST)
    recs = r.pump(10, until=lambda x: len(of(x, Kind.RESYNC_DONE)) >= 2)
    assert len(of(recs, Kind.RESYNC_DONE)) >= 2 and r.proc.is_alive()
    book_matches_venue(r, sim)
    stats = r.stop()
    assert stats.get("feed_book_seq_resets") == 1


def test_idle_connection_pings_and_gets_pong(run, sim):
    sim.tape(action="pause")
    r = run(stale_after_s=1.0)
    r.pump(15, until=synced)        # connected and subscribed (the snapshot comes at once)
    r.pump(2.2)
    stats = r.stop()
    assert stats.get("keepalive_pings", 0) >= 2
    assert stats.get("feed_keepalive_replies", 0) >= 2
    assert not stats.get("watchdog") and not stats.get("disconnects")


def test_silence_goes_stale_and_reconnects(run, sim):
    r = run()
    r.pump(10, until=synced)
    sim.fault("okx_silence", seconds=3)
    recs = r.pump(10, until=lambda x: len(of(x, Kind.STALE)) > 0
                  and len(of(x, Kind.RESYNC_DONE)) >= 2)
    assert len(of(recs, Kind.STALE)) >= 1
    stale_at = np.flatnonzero((recs["kind"] == Kind.STALE) & (recs["symbol"] == SID))[0]
    assert len(of(recs[stale_at:], Kind.RESYNC_DONE)) >= 1       # a new connection, a new book
    stats = r.stop()
    assert stats.get("connects", 0) >= 2


def test_notice_64008_switches_connection_before_the_close(run, sim):
    r = run()
    r.pump(10, until=synced)
    sim.fault("okx_notice")
    r.pump(1.5)
    book_matches_venue(r, sim)
    recs = r.all()
    stats = r.stop()
    assert stats.get("switch_shutdown") == 1 and stats.get("switches") == 1
    assert len(of(recs, Kind.STALE)) == 0 and len(of(recs, Kind.GAP)) == 0
    trades = of(recs, Kind.TRADE)
    assert len(trades) and (np.diff(trades["id"]) > 0).all()     # none published twice


def test_recorded_session_replays_to_the_same_records(run, sim, tmp_path):
    """Raw frames recorded live (with the REST snapshot of a gap's resync) replay through the same
    Feed and OKX adapter to the same records, bit for bit."""
    from pipeline.collector.recorder import read_raw, replay
    from pipeline.venues.okx.adapter import OkxAdapter
    from tests.collector_helpers import strip_ring
    rec = tmp_path / "rec"
    r = run(record_dir=str(rec))
    r.pump(10, until=lambda x: synced(x) and len(of(x, Kind.TRADE)) > 3)
    sim.fault("okx_gap", instId=INST, count=1)
    r.pump(5, until=lambda x: len(of(x, Kind.RESYNC_DONE)) >= 2)
    r.pump(0.3)
    stats = r.stop()
    live = r.all()
    live = live[live["kind"] != Kind.STALE]
    assert stats.get("snapshot_requests", 0) >= 1 and len(of(live, Kind.GAP)) == 1
    files = sorted(rec.glob("raw-*.txt.gz"))
    assert files
    again = replay(read_raw(files), OkxAdapter({INST: SID}), depth_symbols=[SID],
                   auto_start=False)
    assert len(again) == len(live)
    assert strip_ring(live).tobytes() == again.tobytes()
