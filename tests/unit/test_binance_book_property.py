"""Binance depth sync against a reference book (hypothesis): the venue's truth is a random walk of
level updates grouped into depthUpdate events (U..u); the client starts, buffers, gets a snapshot
taken at a random update id (possibly older than the first buffered event: refetched), and some
events are dropped (gap → GAP + resync from a new snapshot). At every update id the client
applies, both its own book and a consumer's rebuild from the published records equal the
reference book at that id, and nothing is published while a gap is open."""
from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline._ext import wsdecode as C
from pipeline.venues.binance import wsdecode_py as P
from pipeline.collector.book import BookRebuilder
from pipeline.records import Kind
from pipeline.venues.binance.market import DepthDiff, DepthSnapshot
from pipeline.venues.binance.book import BinanceBookSync
from tests.collector_helpers import BSYMS

SYM, VENUE, DEPTH = 1, 2, 50


def venue_script(seed: int, n_events: int):
    """[(U, u, bids, asks, reference book after u)] and the book before the first event."""
    rng = random.Random(seed)
    bids = {float(100 - i): 1.0 for i in range(1, 6)}
    asks = {float(100 + i): 1.0 for i in range(1, 6)}
    start = (dict(bids), dict(asks))
    uid = rng.randint(1_000, 10**9)
    events = []
    for _ in range(n_events):
        first = uid + 1
        changed_b, changed_a = {}, {}
        for _ in range(rng.randint(1, 4)):          # several updates in one event
            uid += 1
            side, book, lo = ((changed_b, bids, 90) if rng.random() < 0.5
                              else (changed_a, asks, 101))
            p = float(rng.randint(lo, lo + 9))
            q = float(rng.choice([0, 0, 1, 2, 3]))
            if q:
                book[p] = q
            else:
                book.pop(p, None)
            side[p] = q                              # the event carries each level's last qty
        events.append((first, uid, sorted(changed_b.items(), reverse=True),
                       sorted(changed_a.items()), (dict(bids), dict(asks))))
    return start, events


def top(book: tuple[dict, dict]):
    b, a = book
    return (sorted(b.items(), reverse=True)[:DEPTH], sorted(a.items())[:DEPTH])


def run_script(mod, seed, n, drops, lag, age):
    """Play the venue's script into a fresh sync; every time the client applies an update id,
    compare; returns (update ids compared, kinds published)."""
    start, events = venue_script(seed, n)
    by_u = {u: book for _, u, _, _, book in events}
    by_u[events[0][0] - 1] = start
    state = mod.SymbolState(BSYMS, VENUE)
    sync = BinanceBookSync(SYM, VENUE)
    rb = BookRebuilder()
    kinds: list[int] = []
    compared = 0

    def take(out):
        for a in out.records:
            rb.apply(a)
            kinds.extend(int(k) for k in a["kind"])
        return out

    def same_at(uid, what):
        assert state.top(SYM, DEPTH) == top(by_u[uid]), f"own book {what} at {uid}"
        assert rb.valid(VENUE, SYM)
        assert rb.top(VENUE, SYM, DEPTH) == top(by_u[uid]), f"rebuilt book {what} at {uid}"

    take(sync.start(state, 1))
    pending_fetch = False
    for i, (U, u, b, a, _) in enumerate(events):
        if i not in drops:
            out = take(sync.on_diff(state, DepthDiff(SYM, U, u, u, 7, b, a, VENUE)))
            pending_fetch = pending_fetch or out.fetch
            if state.depth_synced(SYM) and any(len(x) for x in out.records):
                assert state.depth_last(SYM) == u
                same_at(u, "after a diff")
                compared += 1
        if pending_fetch and i + 1 >= lag:          # the REST answer lands a bit later
            L = events[max(0, i - age)][1]          # taken a few events ago (maybe too old)
            bk, ak = by_u[L]
            out = take(sync.on_snapshot(state, DepthSnapshot(
                SYM, L, 9, sorted(bk.items(), reverse=True), sorted(ak.items()))))
            pending_fetch = out.fetch               # too old: asked again
            if state.depth_synced(SYM):
                same_at(state.depth_last(SYM), "after the snapshot")
                compared += 1
    return compared, kinds


def no_levels_in_a_gap(kinds):
    """Between RESYNC_START and RESYNC_DONE only the snapshot's levels (after BOOK_CLEAR)."""
    in_gap = cleared = False
    for k in kinds:
        if k == Kind.RESYNC_START:
            in_gap, cleared = True, False
        elif k == Kind.BOOK_CLEAR:
            cleared = True
        elif k == Kind.RESYNC_DONE:
            in_gap = False
        elif k in (Kind.BOOK_BID, Kind.BOOK_ASK) and in_gap and not cleared:
            return False
    return True


@pytest.mark.parametrize("mod", [C, P], ids=["cython", "python"])
@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(5, 60),
       drops=st.sets(st.integers(0, 59), max_size=3), lag=st.integers(0, 3),
       age=st.integers(0, 2))
def test_book_equals_the_reference_at_every_applied_update_id(mod, seed, n, drops, lag, age):
    _, kinds = run_script(mod, seed, n, drops, lag, age)
    assert no_levels_in_a_gap(kinds)


@pytest.mark.parametrize("mod", [C, P], ids=["cython", "python"])
def test_the_property_compares_books_through_a_gap_and_a_resync(mod):
    """The script above really syncs, compares many ids, goes through a gap and comes back."""
    compared, kinds = run_script(mod, seed=7, n=60, drops={30}, lag=2, age=1)
    assert compared > 40
    assert kinds.count(Kind.RESYNC_DONE) == 2 and Kind.GAP in kinds
    assert no_levels_in_a_gap(kinds)
