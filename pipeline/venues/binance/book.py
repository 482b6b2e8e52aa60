"""Binance local order book sync, exactly as documented ("How to manage a local order book
correctly", web-socket-streams.md), as a pure state machine: no I/O. The collector feeds it diffs
and REST snapshots and does what it asks (publish records, fetch a snapshot).

  1. Buffer the diffs of the stream; ask for a snapshot once the first one is buffered.
  2. Snapshot lastUpdateId L: drop buffered diffs with u <= L. If the first remaining diff has
     U > L + 1 the snapshot is too old: fetch again.
  3. Apply the straddling diff (U <= L + 1 <= u) first, then each diff must have U == prev u + 1.
     (A diff with u <= prev u is a duplicate and is dropped; one that straddles prev u — it can
     happen while two connections overlap — is applied: levels carry absolute quantities.)
  4. A gap (U > prev u + 1): discard the book, publish GAP (id = update ids lost) and RESYNC_START,
     and go back to 1. A crossed book (best bid >= best ask) is treated the same way (GAP id 0).

Published on (re)sync: BOOK_CLEAR, the snapshot levels (FLAG_SNAPSHOT; FLAG_LAST_IN_MSG on the
last), RESYNC_DONE (id = L), then the buffered diffs that apply. Nothing is published for a book
that is gapped or crossed: a snapshot (with its buffered diffs) that crosses is refetched.

The book of a synced symbol lives in the decoder's SymbolState (the hot path applies contiguous
diffs itself); this object handles everything else.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.collector.book import Book
from pipeline.records import (FLAG_LAST_IN_MSG, FLAG_SNAPSHOT, FLAG_SYNTHETIC, TICK_DTYPE, Kind,
                              Side)
from pipeline.venues.binance.market import DepthDiff, DepthSnapshot

MAX_BUFFERED = 10_000   # diffs held while a snapshot is fetched (oldest dropped beyond)


@dataclass
class SyncOut:
    records: list = field(default_factory=list)    # arrays of TICK_DTYPE, in order
    fetch: bool = False                             # fetch a REST snapshot now
    events: list = field(default_factory=list)      # counter names: gap, duplicate, ...


def control(kind: Kind, venue: int, symbol: int, local_ts: int, exch_ts: int = 0,
            id: int = 0) -> np.ndarray:
    r = np.zeros(1, dtype=TICK_DTYPE)
    r[0] = (0, symbol, venue, FLAG_SYNTHETIC, int(kind), 0, exch_ts, local_ts, 0, 0.0, 0.0, id)
    return r


def snapshot_records(snap: DepthSnapshot, venue: int) -> np.ndarray:
    """BOOK_CLEAR then every snapshot level with FLAG_SNAPSHOT (FLAG_LAST_IN_MSG on the last)."""
    nb, na = len(snap.bids), len(snap.asks)
    r = np.zeros(1 + nb + na, dtype=TICK_DTYPE)
    r["symbol"] = snap.symbol
    r["venue"] = venue
    r["local_ts"] = snap.local_ts
    r["id"] = snap.last_id
    r["flags"] = FLAG_SNAPSHOT
    r["kind"][0] = Kind.BOOK_CLEAR
    r["flags"][0] = FLAG_SNAPSHOT | FLAG_SYNTHETIC
    r["kind"][1:1 + nb] = Kind.BOOK_BID
    r["side"][1:1 + nb] = Side.BUY
    r["kind"][1 + nb:] = Kind.BOOK_ASK
    r["side"][1 + nb:] = Side.SELL
    lv = snap.bids + snap.asks
    if lv:
        r["price"][1:] = [p for p, _ in lv]
        r["qty"][1:] = [q for _, q in lv]
    r["flags"][-1] |= FLAG_LAST_IN_MSG
    return r


class BinanceBookSync:
    """Sync state of one symbol's depth stream."""

    def __init__(self, symbol: int, venue: int, max_buffered: int = MAX_BUFFERED):
        self.symbol = symbol
        self.venue = venue
        self.max_buffered = max_buffered
        self.buffering = False
        self.fetching = False
        self.buffer: list[DepthDiff] = []
        self.snapshot_id = -1

    def _c(self, kind: Kind, local_ts: int, exch_ts: int = 0, id: int = 0) -> np.ndarray:
        return control(kind, self.venue, self.symbol, local_ts, exch_ts, id)

    def start(self, st, local_ts: int) -> SyncOut:
        """Begin (or restart) syncing: the book is invalid until RESYNC_DONE."""
        st.unsync(self.symbol)
        self.buffering = True
        self.buffer = []
        return SyncOut(records=[self._c(Kind.RESYNC_START, local_ts)], events=["resync"])

    def _resync(self, st, d: DepthDiff, lost: int, why: str) -> SyncOut:
        st.unsync(self.symbol)
        self.buffering = True
        self.buffer = [d]
        out = SyncOut(records=[self._c(Kind.GAP, d.local_ts, d.exch_ts, lost),
                               self._c(Kind.RESYNC_START, d.local_ts, d.exch_ts)],
                      events=[why, "resync"])
        if not self.fetching:
            self.fetching = out.fetch = True
        return out

    def force_resync(self, st, d: DepthDiff | None, local_ts: int, why: str) -> SyncOut:
        """The hot path found the book crossed, or a diff could not be read: start over."""
        if d is not None:
            return self._resync(st, d, 0, why)
        st.unsync(self.symbol)
        self.buffering = True
        self.buffer = []
        return SyncOut(records=[self._c(Kind.GAP, local_ts), self._c(Kind.RESYNC_START, local_ts)],
                       events=[why, "resync"])

    def on_diff(self, st, d: DepthDiff) -> SyncOut:
        sym = self.symbol
        if st.depth_synced(sym):
            last = st.depth_last(sym)
            if d.last_id <= last:
                return SyncOut(events=["duplicate"])
            if d.first_id <= last + 1:
                if st.apply_diff(sym, d.bids, d.asks, d.last_id):
                    return self._resync(st, d, 0, "crossed")
                out = SyncOut(records=[d.records()] if d.bids or d.asks else [])
                if d.first_id <= last:
                    out.events.append("overlap")
                return out
            return self._resync(st, d, d.first_id - last - 1, "gap")
        if not self.buffering:
            out = self.start(st, d.local_ts)
        else:
            out = SyncOut()
        buf = self.buffer
        if buf and d.last_id <= buf[-1].last_id:
            out.events.append("duplicate")
            return out
        if buf and d.first_id > buf[-1].last_id + 1:
            out.events.append("buffer_gap")
            buf.clear()
        buf.append(d)
        if len(buf) > self.max_buffered:
            del buf[0]
        if not self.fetching:
            self.fetching = out.fetch = True
        return out

    def on_snapshot(self, st, snap: DepthSnapshot) -> SyncOut:
        self.fetching = False
        if not self.buffering:
            return SyncOut(events=["snapshot_unused"])
        L = snap.last_id
        buf = [d for d in self.buffer if d.last_id > L]
        if buf and buf[0].first_id > L + 1:
            self.buffer = buf
            self.fetching = True
            return SyncOut(fetch=True, events=["snapshot_too_old"])
        book = Book()
        book.apply(snap.bids, snap.asks)
        bad = book.crossed()
        for d in buf:
            if bad:
                break
            book.apply(d.bids, d.asks)
            bad = book.crossed()
        if bad:
            self.buffer = buf
            self.fetching = True
            return SyncOut(fetch=True, events=["snapshot_crossed"])
        last = buf[-1].last_id if buf else L
        st.load_book(self.symbol, last, list(book.bids.items()), list(book.asks.items()))
        self.buffering = False
        self.buffer = []
        self.snapshot_id = L
        recs = [snapshot_records(snap, self.venue),
                self._c(Kind.RESYNC_DONE, snap.local_ts, 0, L)]
        recs += [d.records() for d in buf if d.bids or d.asks]
        return SyncOut(records=recs, events=["synced"])
