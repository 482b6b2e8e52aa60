#!/usr/bin/env python3
"""Benchmark a strategy's own share of tick → order: the time of one live-sized batch (one trade
record) through the strategy, after a wait, as the strategy process runs it (the process waits
for the ring between ticks, so the strategy's code and data go cold in the meantime).

Measured in the same run, on the same seeded synthetic trades (pipeline.backtest.synth.trades):
  momentum_python       examples/strategies/momentum.py through Strategy.on_ticks: a batch of a
                        few records takes the plain-Python loop (`Momentum._few`)
  momentum_numpy        the same strategy with its vectorised pass forced for every batch (what
                        the example ran before: a dozen numpy calls per batch) — baseline
  sma_compiled          the demo SMA's compiled batch kernel (ext/smalive.pyx) — baseline
  momentum_python_mixed the Python momentum again on live-shaped batches of four records (as the
                        demo's ring delivers them: a best bid of its instrument, a best ask of
                        another instrument, a best ask of its own, then the trade): the base's
                        dispatch picks its trade out of the batch (Strategy._on_ticks_small)
Each: `--batches` batches of one record (four for the mixed variant), `--gap-us` of sleep before each, perf_counter_ns around
the call; p50 / p99 of the per-batch times. Signals are made as live (lookback 20, threshold
0.01 bps on a tape moving by cents, as profile_latency's python_strategy variant), but not sent.
The whole tick → signed order on the demo pipeline is scripts/profile_latency.py's
python_strategy variant (a quiet box: it runs five processes).

    .venv/bin/python scripts/bench_strategy.py [--quick] [--json PATH]

JSON: results.momentum_python_batch_p50_ns / _p99_ns, results.momentum_python_mixed_batch_p50_ns /
_p99_ns, baselines.momentum_numpy_batch_p50_ns /
_p99_ns and baselines.sma_compiled_batch_p50_ns / _p99_ns; --json PATH keeps the keys already in
PATH that this run does not write.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402


def measure(call, batches, gap_s: float) -> np.ndarray:
    pc = time.perf_counter_ns
    out = np.empty(len(batches), np.int64)
    for i, b in enumerate(batches):
        time.sleep(gap_s)
        t = pc()
        call(b)
        out[i] = pc() - t
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="500 batches per strategy")
    ap.add_argument("--batches", type=int, default=None, help="batches per strategy (5000)")
    ap.add_argument("--gap-us", type=float, default=1000.0,
                    help="sleep before each batch, µs (default 1000)")
    ap.add_argument("--json", metavar="PATH", help="write the result object here")
    args = ap.parse_args(argv)
    nb = args.batches or (500 if args.quick else 5000)
    gap = args.gap_us / 1e6

    from pipeline.backtest import synth
    from pipeline.records import SIGNAL_DTYPE, Kind, Venue
    from pipeline.registry import DEFAULT as REG
    from pipeline.strategy import loader
    from pipeline.strategy.sma import SmaCrossover, SmaParams
    Momentum = loader.resolve("examples/strategies/momentum.py:Momentum", ROOT)
    mod = sys.modules[Momentum.__module__]
    sid = REG.id(Venue.SIM, "BTCUSDT")
    other = REG.id(Venue.SIM, "ETHUSDT")
    warm = 200
    recs = synth.trades(warm + nb, seed=7)
    batches = [recs[i:i + 1] for i in range(warm, warm + nb)]
    res, base, extra = {}, {}, {}

    def mixed(b: np.ndarray) -> np.ndarray:
        """A live-shaped batch around trade record b[0]: own BID, another symbol's ASK, own
        ASK, the trade (ring order, consecutive seqs)."""
        m = np.repeat(b, 4)
        m["kind"][:3] = (int(Kind.BID), int(Kind.ASK), int(Kind.ASK))
        m["symbol"][1] = other
        m["seq"] = b["seq"][0] * 4 + np.arange(4)
        return m

    def momentum(small: int, batches=batches, label: str = "") -> np.ndarray:
        mod.SMALL = small
        st = Momentum(Momentum.Params(lookback=20, threshold_bps=0.01), venue=int(Venue.SIM),
                      symbol=sid, qty=0.001)
        st.epoch = 1
        st.on_ticks(recs[:warm])
        made = [0]

        def call(b):
            made[0] += len(st.on_ticks(b))
        t = measure(call, batches, gap)
        extra[f"momentum_signals_{label or f'small{small}'}"] = made[0]
        return t

    small = mod.SMALL
    try:
        mp = momentum(small)
        mn = momentum(0)
        mm = momentum(small, [mixed(b) for b in batches], "mixed")
    finally:
        mod.SMALL = small
    sma = SmaCrossover(SmaParams(5, 20, 0.01), venue=int(Venue.SIM), symbol=sid, qty=0.001)
    fast = sma.compiled()
    sigbuf = np.zeros(warm, SIGNAL_DTYPE)
    fast(np.ascontiguousarray(recs[:warm]), sigbuf)
    sc = measure(lambda b: fast(b, sigbuf), [np.ascontiguousarray(b) for b in batches], gap)

    for name, t, sec in (("momentum_python", mp, res), ("momentum_python_mixed", mm, res),
                         ("momentum_numpy", mn, base),
                         ("sma_compiled", sc, base)):
        sec[f"{name}_batch_p50_ns"] = float(np.percentile(t, 50))
        sec[f"{name}_batch_p99_ns"] = float(np.percentile(t, 99))
    doc = {"name": "bench_strategy", "python": platform.python_version(),
           "cpu_count": os.cpu_count(), "results": res, "baselines": base,
           "ratios": {"numpy_over_python_p50": base["momentum_numpy_batch_p50_ns"]
                      / res["momentum_python_batch_p50_ns"]},
           "config": {"batches": nb, "gap_us": args.gap_us, "records_per_batch": 1,
                      "quick": bool(args.quick), **extra}}
    print(f"one-record batches after a {args.gap_us:g} µs wait, {nb} each")
    print(f"{'strategy':<22}{'p50':>10}{'p99':>10}")
    for name, t in (("momentum (Python)", mp), ("momentum, mixed batch", mm),
                    ("momentum, numpy pass", mn),
                    ("SMA (compiled)", sc)):
        print(f"{name:<22}{np.percentile(t, 50) / 1e3:>8.1f}µs{np.percentile(t, 99) / 1e3:>8.1f}µs")
    if args.json:
        from pipeline.backtest.report import merge_bench_json
        merge_bench_json(args.json, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
