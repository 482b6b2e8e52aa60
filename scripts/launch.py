#!/usr/bin/env python3
"""Start the whole pipeline from one TOML config: every role its own pinned process, supervised,
stopped in order on SIGINT/SIGTERM, a failure, or after --duration.

    python scripts/launch.py --config configs/demo.toml [--duration 30] [--summary-json PATH]
    python scripts/launch.py --config configs/demo.toml --preflight   # report the box and exit
    python scripts/launch.py --config configs/binance-testnet.toml --offline   # instruments from the cache

At start the launcher loads the instruments of every symbol the config names from its venue and
caches them in <run_dir>/instruments.json (pipeline/instruments.py); --preflight asks the venues
too and fails on a symbol a venue does not list.

Exit status: 0 the run ended as asked (--duration, Ctrl-C / SIGTERM) with every role well; 1 it
stopped because something failed; 2 a config or credentials error (nothing started); 3 it ended
as asked but a role failed for good during it (the run went on without it; the summary's
failed_roles names it).
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
    from pipeline.telemetry.report import summary_lines
    print()
    for line in summary_lines(s):
        print(line)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="pipeline TOML config")
    ap.add_argument("--duration", type=float, help="seconds to run (default: [launcher].duration; "
                    "0 = until Ctrl-C)")
    ap.add_argument("--summary-json", metavar="PATH", help="write the run summary as JSON")
    ap.add_argument("--plots", metavar="DIR", help="write PNG plots here: trading.png (price with orders and fills, "
                    "position, PnL) and hop_latency.png (hop latency CDFs)")
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
        from pipeline.telemetry import plots
        for p in plots.run_plots(cfg, summary, args.plots, args.config):
            print(f"plot: {p}")
    from pipeline.launcher.reporting import exit_status
    if summary.get("failed_roles"):
        print(f"roles that failed for good: {', '.join(summary['failed_roles'])}",
              file=sys.stderr)
    return exit_status(summary)


if __name__ == "__main__":
    sys.exit(main())
