"""The backtester reads a third-party raw Binance recording (hftbacktest's: stream messages with
the REST depth snapshot as a bare line) with its L2 book: the snapshot is the one depth
stream's, the collector's book sync takes it and BOOK_* records follow; a bare snapshot among
several symbols' depth streams is a clear error, never a silently bookless session."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from pipeline.backtest import feed
from pipeline.backtest.data import DataError
from pipeline.records import Kind, Venue
from pipeline.registry import DEFAULT as REG

REPO = Path(__file__).resolve().parents[2]
REC = REPO / "tests" / "data" / "binance" / "recorded" / "hftbacktest_spot"


def test_a_bare_snapshot_line_syncs_the_book_of_the_recordings_depth_stream(tmp_path):
    src = REC / "btcusdt_20240808.gz"
    dst = tmp_path / "btcusdt.txt.gz"
    with gzip.open(src, "rb") as f, gzip.open(dst, "wb") as g:
        for i, line in enumerate(f):         # the first 8000 lines hold the snapshot
            if i >= 8000:
                break
            g.write(line)
    recs = feed.load_feed([str(dst)])
    sid = REG.id(Venue.BINANCE, "BTCUSDT")
    k = recs["kind"]
    book = (k == Kind.BOOK_BID) | (k == Kind.BOOK_ASK)
    assert book.sum() > 1000 and (recs["symbol"][book] == sid).all()
    assert (k == Kind.RESYNC_DONE).sum() == 1
    assert ((k == Kind.BID) | (k == Kind.ASK)).any() and (k == Kind.TRADE).any()
    assert (np.diff(recs["mono_ts"]) >= 0).all()


def test_a_bare_snapshot_among_several_symbols_depth_streams_is_refused(tmp_path):
    lines = []
    with gzip.open(REC / "btcusdt_20240808.gz", "rb") as f:
        for i, line in enumerate(f):
            if i >= 3000:
                break
            lines.append(line)
    other = [ln.replace(b"btcusdt@depth", b"ethusdt@depth") for ln in lines
             if b"btcusdt@depth" in ln][:5]
    assert other and any(ln.split(b" ", 1)[1].startswith(b'{"lastUpdateId"') for ln in lines)
    dst = tmp_path / "mixed.txt.gz"
    with gzip.open(dst, "wb") as g:
        g.writelines(lines + other)
    with pytest.raises(DataError, match="depth streams of 2 symbols.*BTCUSDT, ETHUSDT"):
        feed.load_feed([str(dst)])


def test_a_recording_without_a_bare_snapshot_line_needs_no_attribution(tmp_path):
    """No bare snapshot line: nothing to attribute (the collector marks its own snapshots)."""
    plain = tmp_path / "trades.txt.gz"
    with gzip.open(REC / "btcusdt_20240808.gz", "rb") as f, gzip.open(plain, "wb") as g:
        g.writelines(ln for ln in f if b"@trade" in ln or b"@depth" in ln)
    assert feed._bare_snapshot_symbol(str(plain), {}) is None
    recs = feed.load_feed([str(plain)])
    assert (recs["kind"] == Kind.TRADE).any()
