"""The collector against the exchange simulator over real WebSockets, in separate processes:
the simulator (its own subprocess), the collector (a spawned process writing the tick ring) and
this test (a ring reader).

Timing: CI runs these on a loaded 2-core box, so nothing here decides correctness by sleeping a
fixed time. Tests wait for a condition (records in the ring, the simulator's state) with a generous
deadline (`wait_until`), and the keep-alive settings leave room for a slow box: the simulator pings
every 0.4 s but allows 30 s for the pong (the ping test counts the pongs the simulator matched
instead of relying on a tight deadline), and the collector's stale watchdog is 10 s except where a
test is about it."""
from __future__ import annotations

import time

import numpy as np
import pytest

sim_testing = pytest.importorskip("pipeline.sim.testing",
                                  reason="simulator (pipeline.sim) not merged yet")

from collector_fixtures import CollectorRun, collector_runs
from pipeline.collector.book import BookRebuilder  # noqa: E402
from pipeline.records import FLAG_SNAPSHOT, Kind, Venue  # noqa: E402
from registry_fixture import DEFAULT  # noqa: E402

pytestmark = pytest.mark.timeout(60)
SYMS = ["BTCUSDT", "ETHUSDT"]
IDS = {s: DEFAULT.id(Venue.SIM, s) for s in SYMS}


class Run(CollectorRun):
    """A collector process writing ring `name`, and this process's reader of it."""

    def __init__(self, tmp_path, shm_name, sim, **over):
        cfg = {"venue_id": "SIM", "ws_url": sim.ws_url, "rest_url": sim.rest_url,
               "symbols": SYMS, "channels": ["trade", "bookTicker", "depth@100ms"],
               "stale_after_s": 10.0, "snapshot_limit": 1000}
        super().__init__(tmp_path, shm_name, {**cfg, **over})


@pytest.fixture
def sim(tmp_path):
    s = sim_testing.start_sim(tmp_path, symbols=SYMS + ["SOLUSDT"], rate=400.0,
                              ping_interval_s=0.4, pong_timeout_s=30.0)
    yield s
    s.stop()


@pytest.fixture
def run(tmp_path, shm_name, sim):
    with collector_runs(lambda **over: Run(tmp_path, shm_name, sim, **over)) as start:
        yield start


def wait_until(r: Run, cond, timeout: float, what: str) -> np.ndarray:
    """Pump the ring until `cond(records)` holds (it may also ask the simulator); fail naming
    `what` after `timeout` seconds. Returns every record read so far."""
    end = time.monotonic() + timeout
    while True:
        recs = r.pump(0.1)
        if cond(recs):
            return recs
        assert time.monotonic() < end, f"not within {timeout} s: {what}"


class Follow:
    """A BookRebuilder fed incrementally from the records a Run has read."""

    def __init__(self):
        self.rb = BookRebuilder()
        self.n = 0

    def __call__(self, recs) -> BookRebuilder:
        self.rb.apply(recs[self.n:])
        self.n = len(recs)
        return self.rb


def md_ids(sim) -> set[int]:
    return {c["id"] for c in sim.state()["md_conns"]}


def pause_and_check_books(r: Run, sim, syms, timeout: float = 20.0) -> BookRebuilder:
    """Pause the tape, then pump until every rebuilt book is valid and has reached the
    simulator's final lastUpdateId (the tape's last diff is flushed within 100 ms of the pause;
    a resync fetches a snapshot at that id); then the best prices must be the simulator's."""
    sim.tape(action="pause")
    final = sim.state()["books"]
    f = Follow()

    def caught_up(recs) -> bool:
        rb = f(recs)
        return all(rb.valid(Venue.SIM, IDS[s])
                   and rb.last_id.get((int(Venue.SIM), IDS[s])) == final[s]["lastUpdateId"]
                   for s in syms)
    wait_until(r, caught_up, timeout, "rebuilt books valid at the simulator's lastUpdateId "
               f"{ {s: final[s]['lastUpdateId'] for s in syms} }")
    rb = f.rb
    for s in syms:
        b = rb.book(Venue.SIM, IDS[s])
        assert not b.crossed()
        assert (b.best_bid, b.best_ask) == (float(final[s]["bestBid"]), float(final[s]["bestAsk"]))
    return rb


def synced(recs, sym) -> bool:
    return bool(((recs["kind"] == Kind.RESYNC_DONE) & (recs["symbol"] == IDS[sym])).any())


def all_synced(recs) -> bool:
    return len(recs) > 0 and all(synced(recs, s) for s in SYMS)


def kinds(recs, kind, sym=None):
    m = recs["kind"] == kind
    if sym is not None:
        m &= recs["symbol"] == IDS[sym]
    return recs[m]


