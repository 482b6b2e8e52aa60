"""The backtester reads Binance public-data .zip archives directly: trades and aggTrades, with
and without the header line, ms and (from 2025) µs timestamps."""
import zipfile

import numpy as np
import pytest

from binance_site import AGG_HEADER, TRADES_HEADER, csv_text, trade_rows, zip_bytes
from pipeline.backtest import data
from pipeline.records import Kind, Side

T0_MS = 1723075200000          # 2024-08-08 00:00 UTC


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_bytes(zip_bytes(name[:-4] + ".csv", text))
    return p


@pytest.mark.parametrize("micro", [False, True], ids=["ms", "us"])
@pytest.mark.parametrize("header", [False, True], ids=["bare", "header"])
@pytest.mark.parametrize("agg", [False, True], ids=["trades", "aggTrades"])
def test_zip_variants_read_as_the_same_records(tmp_path, agg, header, micro):
    rows = trade_rows(200, T0_MS, micro=micro, agg=agg)
    kind = "aggTrades" if agg else "trades"
    text = csv_text(rows, (AGG_HEADER if agg else TRADES_HEADER) if header else None)
    recs = data.load_records(write(tmp_path, f"BTCUSDT-{kind}-2024-08-08.zip", text))
    assert len(recs) == 200
    assert (recs["kind"] == (Kind.AGG_TRADE if agg else Kind.TRADE)).all()
    assert (recs["id"] == [r[0] for r in rows]).all()
    assert (recs["price"] == [float(r[1]) for r in rows]).all()
    assert (recs["qty"] == [float(r[2]) for r in rows]).all()
    t = np.array([r[5 if agg else 4] for r in rows], np.int64)
    assert (recs["exch_ts"] == (t * 1000 if micro else t * 1_000_000)).all()
    maker = np.array([r[6 if agg else 5] == "True" for r in rows])
    assert (recs["side"] == np.where(maker, Side.SELL, Side.BUY)).all()
    # the same data as a plain CSV gives the same records
    plain = tmp_path / "plain.csv"
    plain.write_text(text)
    assert data.load_records(plain).tobytes() == recs.tobytes()
    m = data.load_market(tmp_path / f"BTCUSDT-{kind}-2024-08-08.zip")
    assert len(m) == 200 and m.ts[0] == recs["exch_ts"][0]


def test_bad_archives_are_clear_errors(tmp_path):
    junk = tmp_path / "BTCUSDT-trades-2024-08-08.zip"
    junk.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(data.DataError, match="not a readable zip"):
        data.load_records(junk)
    two = tmp_path / "two.zip"
    with zipfile.ZipFile(two, "w") as z:
        z.writestr("a.csv", "1,2,3,4,5,True,True\n")
        z.writestr("b.csv", "1,2,3,4,5,True,True\n")
    with pytest.raises(data.DataError, match="expected one .csv inside"):
        data.load_records(two)
    empty = write(tmp_path, "e.zip", "")
    with pytest.raises(data.DataError, match="empty file"):
        data.load_records(empty)
    bad = write(tmp_path, "b.zip", "1,60000.0,0.1,6000,notatime,True,True\n")
    with pytest.raises(data.DataError, match="b.zip:b.csv: malformed CSV"):
        data.load_records(bad)
