"""Backtester units: metrics on cases computed by hand, a hand-traced backtest, input errors named
before any work, record/CSV loading, sweep cells equal individual runs, reports are written."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from pipeline.backtest import metrics as M
from pipeline.backtest.data import (DataError, load_market, market_from_arrays,
                                    market_from_records, read_csv)
from pipeline.backtest.engine import run_sma
from pipeline.backtest.report import plot_heatmap, plot_run, text_table
from pipeline.backtest.sweep import sweep
from pipeline.config import BacktestConfig
from pipeline.records import TICK_DTYPE, Kind

pytestmark = pytest.mark.timeout(60)
S = 1_000_000_000
YEAR = M.YEAR_S


# ----------------------------------------------------------------------------- metrics by hand

def test_sharpe_sortino_by_hand():
    eq = [100.0, 110.0, 99.0, 108.9]                  # returns +10 %, -10 %, +10 %
    assert M.sharpe(eq, YEAR) == pytest.approx(1 / (2 * math.sqrt(3)))
    assert M.sortino(eq, YEAR) == pytest.approx(1 / math.sqrt(3))
    # periods of one day: annualized by sqrt(365)
    assert M.sharpe(eq, 86400) == pytest.approx(math.sqrt(365) / (2 * math.sqrt(3)))
    assert M.sharpe([100.0, 101.0], YEAR) is None      # one return: undefined
    assert M.sharpe([100.0, 100.0, 100.0], YEAR) is None
    assert M.sortino([100.0, 101.0, 102.0], YEAR) is None   # no downside


def test_cagr_and_drawdown_by_hand():
    assert M.cagr(100.0, 121.0, 2 * YEAR * S) == pytest.approx(0.1)
    assert M.cagr(100.0, 50.0, YEAR * S) == pytest.approx(-0.5)
    assert M.cagr(100.0, 1e9, 1) is None               # overflow: reported as n/a
    assert M.cagr(100.0, 120.0, 0) is None
    dd, dur = M.max_drawdown([100.0, 120.0, 90.0, 130.0, 65.0], np.arange(5) * S, 100.0)
    assert dd == pytest.approx(-0.5)                   # 130 → 65
    assert dur == 2 * S                                # 120 at t1, regained at t3
    dd, dur = M.max_drawdown([100.0, 100.0, 100.0], np.arange(3) * S, 100.0)
    assert (dd, dur) == (0.0, 0)


def test_backtest_traced_by_hand():
    # fast=1, slow=2: trend = sign(p_j - p_{j-1}). Capital 1000, fee 10 bps, no slippage.
    m = market_from_arrays([10.0, 9.0, 10.0, 12.0, 11.0, 13.0], np.arange(6) * S)
    model = BacktestConfig(fee_taker_bps=10, slippage_bps=0, initial_capital=1000,
                           price_increment=1.0, period_s=1.0)
    r = run_sma(m, 1, 2, model)
    # 100 % of the cash, sized so that price + fee fit: q = cash / (p * 1.001), cash → 0
    q1 = 1000 / (10 * 1.001)
    cash4 = q1 * 11 * (1 - 0.001)
    q2 = cash4 / (13 * 1.001)
    expect_eq = [1000, 1000, q1 * 10, q1 * 12, cash4, q2 * 13]
    np.testing.assert_allclose(r.equity, expect_eq, rtol=1e-12)
    assert list(r.fills["tick"]) == [2, 4, 5]
    np.testing.assert_allclose(r.fills["qty"], [q1, -q1, q2])
    np.testing.assert_allclose(r.fills["fee"], [q1 * 10 * 1e-3, q1 * 11 * 1e-3, q2 * 13 * 1e-3])
    assert r.stats["cash"] == pytest.approx(0.0, abs=1e-9)      # never below zero
    met = r.metrics
    assert met["total_return"] == pytest.approx(expect_eq[-1] / 1000 - 1)
    assert (met["trades"], met["win_rate"], met["fills"], met["signals"]) == (1, 1.0, 3, 3)
    assert met["max_drawdown"] == pytest.approx(expect_eq[-1] / expect_eq[3] - 1)
    assert met["max_drawdown_duration_s"] == 2.0
    assert met["exposure"] == pytest.approx(2 / 5)
    assert met["turnover"] == pytest.approx((q1 * 10 + q1 * 11 + q2 * 13) / 1000)
    np.testing.assert_allclose(r.samples, [1000] + expect_eq[1:], rtol=1e-12)
    assert "Total return" in text_table(met)


def test_long_short_reversal_and_fixed_size():
    m = market_from_arrays([10.0, 9.0, 10.0, 12.0, 11.0, 13.0], np.arange(6) * S)
    model = BacktestConfig(fee_taker_bps=0, slippage_bps=100, mode="long_short", sizing="fixed",
                           fixed_qty=2.0, initial_capital=1000, price_increment=1.0)
    r = run_sma(m, 1, 2, model)
    # j2 buy 2 @ 10.1; j4 sell 2 @ 10.89 (close) and sell 2 @ 10.89 (open short);
    # j5 buy 2 @ 13.13 (close) then buy 2 @ 13.13 (open long)
    assert list(r.fills["tick"]) == [2, 4, 4, 5, 5]
    np.testing.assert_allclose(r.fills["qty"], [2, -2, -2, 2, 2])
    np.testing.assert_allclose(r.fills["price"], [10.1, 10.89, 10.89, 13.13, 13.13])
    cash = 1000 - 20.2 + 21.78 + 21.78 - 26.26 - 26.26
    assert r.metrics["final_equity"] == pytest.approx(cash + 2 * 13)
    assert r.stats["trades"] == 2


# ----------------------------------------------------------------------------- inputs

def test_bad_inputs_are_named():
    with pytest.raises(DataError, match="no trades"):
        market_from_arrays([], [])
    with pytest.raises(DataError, match="row 2 is nan"):
        market_from_arrays([1.0, 2.0, np.nan], [1, 2, 3])
    with pytest.raises(DataError, match=r"not sorted: row 2 \(1\) is before row 1 \(5\)"):
        market_from_arrays([1.0, 2.0, 3.0], [1, 5, 1])
    with pytest.raises(DataError, match="must be > 0"):
        market_from_arrays([1.0, 0.0], [1, 2])
    with pytest.raises(ValueError, match="fast=100 >= slow=20"):
        run_sma(market_from_arrays([1.0, 2.0], [1, 2]), 100, 20)


def test_files_empty_header_only_wrong_dtype(tmp_path):
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(DataError, match="empty file"):
        load_market(tmp_path / "e.csv")
    (tmp_path / "h.csv").write_text("trade_id,price,qty,time,is_buyer_maker\n")
    with pytest.raises(DataError, match="no trades"):
        load_market(tmp_path / "h.csv")
    (tmp_path / "bad.csv").write_text("1,2,3\n")
    with pytest.raises(DataError, match="3 columns"):
        load_market(tmp_path / "bad.csv")
    np.save(tmp_path / "x.npy", np.zeros(3))
    with pytest.raises(DataError, match="expected TICK_DTYPE"):
        load_market(tmp_path / "x.npy")
    np.save(tmp_path / "z.npy", np.zeros(0, TICK_DTYPE))
    with pytest.raises(DataError, match="no records"):
        load_market(tmp_path / "z.npy")
    with pytest.raises(DataError, match="no such file"):
        load_market(tmp_path / "missing.npy")


def test_public_data_csv_without_header_ms_and_us(tmp_path):
    rows = ["1,100.5,0.1,10.05,1700000000000,True,True",
            "2,100.6,0.2,20.12,1700000000001,False,True"]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    r = read_csv(tmp_path / "t.csv")
    assert list(r["exch_ts"]) == [1_700_000_000_000_000_000, 1_700_000_000_001_000_000]
    assert list(r["side"]) == [-1, 1] and list(r["kind"]) == [Kind.TRADE] * 2
    agg = ["7,0.5,3,10,12,1700000000000000,False,True"]       # aggTrades, µs timestamps
    (tmp_path / "a.csv").write_text("\n".join(agg) + "\n")
    a = read_csv(tmp_path / "a.csv")
    assert a["kind"][0] == Kind.AGG_TRADE and a["exch_ts"][0] == 1_700_000_000_000_000_000


def test_records_select_instrument_and_turn_gaps_into_resets(tmp_path):
    r = np.zeros(8, TICK_DTYPE)
    r["kind"] = Kind.TRADE
    r["symbol"] = [1, 2, 1, 1, 1, 1, 2, 1]
    r["kind"][3] = Kind.GAP
    r["symbol"][3] = 0
    r["price"] = np.arange(8) + 1.0
    r["exch_ts"] = np.arange(8) + 10
    with pytest.raises(DataError, match="2 instruments"):
        market_from_records(r)
    m = market_from_records(r, symbol=1)
    assert list(m.price) == [1, 3, 5, 6, 8] and list(m.reset) == [0, 0, 1, 0, 0]
    np.save(tmp_path / "r.npy", r)
    assert list(load_market(tmp_path / "r.npy", symbol=1).price) == [1, 3, 5, 6, 8]


# ----------------------------------------------------------------------------- sweep & report

def _synthetic(n=20_000, seed=1):
    rng = np.random.default_rng(seed)
    p = np.round(100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n))), 2)
    return market_from_arrays(p, np.arange(n, dtype=np.int64) * 50_000_000)


@pytest.mark.parametrize("processes,bar_ms", [(1, 200), (2, 0)])
def test_sweep_cells_equal_individual_runs(processes, bar_ms):
    m = _synthetic()
    model = BacktestConfig(fee_taker_bps=5, slippage_bps=1, price_increment=0.01, period_s=60)
    res = sweep(m, [3, 10, 40], [20, 40, 80], model, processes=processes, bar_ms=bar_ms)
    cells = {(r["fast"], r["slow"]): r for r in res.rows}
    assert set(cells) == {(3, 20), (3, 40), (3, 80), (10, 20), (10, 40), (10, 80), (40, 80)}
    for (f, s), row in cells.items():
        one = run_sma(m, f, s, model, bar_ms=bar_ms).metrics
        assert {k: row[k] for k in one} == one
    g = res.grid("total_return")
    assert np.isnan(g[2, 0]) and g[0, 0] == cells[(3, 20)]["total_return"]
    assert res.best("total_return")["total_return"] == np.nanmax(g)


def test_reports_written(tmp_path):
    m = _synthetic(5_000)
    r = run_sma(m, 5, 30, BacktestConfig(price_increment=0.01))
    paths = plot_run(r, m, tmp_path)
    assert [p.name for p in paths] == ["price.png", "equity.png", "drawdown.png"]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = sweep(m, [2, 5], [10, 30], BacktestConfig(price_increment=0.01), processes=1)
    h = plot_heatmap(res.grid("sharpe"), res.fasts, res.slows, "sharpe", tmp_path / "h.png")
    assert h.stat().st_size > 1000


def test_cli_errors_before_work_and_report(tmp_path):
    script = "scripts/backtest.py"
    p = subprocess.run([sys.executable, script, "--data", "nope.npy", "--fast", "100",
                        "--slow", "20"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "fast=100 >= slow=20" in p.stderr and "loading" not in p.stderr
    bad = tmp_path / "u.csv"
    bad.write_text("1,100.5,0.1,10.05,1700000000005,True,True\n"
                   "2,100.6,0.2,20.12,1700000000001,False,True\n")
    p = subprocess.run([sys.executable, script, "--data", str(bad)], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 2 and "not sorted" in p.stderr
    m = _synthetic(3_000)
    r = np.zeros(len(m), TICK_DTYPE)
    r["kind"], r["price"], r["exch_ts"] = Kind.TRADE, m.price, m.ts
    np.save(tmp_path / "d.npy", r)
    p = subprocess.run([sys.executable, script, "--data", str(tmp_path / "d.npy"), "--fast", "5",
                        "--slow", "30", "--price-increment", "0.01", "--report",
                        str(tmp_path / "rep"), "--quiet"], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    doc = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert doc["metrics"]["ticks"] == 3_000 and "Sharpe" in p.stdout
    assert (tmp_path / "rep" / "equity.png").exists()


def test_price_range_beyond_exact_limit_is_refused():
    m = market_from_arrays([1.0, 1e7], [1, 2])
    model = BacktestConfig(price_increment=1e-8)
    with pytest.raises(DataError, match="too wide"):
        run_sma(m, 1000, 2000, model)                       # checked up front
    with pytest.raises(ValueError, match="beyond the exact int64 limit"):
        run_sma(m, 1000, 2000, model, checked=True)         # and by the kernel itself
    with pytest.raises(ValueError, match="too wide"):
        run_sma(m, 1000, 2000, model, checked=True, backend="python")


def test_half_spread_from_quotes():
    r = np.zeros(7, TICK_DTYPE)
    r["symbol"] = 1
    r["kind"] = [Kind.TRADE, Kind.BID, Kind.ASK, Kind.TRADE, Kind.ASK, Kind.TRADE, Kind.TRADE]
    r["price"] = [100.0, 99.0, 101.0, 100.0, 103.0, 102.0, 101.0]
    r["exch_ts"] = np.arange(7) + 1
    r["symbol"][6] = 2                                      # another instrument's trade
    m = market_from_records(r, symbol=1)
    # no quotes before trade 0; then bid 99 / ask 101; then bid 99 / ask 103
    np.testing.assert_allclose(m.half_spread, [0.0, 2 / 200, 4 / 202])
    assert m.info["trades_before_first_quote"] == 1
    plain = market_from_arrays(m.price, m.ts)
    with pytest.raises(ValueError, match="needs BID/ASK records"):
        run_sma(plain, 1, 2, BacktestConfig(spread="quotes", price_increment=1.0))
    # a constant spread equal to the quoted one gives the same fills
    m2 = market_from_arrays([10.0, 9.0, 10.0, 12.0, 11.0, 13.0], np.arange(6) * S)
    m2.half_spread = np.full(6, 0.002)
    a = run_sma(m2, 1, 2, BacktestConfig(spread="quotes", slippage_bps=1, price_increment=1.0))
    b = run_sma(m2, 1, 2, BacktestConfig(half_spread_bps=20, slippage_bps=1, price_increment=1.0))
    np.testing.assert_allclose(a.fills["price"], b.fills["price"], rtol=1e-15)
    np.testing.assert_allclose(a.fills["price"], [10 * 1.0021, 11 * (1 - 0.0021), 13 * 1.0021])
