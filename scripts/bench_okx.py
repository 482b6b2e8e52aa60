"""The OKX keys of scripts/bench_gateway.py (issue #16): the compiled OKX order path against its
Python twin and a plain hmac.new + base64 signature, in the same run.

    okx_risk_sign_p50_ns / _p99_ns   OkxOrderPath(risk, signer).process(signal, now, ts): the risk
                                     check, the order's JSON body, the ISO timestamp and the base64
                                     HMAC-SHA256 OK-ACCESS-SIGN (ext/okx_sign.pyx), one call
    okx_python_twin_p50_ns           the same path in pure Python (pipeline/gateway/okx_sign_py.py)
    hmac_new_base64_p50_ns           base64.b64encode(hmac.new(secret, prehash, sha256).digest())
                                     of the same prehash alone

Each sample is the mean of a batch of consecutive calls, as in bench_gateway.py. Used by
bench_gateway.py (not a command of its own).
"""
from __future__ import annotations

import base64
import gc
import hashlib
import hmac

from pipeline import _native
from pipeline.gateway import okx_sign_py, risk_py
from pipeline.gateway.instruments import InstrumentRules
from pipeline.gateway.risk import RiskEngine, make_signal
from pipeline.records import Venue
from pipeline.venues import okx_orders as ox

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
