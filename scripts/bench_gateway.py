#!/usr/bin/env python3
"""Benchmark the gateway's hot path: risk check + encode + sign of a realistic LIMIT order.

Measures, in one run and on one machine (the OKX keys: scripts/bench_okx.py):
  risk_sign     OrderPath(risk, signer).process(signal, now, ts): the compiled risk check, the Binance
                query string encoding and the pre-keyed OpenSSL HMAC-SHA256 (ext/risk.pyx,
                ext/sign.pyx), returning the signed request body
  sign_only     BinanceSigner.sign(query): the pre-keyed HMAC of the same query alone, from the
                key's ipad state over all of the query (process() starts from the per-instrument
                pre-hashed prefix instead, one SHA-256 block less), returning the hex str
  baselines     hmac.new(secret, query, sha256).hexdigest() alone, and the pure-Python twin of the
                whole path (pipeline/gateway/risk_py.py + sign_py.py)

Per-call latency in the tens of nanoseconds is below what a perf_counter_ns() pair can resolve
(each read costs tens of ns), so each sample is the mean of a batch of consecutive calls
(--batch, default 32); p50/p99 are over those batch means. The single-call p50 (timer overhead
included) is reported too. GC is off while timing.

    python scripts/bench_gateway.py [--quick] [--json PATH]

    python scripts/bench_gateway.py --e2e [--quick] [--orders N] [--rate R] [--transport rest|ws_api]
                  [--journal-format jsonl|binary] [--order-connections N] [--okx] [--json PATH]
                  [--latency-rate R] [--latency-orders N]
                  the gateway process end to end against the simulator (see "--e2e" below):
                  closed loop results.e2e_orders_per_s (orders filled per second), then a
                  run open loop at --latency-rate (500/s) for results.intake_to_wire_p50_ns /
                  _p99_ns and signal_to_fill_p50_ns / _p99_ns (the closed loop's: closed_loop_*);
                  config.states (orders by final state) and config.rejected_why (why the
                  REJECTED ones were: the venue's error or why it was not sent, from the
                  gateway's journal), also printed under the first line

Run benchmarks under `flock /tmp/bench.lock ...` on shared machines.
"""
from __future__ import annotations

import os
import signal

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")      # numpy's BLAS threads must not spin

import argparse  # noqa: E402
import faulthandler  # noqa: E402
import gc  # noqa: E402
import hashlib  # noqa: E402
import hmac  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.gateway import orderpath_py, risk_py, sign_py  # noqa: E402
from pipeline.gateway.orderpath import OrderPath  # noqa: E402
from pipeline.gateway.instruments import InstrumentRules  # noqa: E402
from pipeline.gateway.risk import RiskEngine, make_signal  # noqa: E402
from pipeline.gateway.signing import BinanceSigner  # noqa: E402
from pipeline.records import Venue  # noqa: E402

SECRET = b"NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"   # Binance doc key
EPOCH = 1_732_500_000_123_456_789         # a strategy epoch (CLOCK_REALTIME ns at its start)
T0 = 10**12
TS_MS = 1_732_500_000_000
# BTCUSDT as in the recorded exchangeInfo; limits generous enough that every benchmark order is
# accepted (accepted orders stay open: the position and gross limits must not fill up)
RULES = InstrumentRules.build(
    symbol_id=1, venue=int(Venue.BINANCE), name="BTCUSDT", tick="0.01", min_price="0.01",
    max_price="1000000", step="0.00001", min_qty="0.00001", max_qty="9000", min_notional="10",
    max_order_qty="1", max_position_qty="10000000", max_order_notional=100_000.0)
LIMITS = dict(max_gross_notional=1e15, collar_bps=50.0, ref_stale_ns=10**12,
              throttle_orders=1_000_000, throttle_window_ns=1_000_000, runaway_signals=4096,
              runaway_window_ns=1)


