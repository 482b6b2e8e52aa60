#!/usr/bin/env python3
"""A chaos soak anyone can run: the demo pipeline against a simulator that outlives it, for
--minutes, with roles SIGKILLed and SIGSTOPped at random (seeded), 429 bursts, 5xx replies,
dropped market-data connections, late replies and depth gaps injected at the simulator. At the
end it checks and prints:

  orders_mismatched         venue orders whose status or executed quantity differ from the
                            gateway's journal, open orders that differ, positions that differ
                            from what the venue's balances say (must be 0)
  untraced_venue_orders     venue orders without an accepted signal (a passed risk check) and an
                            order record in the journal (must be 0)
  leaked_segments, orphans  /dev/shm segments and processes left after the end (must be 0)
  max_rss_growth_pct        the largest RSS growth of a process after its first --rss-warmup-s
  torn_reads                tick records handed to a verifying reader that are not whole (0)
  recovered_without_manual_reset   collector deaths healed by its restart policy

A gateway or strategy kill HALTs for good and ends that launcher run, as it must; the soak does
what an operator does then (`python -m pipeline.gateway reset`, counted in manual_resets) and starts
the launcher again, and the gateway rebuilds its state from its journal and the venue. Exit status 0 when every must-be-zero figure is 0, 1 otherwise.

    python scripts/soak.py --minutes 10 --seed 1 [--json PATH] [--out DIR]
"""
from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pipeline.soak.run import Soak  # noqa: E402

MUST_BE_ZERO = ("orders_mismatched", "untraced_venue_orders", "leaked_segments", "orphans",
                "torn_reads")


def table(res: dict) -> str:
    rows = [("minutes", res["minutes"]), ("faults injected", res["faults_injected"]),
            ("  by kind", ", ".join(f"{k} {v}" for k, v in res["faults"].items()) or "-"),
            ("launcher runs", res["launcher_runs"]),
            ("operator resets", res["manual_resets"]),
            ("signals refused", ", ".join(f"{k} {v}" for k, v in res["signals_refused"].items()) or "-"),
            ("venue orders", res["venue_orders"]),
            ("fills in the journal", res["journal_fills"]),
            ("orders mismatched", res["orders_mismatched"]),
            ("untraced venue orders", res["untraced_venue_orders"]),
            ("leaked segments", res["leaked_segments"]), ("orphans", res["orphans"]),
            ("max RSS growth %", res["max_rss_growth_pct"]),
            ("  by role", ", ".join(f"{k} {v:+.1f}" for k, v in res["rss_growth_pct_by_role"].items()) or "-"),
            ("  heap, files MB", "; ".join(
                f"{k} {d['anon_mb'][0]:g}→{d['anon_mb'][1]:g}, {d['file_mb'][0]:g}→{d['file_mb'][1]:g} "
                f"({d['from_age_s']}-{d['to_age_s']} s)"
                for k, d in res.get("rss_detail_by_role", {}).items()) or "-"),
            ("ticks verified", f"{res['ticks_verified']:,}"), ("torn reads", res["torn_reads"]),
            ("collector deaths healed", res["recovered_without_manual_reset"])]
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{w}}  {v}" for k, v in rows)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--minutes", type=float, default=10.0, help="how long to run (default 10)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the chaos schedule")
    ap.add_argument("--config", type=Path, default=Path("configs/demo.toml"),
                    help="pipeline config to soak (default: the demo's)")
    ap.add_argument("--out", type=Path, help="keep the run here (default: a temporary directory, "
                    "removed when every check passes)")
    ap.add_argument("--rss-warmup-s", type=float, default=60.0,
                    help="RSS growth is measured from this age of each process (default 60)")
    ap.add_argument("--json", type=Path, metavar="PATH", help="write the figures as JSON")
    args = ap.parse_args(argv)
    if args.minutes <= 0:
        ap.error("--minutes must be > 0")
    root = Path(__file__).resolve().parent.parent
    config = args.config if args.config.is_absolute() else (Path.cwd() / args.config)
    if not config.exists():
        config = root / args.config
    out = args.out or Path(tempfile.mkdtemp(prefix="soak-"))
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)   # Ctrl-C, even if started with SIGINT ignored
    soak = Soak(config=config.resolve(), out=out.resolve(), minutes=args.minutes, seed=args.seed,
                rss_warmup_s=args.rss_warmup_s)
    try:
        doc = soak.run()
    except KeyboardInterrupt:
        print(f"interrupted: everything stopped and removed; the run is in {out}", file=sys.stderr)
        return 130
    res = doc["results"]
    print(table(res))
    for e in doc["events"]:
        print("  " + e)
    bad = [k for k in MUST_BE_ZERO if res[k]]
    for k in bad:
        detail = {"orders_mismatched": "mismatches", "untraced_venue_orders": "untraced",
                  "leaked_segments": "leaked", "orphans": "orphan_cmdlines",
                  "torn_reads": "torn_examples"}[k]
        print(f"FAILED {k} = {res[k]}: {res[detail]}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {args.json}")
    if bad:
        print(f"the run is kept in {out}")
    elif args.out is None:
        shutil.rmtree(out, ignore_errors=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
