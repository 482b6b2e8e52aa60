#!/usr/bin/env python3
"""Profile the pipeline's latency hop by hop, and compare placements in one run.

Runs the pipeline from a config (the demo by default) for --seconds under each variant:
  tuned             the config as written (pinned cores, its wait strategies)
  pinned_blocking   the same cores, every waiting role blocking
  unpinned_blocking nothing pinned, every waiting role blocking (the baseline)
  python_strategy   the config as written, its strategies replaced by one instance of the Python
                    example examples/strategies/momentum.py (beside the compiled SMA of the demo)
and reports p50 / p90 / p99 / p99.9 / max for every hop, tick → signed order and tick → on the
wire end to end, as a table, JSON (--json) and a PNG of per-hop CDFs (--png). Or reads the
histograms a finished run left in its run directory (--from-run DIR). On a config that trades on
the embedded simulator (the demo) it writes the simulator's public test keys to the config's
credentials_file (0600) when that file is missing, as `make demo-out/sim-keys` does.

    python scripts/profile_latency.py [--config configs/demo.toml] [--seconds 20] [--json PATH]

JSON: results.<hop>_p50_ns / _p99_ns / _count for every hop of the first variant (among them
tick_to_order, tick_to_wire, signed_to_wire = gateway_write), baselines.<variant>_tick_to_order_*
and <variant>_tick_to_wire_* for the others, results.python_strategy_tick_to_order_p50_ns /
_p99_ns (and _tick_to_wire_) from the python_strategy variant, ratios.baseline_over_tuned_p99
(tick → order) and ratios.baseline_over_tuned_tick_to_wire_p99. Ctrl-C or SIGTERM stops the running pipeline (the
launcher removes every segment it created) and exits 130.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pipeline import config as cfgmod  # noqa: E402
from pipeline.launcher import affinity, profile  # noqa: E402
from pipeline.sim import keys as simkeys  # noqa: E402
from pipeline.telemetry import latency, plots  # noqa: E402

VARIANTS = ("tuned", "pinned_blocking", "unpinned_blocking", "python_strategy")
MOMENTUM = Path(__file__).resolve().parent.parent / "examples" / "strategies" / "momentum.py"
# the simulator's tape moves by cents: a short lookback and a tiny threshold make it trade
MOMENTUM_PARAMS = {"lookback": 20, "threshold_bps": 0.01}


def python_strategy_config(config: str, out: Path) -> Path:
    """`config` with its strategy instances replaced by one Momentum (a Python strategy file)
    trading the first instance's venue and symbol; written to `out`."""
    import tomlkit
    doc = tomlkit.parse(Path(config).read_text())
    insts = doc.get("strategy", {}).get("instances")
    if not insts:
        raise ValueError(f"{config} has no [[strategy.instances]] to replace")
    first = insts[0]
    inst = tomlkit.table()
    inst["kind"] = f"{MOMENTUM}:Momentum"
    for k in ("id", "venue", "symbol", "qty", "ttl_ms"):
        if k in first:
            inst[k] = first[k]
    inst["params"] = MOMENTUM_PARAMS
    aot = tomlkit.aot()
    aot.append(inst)
    doc["strategy"]["instances"] = aot
    out.write_text(tomlkit.dumps(doc))
    return out


def placement_for(variant: str, cfg) -> affinity.Placement | None:
    roles = profile.roles_of(cfg)
    if variant in ("tuned", "python_strategy"):
        return None
    if variant == "unpinned_blocking":
        return affinity.unpinned(roles)
    cores = {n: (s.cores[0] if s.cores else None) for n, s in cfg.roles.items()}
    return affinity.Placement(cores, {n: "blocking" for n, k in roles.items()
                                      if k in affinity.WAITING_KINDS})