def test_ticks_arrive_and_books_match_the_exchange(run, sim):
    r = run()
    wait_until(r, all_synced, 15, "both books synced")
    n0 = len(r.all())
    wait_until(r, lambda a: all(len(kinds(a[n0:], Kind.TRADE, s)) + len(kinds(a[n0:], Kind.BID, s))
                                for s in SYMS), 10, "ticks for every symbol after the sync")
    pause_and_check_books(r, sim, SYMS)
    stats = r.stop()
    # one connection throughout: nothing in this test may drop it (pong deadline 30 s, stale 10 s)
    assert stats["connects"] == 1 and stats.get("disconnects", 0) == 0
    assert stats.get("feed_book_gap", 0) == 0
    assert stats["errors"] == {}


def test_depth_gap_resyncs_to_a_correct_book(run, sim):
    r = run()
    assert all_synced(r.pump(15, until=all_synced))
    n0 = len(r.all())
    sim.fault("skip_depth", count=1, symbol="BTCUSDT")

    def resynced(recs):
        tail = recs[n0:]
        return len(kinds(tail, Kind.RESYNC_DONE, "BTCUSDT")) > 0
    recs = wait_until(r, resynced, 15, "BTCUSDT resynced after the skipped diff")
    tail = recs[n0:]
    gap = kinds(tail, Kind.GAP, "BTCUSDT")
    assert len(gap) == 1 and gap["id"][0] >= 1
    order = [int(k) for k in tail["kind"][tail["symbol"] == IDS["BTCUSDT"]]
             if k in (Kind.GAP, Kind.RESYNC_START, Kind.BOOK_CLEAR, Kind.RESYNC_DONE)]
    assert order == [Kind.GAP, Kind.RESYNC_START, Kind.BOOK_CLEAR, Kind.RESYNC_DONE]
    # nothing of the gapped book is published between RESYNC_START and the snapshot
    i0 = np.flatnonzero((tail["kind"] == Kind.RESYNC_START) & (tail["symbol"] == IDS["BTCUSDT"]))[0]
    i1 = np.flatnonzero((tail["kind"] == Kind.BOOK_CLEAR) & (tail["symbol"] == IDS["BTCUSDT"]))[0]
    between = tail[i0:i1]
    assert not ((between["symbol"] == IDS["BTCUSDT"])
                & np.isin(between["kind"], [Kind.BOOK_BID, Kind.BOOK_ASK])).any()
    pause_and_check_books(r, sim, ["BTCUSDT"])
    stats = r.stop()
    assert stats["feed_book_gap"] == 1


def test_a_reader_asking_for_resync_gets_every_book_resynced(run, sim):
    """A lapped reader bumps the ring's resync request (as the kernel does on any loss); the
    collector answers at its next heartbeat: GAP + RESYNC_START, then a fresh snapshot, for every
    book."""
    r = run()
    assert all_synced(r.pump(15, until=all_synced))
    n0 = len(r.all())
    r.ring.request_resync()

    def resynced(recs):
        return all(len(kinds(recs[n0:], Kind.RESYNC_DONE, s)) for s in SYMS)
    tail = wait_until(r, resynced, 15, "every book resynced after the request")[n0:]
    for s in SYMS:
        order = [int(k) for k in tail["kind"][tail["symbol"] == IDS[s]]
                 if k in (Kind.GAP, Kind.RESYNC_START, Kind.RESYNC_DONE)]
        assert order[:3] == [Kind.GAP, Kind.RESYNC_START, Kind.RESYNC_DONE], s
    pause_and_check_books(r, sim, SYMS)
    stats = r.stop()
    assert stats["feed_resync_requested"] == 1


def test_dropped_connection_reconnects_within_backoff_and_is_stale_meanwhile(run, sim):
    r = run()
    assert all_synced(r.pump(15, until=all_synced))
    n0 = len(r.all())
    t0 = time.monotonic()
    sim.fault("drop", target="md")

    def back(recs):
        tail = recs[n0:]
        st = np.flatnonzero(tail["kind"] == Kind.STALE)
        return len(st) and (np.isin(tail["kind"][st[0]:], [Kind.TRADE, Kind.BID])).any()
    recs = r.pump(10, until=back)
    took = time.monotonic() - t0
    tail = recs[n0:]
    st = np.flatnonzero(tail["kind"] == Kind.STALE)
    assert len(st) >= 1, "no STALE record after the drop"
    assert set(tail["symbol"][st]) == set(IDS.values())
    assert back(recs)
    assert took < 3.0          # back-off budget 0.05..0.5 s plus connect and first data
    stats = r.stop()
    assert stats["connects"] >= 2 and stats["disconnects"] >= 1


