#!/usr/bin/env python3
"""Benchmark the backtester: SMA(20, 100) long/flat, 10 bps fee, 1 bp slippage, on 1 M and 10 M
synthetic ticks (seeded log-normal random walk on a 0.01 grid, one tick per ms).

Ours: pipeline.backtest.engine.run_sma (range check + the one-pass Cython kernel + metrics, with
the full equity curve kept). Baselines, measured in the same run:
  naive_numpy   a straightforward numpy implementation: float cumsum SMAs, position = fast > slow,
                per-tick returns, fees on position changes, cumprod equity
  numpy_twin    our own vectorized numpy twin (pipeline/backtest/kernel_py.py), same results
Throughput is the best of --reps runs. Peak memory: first of all (before this process allocates
anything) a fresh child process builds the 10 M input (prices float64 + timestamps int64 =
16 bytes/tick, generated in chunks), runs ours once and reports its peak RSS (VmHWM);
`peak_rss_over_input` divides that peak, interpreter and numpy included, by the input's bytes.

Event engine (pipeline/backtest/events.py), same run: the momentum example
(examples/strategies/momentum.py, vectorised Python, lookback 200, 30 bps) on 10 M synthetic
trades (`event_engine_ticks_per_s_momentum`), the SMA through the event engine
(`event_engine_ticks_per_s_sma`, its compiled batch kernel), the quoting example on a synthetic
L2 session of best bid/ask records and trades (`event_engine_events_per_s_quoting`: records plus
order events per second; ~19 order events per 100 records) and on a recorded one
(`event_engine_events_per_s_quoting_recorded`: Binance BTCUSDT depth@100ms, bookTicker and
trades, 11 minutes of 2024-08-08/09 from tests/data, replayed through the collector's decoder and
book sync as `scripts/backtest.py` reads a raw recording; ~2 order events per 100 records),
and the baseline `python_loop_ticks_per_s`: the same momentum rule as a
plain per-tick Python loop over the same records, as a per-record strategy runs it (reads each
record's kind, seq, mono_ts and price, keeps its own deque window; no engine, no venue).
--quick runs everything once on 1 M records instead of 10 M (quoting: 200 k; figures are then
marked quick in config.event_engine_quick).

    flock /tmp/bench.lock .venv/bin/python scripts/bench_backtest.py [--quick] [--json PATH]

--json PATH keeps the keys already in PATH that this run does not write.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

FAST, SLOW = 20, 100
FEE_BPS, SLIP_BPS = 10.0, 1.0
CAPITAL = 10_000.0
SEED = 20240809


def synthetic(n: int, seed: int = SEED, chunk: int = 1 << 20) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random walk, built in chunks so no n-sized temporaries exist."""
    rng = np.random.default_rng(seed)
    price = np.empty(n, dtype=np.float64)
    ts = np.empty(n, dtype=np.int64)
    level = np.log(30_000.0)
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        steps = rng.normal(0.0, 1e-4, hi - lo)
        np.cumsum(steps, out=steps)
        steps += level
        level = float(steps[-1])
        np.exp(steps, out=steps)
        np.round(steps, 2, out=price[lo:hi])
        ts[lo:hi] = np.arange(lo, hi, dtype=np.int64)
    ts *= 1_000_000
    ts += 1_700_000_000_000_000_000
    return price, ts


def naive_numpy(price: np.ndarray, fast: int, slow: int, fee: float, slip: float) -> float:
    """The textbook vectorized SMA crossover backtest; returns the final equity."""
    c = np.concatenate(([0.0], np.cumsum(price)))
    f = (c[fast:] - c[:-fast]) / fast
    s = (c[slow:] - c[:-slow]) / slow
    f = f[slow - fast:]
    pos = (f > s).astype(np.float64)
    px = price[slow - 1:]
    ret = np.diff(px) / px[:-1]
    trades = np.abs(np.diff(pos, prepend=0.0))
    strat = pos[:-1] * ret - trades[:-1] * (fee + slip)
    equity = CAPITAL * np.cumprod(1.0 + strat)
    return float(equity[-1])


