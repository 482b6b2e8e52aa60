"""The collector process against a real loopback WebSocket server (no simulator needed): records
reach the ring, the raw recording replays to the very same records, and a closed connection is
marked STALE and retried."""
import json
import multiprocessing as mp

import numpy as np
import pytest

from pipeline.bus.ring import TickRing
from pipeline.collector.loopback import start_server
from pipeline.collector.process import run_from_dict
from pipeline.collector.recorder import load_segments, NpySegmentWriter, RawRecorder, read_raw, replay
from pipeline.venues.binance.wsdecode_py import ws_frame
from pipeline.records import TICK_DTYPE, Kind, Venue
from pipeline.venues.binance.market import BinanceAdapter
from tests.collector_helpers import BINANCE, strip_ring
from registry_fixture import FIXTURE_JSON

pytestmark = pytest.mark.timeout(60)


def excerpt(vectors):
    with open(vectors / "binance/recorded/hftbacktest_btcusdt_2024-08-08_first1500.jsonl") as f:
        raws = [json.loads(line)["raw"].encode() for line in f]
    return [r for r in raws if b"@trade" in r or b"@bookTicker" in r]


def test_records_reach_the_ring_and_the_recording_replays_bit_for_bit(vectors, tmp_path,
                                                                       shm_name):
    raws = excerpt(vectors)
    blob = b"".join(ws_frame(r) for r in raws)
    server, port = start_server(blob, hold=0.3, chunk=4096, max_conns=1)
    ring = TickRing.create(shm_name, 1 << 16)
    reader = ring.reader(start="oldest", max_batch=1 << 16)
    cfg = {"ws_url": f"ws://127.0.0.1:{port}", "rest_url": f"http://127.0.0.1:{port}",
           "symbols": ["BTCUSDT"], "channels": ["trade", "bookTicker"],
           "record_dir": str(tmp_path / "rec"), "backoff_initial_s": 0.05,
           "backoff_max_s": 0.2, "stale_after_s": 5.0}
    stats_path = tmp_path / "stats.json"
    proc = mp.get_context("spawn").Process(target=run_from_dict,
                                           args=(cfg, shm_name, 3.0, str(stats_path)),
                                           kwargs={"instruments": FIXTURE_JSON})
    proc.start()
    proc.join(30)
    server.join(5)
    recs = reader.poll()
    stats = json.loads(stats_path.read_text())
    reader = None
    ring.close()
    assert proc.exitcode == 0
    market = recs[recs["kind"] != Kind.STALE]
    n_trades = sum(b"@trade" in r for r in raws)
    assert (market["kind"] == Kind.TRADE).sum() == n_trades
    assert (market["kind"] == Kind.BID).sum() == len(raws) - n_trades
    assert (market["venue"] == Venue.BINANCE).all() and (market["symbol"] == BINANCE["BTCUSDT"]).all()
    # the server closed after its stream: STALE for the feed's symbol, then retries
    stale = recs[recs["kind"] == Kind.STALE]
    assert len(stale) >= 1 and stale["symbol"][0] == BINANCE["BTCUSDT"]
    assert stats["server_close"] == 1 and stats["connect_failures"] >= 1
    assert stats["errors"] == {}
    # the raw recording replays to exactly the published market records
    files = sorted((tmp_path / "rec").glob("raw-*.txt.gz"))
    assert files
    again = replay(read_raw(files), BinanceAdapter(BINANCE))
    assert strip_ring(market).tobytes() == again.tobytes()
    assert [raw for _, raw in read_raw(files) if not raw.startswith(b'{"_pl"')] == raws


def test_recorders_rotate_and_load(tmp_path):
    raw = RawRecorder(tmp_path, stem="t", rotate_bytes=100)
    for i in range(10):
        raw.write(b"%d {\"x\":%d}\n" % (i, i) * 3)
    raw.close()
    assert len(raw.files) > 1
    lines = list(read_raw(raw.files))
    assert len(lines) == 30 and lines[0] == (0, b'{"x":0}')
    seg = NpySegmentWriter(tmp_path / "npy", records_per_segment=7)
    a = np.zeros(20, dtype=TICK_DTYPE)
    a["id"] = np.arange(20)
    seg.append(a[:5])
    seg.append(a[5:])
    seg.close()
    assert len(seg.files) == 3
    assert np.load(seg.files[0]).dtype == TICK_DTYPE
    assert (load_segments(tmp_path / "npy")["id"] == np.arange(20)).all()
