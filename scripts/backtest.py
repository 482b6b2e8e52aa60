#!/usr/bin/env python3
r"""Backtest a strategy on record files, raw recordings or Binance trades/aggTrades CSV.

    scripts/backtest.py --data ticks.npy --strategy sma --fast 20 --slow 100 --report out/
    scripts/backtest.py --data trades.csv --sweep 5:50:5 50:300:25 --report out/
    scripts/backtest.py --data day1.npy day2.npy --strategy examples/strategies/momentum.py:Momentum \
        --param lookback=200 --param threshold_bps=5 --latency-ms 1 --report out/
    scripts/backtest.py --data ticks.npy --strategy my.module:MyStrategy \
        --grid lookback=50,100,200 --grid threshold_bps=2:10:2 [--ray ADDRESS]

Engines: the SMA (`--strategy sma`) runs on the vectorized one-pass kernel (the sweep fast path)
unless --engine event; every other strategy (a plug-in: "package.module:Class" or
"path/file.py:Class", as in [[strategy.instances]].kind) runs on the event engine, which feeds it
record batches and order events like live and fills its orders the way a venue would
(docs/backtest.md). A sweep takes two window lists for the SMA (--sweep FASTS SLOWS, each
"a,b,c" or "start:stop:step", inclusive), or --grid NAME=VALUES for any strategy's params.
Errors in the input (empty file, unsorted timestamps, NaN prices, bad params, a plug-in that
does not load, ...) are reported before any work, with exit status 2.
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
from pipeline.registry import DEFAULT as REGISTRY  # noqa: E402
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
    ap.add_argument("--data", required=True, nargs="+",
                    help=".npy record files, raw .txt.gz recordings, Binance CSV or public-data "
                         ".zip (several: merged in time order; event engine)")
    ap.add_argument("--strategy", default="sma",
                    help="sma, package.module:Class or path/file.py:Class (default sma)")
    ap.add_argument("--engine", default="auto", choices=["auto", "vector", "event"],
                    help="auto: vector for a single-file sma run, event otherwise")
    ap.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                    help="a strategy parameter (TOML value: 200, 5.0, true, \"x\"); repeatable")
    ap.add_argument("--grid", action="append", default=[], metavar="KEY=VALUES",
                    help="sweep a parameter: 'a,b,c' or 'start:stop:step'; repeatable (grid)")
    ap.add_argument("--ray", metavar="ADDRESS",
                    help="run a --grid sweep on this Ray cluster ('local' starts one here); "
                         "needs the optional extra pipeline[ray]")
    ap.add_argument("--start", help="first time (ns since the epoch or ISO 8601, UTC)")
    ap.add_argument("--end", help="end time, exclusive")
    ap.add_argument("--raw-venue", default="BINANCE",
                    help="wire format of raw .txt.gz recordings (BINANCE, OKX)")
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
                    help="VENUE:SYMBOL (e.g. BINANCE:BTCUSDT) when records hold several")
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
    m.add_argument("--latency-hist", dest="latency_histogram", metavar="PATH",
                   help="event engine: order latency drawn from this .hdr.json")
    m.add_argument("--risk-checks", dest="risk_checks", action="store_const", const=True,
                   help="event engine: the gateway's risk kernel with --config's [risk]")
    m.add_argument("--tick-size", type=float, dest="tick_size")
    m.add_argument("--step-size", type=float, dest="step_size")
    m.add_argument("--min-notional", type=float, dest="min_notional")
    ap.add_argument("--report", metavar="DIR", help="write report.txt, report.json and PNGs here")
    ap.add_argument("--json", metavar="PATH", help="write the metrics JSON here")
    ap.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return ap.parse_args(argv)


def model_from(args) -> cfgmod.BacktestConfig:
    base = cfgmod.load(args.config).backtest if args.config else cfgmod.BacktestConfig()
    over = {f.name: getattr(args, f.name) for f in dataclasses.fields(base)
            if getattr(args, f.name, None) is not None}
    return dataclasses.replace(base, **over)


def toml_value(text: str, what: str):
    import tomllib
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        if text and not any(c in text for c in "\"'=[]{}"):
            return text                     # a bare word: a string
        raise ValueError(f"{what}: {text!r} is not a TOML value") from None


def param_values(spec: str, name: str) -> list:
    if ":" in spec and all(p.strip().lstrip("-").replace(".", "", 1).isdigit()
                           for p in spec.split(":")):
        a, b, *c = (toml_value(x, name) for x in spec.split(":"))
        step = c[0] if c else 1
        if step <= 0:
            raise ValueError(f"--grid {name}: step must be > 0")
        out, v = [], a
        while v <= b + (1e-9 if isinstance(step, float) else 0):
            out.append(round(v, 12) if isinstance(v, float) else v)
            v += step
        return out
    return [toml_value(x.strip(), name) for x in spec.split(",") if x.strip()]


def kv(items: list[str], what: str) -> dict:
    out = {}
    for it in items:
        k, sep, v = it.partition("=")
        if not sep or not k.strip():
            raise ValueError(f"{what} {it!r}: use KEY=VALUE")
        out[k.strip()] = v.strip()
    return out


def use_event(args) -> bool:
    if args.engine != "auto":
        return args.engine == "event"
    return not (args.strategy == "sma" and len(args.data) == 1 and not args.start
                and not args.end and not args.data[0].endswith((".txt.gz", ".txt"))
                and not args.grid and not args.param and not args.risk_checks
                and not args.latency_histogram)


def main_event(args, model) -> int:
    from pipeline.backtest import feed, report as R, runner
    try:
        params = {k: toml_value(v, f"--param {k}") for k, v in kv(args.param, "--param").items()}
        if args.strategy == "sma":
            params = {"fast": args.fast, "slow": args.slow, "bar_ms": args.bar_ms,
                      "price_increment": model.price_increment, **params}
        grid = {k: param_values(v, k) for k, v in kv(args.grid, "--grid").items()}
        risk_cfg = cfgmod.load(args.config).risk if args.config else None
        base = Path(args.config).resolve().parent if args.config else None
        from pipeline.strategy import loader
        loader.resolve(args.strategy, base or Path.cwd(), where="--strategy")
        say(f"loading {', '.join(args.data)}", args.quiet)
        recs = feed.load_feed(args.data, feed.parse_time(args.start), feed.parse_time(args.end),
                              raw_venue=args.raw_venue)
    except (ValueError, KeyError, cfgmod.ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    t = recs["mono_ts"]
    say(f"{len(recs):,} records, {(int(t[-1]) - int(t[0])) / 1e9:,.1f} s of data", args.quiet)
    out = Path(args.report) if args.report else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    try:
        if grid:
            say(f"sweeping {len(runner.grid_cells(grid))} cells of {args.strategy}", args.quiet)
            res = runner.sweep_strategy(recs, args.strategy, grid, model, base_dict=params,
                                        symbol=args.symbol, risk_cfg=risk_cfg, base_dir=base,
                                        processes=args.processes,
                                        start_method=args.start_method, ray_address=args.ray)
            print(f"sweep of {args.strategy}: {len(res.rows)} cells in {res.seconds:.2f} s "
                  f"({res.workers} {res.backend} workers), ranked by {args.metric}")
            print(res.table(args.metric))
            doc = {"data": args.data, "strategy": args.strategy, "grid": grid,
                   "model": dataclasses.asdict(model), "best": res.best(args.metric),
                   "cells": res.rows, "seconds": res.seconds, "backend": res.backend}
            if out:
                (out / "sweep.txt").write_text(res.table(args.metric, top=len(res.rows)) + "\n")
                R.write_json(out / "sweep.json", doc)
            if args.json:
                R.write_json(args.json, doc)
            return 0
        t0 = time.perf_counter()
        run, st = runner.run_strategy(recs, args.strategy, params, model, symbol=args.symbol,
                                      risk_cfg=risk_cfg, base_dir=base)
    except (ValueError, KeyError, cfgmod.ConfigError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    dt = time.perf_counter() - t0
    say(f"event backtest done in {dt:.3f} s ({len(recs) / max(dt, 1e-9) / 1e6:,.2f} M "
        f"records/s, {run.events:,} order events)", args.quiet)
    warn = run.metrics.get("warning")
    title = f"{args.strategy} on {', '.join(args.data)}"
    print(R.text_table(run.metrics, title))
    if warn:
        print(f"warning: {warn}")
    if run.rejects:
        print("rejects: " + ", ".join(f"{k} {v}" for k, v in sorted(run.rejects.items())))
    doc = {"data": args.data, "strategy": args.strategy, "params": dataclasses.asdict(st.params),
           "engine": "event", "model": dataclasses.asdict(model), "metrics": run.metrics,
           "rejects": run.rejects, "positions": run.stats["positions"]}
    if out:
        (out / "report.txt").write_text(R.text_table(run.metrics, title) + "\n")
        R.write_json(out / "report.json", doc)
        R.write_trades_csv(out / "trades.csv", run.fills)
        R.plot_event_run(run, out, args.strategy, model.initial_capital)
        say(f"report written to {out} (report.json, trades.csv, equity/drawdown/position.png)",
            args.quiet)
    if args.json:
        R.write_json(args.json, doc)
    return 0


def main(argv=None) -> int:
    args = parse(argv)
    if use_event(args):
        try:
            model = model_from(args)
        except (ValueError, KeyError, cfgmod.ConfigError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return main_event(args, model)
    if args.strategy != "sma":
        print("error: --engine vector runs only the built-in sma", file=sys.stderr)
        return 2
    args.data = args.data[0]
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
            symbol = REGISTRY.id(venue, s)
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
    if res.metrics.get("warning"):
        print(f"warning: {res.metrics['warning']}")
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