def test_silent_connection_goes_stale_and_reconnects(run, sim):
    r = run(stale_after_s=0.8)
    assert all_synced(r.pump(15, until=all_synced))
    n0 = len(r.all())
    sim.fault("silence", seconds=2.0, target="md")
    recs = r.pump(10, until=lambda a: (a[n0:]["kind"] == Kind.STALE).any()
                  and np.isin(a[n0:]["kind"][np.flatnonzero(a[n0:]["kind"] == Kind.STALE)[0]:],
                              [Kind.TRADE, Kind.BID]).any())
    tail = recs[n0:]
    assert (tail["kind"] == Kind.STALE).any()
    stats = r.stop()
    assert stats["watchdog"] >= 1 and stats["connects"] >= 2


def test_server_shutdown_switches_connection_without_losing_a_message(run, sim):
    r = run(overlap_s=0.3)
    wait_until(r, all_synced, 15, "both books synced")
    before = md_ids(sim)
    assert len(before) == 1
    # The simulator closes every market-data connection when the grace period ends, even ones
    # opened after the notice; the test ends as soon as the switch is seen (well before that).
    sim.fault("server_shutdown", grace_s=30.0)
    recs = wait_until(r, lambda a: (lambda ids: len(ids) == 1 and not ids & before)(md_ids(sim)),
                      20, "the collector switched to a new connection (the old one closed)")
    n1 = len(recs)
    wait_until(r, lambda a: all(len(kinds(a[n1:], Kind.TRADE, s)) >= 3 for s in SYMS), 10,
               "trades on the new connection")
    stats = r.stop()
    recs = r.all()
    assert stats["switches"] >= 1 and stats.get("switch_shutdown", 0) >= 1
    assert not (recs["kind"] == Kind.STALE).any()
    assert not (recs["kind"] == Kind.GAP).any()
    for s in SYMS:
        t = kinds(recs, Kind.TRADE, s)["id"]
        assert len(t) > 5
        assert (np.diff(t) == 1).all(), "trade ids must be contiguous across the switch"
        # depth: every published diff continues the previous one (no gap, no duplicate)
        d = recs[(recs["symbol"] == IDS[s]) & np.isin(recs["kind"], [Kind.BOOK_BID, Kind.BOOK_ASK])
                 & ((recs["flags"] & FLAG_SNAPSHOT) == 0)]
        assert (np.diff(d["id"]) >= 0).all()
    assert stats.get("feed_book_gap", 0) == 0


def test_server_pings_are_answered(run, sim):
    r = run()
    wait_until(r, all_synced, 15, "both books synced")

    def matched(_) -> bool:          # the simulator saw pongs carrying its pings' payloads
        conns = sim.state()["md_conns"]
        return len(conns) == 1 and conns[0]["pongs_matched"] >= 4
    wait_until(r, matched, 20, "4 pongs matched by the simulator on one connection")
    stats = r.stop()
    assert stats["pings"] >= 4 and stats["pongs"] >= 4
    assert stats["connects"] == 1 and stats.get("disconnects", 0) == 0


def test_recorded_session_replays_to_the_same_records(run, sim, tmp_path):
    from pipeline.collector.recorder import read_raw, replay
    from pipeline.venues.binance.market import BinanceAdapter
    from tests.collector_helpers import strip_ring
    rec = tmp_path / "rec"
    r = run(record_dir=str(rec))
    assert all_synced(r.pump(15, until=all_synced))
    sim.fault("skip_depth", count=1, symbol="ETHUSDT")
    wait_until(r, lambda a: synced(a[np.flatnonzero(a["kind"] == Kind.GAP)[0]:], "ETHUSDT")
               if (a["kind"] == Kind.GAP).any() else False, 15, "ETHUSDT gap and resync")
    r.stop()
    live = r.all()
    live = live[live["kind"] != Kind.STALE]
    files = sorted(rec.glob("raw-*.txt.gz"))
    adapter = BinanceAdapter(IDS, int(Venue.SIM))
    again = replay(read_raw(files), adapter, depth_symbols=list(IDS.values()), auto_start=False)
    assert len(again) == len(live) and (live["kind"] == Kind.GAP).sum() == 1
    assert strip_ring(live).tobytes() == again.tobytes()


BOOK_CONTROL = [Kind.GAP, Kind.RESYNC_START, Kind.BOOK_CLEAR, Kind.RESYNC_DONE]


@pytest.mark.parametrize("channels", [["trade", "bookTicker", "depth@100ms"], ["depth@100ms"]],
                         ids=["all-streams", "depth-only"])
