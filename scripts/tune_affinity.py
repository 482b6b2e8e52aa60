#!/usr/bin/env python3
"""Find the best placement of the pipeline's roles on this machine's cores.

Reads the topology (psutil and /sys: cores, SMT siblings, NUMA nodes, isolated CPUs), enumerates
placements of the config's roles onto the usable cores (fewer cores than roles included: a
spinning wait strategy never shares its core; roles that share a core block), runs a short profile
of each, ranks them by tick → order latency (ring → strategy when a placement sent no order), and
writes the best placement into the config (cores and wait of each [roles.*] table, comments
kept), or only prints it with --dry-run.

A p99 needs samples: each placement runs --seconds, then on (up to --max-seconds in all) until the
ranked hop has --min-samples samples (1,000 by default: ten values above the p99). If a placement
still has fewer, every placement is ranked on its p50 instead, and the ranking says so; the sample
count of every placement is printed beside its figures. The demo sends about two orders a
second, so a tick → order p99 needs minutes per placement: raise --max-seconds for that.

    python scripts/tune_affinity.py --config configs/demo.toml [--seconds 8] [--max-seconds 60]
        [--dry-run]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pipeline import config as cfgmod  # noqa: E402
from pipeline.launcher import affinity, preflight, profile  # noqa: E402
from pipeline.sim import keys as simkeys  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/demo.toml", help="pipeline config to tune")
    ap.add_argument("--seconds", type=float, default=8.0,
                    help="first profile run per placement (s)")
    ap.add_argument("--min-samples", type=int, default=profile.MIN_P99_SAMPLES,
                    help="samples of the ranked hop wanted for ranking on p99 (default "
                         "%(default)s); placements run on in steps until they have them")
    ap.add_argument("--max-seconds", type=float, default=60.0,
                    help="profile time per placement at most (default %(default)s s); with fewer "
                         "samples than --min-samples the ranking is on p50, and says so")
    ap.add_argument("--max-placements", type=int, default=6,
                    help="profile at most this many placements (0 = all)")
    ap.add_argument("--cores", help="comma-separated CPUs to use (default: all usable)")
    ap.add_argument("--dry-run", action="store_true", help="print the best placement, change nothing")
    ap.add_argument("--output", help="write the tuned config here (default: over --config)")
    ap.add_argument("--keep", type=Path, metavar="DIR",
                    help="keep each placement's run directory (logs, histograms) in DIR "
                         "(default: temporary directories, removed)")
    args = ap.parse_args(argv)
    try:
        cfg = cfgmod.load(args.config)
    except cfgmod.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    wrote = simkeys.ensure_test_keys(cfg)
    if wrote:
        print(f"wrote the simulator's test keys to {wrote} (0600)")
    topo = preflight.topology()
    cores = ([int(c) for c in args.cores.split(",")] if args.cores else
             [c for c in topo.usable if c not in topo.isolated] + topo.isolated)
    cores = sorted(set(cores) & set(topo.usable))
    if not cores:
        print("error: no usable cores", file=sys.stderr)
        return 2
    print(f"topology: usable cpus {topo.usable}, physical cores {topo.physical_cores()}, "
          f"numa {topo.numa}, isolated {topo.isolated or 'none'}")
    # one CPU per physical core: SMT siblings of a spinning role must stay idle
    per_core = sorted({min(g) for g in topo.physical_cores() if set(g) & set(cores)})
    roles = profile.roles_of(cfg)
    candidates = affinity.enumerate_placements(roles, per_core, limit=args.max_placements)
    print(f"{len(candidates)} placement(s) of {len(roles)} roles on cores {per_core}, "
          f"{args.seconds:g} s each")
    runs = []
    for i, pl in enumerate(candidates, 1):
        print(f"[{i}/{len(candidates)}] {pl.describe()} ...", flush=True)
        keep = (lambda name: None) if args.keep is None else (lambda name: args.keep / name)
        r = profile.run_variant(args.config, f"p{i}", pl, args.seconds, workdir=keep(f"p{i}"))
        ran = args.seconds
        # run on until the ranked hop has enough samples for a p99 (or --max-seconds is spent)
        while r.ok:
            hop = profile.ENDPOINT_HOP if r.count(profile.ENDPOINT_HOP) else profile.FALLBACK_HOP
            more = profile.next_chunk(r.count(hop), ran, args.min_samples, args.seconds,
                                      args.max_seconds)
            if not more:
                break
            print(f"    {r.count(hop)} {hop} samples in {ran:g} s: {more:.0f} s more", flush=True)
            r.extend(profile.run_variant(args.config, f"p{i}x", pl, more,
                                         workdir=keep(f"p{i}x-{ran:g}")))
            ran += more
        runs.append((i, r))
        for hop in (profile.ENDPOINT_HOP, profile.FALLBACK_HOP):
            t = r.hop(hop) or {}
            print(f"    {hop:<17} p50 {t.get('p50', 0) / 1000:>9,.1f} us  p99 "
                  f"{t.get('p99', 0) / 1000:>9,.1f} us  {t.get('count', 0):>8,} samples")
        print(f"    ran {ran:g} s" + ("" if r.ok else "  FAILED: " + r.summary["stop_reason"]))
    ranking = profile.choose_ranking([r for _, r in runs], args.min_samples)
    if ranking is None:
        print("error: no placement produced a measurement", file=sys.stderr)
        return 1
    ranked = sorted(((r.rank_key(ranking.hop, ranking.stat), i, r) for i, r in runs),
                    key=lambda x: (x[0], x[1]))
    best = ranked[0][2]
    print(f"\nranking (by {ranking.describe()}):")
    for note in ranking.notes:
        print(f"  note: {note}")
    for key, i, r in ranked:
        n = r.count(ranking.hop)
        val = "failed" if key == float("inf") else f"{key / 1000:,.1f} us"
        print(f"  {val:>12}  {n:>8,} samples  {r.placement.describe()}")
    print(f"\nbest: {best.placement.describe()}")
    text = Path(args.config).read_text()
    new = affinity.apply_to_toml(text, best.placement)
    cfgmod.loads(new, source="tuned config")        # still a valid config
    if args.dry_run:
        for name in sorted(best.placement.cores):
            c = best.placement.cores[name]
            w = best.placement.waits.get(name)
            print(f"[roles.{name}]  cores = {[] if c is None else [c]}" + (f'  wait = "{w}"' if w else ""))
        return 0
    out = Path(args.output or args.config)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(new)
    os.replace(tmp, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
