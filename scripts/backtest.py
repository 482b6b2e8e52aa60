#!/usr/bin/env python3
"""Backtest the SMA crossover on a record file or a Binance trades/aggTrades CSV.

    scripts/backtest.py --data ticks.npy --strategy sma --fast 20 --slow 100 --report out/
    scripts/backtest.py --data trades.csv --sweep 5:50:5 50:300:25 --report out/

A sweep takes two window lists, fast then slow, each "a,b,c" or "start:stop:step" (inclusive).
Errors in the input (empty file, unsorted timestamps, NaN prices, fast >= slow, ...) are reported
before any work, with exit status 2.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline import config as cfgmod  # noqa: E402
from pipeline.backtest import data as D  # noqa: E402
from pipeline.backtest.engine import check, run_sma  # noqa: E402
from pipeline.backtest.sweep import sweep  # noqa: E402
from pipeline.records import Venue  # noqa: E402
from pipeline.strategy.sma import check_windows  # noqa: E402

T0 = time.perf_counter()


def say(msg: str, quiet: bool = False) -> None:
    if not quiet:
        print(f"[{time.perf_counter() - T0:7.2f} s] {msg}", file=sys.stderr, flush=True)


def windows(spec: str) -> list[int]:
    try:
        if ":" in spec:
            a, b, *c = (int(x) for x in spec.split(":"))
            step = c[0] if c else 1
            if step <= 0:
                raise ValueError
            return list(range(a, b + 1, step))
        return [int(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"bad window list {spec!r}: use 'a,b,c' or 'start:stop:step'") from None


def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True,
                    help=".npy TICK_DTYPE record file, Binance CSV or Binance public-data .zip")
    ap.add_argument("--strategy", default="sma", choices=["sma"])
    ap.add_argument("--fast", type=int, default=20, help="fast SMA window, trades (default 20)")
    ap.add_argument("--slow", type=int, default=100, help="slow SMA window, trades (default 100)")
    ap.add_argument("--bar-ms", type=int, default=0,
                    help="SMAs over time-bar closes of this many ms (default 0: every trade)")
    ap.add_argument("--sweep", nargs=2, metavar=("FASTS", "SLOWS"), type=windows,
                    help="sweep a grid instead of one run")
    ap.add_argument("--metric", default="sharpe", help="sweep: rank and heatmap by (sharpe)")
    ap.add_argument("--processes", type=int, default=None, help="sweep workers (default: cores)")
    ap.add_argument("--start-method", default="spawn", choices=["spawn", "forkserver", "fork"])
    ap.add_argument("--config", help="TOML file whose [backtest] section gives the defaults")
    ap.add_argument("--symbol",
                    help="VENUE:SYMBOL (e.g. BINANCE:BTCUSDT) when records hold several; its id "
                         "comes from the recording run's instruments.json (--instruments)")
    ap.add_argument("--instruments", metavar="PATH",
                    help="the recording run's instruments.json (default: beside --data or in its "
                         "parent directory, where the launcher writes it)")
    m = ap.add_argument_group("model (override [backtest])")
    m.add_argument("--fee-bps", type=float, dest="fee_taker_bps", help="taker fee, bps")
    m.add_argument("--maker-fee-bps", type=float, dest="fee_maker_bps", help="maker fee, bps")
    m.add_argument("--liquidity", choices=["taker", "maker"])
    m.add_argument("--slippage-bps", type=float, dest="slippage_bps")
    m.add_argument("--half-spread-bps", type=float, dest="half_spread_bps")
    m.add_argument("--spread", choices=["constant", "quotes"],
                   help="half-spread: constant (--half-spread-bps) or from BID/ASK records")
    m.add_argument("--latency-ms", type=float, dest="latency_ms")
    m.add_argument("--mode", choices=["long_flat", "long_short"])
    m.add_argument("--sizing", choices=["fraction", "fixed"])
    m.add_argument("--fraction", type=float)
    m.add_argument("--qty", type=float, dest="fixed_qty", help="sizing=fixed: position size")
    m.add_argument("--capital", type=float, dest="initial_capital")
    m.add_argument("--period-s", type=float, dest="period_s", help="returns grid for Sharpe")
    m.add_argument("--price-increment", type=float, dest="price_increment")
    ap.add_argument("--report", metavar="DIR", help="write report.txt, report.json and PNGs here")
    ap.add_argument("--json", metavar="PATH", help="write the metrics JSON here")
    ap.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return ap.parse_args(argv)


def model_from(args) -> cfgmod.BacktestConfig:
    base = cfgmod.load(args.config).backtest if args.config else cfgmod.BacktestConfig()
    over = {f.name: getattr(args, f.name) for f in dataclasses.fields(base)
            if getattr(args, f.name, None) is not None}
    return dataclasses.replace(base, **over)



def recording_registry(args):
    """The instruments of the run that recorded --data (ids are per run: pipeline/instruments.py)."""
    from pipeline.instruments import CACHE_NAME, read_cache
    if args.instruments:
        path = Path(args.instruments)
    else:
        data = Path(args.data).resolve()
        found = [d / CACHE_NAME for d in (data.parent, data.parent.parent) if (d / CACHE_NAME).exists()]
        if not found:
            raise ValueError(f"--symbol: no {CACHE_NAME} beside {args.data} or in its parent "
                             "directory; pass the recording run's --instruments PATH")
        path = found[0]
    return read_cache(path)[0]

def main(argv=None) -> int:
    args = parse(argv)
    # imported here, not at the top: sweep workers (spawn) re-import this file and need no plots
    from pipeline.backtest import report as R
    try:
        model = model_from(args)
        if args.bar_ms < 0:
            raise ValueError(f"--bar-ms must be >= 0, got {args.bar_ms}")
        if args.sweep:
            fasts, slows = args.sweep
            if not fasts or not slows:
                raise ValueError("--sweep needs non-empty FASTS and SLOWS lists")
            if not any(f < s for f in fasts for s in slows):
                raise ValueError(f"--sweep: no cell has fast < slow (fast {fasts}, slow {slows})")
            for f in fasts:
                if f < 1:
                    raise ValueError(f"SMA fast window must be >= 1, got {f}")
        else:
            check_windows(args.fast, args.slow)
            check(args.fast, args.slow, model)
        symbol = venue = None
        if args.symbol:
            v, _, s = args.symbol.partition(":")
            try:
                venue = int(Venue[v.upper()])
            except KeyError:
                raise ValueError(f"--symbol: unknown venue {v!r}") from None
            symbol = recording_registry(args).id(venue, s)
        say(f"loading {args.data}", args.quiet)
        m = D.load_market(args.data, symbol=symbol, venue=venue)
        say(f"{len(m):,} trades, {m.info.get('resets', 0)} resets, "
            f"{(m.ts[-1] - m.ts[0]) / 1e9:,.1f} s of data", args.quiet)
        if args.sweep:
            cells = sum(1 for f in fasts for s in slows if f < s)
            worst = max(((f, s) for f in fasts for s in slows if f < s), key=lambda c: c[0] * c[1])
        else:
            worst = (args.fast, args.slow)
        D.check_price_range(m, worst[0], worst[1], model.price_increment)
    except (ValueError, KeyError, cfgmod.ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    out = Path(args.report) if args.report else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    if args.sweep:
        last = [0.0]

        def progress(k: int, n: int) -> None:
            now = time.perf_counter()
            if k == n or now - last[0] > 1.0:
                last[0] = now
                say(f"sweep {k}/{n} cells ({100 * k / n:.0f} %)", args.quiet)
        say(f"sweeping {cells} cells on {args.processes or 'all'} cores", args.quiet)
        res = sweep(m, fasts, slows, model, processes=args.processes,
                    start_method=args.start_method, bar_ms=args.bar_ms,
                    progress=progress)
        print(f"SMA sweep on {args.data}: {len(res.rows)} cells in {res.seconds:.2f} s "
              f"({res.processes} processes), ranked by {args.metric}")
        print(res.table(args.metric))
        doc = {"data": args.data, "bar_ms": args.bar_ms, "model": dataclasses.asdict(model),
               "fasts": res.fasts,
               "slows": res.slows, "metric": args.metric, "best": res.best(args.metric),
               "cells": res.rows, "seconds": res.seconds}
        if out:
            (out / "sweep.txt").write_text(res.table(args.metric, top=len(res.rows)) + "\n")
            R.write_json(out / "sweep.json", doc)
            R.plot_heatmap(res.grid(args.metric), res.fasts, res.slows, args.metric,
                           out / f"heatmap_{args.metric}.png")
            say(f"report written to {out}", args.quiet)
        if args.json:
            R.write_json(args.json, doc)
        return 0

    say(f"running SMA({args.fast}, {args.slow})", args.quiet)
    t = time.perf_counter()
    res = run_sma(m, args.fast, args.slow, model, keep_equity=bool(out), bar_ms=args.bar_ms,
                  checked=True)
    dt = time.perf_counter() - t
    say(f"backtest done in {dt:.3f} s ({len(m) / max(dt, 1e-9) / 1e6:,.1f} M ticks/s)", args.quiet)
    table = R.text_table(res.metrics, f"SMA({args.fast}, {args.slow}) on {args.data}")
    print(table)
    doc = {"data": args.data, "strategy": "sma", "fast": args.fast, "slow": args.slow,
           "bar_ms": args.bar_ms,
           "model": dataclasses.asdict(model), "metrics": res.metrics}
    if out:
        (out / "report.txt").write_text(table + "\n")
        R.write_json(out / "report.json", doc)
        R.plot_run(res, m, out, f"SMA({args.fast}, {args.slow})")
        say(f"report written to {out}", args.quiet)
    if args.json:
        R.write_json(args.json, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
