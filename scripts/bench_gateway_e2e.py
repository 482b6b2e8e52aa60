#!/usr/bin/env python
"""End-to-end gateway benchmark: a real gateway process against the simulator over real sockets.

A strategy-side PUSH socket sends MARKET signals (alternating BUY/SELL so the position stays
flat) to the gateway, which risk-checks, signs and sends each order to the simulator, and tracks
it to its fill. Measured:

  results.e2e_orders_per_s        orders filled per second, sustained (closed loop: at most
                                  --window signals ahead of the gateway's accepted count)
  results.intake_to_wire_p50_ns   the gateway's own signal received → request written,
  results.intake_to_wire_p99_ns   from its hop histograms (HdrHistogram, CLOCK_MONOTONIC)
  results.signal_to_gateway_p50_ns, results.gateway_response_p50_ns  (for context)

Baseline in the same run: a plain loop that signs (hmac.new) and POSTs the same orders with one
requests.Session, no gateway (baselines.direct_rest_orders_per_s); ratios.e2e_over_direct.

    python scripts/bench_gateway_e2e.py [--quick] [--orders N] [--json PATH]

Run benchmarks under `flock /tmp/bench.lock ...` on shared machines.
"""
from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _direct_baseline(sim, n: int) -> float:
    import requests

    from pipeline.sim.testing import SIM_TEST_API_KEY, SIM_TEST_SECRET
    s = requests.Session()
    s.headers.update({"X-MBX-APIKEY": SIM_TEST_API_KEY,
                      "Content-Type": "application/x-www-form-urlencoded"})
    key = SIM_TEST_SECRET.encode()
    url = sim.rest_url + "/api/v3/order"
    t0 = time.perf_counter()
    for i in range(n):
        side = "BUY" if i % 2 == 0 else "SELL"
        q = (f"symbol=BTCUSDT&side={side}&type=MARKET&quantity=0.00100&newClientOrderId=base{i}"
             f"&newOrderRespType=FULL&recvWindow=5000&timestamp={time.time_ns() // 1_000_000}")
        body = q + "&signature=" + hmac.new(key, q.encode(), hashlib.sha256).hexdigest()
        r = s.post(url, data=body, timeout=5)
        if r.status_code != 200:
            raise RuntimeError(f"baseline order failed: {r.status_code} {r.text[:200]}")
    dt = time.perf_counter() - t0
    s.close()
    return n / dt


def run(orders: int, window: int, journal_fsync: str, transport: str) -> dict:
    from pipeline.gateway.testing import BUY, SELL, SIM_DEFAULTS, GatewayProc, StrategySide
    from pipeline.sim.testing import start_sim
    from pipeline.telemetry.latency import load, summarize

    tmp = Path(tempfile.mkdtemp(prefix="bench-gw-"))
    sim = start_sim(tmp, **{**SIM_DEFAULTS, "weight_limit_1m": 10_000_000,
                            "order_limit_10s": 10_000_000, "order_limit_1d": 100_000_000},
                    log_level="WARNING")
    run_dir = tmp / "run"
    run_dir.mkdir()
    gw = GatewayProc(tmp, sim, journal_fsync=journal_fsync, transport=transport,
                     reference_poll_ms=1000, status_every_ms=100,
                     weight_limit_1m=10_000_000, order_limit_10s=10_000_000,
                     env={"PIPELINE_RUN_DIR": str(run_dir), "PIPELINE_ROLE": "gateway"},
                     risk={"throttle_orders": 1_000_000, "runaway_signals": 4096,
                           "max_order_qty": "1", "max_position_qty": "5"})
    try:
        gw.start()
        with StrategySide(gw.channel) as st:
            # warm-up (connections, caches)
            for i in range(20):
                st.send(side=BUY if i % 2 == 0 else SELL, qty=0.001, ttl_ms=30_000)
            gw.wait(lambda s: s["accepted"] >= 20, timeout=30)
            base = gw.status()["accepted"]
            t0 = time.perf_counter()
            sent = 0
            accepted = 0
            while sent < orders:
                while sent < orders and sent - accepted < window:
                    st.send(side=BUY if sent % 2 == 0 else SELL, qty=0.001, ttl_ms=30_000)
                    sent += 1
                time.sleep(0.0005)
                s = gw.status()
                accepted = s["accepted"] - base
                if s["trading"] != "ACTIVE":
                    raise RuntimeError(f"gateway left ACTIVE: {s['halt_reason']}")
            s = gw.wait(lambda s: s["orders"].get("FILLED", 0) >= orders + 20, timeout=60)
            dt = time.perf_counter() - t0
            rejects = s["rejects"]
        rc = gw.stop()
        if rc != 0:
            raise RuntimeError(f"gateway exit code {rc}: {gw.stderr()[-2000:]}")
        hist = load([run_dir / "gateway.hdr.json"])
        baseline = _direct_baseline(sim, min(orders, 1000))
    finally:
        gw.kill()
        sim.stop()
    i2w = summarize(hist["intake_to_wire"])
    return {
        "orders": orders, "seconds": dt, "rejects": rejects,
        "results": {
            "e2e_orders_per_s": orders / dt,
            "intake_to_wire_p50_ns": i2w["p50"], "intake_to_wire_p99_ns": i2w["p99"],
            "intake_to_wire_p999_ns": i2w["p999"], "intake_to_wire_max_ns": i2w["max"],
            "signal_to_gateway_p50_ns": summarize(hist["signal_to_gateway"])["p50"],
            "gateway_risk_p50_ns": summarize(hist["gateway_risk"])["p50"],
            "gateway_sign_p50_ns": summarize(hist["gateway_sign"])["p50"],
            "gateway_response_p50_ns": summarize(hist["gateway_response"])["p50"],
        },
        "baselines": {"direct_rest_orders_per_s": baseline},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a short run (300 orders)")
    ap.add_argument("--orders", type=int, default=3000, help="orders to send (default 3000)")
    ap.add_argument("--window", type=int, default=4,
                    help="signals allowed ahead of the gateway (default 4)")
    ap.add_argument("--journal-fsync", default="interval", choices=("always", "interval", "never"))
    ap.add_argument("--transport", default="rest", choices=("rest", "ws_api"))
    ap.add_argument("--json", metavar="PATH", help="write the results as one JSON object")
    a = ap.parse_args(argv)
    n = 300 if a.quick else a.orders
    out = run(n, a.window, a.journal_fsync, a.transport)
    r, b = out["results"], out["baselines"]
    doc = {"name": "bench_gateway_e2e", "python": platform.python_version(),
           "cpu_count": os.cpu_count(), "config": {"orders": n, "window": a.window,
                                                   "journal_fsync": a.journal_fsync,
                                                   "transport": a.transport},
           "results": r, "baselines": b,
           "ratios": {"e2e_over_direct": r["e2e_orders_per_s"] / b["direct_rest_orders_per_s"]}}
    print(f"gateway end to end ({a.transport}, journal fsync {a.journal_fsync}), {n} orders "
          f"in {out['seconds']:.2f} s, rejects {out['rejects'] or 'none'}")
    print(f"  {'metric':<34}{'value':>14}")
    for k, v in r.items():
        print(f"  {k:<34}{v:>14,.0f}")
    print(f"  {'baseline direct_rest_orders_per_s':<34}{b['direct_rest_orders_per_s']:>14,.0f}")
    print(f"  {'ratio e2e_over_direct':<34}{doc['ratios']['e2e_over_direct']:>14.2f}")
    if a.json:
        Path(a.json).write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