def model():
    from pipeline.config import BacktestConfig
    return BacktestConfig(fee_taker_bps=FEE_BPS, slippage_bps=SLIP_BPS, mode="long_flat",
                          initial_capital=CAPITAL, price_increment=0.01, period_s=60.0)


def best_of(fn, reps: int) -> float:
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def peak_rss() -> int:
    """This process image's peak RSS (VmHWM). Not getrusage's ru_maxrss: Linux carries the
    parent's high-water mark across fork+exec into it, which would charge us the parent's arrays."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def rss_child(n: int) -> dict:
    """Runs in a fresh process: peak RSS of building the input and one full backtest."""
    from pipeline.backtest.data import Market
    from pipeline.backtest.engine import run_sma
    base = peak_rss()
    price, ts = synthetic(n)
    m = Market(price, ts, np.empty(0, np.uint8), "synthetic")
    r = run_sma(m, FAST, SLOW, model(), keep_equity=True)
    peak = peak_rss()
    return {"peak_rss_bytes": peak, "rss_after_imports_bytes": base,
            "input_bytes": int(price.nbytes + ts.nbytes), "final_equity": r.metrics["final_equity"]}


def load_example(name: str, cls: str):
    from pipeline.strategy import loader
    return loader.resolve(f"examples/strategies/{name}.py:{cls}",
                          Path(__file__).resolve().parent.parent)


def event_benchmarks(n: int, reps: int, n_quoting: int | None = None
                     ) -> tuple[dict, dict, dict]:
    """The event engine's keys (see the module doc) on n records."""
    from pipeline.backtest import synth
    from pipeline.backtest.events import EventEngine
    from pipeline.config import BacktestConfig
    from pipeline.records import Venue
    from pipeline.registry import DEFAULT as REG
    from pipeline.strategy.sma import SmaCrossover, SmaParams
    sid = REG.id(Venue.SIM, "BTCUSDT")
    mod = BacktestConfig(fee_taker_bps=FEE_BPS, slippage_bps=SLIP_BPS, latency_ms=1.0,
                         sizing="fixed", fixed_qty=0.1, initial_capital=1e7,
                         price_increment=0.01)
    Momentum = load_example("momentum", "Momentum")
    from pipeline.strategy import loader
    loop = loader.resolve("examples/strategies/momentum.py:Momentum",
                          Path(__file__).resolve().parent.parent)
    python_loop = sys.modules[loop.__module__].python_loop
    recs = synth.trades(n, seed=SEED)
    res, base, extra = {}, {}, {}

    def momentum():
        st = Momentum(Momentum.Params(lookback=200, threshold_bps=30.0), venue=int(Venue.SIM),
                      symbol=sid, qty=0.1)
        return EventEngine(recs, [st], mod).run()
    run = momentum()
    res["event_engine_ticks_per_s_momentum"] = n / best_of(momentum, reps)
    extra["momentum_fills"] = int(run.metrics["fills"])

    def sma():
        st = SmaCrossover(SmaParams(FAST, SLOW, 0.01), venue=int(Venue.SIM), symbol=sid, qty=0.1)
        return EventEngine(recs, [st], mod).run()
    res["event_engine_ticks_per_s_sma"] = n / best_of(sma, reps)
    base["python_loop_ticks_per_s"] = n / best_of(lambda: python_loop(recs, 200, 30.0), 1)
    recs = None

    Quoter = load_example("quoting", "Quoter")
    n = n_quoting or n
    l2 = synth.l2_session(n, seed=SEED)
    n = len(l2)
    qmod = BacktestConfig(fee_maker_bps=0.0, fee_taker_bps=FEE_BPS, latency_ms=1.0,
                          initial_capital=1e7, sizing="fixed")
    counts = {}

    def quoting():
        st = Quoter(Quoter.Params(size=0.01, max_inventory=0.05, tick=0.01),
                    venue=int(Venue.SIM), symbol=sid)
        r = EventEngine(l2, [st], qmod).run()
        counts["events"] = r.events
        return r
    dq = best_of(quoting, reps)
    res["event_engine_events_per_s_quoting"] = (n + counts["events"]) / dq
    extra["quoting_order_events"] = counts["events"]
    extra["event_engine_records"] = n
    l2 = None

    # a recorded L2 session: Binance BTCUSDT, depth@100ms + bookTicker + trades, replayed
    # through the collector's decoder and book sync (tests/data, hftbacktest's recording)
    rec, rsid = recorded_l2()
    rcounts = {}

    def quoting_recorded():
        st = Quoter(Quoter.Params(size=0.001, max_inventory=0.005, tick=0.01),
                    venue=int(Venue.BINANCE), symbol=rsid)
        r = EventEngine(rec, [st], qmod).run()   # the synthetic run's model
        rcounts["events"], rcounts["fills"] = r.events, int(r.metrics["fills"])
        return r
    dr = best_of(quoting_recorded, reps)
    res["event_engine_events_per_s_quoting_recorded"] = (len(rec) + rcounts["events"]) / dr
    extra["quoting_recorded_records"] = int(len(rec))
    extra["quoting_recorded_order_events"] = rcounts["events"]
    extra["quoting_recorded_fills"] = rcounts["fills"]
    return res, base, extra


