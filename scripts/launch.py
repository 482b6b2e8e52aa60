#!/usr/bin/env python3
"""Start the whole pipeline from one TOML config: every role its own pinned process, supervised,
stopped in order on SIGINT/SIGTERM, a failure, or after --duration.

    python scripts/launch.py --config configs/demo.toml [--duration 30] [--summary-json PATH]
    python scripts/launch.py --config configs/demo.toml --preflight   # report the box and exit
    python scripts/launch.py --config configs/binance-testnet.toml --offline   # instruments from the cache

At start the launcher loads the instruments of every symbol the config names from its venue and
caches them in <run_dir>/instruments.json (pipeline/instruments.py); --preflight asks the venues
too and fails on a symbol a venue does not list.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pipeline import config as cfgmod  # noqa: E402
from pipeline.launcher import preflight, supervisor  # noqa: E402


def print_summary(s: dict) -> None:
    t = s["totals"]
    print(f"\nrun: {s['seconds']:.1f} s, stopped by {s['stop_reason']}"
          f"{' (gateway HALTED)' if s['halted'] else ''}")
    print(f"ticks {t['ticks']:,} | signals {t['signals']:,} | orders {t['orders']:,} | "
          f"fills {t['fills']:,} | rejects {t['rejects']:,} | PnL {t['pnl']:,.4f}")
    if "orders_by_state" in t:
        print("orders by state: " + ", ".join(f"{k} {v}" for k, v in
                                              sorted(t["orders_by_state"].items())))
    if s["hops"]:
        print(f"{'hop':<22}{'count':>9}" + "".join(f"{h:>11}" for h in
                                                   ("p50", "p90", "p99", "p99.9", "max")))
        for hop, h in s["hops"].items():
            print(f"{hop:<22}{h['count']:>9,}" + "".join(
                f"{h[k] / 1000:>9.1f}us" for k in ("p50", "p90", "p99", "p999", "max")))
    for name, r in s["roles"].items():
        if r["problem"] or (r["exit_code"] not in (0, None)):
            print(f"role {name}: exit {r['exit_code']} {r['problem']}")
    if s.get("logs"):
        print(f"logs: {s['logs']}/<role>.log (a role's own stdout/stderr, if any: <role>.out)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="pipeline TOML config")
    ap.add_argument("--duration", type=float, help="seconds to run (default: [launcher].duration; "
                    "0 = until Ctrl-C)")
    ap.add_argument("--summary-json", metavar="PATH", help="write the run summary as JSON")
    ap.add_argument("--plots", metavar="DIR", help="write PNG plots (hop latency CDFs) here")
    ap.add_argument("--preflight", action="store_true",
                    help="print the preflight report (the box, the venues' instruments) and exit")
    ap.add_argument("--offline", action="store_true",
                    help="do not ask the venues for instruments: use <run_dir>/instruments.json")
    ap.add_argument("-v", "--verbose", action="store_true", help="log launcher events")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        cfg = cfgmod.load(args.config)
        # every check that needs no process; its warnings: placement, strategies the gateway
        # does not trade
        launcher = supervisor.Launcher(cfg, args.config)
        launcher.check_tradable()
        warnings = launcher.placement_warnings
    except (cfgmod.ConfigError, ValueError, supervisor.LaunchError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.preflight:
        for line in preflight.report().lines():
            print(line)
        for w in warnings:
            print(f"  WARNING: {w}")
        if not args.offline:
            from pipeline.instruments import InstrumentError
            from pipeline.launcher import venues
            try:
                for line in venues.preflight_lines(cfg):
                    print(line)
            except InstrumentError as exc:
                print(f"error: {args.config}: {exc}", file=sys.stderr)
                return 2
        return 0
    try:
        summary = supervisor.run(cfg, args.config, duration=args.duration,
                                 summary_json=args.summary_json, offline=args.offline)
    except supervisor.LaunchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print_summary(summary)
    if args.plots:
        from pipeline.telemetry import latency, plots
        hists = latency.load(sorted(Path(cfg.launcher.run_dir).glob("*.hdr.json")))
        if hists:
            p = plots.hop_cdfs({"this run": hists}, Path(args.plots) / "hop_latency.png",
                               f"hop latency, {args.config}")
            print(f"plot: {p}")
    failed = summary["stop_reason"] not in ("duration", "SIGINT", "SIGTERM")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
