"""The OKX keys of scripts/bench_gateway.py (issue #16): the compiled OKX order path against its
Python twin and a plain hmac.new + base64 signature, in the same run.

    okx_risk_sign_p50_ns / _p99_ns   OkxOrderPath(risk, signer).process(signal, now, ts): the risk
                                     check, the order's JSON body, the ISO timestamp and the base64
                                     HMAC-SHA256 OK-ACCESS-SIGN (ext/okx_sign.pyx), one call
    okx_python_twin_p50_ns           the same path in pure Python (pipeline/venues/okx/okx_sign_py.py)
    hmac_new_base64_p50_ns           base64.b64encode(hmac.new(secret, prehash, sha256).digest())
                                     of the same prehash alone

Each sample is the mean of a batch of consecutive calls, as in bench_gateway.py, which reports
these keys beside the Binance ones (`bench_gateway.py [--quick] [--json PATH]`, and
`bench_gateway.py --e2e --okx` for okx_e2e_orders_per_s). Run alone:

    python scripts/bench_okx.py [--quick] [--e2e [--transport rest|ws_api] [--orders N]]
"""
from __future__ import annotations

import argparse
import base64
import gc
import hashlib
import hmac
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline import _native
from pipeline.gateway import risk_py
from pipeline.venues.okx import okx_sign_py
from pipeline.gateway.instruments import InstrumentRules
from pipeline.gateway.risk import RiskEngine, make_signal
from pipeline.records import Venue
from pipeline.venues.okx import orders as ox

RULES = InstrumentRules.build(
    symbol_id=1, venue=int(Venue.OKX), name="BTC-USDT", tick="0.1", step="0.00000001",
    min_qty="0.00001", max_qty="9000", max_order_qty="1", max_position_qty="10000000",
    max_order_notional=100_000.0)


def signals(n: int, epoch: int, t0: int) -> tuple[list[bytes], list[int]]:
    msgs, nows = [], []
    for i in range(n):
        now = t0 + 1_000 * (i + 1)
        side = 1 if i % 2 else -1
        msgs.append(make_signal(epoch=epoch, seq=i + 1, symbol=1, venue=int(Venue.OKX), side=side,
                                order_type=1, tif=1, qty=0.01, price=50_000.0 - side * 12.3,
                                created_mono=now - 20_000, ttl_ns=5_000_000_000, strategy_id=3))
        nows.append(now)
    return msgs, nows


