"""python -m pipeline.strategy --config FILE: run the strategy process (see process.py)."""
from __future__ import annotations

import argparse
import json
import logging
import sys

from pipeline import config
from pipeline.bus.ring import RingError
from pipeline.instruments import InstrumentError
from pipeline.strategy.process import run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m pipeline.strategy",
        description="Strategy process: read the tick ring, run the configured strategies, send "
                    "signals to the gateway over the private channel <strategy.channel> "
                    "(the run's token from $PIPELINE_SIGNAL_TOKEN). "
                    "Stops on SIGTERM/SIGINT.")
    ap.add_argument("--config", required=True,
                    help="pipeline TOML file ([ring], [reader], [strategy])")
    ap.add_argument("--stats-json", metavar="PATH", help="write the final counters here as JSON")
    ap.add_argument("--log-level", default=None,
                    help="override [logging].level (default INFO)")
    args = ap.parse_args(argv)
    from pipeline import logs
    try:
        cfg = config.load(args.config)
    except config.ConfigError as exc:
        logs.setup_role("strategy", level=args.log_level)
        logging.getLogger("pipeline.strategy").error("%s", exc)
        return 2
    logs.setup_role("strategy", cfg, level=args.log_level)
    try:
        stats = run(cfg, source=args.config)
    except (config.ConfigError, RingError, ValueError, KeyError, InstrumentError) as exc:
        logging.getLogger("pipeline.strategy").error("%s", exc)
        return 2
    if args.stats_json:
        with open(args.stats_json, "w") as f:
            json.dump(stats, f, indent=1)
    return 0


if __name__ == "__main__":
    from pipeline.telemetry.role import exit_role
    exit_role(main)     # a late SIGTERM (the launcher's stop) cannot kill finalisation