def table(runs: dict[str, dict]) -> str:
    hops = [h for h in latency.HOPS if any(h in r for r in runs.values())]
    hops += sorted({h for r in runs.values() for h in r} - set(hops))
    lines = [f"{'hop':<20}{'variant':<19}{'count':>8}" + "".join(
        f"{c:>11}" for c in ("p50", "p90", "p99", "p99.9", "max"))]
    for hop in hops:
        for label, hists in runs.items():
            h = hists.get(hop)
            if h is None or not h.get_total_count():
                continue
            s = latency.summarize(h)
            lines.append(f"{hop:<20}{label:<19}{s['count']:>8,}" + "".join(
                f"{s[k] / 1000:>9.1f}us" for k in ("p50", "p90", "p99", "p999", "max")))
    return "\n".join(lines)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _run_variants(config: str, cfg, variants: list[str], seconds: float,
                  keep: Path | None = None) -> dict | None:
    """Each variant's histograms, or None when one was interrupted (SIGINT / SIGTERM: the
    launcher stopped that pipeline and removed its segments). keep: each variant's run
    directory is kept under keep/<variant> (default: temporary, removed)."""
    runs = {}
    for v in variants:
        print(f"running {v} for {seconds:g} s ...", flush=True)
        path = config
        if v == "python_strategy":
            import tempfile
            path = python_strategy_config(config, Path(tempfile.mkdtemp(
                prefix="profile-python-strategy-")) / "config.toml")
        try:
            r = profile.run_variant(path, v, placement_for(v, cfg), seconds,
                                    workdir=None if keep is None else keep / v)
        finally:
            if path != config:
                shutil.rmtree(Path(path).parent, ignore_errors=True)
        if r.summary["stop_reason"] in ("SIGINT", "SIGTERM"):
            print(f"interrupted ({r.summary['stop_reason']}) during {v}: pipeline stopped, "
                  "its segments removed", file=sys.stderr)
            return None
        if r.summary["stop_reason"] != "duration":
            print(f"  warning: {v} stopped early: {r.summary['stop_reason']}")
        runs[v] = r.hists
    return runs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/demo.toml", help="pipeline config to run")
    ap.add_argument("--seconds", type=float, default=20.0, help="run time per variant")
    ap.add_argument("--variants", default=",".join(VARIANTS),
                    help=f"comma-separated, from {', '.join(VARIANTS)}")
    ap.add_argument("--from-run", metavar="DIR", help="only report the *.hdr.json files in DIR")
    ap.add_argument("--quick", action="store_true", help="short runs (8 s each)")
    ap.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    ap.add_argument("--png", metavar="PATH", help="write per-hop CDFs as PNG")
    ap.add_argument("--keep", type=Path, metavar="DIR",
                    help="keep each variant's run directory (logs, histograms) in DIR/<variant> "
                         "(default: temporary directories, removed)")
    args = ap.parse_args(argv)
    if args.from_run:
        runs = {"run": latency.load(sorted(Path(args.from_run).glob("*.hdr.json")))}
        if not runs["run"]:
            print(f"error: no *.hdr.json in {args.from_run}", file=sys.stderr)
            return 2
    else:
        try:
            cfg = cfgmod.load(args.config)
        except cfgmod.ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        wrote = simkeys.ensure_test_keys(cfg)
        if wrote:
            print(f"wrote the simulator's test keys to {wrote} (0600)")
        if cfg.gateway.credentials_file and not Path(cfg.gateway.credentials_file).exists():
            print(f"error: {cfg.gateway.credentials_file} is missing (the gateway reads its keys "
                  "there; this config does not trade on the embedded simulator's test keys)",
                  file=sys.stderr)
            return 2
        seconds = 8.0 if args.quick else args.seconds
        variants = [v.strip() for v in args.variants.split(",") if v.strip()]
        for v in variants:
            if v not in VARIANTS:
                print(f"error: unknown variant {v!r}", file=sys.stderr)
                return 2
        # outside a run (the launcher has its own handlers while one runs) SIGTERM ends the
        # profiler like Ctrl-C: nothing of a run is left behind
        signal.signal(signal.SIGTERM, _interrupt)
        signal.signal(signal.SIGINT, _interrupt)   # Ctrl-C, even if started with SIGINT ignored
        try:
            runs = _run_variants(args.config, cfg, variants, seconds, args.keep)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        if runs is None:
            return 130
    print(table(runs))
    first = next(iter(runs))
    results, baselines, ratios = {}, {}, {}
    for hop, h in runs[first].items():
        s = latency.summarize(h)
        results[f"{hop}_p50_ns"], results[f"{hop}_p99_ns"] = s["p50"], s["p99"]
        results[f"{hop}_count"] = s["count"]
    # signed → on the wire is the gateway's write hop (request signed → first byte to the kernel)
    if "gateway_write_p50_ns" in results:
        results["signed_to_wire_p50_ns"] = results["gateway_write_p50_ns"]
        results["signed_to_wire_p99_ns"] = results["gateway_write_p99_ns"]
    for label, hists in runs.items():
        if label == first:
            continue
        for hop in ("tick_to_order", "tick_to_wire"):
            if label == "python_strategy":      # a different strategy, not a placement
                h = hists.get(hop)
                if h is not None and h.get_total_count():
                    s = latency.summarize(h)
                    results[f"python_strategy_{hop}_p50_ns"] = s["p50"]
                    results[f"python_strategy_{hop}_p99_ns"] = s["p99"]
                    results[f"python_strategy_{hop}_count"] = s["count"]
                continue
            h = hists.get(hop)
            if h is not None and h.get_total_count():
                s = latency.summarize(h)
                baselines[f"{label}_{hop}_p50_ns"] = s["p50"]
                baselines[f"{label}_{hop}_p99_ns"] = s["p99"]
    tuned_p99 = results.get("tick_to_order_p99_ns")
    base_p99 = baselines.get("unpinned_blocking_tick_to_order_p99_ns")
    if tuned_p99 and base_p99:
        ratios["baseline_over_tuned_p99"] = base_p99 / tuned_p99
    tuned_w = results.get("tick_to_wire_p99_ns")
    base_w = baselines.get("unpinned_blocking_tick_to_wire_p99_ns")
    if tuned_w and base_w:
        ratios["baseline_over_tuned_tick_to_wire_p99"] = base_w / tuned_w
    if args.png:
        print(f"plot: {plots.hop_cdfs(runs, args.png, 'hop latency by placement')}")
    if args.json:
        out = {"name": "profile_latency", "python": platform.python_version(),
               "cpu_count": os.cpu_count(), "results": results, "baselines": baselines,
               "ratios": ratios}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
