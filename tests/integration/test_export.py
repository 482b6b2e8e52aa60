"""`export` writes recordings and downloads as a Parquet dataset partitioned by venue/symbol/date;
DuckDB reads it back and gets the same rows."""
import gzip
import json
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest

from binance_site import csv_text, trade_rows, zip_bytes
from pipeline.backtest.data import read_zip
from pipeline.collector.recorder import read_raw, replay
from pipeline.data import export as ex
from pipeline.records import TICK_DTYPE, Kind, Side, Venue
from registry_fixture import DEFAULT, write_cache
from pipeline.venues.binance.market import BinanceAdapter

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(120)
COLS = "seq, symbol_id, venue_id, flags, side, exch_ts, local_ts, mono_ts, price, qty, id"
DAY_NS = 86_400 * 10**9
T0 = 1723075200 * 10**9          # 2024-08-08 00:00 UTC


def read_back(out, where=""):
    con = duckdb.connect()
    q = (f"SELECT *, CAST(kind AS VARCHAR) AS kind_s FROM read_parquet('{out}/**/*.parquet', "
         f"hive_partitioning = true) {where} ORDER BY venue_id, symbol_id, local_ts, seq")
    return con.execute(q).fetchall(), [d[0] for d in con.description]


def make_records():
    btc, eth = DEFAULT.id(Venue.BINANCE, "BTCUSDT"), DEFAULT.id(Venue.BINANCE, "ETHUSDT")
    n = 40
    r = np.zeros(n, TICK_DTYPE)
    r["seq"] = np.arange(n)
    r["symbol"] = np.where(np.arange(n) % 2, btc, eth)
    r["venue"] = int(Venue.BINANCE)
    r["kind"] = np.where(np.arange(n) % 5 == 0, int(Kind.BID), int(Kind.TRADE))
    r["side"] = np.where(np.arange(n) % 3 == 0, int(Side.SELL), int(Side.BUY))
    r["exch_ts"] = T0 + np.arange(n) * (DAY_NS // 16)      # spans three days
    r["local_ts"] = r["exch_ts"] + 1_270_000
    r["mono_ts"] = 10**12 + np.arange(n)
    r["price"] = 60000 + np.arange(n) * 0.5
    r["qty"] = 0.001 * (1 + np.arange(n) % 4)
    r["id"] = 10**9 + np.arange(n)
    r["flags"] = 2
    stale = np.zeros(1, TICK_DTYPE)                       # a feed-wide control record
    stale["seq"], stale["venue"], stale["kind"] = n, int(Venue.BINANCE), int(Kind.STALE)
    stale["local_ts"] = T0 + 5
    return np.concatenate([r, stale])


def test_record_file_round_trips_through_duckdb(tmp_path):
    recs = make_records()
    src = tmp_path / "rec" / "ticks-000000.npy"
    src.parent.mkdir()
    np.save(src, recs)
    write_cache(src.parent / "instruments.json")       # the recording run's ids, as it leaves them
    out = tmp_path / "pq"
    rep = ex.export([tmp_path / "rec"], out)
    assert rep.rows == len(recs) and rep.skipped == {}
    parts = sorted(str(Path(f).relative_to(out).parent) for f in rep.files)
    assert parts == sorted({
        "venue=BINANCE/symbol=_all/date=2024-08-08",
        *(f"venue=BINANCE/symbol={s}/date=2024-08-{d}" for s in ("BTCUSDT", "ETHUSDT")
          for d in ("08", "09", "10"))})
    rows, names = read_back(out)
    got = {n: np.array([row[names.index(n)] for row in rows]) for n in names}
    want = np.sort(recs, order=["venue", "symbol", "local_ts", "seq"])
    for col, field in [("seq", "seq"), ("symbol_id", "symbol"), ("venue_id", "venue"),
                       ("flags", "flags"), ("side", "side"), ("exch_ts", "exch_ts"),
                       ("local_ts", "local_ts"), ("mono_ts", "mono_ts"), ("price", "price"),
                       ("qty", "qty"), ("id", "id")]:
        assert (got[col] == want[field]).all(), col
    assert list(got["kind_s"]) == [Kind(k).name for k in want["kind"]]
    assert list(got["symbol"][:1]) == ["_all"]
    # the partition columns are the names, the date is the UTC day of ts
    con = duckdb.connect()
    per_day = con.execute(
        f"SELECT symbol, date, count(*), min(ts) FROM read_parquet('{out}/**/*.parquet', "
        f"hive_partitioning = true) WHERE symbol = 'BTCUSDT' GROUP BY ALL ORDER BY date").fetchall()
    assert [(s, str(d)) for s, d, _, _ in per_day] == [
        ("BTCUSDT", "2024-08-08"), ("BTCUSDT", "2024-08-09"), ("BTCUSDT", "2024-08-10")]
    assert sum(c for _, _, c, _ in per_day) == 20
    assert all(str(t.date()) == str(d) for _, d, _, t in per_day)
    # exporting the same source again replaces its files: no duplicate rows
    ex.export([src], out)
    assert len(read_back(out)[0]) == len(recs)


def test_raw_recording_goes_through_the_real_parsers(tmp_path, vectors):
    with open(vectors / "binance/recorded/hftbacktest_btcusdt_2024-08-08_first1500.jsonl") as f:
        lines = [(d["local_ts_ns"], d["raw"].encode()) for d in map(json.loads, f)]
    lines = [(t, r) for t, r in lines if not r.startswith(b'{"lastUpdateId"')][:600]
    rec = tmp_path / "rec"
    rec.mkdir()
    # two rotated files of one session, as RawRecorder writes them
    for n, chunk in enumerate((lines[:300], lines[300:])):
        with gzip.open(rec / f"raw-binance-20240808T235415-{n:05d}.txt.gz", "wb") as g:
            g.write(b"".join(b"%d %s\n" % (t, r) for t, r in chunk))
    write_cache(rec / "instruments.json")
    rep = ex.export([rec], tmp_path / "pq")
    assert rep.skipped == {} and len(rep.sources) == 1
    syms = {i.symbol: i.id for i in DEFAULT.for_venue(Venue.BINANCE)}
    want = replay(read_raw(sorted(rec.glob("raw-*"))), BinanceAdapter(syms, int(Venue.BINANCE)))
    assert rep.rows == len(want) and (want["kind"] == Kind.TRADE).any()
    rows, names = read_back(tmp_path / "pq", "WHERE kind = 'TRADE'")
    t = np.sort(want[want["kind"] == Kind.TRADE], order=["venue", "symbol", "local_ts", "seq"])
    assert len(rows) == len(t)
    assert [r[names.index("id")] for r in rows] == list(t["id"])
    assert [r[names.index("price")] for r in rows] == list(t["price"])
    assert {r[names.index("symbol")] for r in rows} == {"BTCUSDT"}


def test_downloaded_zip_exports_the_archive_rows(tmp_path):
    d = tmp_path / "data" / "spot" / "daily" / "trades" / "SOLUSDT"
    d.mkdir(parents=True)
    rows = trade_rows(300, 1735689600000 - 300 * 250 // 2, micro=True)   # spans 2025-01-01 00:00
    z = d / "SOLUSDT-trades-2025-01-01.zip"
    z.write_bytes(zip_bytes("SOLUSDT-trades-2025-01-01.csv", csv_text(rows)))
    (d / "SOLUSDT-trades-2025-01-01.zip.CHECKSUM").write_text("ignored")
    out = tmp_path / "pq"
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "export.py"), "--out", str(out),
                        str(tmp_path / "data")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "exported 300 rows from 1 source(s)" in r.stdout
    got, names = read_back(out)
    want = read_zip(z)
    assert [g[names.index("id")] for g in got] == list(want["id"])
    assert [g[names.index("exch_ts")] for g in got] == list(want["exch_ts"])
    assert {(g[names.index("venue")], g[names.index("symbol")]) for g in got} == {
        ("BINANCE", "SOLUSDT")}
    assert {str(g[names.index("date")]) for g in got} == {"2024-12-31", "2025-01-01"}


def test_unreadable_sources_are_skipped_with_the_reason(tmp_path):
    (tmp_path / "ticks-000000.npy").write_bytes(b"not numpy")
    np.save(tmp_path / "other.npy", np.zeros(3, np.float64))
    (tmp_path / "BTCUSDT-trades-2024-08-08.zip").write_bytes(b"junk")
    rep = ex.export([tmp_path], tmp_path / "pq")
    assert rep.rows == 0 and len(rep.skipped) == 3
    assert any("not TICK_DTYPE" in v for v in rep.skipped.values())
    assert any("not a readable zip" in v for v in rep.skipped.values())
    with pytest.raises(ex.ExportError, match="no such file"):
        ex.export([tmp_path / "nope"], tmp_path / "pq")