def kernel(*, secret: bytes, limits: dict, n_batches: int, batch: int, epoch: int, t0: int,
           ts_ms: int, time_batches, pct) -> tuple[dict, dict]:
    okx_sign = _native.load("okx_sign")
    n = n_batches * batch
    msgs, nows = signals(n + batch, epoch, t0)

    def make(Engine, Signer, Path):
        risk = Engine(**limits)
        risk.set_instrument(RULES)
        risk.set_reference(1, 50_000.0, t0)
        signer = Signer(secret)
        signer.set_instrument(RULES)
        return Path(risk, signer)

    def runner(path):
        process = path.process

        def run(k):
            lo = k * batch
            for i in range(lo, lo + batch):
                process(msgs[i], nows[i], ts_ms)
        return run

    ck = make(RiskEngine, okx_sign.OkxOrderSigner, okx_sign.OkxOrderPath)
    blob = ck.process(msgs[n], nows[n], ts_ms)
    if blob is None:
        raise SystemExit(f"OKX benchmark order rejected: reason {ck.last_reason}")
    py = make(risk_py.RiskEngine, okx_sign_py.OkxOrderSigner, okx_sign_py.OkxOrderPath)
    if py.process(msgs[n], nows[n], ts_ms) != blob:
        raise SystemExit("the OKX Python twin's signed order differs from the kernel's")
    runner(make(RiskEngine, okx_sign.OkxOrderSigner, okx_sign.OkxOrderPath))(0)   # warm-up
    ck = make(RiskEngine, okx_sign.OkxOrderSigner, okx_sign.OkxOrderPath)
    py = make(risk_py.RiskEngine, okx_sign_py.OkxOrderSigner, okx_sign_py.OkxOrderPath)
    ts, _sig, body = okx_sign_py.split(blob)
    pre = ox.prehash(ts, "POST", ox.ORDER_PATH, body)

    def run_hmac(k, new=hmac.new, sha=hashlib.sha256, b64=base64.b64encode):
        for _ in range(batch):
            b64(new(secret, pre, sha).digest())

    gc.disable()
    try:
        rs = time_batches(runner(ck), n_batches, batch)
        hb = time_batches(run_hmac, n_batches, batch)
        pp = time_batches(runner(py), max(1, n_batches // 20), batch)
    finally:
        gc.enable()
    if ck.signer.signed_count != n:
        raise SystemExit(f"not every OKX benchmark order was accepted: "
                         f"{ck.signer.signed_count}/{n}")
    results = {"okx_risk_sign_p50_ns": round(pct(rs, 0.50), 1),
               "okx_risk_sign_p99_ns": round(pct(rs, 0.99), 1),
               "okx_request_bytes": len(body)}
    baselines = {"okx_python_twin_p50_ns": round(pct(pp, 0.50), 1),
                 "okx_python_twin_p99_ns": round(pct(pp, 0.99), 1),
                 "hmac_new_base64_p50_ns": round(pct(hb, 0.50), 1),
                 "hmac_new_base64_p99_ns": round(pct(hb, 0.99), 1)}
    return results, baselines


def e2e(orders: int, window: int, transport: str, *, stall_s: float = 30.0) -> dict:
    """okx_e2e_orders_per_s: the OKX gateway process against the simulator's OKX side, closed
    loop (at most `window` signals not yet decided), MARKET orders alternating BUY / SELL, until
    every order is final; orders FILLED per second. OKX's per-endpoint limits (60 orders / 2 s)
    are off on both sides ([sim] / [gateway] okx_rate_limits = false): this measures our path,
    not OKX's quota."""
    import shutil
    import tempfile
    import time
    from pathlib import Path

    from pipeline.config import SIM_TEST_PASSPHRASE
    from pipeline.gateway.testing import BUY, SELL, SIM_DEFAULTS, GatewayProc, StrategySide
    from pipeline.sim.testing import start_sim

    def decided(st):
        return int(st["accepted"]) + sum(int(v) for v in st["rejects"].values())

    def still_open(st):
        return len(st["open_orders"]) + int(st.get("inflight", 0))

    tmp = Path(tempfile.mkdtemp(prefix="bench-okx-"))
    sim = gw = None
    try:
        sim = start_sim(tmp, **{**SIM_DEFAULTS, "okx_rate_limits": False}, log_level="WARNING")
        run_dir = tmp / "run"
        run_dir.mkdir()
        gw = GatewayProc(tmp, sim, venue="OKX", symbols=["BTC-USDT"], transport=transport,
                         ws_api_url=sim.ws_url + ox.PRIVATE_WS_PATH, okx_rate_limits=False,
                         journal_fsync="interval", reference_poll_ms=1000, status_every_ms=100,
                         weight_limit_1m=10_000_000, order_limit_10s=10_000_000,
                         env={"PIPELINE_RUN_DIR": str(run_dir),
                              "PIPELINE_API_PASSPHRASE": SIM_TEST_PASSPHRASE},
                         risk={"throttle_orders": 1_000_000, "runaway_signals": 4096,
                               "max_order_qty": 1.0, "max_position_qty": 5.0})
        gw.start()
        with StrategySide(gw.channel, venue=int(Venue.OKX)) as st:
            for i in range(20):                     # warm-up
                st.send(side=BUY if i % 2 == 0 else SELL, qty=0.001, ttl_ms=30_000)
            s = gw.wait(lambda s: decided(s) >= 20 and still_open(s) == 0, timeout=60,
                        what="the warm-up orders final")
            base, base_filled = decided(s), int(s["orders"].get("FILLED", 0))
            t0 = time.perf_counter()
            sent = done = 0
            last, since = None, time.monotonic()
            while True:
                while sent < orders and sent - done < window:
                    st.send(side=BUY if sent % 2 == 0 else SELL, qty=0.001, ttl_ms=30_000)
                    sent += 1
                time.sleep(0.005)
                s = gw.status()
                done = decided(s) - base
                if s["trading"] != "ACTIVE":
                    raise RuntimeError(f"gateway left ACTIVE: {s['halt_reason']}")
                if sent >= orders and done >= sent and still_open(s) == 0:
                    break
                mark = (done, tuple(sorted(s["orders"].items())))
                if mark != last:
                    last, since = mark, time.monotonic()
                elif time.monotonic() - since > stall_s:
                    raise RuntimeError(f"no progress for {stall_s} s: {s['orders']}")
            dt = time.perf_counter() - t0
            filled = int(s["orders"].get("FILLED", 0)) - base_filled
            states = dict(s["orders"])
        if gw.stop() != 0:
            raise RuntimeError(f"gateway exit code: {gw.stderr()[-2000:]}")
    finally:
        if gw is not None:
            gw.stop(timeout=5)
            gw.kill()
        if sim is not None:
            sim.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return {"results": {"okx_e2e_orders_per_s": round(filled / dt, 1),
                        "okx_e2e_final_orders_per_s": round(orders / dt, 1)},
            "config": {"orders": orders, "window": window, "transport": transport,
                       "seconds": round(dt, 3), "filled": filled, "states": states}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="The OKX order path's benchmark keys (issue #16); "
                                 "bench_gateway.py reports them with the Binance ones.")
    ap.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run)")
    ap.add_argument("--e2e", action="store_true", help="okx_e2e_orders_per_s: the OKX gateway "
                    "process against the simulator")
    ap.add_argument("--transport", default="ws_api", choices=("rest", "ws_api"))
    ap.add_argument("--orders", type=int, default=None, help="--e2e orders (default 3000, "
                    "--quick 300)")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = ap.parse_args(argv)
    if args.e2e:
        res = e2e(args.orders or (300 if args.quick else 3000), 64, args.transport)
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import bench_gateway as bg
        batch = 32
        n_batches = (40_000 if args.quick else 400_000) // batch
        r, b = kernel(secret=bg.SECRET, limits=bg.LIMITS, n_batches=n_batches, batch=batch,
                      epoch=bg.EPOCH, t0=bg.T0, ts_ms=bg.TS_MS, time_batches=bg.time_batches,
                      pct=bg.pct)
        res = {"results": r, "baselines": b}
    print(json.dumps(res, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