RECORDING = ["tests/data/binance/recorded/hftbacktest_spot/btcusdt_20240808.gz",
             "tests/data/binance/recorded/hftbacktest_spot/btcusdt_20240809.gz"]


def recorded_l2() -> tuple[np.ndarray, int]:
    """The recorded BTCUSDT session as the backtester reads a raw recording (.txt.gz)."""
    import shutil
    import tempfile
    from pipeline.backtest import feed
    from pipeline.records import Venue
    from pipeline.registry import DEFAULT as REG
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="bench-bt-") as d:
        files = []
        for i, f in enumerate(RECORDING):
            files.append(str(Path(d) / f"btcusdt-{i}.txt.gz"))
            shutil.copy(root / f, files[-1])
        recs = feed.load_feed(files, raw_venue="BINANCE")
    return recs, REG.id(Venue.BINANCE, "BTCUSDT")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one repetition per measurement")
    ap.add_argument("--reps", type=int, default=None, help="repetitions (default 5; --quick 1)")
    ap.add_argument("--json", metavar="PATH", help="write the result object here")
    ap.add_argument("--rss-child", type=int, metavar="N", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.rss_child:
        print(json.dumps(rss_child(args.rss_child)))
        return 0
    reps = args.reps or (1 if args.quick else 5)

    from pipeline.backtest.data import Market
    from pipeline.backtest.engine import run_sma
    mdl = model()
    rss_results: dict = {}
    child = subprocess.run([sys.executable, os.path.abspath(__file__), "--rss-child",
                            "10000000"], capture_output=True, text=True, check=True)
    rss = json.loads(child.stdout)
    rss_results["peak_rss_bytes_10m"] = rss["peak_rss_bytes"]
    rss_results["input_bytes_10m"] = rss["input_bytes"]
    rss_results["peak_rss_over_input"] = rss["peak_rss_bytes"] / rss["input_bytes"]
    rss_results["rss_after_imports_bytes"] = rss["rss_after_imports_bytes"]
    results, baselines, extra = {}, {}, {}
    for label, n in (("1m", 1_000_000), ("10m", 10_000_000)):
        price, ts = synthetic(n)
        m = Market(price, ts, np.empty(0, np.uint8), "synthetic")
        run_sma(m, FAST, SLOW, mdl)                           # warm-up (page faults, imports)
        dt = best_of(lambda: run_sma(m, FAST, SLOW, mdl, keep_equity=True), reps)
        results[f"ticks_per_s_{label}"] = n / dt
        r = run_sma(m, FAST, SLOW, mdl)
        extra[f"signals_{label}"] = r.metrics["signals"]
        extra[f"final_equity_{label}"] = r.metrics["final_equity"]
        dn = best_of(lambda: naive_numpy(price, FAST, SLOW, FEE_BPS / 1e4, SLIP_BPS / 1e4), reps)
        baselines[f"naive_numpy_ticks_per_s_{label}"] = n / dn
        if label == "10m":
            baselines["naive_numpy_ticks_per_s"] = n / dn
            dt2 = best_of(lambda: run_sma(m, FAST, SLOW, mdl, backend="python"), max(1, reps // 2))
            baselines["numpy_twin_ticks_per_s"] = n / dt2
        m = price = ts = None                                # free before the next size

    results.update(rss_results)
    ev_n = 1_000_000 if args.quick else 10_000_000
    ev_res, ev_base, ev_extra = event_benchmarks(ev_n, max(1, reps // 2),
                                                 200_000 if args.quick else None)
    results.update(ev_res)
    baselines.update(ev_base)
    extra.update(ev_extra)
    extra["event_engine_quick"] = bool(args.quick)
    ratios = {"ours_over_naive": results["ticks_per_s_10m"] / baselines["naive_numpy_ticks_per_s"],
              "ours_over_numpy_twin": results["ticks_per_s_10m"]
              / baselines["numpy_twin_ticks_per_s"]}
    doc = {"name": "bench_backtest", "python": platform.python_version(),
           "cpu_count": os.cpu_count(), "results": results, "baselines": baselines,
           "ratios": ratios,
           "config": {"fast": FAST, "slow": SLOW, "fee_bps": FEE_BPS, "slippage_bps": SLIP_BPS,
                      "mode": "long_flat", "reps": reps, "seed": SEED, **extra}}

    print(f"SMA({FAST},{SLOW}) long/flat, {FEE_BPS:g} bps fee, {SLIP_BPS:g} bp slippage "
          f"(best of {reps})")
    print(f"{'metric':<34}{'value':>18}")
    for k, v in [("ours 1M ticks/s", results["ticks_per_s_1m"]),
                 ("ours 10M ticks/s", results["ticks_per_s_10m"]),
                 ("naive numpy 1M ticks/s", baselines["naive_numpy_ticks_per_s_1m"]),
                 ("naive numpy 10M ticks/s", baselines["naive_numpy_ticks_per_s"]),
                 ("numpy twin 10M ticks/s", baselines["numpy_twin_ticks_per_s"]),
                 ("ours / naive (10M)", ratios["ours_over_naive"]),
                 ("peak RSS 10M (MiB)", results["peak_rss_bytes_10m"] / 2**20),
                 ("input 10M (MiB)", results["input_bytes_10m"] / 2**20),
                 ("peak RSS / input", results["peak_rss_over_input"])]:
        print(f"{k:<34}{v:>18,.2f}")
    for k, v in [("event engine momentum ticks/s", results["event_engine_ticks_per_s_momentum"]),
                 ("event engine SMA ticks/s", results["event_engine_ticks_per_s_sma"]),
                 ("event engine quoting events/s",
                  results["event_engine_events_per_s_quoting"]),
                 ("  on the recorded L2 session",
                  results["event_engine_events_per_s_quoting_recorded"]),
                 ("python loop (momentum rule) ticks/s", baselines["python_loop_ticks_per_s"])]:
        print(f"{k:<34}{v:>18,.2f}")
    target_ok = results["ticks_per_s_10m"] >= 30e6 and results["peak_rss_over_input"] <= 3.0
    print("targets (>= 30 M ticks/s at 10 M, peak <= 3x input): "
          + ("met" if target_ok else "MISSED"))
    ev_ok = (results["event_engine_ticks_per_s_momentum"] >= 5e6
             and results["event_engine_events_per_s_quoting"] >= 5e5
             and results["event_engine_events_per_s_quoting_recorded"] >= 5e5)
    print(f"event engine targets (momentum >= 5 M ticks/s, quoting >= 500 k events/s, "
          f"synthetic and recorded{', QUICK: 1 M records' if args.quick else ''}): " + ("met" if ev_ok else "MISSED"))
    if args.json:
        from pipeline.backtest.report import merge_bench_json
        merge_bench_json(args.json, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
