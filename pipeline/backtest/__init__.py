"""Vectorized backtester: inputs (data), the one-pass engine (engine + ext/backtest.pyx),
metrics, reports (text/JSON/PNG) and parameter sweeps on all cores."""
from pipeline.backtest.data import (DataError, Market, load_market, market_from_arrays,
                                    market_from_records)
from pipeline.backtest.engine import Result, run_sma
from pipeline.backtest.sweep import SweepResult, sweep

__all__ = ["DataError", "Market", "load_market", "market_from_arrays", "market_from_records",
           "Result", "run_sma", "SweepResult", "sweep"]