def test_spoiled_frames_are_counted_and_never_published(run, sim, channels):
    """Malformed, truncated and duplicated frames: counted, never published, and a lost depth
    update shows as GAP → RESYNC_START → BOOK_CLEAR → RESYNC_DONE, never as a wrong book. With
    every stream the spoiled frames are whichever come next (a depth diff among them or not);
    with depth only every spoiled frame is a diff, so the gap is certain."""
    r = run(channels=channels)
    wait_until(r, all_synced, 15, "both books synced")
    n0 = len(r.all())
    sim.fault("duplicate", count=20)
    sim.fault("malformed", count=3)
    sim.fault("truncated", count=3)

    def spoiled_all(_) -> bool:
        conns = sim.state()["md_conns"]
        return len(conns) == 1 and conns[0]["spoil_pending"] == 0
    wait_until(r, spoiled_all, 20, "the simulator sent every spoiled frame")
    # every spoiled frame went out before any diff with an update id past this point: once the
    # rebuilt book has such a diff, a diff lost to the faults has been seen as a gap
    marks = {s: b["lastUpdateId"] for s, b in sim.state()["books"].items()}
    f = Follow()
    wait_until(r, lambda a: all(f(a).last_id.get((int(Venue.SIM), IDS[s]), 0) > marks[s]
                                for s in SYMS), 20, "depth past the spoiled frames")
    pause_and_check_books(r, sim, SYMS)
    stats = r.stop()
    recs = r.all()
    tail = recs[n0:]
    assert stats["errors"].get("malformed_json", 0) + stats["errors"].get("non_utf8", 0) >= 6
    assert stats["feed_dec_duplicates"] + stats.get("feed_duplicates", 0) \
        + stats.get("feed_book_duplicate", 0) >= 1
    assert stats["connects"] == 1 and stats.get("disconnects", 0) == 0
    for s in SYMS:
        t = kinds(recs, Kind.TRADE, s)["id"]
        assert (np.diff(t) > 0).all(), "a duplicate trade was published"
        b = kinds(recs, Kind.BID, s)["id"]
        assert (np.diff(b) > 0).all(), "a duplicate bookTicker was published"
        d = recs[(recs["symbol"] == IDS[s]) & np.isin(recs["kind"], [Kind.BOOK_BID, Kind.BOOK_ASK])
                 & ((recs["flags"] & FLAG_SNAPSHOT) == 0)]
        assert (np.diff(d["id"]) >= 0).all(), "a duplicate depth diff was published"
    gaps = 0
    for s in SYMS:
        seq = [int(k) for k in tail["kind"][tail["symbol"] == IDS[s]] if k in BOOK_CONTROL]
        n = len(seq) // 4
        assert seq == [int(k) for k in BOOK_CONTROL] * n, f"{s}: {seq}"
        gaps += n
    assert gaps == stats.get("feed_book_gap", 0) + stats.get("feed_book_bad_diff", 0) \
        + stats.get("feed_book_crossed", 0)
    if channels == ["depth@100ms"]:
        assert gaps >= 1, "six lost depth diffs and no gap"
    else:
        assert len(kinds(tail, Kind.TRADE)) + len(kinds(tail, Kind.BID)) > 0


def test_connection_lifetime_switches_before_the_server_ends_it(tmp_path, shm_name):
    # The server ends a connection after 6 s; the collector replaces it 4.5 s before that, so a
    # slow box has seconds of slack. The test ends once the replacement is seen.
    with sim_testing.start_sim(tmp_path, symbols=SYMS, rate=400.0, max_lifetime_s=6.0) as s:
        r = Run(tmp_path, shm_name, s, lifetime_s=6.0, lifetime_margin_s=4.5, overlap_s=0.2)
        try:
            wait_until(r, all_synced, 15, "both books synced")
            before = md_ids(s)
            recs = wait_until(r, lambda a: (lambda ids: len(ids) == 1 and not ids & before)(
                md_ids(s)), 15, "the collector replaced its connection")
            n1 = len(recs)
            wait_until(r, lambda a: all(len(kinds(a[n1:], Kind.TRADE, x)) >= 3 for x in SYMS), 10,
                       "trades on the new connection")
        finally:
            stats = r.stop()
    recs = r.all()
    assert stats.get("switch_lifetime", 0) >= 1 and stats["switches"] >= 1
    assert stats.get("disconnects", 0) == 0
    assert not (recs["kind"] == Kind.STALE).any() and not (recs["kind"] == Kind.GAP).any()
    for sym in SYMS:
        t = kinds(recs, Kind.TRADE, sym)["id"]
        assert len(t) > 5 and (np.diff(t) == 1).all()


def test_streams_beyond_the_url_are_subscribed_by_paced_messages(run, sim):
    r = run(url_streams_max=1)
    recs = r.pump(15, until=lambda a: all_synced(a) and len(kinds(a, Kind.BID, "ETHUSDT")) > 0)
    assert all_synced(recs)
    for s in SYMS:
        assert len(kinds(recs, Kind.BID, s)) > 0
    stats = r.stop()
    assert stats["sent_text"] >= 1 and stats["feed_control_ack"] >= 1
    assert stats["errors"] == {}