def pct(sorted_vals: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    i = min(len(sorted_vals) - 1, max(0, int(round(q * (len(sorted_vals) - 1)))))
    return sorted_vals[i]


def signals(n: int) -> tuple[list[bytes], list[int]]:
    """n distinct realistic LIMIT signals (BUY/SELL alternating around the reference) and their
    receive clocks, 1 µs apart."""
    msgs, nows = [], []
    for i in range(n):
        now = T0 + 1_000 * (i + 1)
        side = 1 if i % 2 else -1
        msgs.append(make_signal(epoch=EPOCH, seq=i + 1, symbol=1, venue=int(Venue.BINANCE),
                                side=side, order_type=1, tif=1, qty=0.01,
                                price=50_000.0 - side * 12.34, created_mono=now - 20_000,
                                ttl_ns=5_000_000_000, strategy_id=3))
        nows.append(now)
    return msgs, nows


def path_of(risk, signer):
    """The order path (compiled, or the twin for the twin's engine and signer)."""
    return (OrderPath if isinstance(risk, RiskEngine) else orderpath_py.OrderPath)(risk, signer)


def make_path(Engine, Signer):
    risk = Engine(**LIMITS)
    risk.set_instrument(RULES)
    risk.set_reference(1, 50_000.0, T0)
    signer = Signer(SECRET, recv_window_ms=5000)
    signer.set_instrument(RULES)
    return risk, signer


def time_batches(fn, n_batches: int, batch: int) -> list[float]:
    """fn(k) runs calls k*batch .. (k+1)*batch-1; returns the per-call mean of every batch, ns."""
    clock = time.perf_counter_ns
    out = []
    for k in range(n_batches):
        t = clock()
        fn(k)
        out.append((clock() - t) / batch)
    out.sort()
    return out


def bench(args) -> dict:
    batch = args.batch
    n = args.iterations
    n_batches = max(1, n // batch)
    n = n_batches * batch
    msgs, nows = signals(n + batch)

    # ---- the compiled path: risk + encode + sign
    def runner(risk, signer, msgs=msgs, nows=nows):
        process = path_of(risk, signer).process

        def run(k):
            lo = k * batch
            for i in range(lo, lo + batch):
                process(msgs[i], nows[i], TS_MS)
        return run

    risk, signer = make_path(RiskEngine, BinanceSigner)
    path = path_of(risk, signer)
    body = path.process(msgs[n], nows[n], TS_MS)    # the sample order (and a warm-up)
    if body is None:
        raise SystemExit(f"benchmark order rejected: reason {path.last_reason}")
    runner(*make_path(RiskEngine, BinanceSigner))(0)          # warm-up on throwaway state
    risk, signer = make_path(RiskEngine, BinanceSigner)       # fresh state for the timed run
    gc.disable()
    try:
        rs = time_batches(runner(risk, signer), n_batches, batch)
    finally:
        gc.enable()
    if signer.signed_count != n:
        raise SystemExit(f"not every benchmark order was accepted: {signer.signed_count}/{n}, "
                         f"some were refused")

    # ---- single calls (timer overhead included), for comparison
    risk1, signer1 = make_path(RiskEngine, BinanceSigner)
    p1 = path_of(risk1, signer1).process
    clock = time.perf_counter_ns
    single = []
    gc.disable()
    try:
        for i in range(min(n, 20_000)):
            t = clock()
            p1(msgs[i], nows[i], TS_MS)
            single.append(clock() - t)
        timer = []
        for _ in range(20_000):
            t = clock()
            timer.append(clock() - t)
    finally:
        gc.enable()
    single.sort()
    timer.sort()

    # ---- sign only: the pre-keyed HMAC of the same query
    query = body.rpartition(b"&signature=")[0]
    sign = signer.sign

    def run_sign(k):
        for _ in range(batch):
            sign(query)

    # ---- baselines: hmac.new alone; the pure-Python twin of the whole path
    def run_hmac(k, new=hmac.new, sha=hashlib.sha256):
        for _ in range(batch):
            new(SECRET, query, sha).hexdigest()

    py_risk, py_signer = make_path(risk_py.RiskEngine, sign_py.BinanceSigner)
    py_body = path_of(py_risk, py_signer).process(msgs[n], nows[n], TS_MS)
    if py_body != body:
        raise SystemExit("the Python twin's signed body differs from the kernel's")
    py_risk, py_signer = make_path(risk_py.RiskEngine, sign_py.BinanceSigner)
    py_batches = max(1, n_batches // 20)
    run_py = runner(py_risk, py_signer)

    gc.disable()
    try:
        so = time_batches(run_sign, n_batches, batch)
        hn = time_batches(run_hmac, n_batches, batch)
        pp = time_batches(run_py, py_batches, batch)
    finally:
        gc.enable()

    results = {
        "risk_sign_p50_ns": round(pct(rs, 0.50), 1),
        "risk_sign_p90_ns": round(pct(rs, 0.90), 1),
        "risk_sign_p99_ns": round(pct(rs, 0.99), 1),
        "risk_sign_max_ns": round(rs[-1], 1),
        "risk_sign_single_call_p50_ns": pct(single, 0.50),
        "risk_sign_single_call_p99_ns": pct(single, 0.99),
        "timer_overhead_p50_ns": pct(timer, 0.50),
        "sign_only_p50_ns": round(pct(so, 0.50), 1),
        "sign_only_p99_ns": round(pct(so, 0.99), 1),
        "orders": n,
        "batch": batch,
        "query_bytes": len(query),
    }
    baselines = {
        "hmac_new_p50_ns": round(pct(hn, 0.50), 1),
        "hmac_new_p99_ns": round(pct(hn, 0.99), 1),
        "python_path_p50_ns": round(pct(pp, 0.50), 1),
        "python_path_p99_ns": round(pct(pp, 0.99), 1),
    }
    # ---- OKX (issue #16): the compiled OKX order path, its twin, hmac.new + base64
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_okx import kernel as okx_kernel
    okx_r, okx_b = okx_kernel(secret=SECRET, limits=LIMITS, n_batches=n_batches, batch=batch,
                              epoch=EPOCH, t0=T0, ts_ms=TS_MS, time_batches=time_batches, pct=pct)
    results.update(okx_r)
    baselines.update(okx_b)
    ratios = {
        "python_over_cython": round(baselines["python_path_p50_ns"] / results["risk_sign_p50_ns"], 2),
        "hmac_new_over_sign_only": round(baselines["hmac_new_p50_ns"] / results["sign_only_p50_ns"], 2),
    }
    return {"name": "bench_gateway", "python": sys.version.split()[0],
            "cpu_count": os.cpu_count(), "results": results, "baselines": baselines,
            "ratios": ratios, "_body": body.decode()}



# ====================================================================== --e2e (issue 8)
# A real gateway process (python -m pipeline.gateway) against the simulator over real sockets:
# a strategy-side sender (the signal ring, as in the pipeline) sends MARKET signals (alternating
# BUY/SELL, the position stays flat), either closed loop (at most --window signals whose order
# has not ended yet, as the strategy learns it from the gateway's order events: the next signal
# goes when one ends) or open loop at --rate signals/s. Without --rate: the closed loop, then a
# second gateway run open loop at --latency-rate (default 500/s) whose hops are the results'
# latencies (the closed loop's own, which include the wait of orders queued behind the window,
# keep a closed_loop_ prefix). The run ends when every signal is decided and
# every order has reached a final state (FILLED, REJECTED, EXPIRED, CANCELED, LOST): a signal
# refused as expired under load, or an order the venue rejected, is final too, so a loaded
# machine gives a slower report, not a timeout. It fails only when nothing progresses for
# --stall-s. Results:
#   e2e_orders_per_s            orders FILLED per second (the "orders/s with fills")
#   final_orders_per_s          signals decided and orders final per second
#   intake_to_wire_p50/p99_ns   the gateway's signal received → request written (its own hop
#                               histograms, HdrHistogram over CLOCK_MONOTONIC)
#   signal_to_fill_p50/p99_ns   signal sent → the gateway learned the order's last fill (the
#                               order event's CLOCK_REALTIME stamp): the round trip a strategy
#                               sees, through the venue
# Baseline in the same run: a bare loop that signs (hmac.new) and POSTs the same orders with one
# requests.Session, no gateway: baselines.bare_post_loop_orders_per_s (also under its old name
# direct_rest_orders_per_s); ratios.e2e_over_direct.
# Whatever ends the run (an error, a timeout, Ctrl-C, SIGTERM) the gateway and the simulator are
# stopped and the signal ring a killed gateway leaves in /dev/shm is removed.

FINAL_STATES = ("FILLED", "CANCELED", "REJECTED", "EXPIRED", "LOST")
OPEN_STATES = ("NEW", "ACK", "PARTIALLY_FILLED", "UNKNOWN")


class Stalled(RuntimeError):
    """The gateway made no progress for --stall-s."""


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


def decided(st: dict) -> int:
    """Signals the gateway has decided: accepted (an order) or refused (a reason)."""
    return int(st["accepted"]) + sum(int(v) for v in st["rejects"].values())


def open_orders(st: dict) -> int:
    return sum(int(st["orders"].get(k, 0)) for k in OPEN_STATES) + int(st.get("inflight", 0))


class Progress:
    """Raises Stalled when `mark(value)` has not seen a new value for `stall_s`."""

    def __init__(self, stall_s: float, what: str):
        self.stall_s, self.what = stall_s, what
        self.last, self.since = None, time.monotonic()

    def mark(self, value, st: dict) -> None:
        now = time.monotonic()
        if value != self.last:
            self.last, self.since = value, now
        elif now - self.since > self.stall_s:
            raise Stalled(f"no progress for {self.stall_s:g} s while {self.what} "
                          f"(at {value}); gateway status: decided {decided(st)}, "
                          f"orders {st['orders']}, rejects {st['rejects']}, "
                          f"inflight {st.get('inflight')}")


def rejected_reasons(records) -> dict[str, int]:
    """Why the gateway's orders ended REJECTED (its journal's state records), by reason with
    the numbers taken out (order ids, counts): the venue's error, or why it was not sent."""
    import re
    out: dict[str, int] = {}
    for r in records:
        if r.get("k") == "state" and r.get("to") == "REJECTED":
            why = re.sub(r"\d+", "N", str(r.get("why", "")))[:120]
            out[why] = out.get(why, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


class Finals:
    """The strategy's side of the closed loop: the gateway's order events (the event ring, as a
    strategy reads them) say when each signal's order ended (filled, rejected, expired,
    cancelled, lost) and when the gateway learned its last fill. No status-file polling: the
    next signal goes as soon as one ends."""

    def __init__(self, ring, epoch: int):
        import numpy as np

        from pipeline.records import ORDER_EVENT_DTYPE, OrderEventKind as K
        self.ring, self.epoch = ring, epoch
        # a blocking (futex) reader: the driver sleeps until the gateway publishes, it does not
        # take the gateway's and the venue's CPU polling
        self._r = ring.reader(wait="blocking", max_batch=256, start="next")
        self._buf = np.zeros(256, dtype=ORDER_EVENT_DTYPE)
        self._fill = int(K.FILL)
        self._end = {int(K.REJECTED), int(K.CANCELLED), int(K.EXPIRED), int(K.LOST)}
        self._wait = self._r.core.wait
        self._poll = self._r.core.poll_into
        self.final = 0
        self.sent_wall: dict[int, int] = {}    # seq -> CLOCK_REALTIME at send
        self.lat: list[int] = []               # sent -> the gateway learned its last fill, ns

    @classmethod
    def attach(cls, channel: str, epoch: int) -> "Finals":
        from pipeline.bus.events import EventRing, event_ring_name
        from pipeline.bus.ring import RingError
        try:
            ring = EventRing.attach(event_ring_name(channel))
        except RingError as exc:
            raise RuntimeError(f"the gateway offers no order-event ring: {exc}") from None
        return cls(ring, epoch)

    def sent(self, seq: int) -> None:
        self.sent_wall[seq] = time.time_ns()

    def drain(self) -> int:
        n = 0
        k = self._poll(self._buf)
        for rec in self._buf[:k]:
            if int(rec["epoch"]) != self.epoch:
                continue
            kind = int(rec["kind"])
            seq = int(rec["client_seq"])
            if kind == self._fill:
                if float(rec["remaining"]) > 0:
                    continue
                t = self.sent_wall.pop(seq, None)
                if t is not None:
                    self.lat.append(int(rec["ts_ns"]) - t)
            elif kind in self._end:
                self.sent_wall.pop(seq, None)
            else:
                continue
            self.final += 1
            n += 1
        return n

    def wait(self, timeout_s: float) -> int:
        """Take the new events; if there were none, wait up to timeout_s for some first."""
        n = self.drain()
        while not n and self._wait(int(timeout_s * 1e9)):
            n = self.drain()          # records of other strategies' epochs: wait on
            break
        return n

    def latencies(self) -> dict:
        v = sorted(self.lat)
        if not v:
            return {"p50": 0, "p99": 0}
        return {"p50": pct(v, 0.50), "p99": pct(v, 0.99)}

    def close(self) -> None:
        self._r = self._wait = self._poll = None
        self.ring.close()


def run_e2e(orders: int, window: int, journal_fsync: str, transport: str, *, rate: float = 0.0,
            stall_s: float = 30.0, on_ready: Callable[[Any], None] | None = None,
            journal_format: str = "binary", order_connections: int = 2,
            keep: Path | None = None, with_baseline: bool = True) -> dict:
    """keep: run in this directory and leave it (logs, journal, histograms); by default a
    temporary directory, removed at the end whatever happened."""
    from pipeline.gateway.testing import BUY, SELL, SIM_DEFAULTS, GatewayProc, StrategySide
    from pipeline.sim.testing import start_sim
    from pipeline.telemetry.latency import load, summarize

    if keep is not None:
        tmp = Path(keep)
        tmp.mkdir(parents=True, exist_ok=True)
    else:
        tmp = Path(tempfile.mkdtemp(prefix="bench-gw-"))
    sim = gw = None
    try:
        sim = start_sim(tmp, **{**SIM_DEFAULTS, "weight_limit_1m": 10_000_000,
                                "order_limit_10s": 10_000_000, "order_limit_1d": 100_000_000},
                        log_level="WARNING")
        run_dir = tmp / "run"
        run_dir.mkdir()
        gw = GatewayProc(tmp, sim, journal_fsync=journal_fsync, transport=transport,
                         journal_format=journal_format, order_connections=order_connections,
                         reference_poll_ms=1000, status_every_ms=100,
                         weight_limit_1m=10_000_000, order_limit_10s=10_000_000,
                         env={"PIPELINE_RUN_DIR": str(run_dir), "PIPELINE_ROLE": "gateway"},
                         risk={"throttle_orders": 1_000_000, "runaway_signals": 4096,
                               "max_order_qty": 1.0, "max_position_qty": 5.0})
        gw.start()
        if on_ready is not None:
            on_ready(gw)
        with StrategySide(gw.channel) as st:
            # warm-up (connections, caches): decided, not necessarily filled
            for i in range(20):
                st.send(side=BUY if i % 2 == 0 else SELL, qty=0.001, ttl_ms=30_000)
            s = gw.wait(lambda s: decided(s) >= 20 and open_orders(s) == 0, timeout=60,
                        what="the 20 warm-up signals decided and their orders final")
            base = decided(s)
            base_filled = int(s["orders"].get("FILLED", 0))
            base_rejects = dict(s["rejects"])
            events = Finals.attach(gw.channel, st.tx.epoch)
            try:
                t0 = time.perf_counter()
                sent = 0
                progress = Progress(stall_s, "sending")
                gap = 1.0 / rate if rate > 0 else 0.0
                next_look = 0.0
                while sent < orders:
                    if rate > 0:        # open loop: every signal that is due goes now
                        due = min(orders, int((time.perf_counter() - t0) / gap) + 1)
                        while sent < due:
                            sig = st.send(side=BUY if sent % 2 == 0 else SELL, qty=0.001,
                                          ttl_ms=30_000)
                            events.sent(sig.seq)
                            sent += 1
                        events.wait(min(0.002, gap))
                    else:               # closed loop: a signal goes as soon as one ends
                        while sent < orders and sent - events.final < window:
                            sig = st.send(side=BUY if sent % 2 == 0 else SELL, qty=0.001,
                                          ttl_ms=30_000)
                            events.sent(sig.seq)
                            sent += 1
                        events.wait(0.005)
                    now = time.perf_counter()
                    if now >= next_look:        # the status file: a light look, 10 times a second
                        next_look = now + 0.1
                        s = gw.status()
                        if s["trading"] != "ACTIVE":
                            raise RuntimeError(f"gateway left ACTIVE: {s['halt_reason']}")
                        progress.mark((sent, events.final), s)
                progress = Progress(stall_s, "waiting for every order to reach a final state")
                while True:
                    events.wait(0.02)
                    s = gw.status()
                    done = decided(s) - base
                    if done >= sent and open_orders(s) == 0:
                        break
                    progress.mark((done, tuple(sorted(s["orders"].items()))), s)
                dt = time.perf_counter() - t0
                events.drain()
            finally:
                events.close()
            filled = int(s["orders"].get("FILLED", 0)) - base_filled
            states = {k: int(v) for k, v in s["orders"].items()}
            rejects = {k: int(v) - int(base_rejects.get(k, 0)) for k, v in s["rejects"].items()
                       if int(v) - int(base_rejects.get(k, 0))}
        rc = gw.stop()
        if rc != 0:
            raise RuntimeError(f"gateway exit code {rc}: {gw.stderr()[-2000:]}")
        rejected_why = rejected_reasons(gw.journal())
        hist = load([run_dir / "gateway.hdr.json"])
        baseline = _direct_baseline(sim, min(orders, 1000)) if with_baseline else 0.0
    finally:
        if gw is not None:
            gw.stop(timeout=5)        # SIGTERM first: the gateway unlinks its own ring
            gw.kill()                 # and whatever it left behind goes now
        if sim is not None:
            sim.stop()
        if keep is None:
            shutil.rmtree(tmp, ignore_errors=True)
    i2w = summarize(hist["intake_to_wire"])
    s2f = events.latencies()
    return {
        "orders": orders, "seconds": dt, "rejects": rejects, "filled": filled,
        "states": states, "rejected_why": rejected_why,
        "results": {
            "signal_to_fill_p50_ns": s2f["p50"], "signal_to_fill_p99_ns": s2f["p99"],
            "e2e_orders_per_s": filled / dt,
            "final_orders_per_s": orders / dt,
            "intake_to_wire_p50_ns": i2w["p50"], "intake_to_wire_p99_ns": i2w["p99"],
            "intake_to_wire_p999_ns": i2w["p999"], "intake_to_wire_max_ns": i2w["max"],
            "signal_to_gateway_p50_ns": summarize(hist["signal_to_gateway"])["p50"],
            "gateway_risk_p50_ns": summarize(hist["gateway_risk"])["p50"],
            "gateway_sign_p50_ns": summarize(hist["gateway_sign"])["p50"],
            "gateway_write_p50_ns": summarize(hist["gateway_write"])["p50"],
            "gateway_response_p50_ns": summarize(hist["gateway_response"])["p50"],
            "filled": filled,
        },
        "baselines": {"bare_post_loop_orders_per_s": baseline,
                      "direct_rest_orders_per_s": baseline},
    }


HOPS = ("intake_to_wire_p50_ns", "intake_to_wire_p99_ns", "intake_to_wire_p999_ns",
        "intake_to_wire_max_ns", "signal_to_gateway_p50_ns", "gateway_risk_p50_ns",
        "gateway_sign_p50_ns", "gateway_write_p50_ns", "gateway_response_p50_ns",
        "signal_to_fill_p50_ns", "signal_to_fill_p99_ns")


def bench_e2e(args) -> dict:
    import platform
    n = args.orders or (300 if args.quick else 3000)
    kw = dict(stall_s=args.stall_s, journal_format=args.journal_format,
              order_connections=args.order_connections)
    out = run_e2e(n, args.window, args.journal_fsync, args.transport, rate=args.rate,
                  keep=args.keep, **kw)
    r, b = out["results"], out["baselines"]
    config = {"orders": n, "window": args.window, "rate": args.rate,
              "journal_fsync": args.journal_fsync,
              "journal_format": args.journal_format,
              "order_connections": args.order_connections,
              "transport": args.transport, "seconds": round(out["seconds"], 3),
              "rejects": out["rejects"], "filled": out["filled"],
              "states": out["states"], "rejected_why": out["rejected_why"]}
    if not args.rate and args.latency_rate > 0:
        # the closed loop measures throughput: its hops include the wait of the orders queued
        # behind the window. The latencies are the "at 500 orders/s": a second run,
        # open loop at --latency-rate; the closed loop's own hops keep a closed_loop_ prefix
        for k in HOPS:
            r["closed_loop_" + k] = r.pop(k)
        m = args.latency_orders or (300 if args.quick else 2000)
        lat = run_e2e(m, args.window, args.journal_fsync, args.transport,
                      rate=args.latency_rate, with_baseline=False, **kw)
        r.update({k: lat["results"][k] for k in HOPS})
        r["latency_run_orders_per_s"] = lat["results"]["final_orders_per_s"]
        config.update(latency_rate=args.latency_rate, latency_orders=m,
                      latency_seconds=round(lat["seconds"], 3),
                      latency_states=lat["states"], latency_rejects=lat["rejects"])
    return {"name": "bench_gateway_e2e", "python": platform.python_version(),
            "cpu_count": os.cpu_count(), "config": config, "results": r, "baselines": b,
            "ratios": {"e2e_over_direct": round(r["e2e_orders_per_s"]
                                                / b["bare_post_loop_orders_per_s"], 3)}}


def table_e2e(res: dict) -> str:
    c, r, b, q = res["config"], res["results"], res["baselines"], res["ratios"]
    lines = [f"gateway end to end ({c['transport']}, journal fsync {c['journal_fsync']}): "
             f"{c['orders']} signals in {c['seconds']:.2f} s ("
             f"{'open loop at ' + format(c['rate'], 'g') + '/s' if c['rate'] else 'closed loop'}), "
             f"{c['filled']} filled, refused {c['rejects'] or 'none'}"
             + (f"; latencies from a run at {c['latency_rate']:g}/s ({c['latency_orders']} "
                f"signals)"
                if c.get("latency_rate") else ""),
             *(f"  REJECTED x{n}: {why}" for why, n in c.get("rejected_why", {}).items()),
             f"{'metric':<42}{'value':>14}", "-" * 56]
    lines += [f"{k:<42}{v:>14,.0f}" for k, v in r.items()]
    lines += ["-" * 56, f"{'baseline bare_post_loop_orders_per_s':<42}"
              f"{b['bare_post_loop_orders_per_s']:>14,.0f}",
              f"ratio e2e_over_direct {q['e2e_over_direct']}",
              f"python {res['python']}, {res['cpu_count']} CPUs"]
    return "\n".join(lines)


MODES = {"kernel": bench, "e2e": bench_e2e}


def table(res: dict) -> str:
    r, b, q = res["results"], res["baselines"], res["ratios"]
    rows = [
        ("risk + encode + sign (Cython)", r["risk_sign_p50_ns"], r["risk_sign_p99_ns"]),
        ("  single call, timer included", r["risk_sign_single_call_p50_ns"],
         r["risk_sign_single_call_p99_ns"]),
        ("sign only (pre-keyed HMAC, whole query)", r["sign_only_p50_ns"], r["sign_only_p99_ns"]),
        ("baseline hmac.new().hexdigest()", b["hmac_new_p50_ns"], b["hmac_new_p99_ns"]),
        ("baseline Python twin, whole path", b["python_path_p50_ns"], b["python_path_p99_ns"]),
        ("OKX risk + JSON + sign (Cython)", r["okx_risk_sign_p50_ns"], r["okx_risk_sign_p99_ns"]),
        ("OKX baseline hmac.new + base64", b["hmac_new_base64_p50_ns"],
         b["hmac_new_base64_p99_ns"]),
        ("OKX baseline Python twin", b["okx_python_twin_p50_ns"], b["okx_python_twin_p99_ns"]),
    ]
    lines = [f"{'metric':<42}{'p50 ns':>10}{'p99 ns':>10}", "-" * 62]
    lines += [f"{name:<42}{p50:>10.1f}{p99:>10.1f}" for name, p50, p99 in rows]
    lines += ["-" * 62,
              (f"python_over_cython {q['python_over_cython']}x   "
               f"hmac_new_over_sign_only {q['hmac_new_over_sign_only']}x"),
              (f"{r['orders']} orders, batches of {r['batch']} calls (per-call = batch mean; "
               f"timer read p50 {r['timer_overhead_p50_ns']} ns), query {r['query_bytes']} B"),
              f"python {res['python']}, {res['cpu_count']} CPUs"]
    return "\n".join(lines)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Target: risk + encode + sign p50 <= 400 ns.")
    ap.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run)")
    ap.add_argument("--json", metavar="PATH", help="also write the results as one JSON object")
    ap.add_argument("--iterations", type=int, default=None,
                    help="orders to time (default 400000, --quick 40000)")
    ap.add_argument("--batch", type=int, default=32, help="calls per timed sample (default 32)")
    ap.add_argument("--cpu", type=int, default=None, help="pin this process to one CPU")
    ap.add_argument("--show-body", action="store_true", help="print the signed sample request")
    e2e = ap.add_argument_group("--e2e: the gateway process against the simulator (issue 8)")
    e2e.add_argument("--e2e", action="store_true",
                     help="end to end: signals over ZeroMQ → gateway process → simulator → fills")
    e2e.add_argument("--orders", type=int, default=None, help="orders (default 3000, --quick 300)")
    e2e.add_argument("--window", type=int, default=64,
                     help="signals allowed ahead of the gateway (default 64)")
    e2e.add_argument("--journal-fsync", default="interval", choices=("always", "interval", "never"))
    e2e.add_argument("--transport", default="rest", choices=("rest", "ws_api"))
    e2e.add_argument("--journal-format", default="binary", choices=("jsonl", "binary"),
                     help="the gateway's journal: the binary journal (default, the gateway's "
                          "own default: the compiled signal-to-socket path) or JSON lines")
    e2e.add_argument("--order-connections", type=int, default=2,
                     help="REST: keep-alive connections the order wire holds (default 2)")
    e2e.add_argument("--rate", type=float, default=0.0,
                     help="open loop: send this many signals per second (default 0: closed "
                          "loop, --window signals ahead)")
    e2e.add_argument("--latency-rate", type=float, default=500.0,
                     help="closed loop: then a second run, open loop at this many signals/s, "
                          "for the latencies (results.intake_to_wire_*, signal_to_fill_*; the "
                          "closed loop's own: closed_loop_*); 0 = none (default 500)")
    e2e.add_argument("--latency-orders", type=int, default=None,
                     help="signals of that run (default 2000, --quick 300)")
    e2e.add_argument("--okx", action="store_true",
                     help="with --e2e: the OKX gateway against the simulator's OKX side "
                          "(results.okx_e2e_orders_per_s; scripts/bench_okx.py)")
    e2e.add_argument("--stall-s", type=float, default=30.0,
                     help="fail when the gateway makes no progress for this long (default 30)")
    e2e.add_argument("--keep", type=Path, metavar="DIR",
                     help="run in DIR and keep it (simulator and gateway logs, journal, "
                          "histograms); default: a temporary directory, removed")
    args = ap.parse_args(argv)
    if args.e2e:
        signal.signal(signal.SIGTERM, _interrupt)     # SIGTERM cleans up like Ctrl-C
        signal.signal(signal.SIGINT, _interrupt)      # Ctrl-C, even if started with it ignored
        faulthandler.register(signal.SIGUSR1, all_threads=True)   # where is it? (a stuck run)
        if args.okx:
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            from bench_okx import e2e as okx_e2e
            import platform
            try:
                out = okx_e2e(args.orders or (300 if args.quick else 3000), args.window,
                              args.transport, stall_s=args.stall_s)
            except (RuntimeError, TimeoutError) as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
            res = {"name": "bench_gateway_e2e_okx", "python": platform.python_version(),
                   "cpu_count": os.cpu_count(), **out}
            print(json.dumps(res, indent=2))
            if args.json:
                Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
            return 0
        try:
            res = MODES["e2e"](args)
        except KeyboardInterrupt:
            print("interrupted: gateway and simulator stopped, their segments removed",
                  file=sys.stderr)
            return 130
        except (Stalled, RuntimeError, TimeoutError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(table_e2e(res))
        if args.json:           # keeps the keys an earlier run wrote there
            from pipeline.backtest.report import merge_bench_json
            merge_bench_json(args.json, res)
        return 0
    if args.iterations is None:
        args.iterations = 40_000 if args.quick else 400_000
    if args.iterations < args.batch or args.batch < 1:
        ap.error("--iterations must be >= --batch >= 1")
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    res = MODES["kernel"](args)
    body = res.pop("_body")
    print(table(res))
    if args.show_body:
        print(body)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
