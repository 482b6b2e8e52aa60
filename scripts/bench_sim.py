#!/usr/bin/env python3
"""Benchmark the exchange simulator: the sustained market-data rate one websocket-client consumer
keeps up with, and REST order round trips with `requests`.

Baselines measured in the same run: a bare aiohttp server (no simulator logic) sending a
precomputed trade frame as fast as it can to the same websocket-client consumer, and answering a
fixed JSON body to the same requests.Session. Ratios are simulator / baseline (rates) and
baseline / simulator (latencies): 1.0 means "as fast as the bare stack".

    flock /tmp/bench.lock .venv/bin/python scripts/bench_sim.py --quick --json out.json

JSON: {"name", "python", "cpu_count", "results": {ws_msgs_per_s, rest_orders_per_s,
rest_order_p50_ns, rest_order_p99_ns, ...}, "baselines": {...}, "ratios": {...}}
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TRADE = (b'{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,"p":"61837.63000000",'
         b'"q":"0.02000000","T":1723161255342,"m":true,"M":true}')


# ----------------------------------------------------------------------------- baseline server

def baseline_server(ready: Path) -> None:
    """A bare aiohttp app: /ws streams TRADE frames until the client leaves; /order answers JSON."""
    import asyncio

    from aiohttp import WSMsgType, web

    async def ws_handler(request):
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        try:
            while not ws.closed:
                for _ in range(256):
                    await ws.send_frame(TRADE, WSMsgType.TEXT)
        except (ConnectionError, RuntimeError):
            pass
        return ws

    body = json.dumps({"symbol": "BTCUSDT", "orderId": 1, "orderListId": -1,
                       "clientOrderId": "x", "transactTime": 1}).encode()

    async def order(request):
        await request.read()
        return web.Response(body=body, content_type="application/json")

    async def main():
        app = web.Application()
        app.router.add_get("/ws", ws_handler)
        app.router.add_post("/order", order)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        tmp = ready.with_suffix(".tmp")
        tmp.write_text(json.dumps({"port": runner.addresses[0][1]}))
        os.replace(tmp, ready)
        await asyncio.Event().wait()

    asyncio.run(main())


def start_baseline(tmp: Path) -> tuple[subprocess.Popen, int]:
    ready = tmp / "baseline.ready"
    proc = subprocess.Popen([sys.executable, __file__, "--baseline-server", str(ready)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("baseline server did not start")
        time.sleep(0.02)
    return proc, json.loads(ready.read_text())["port"]


# ----------------------------------------------------------------------------- measurements

def connect(url: str):
    import websocket

    return websocket.create_connection(url, timeout=10, skip_utf8_validation=True)


def ws_rate(url: str, seconds: float, warmup: float = 0.5) -> tuple[float, int]:
    """Frames/s one websocket-client consumer receives (text frames, no UTF-8 validation)."""
    ws = connect(url)
    try:
        return _consume(ws, seconds, warmup)
    finally:
        ws.close()


def _consume(ws, seconds: float, warmup: float) -> tuple[float, int]:
    recv = ws.recv
    t_end = time.perf_counter() + warmup
    while time.perf_counter() < t_end:
        recv()
    n = 0
    t0 = time.perf_counter()
    t_end = t0 + seconds
    while True:
        for _ in range(500):
            recv()
        n += 500
        now = time.perf_counter()
        if now >= t_end:
            break
    return n / (now - t0), n


def ws_sustained(sim, url: str, seconds: float, rates: list[int]) -> tuple[float, list[dict]]:
    """The highest offered tape rate one consumer keeps up with: it receives >= 95 % of what is
    offered and the server-side queue does not grow past a quarter second of data. Rates are
    tried from high to low on one connection; the backlog drains between steps."""
    import psutil
    import websocket

    ws = connect(url)
    steps = []
    best = 0.0
    try:
        sp = psutil.Process(sim.proc.pid)
        for rate in rates:
            sim.tape(rate=rate, action="resume")
            _consume(ws, 0.3, warmup=0.0)
            c0, s0 = time.process_time(), sum(sp.cpu_times()[:2])
            got, n = _consume(ws, seconds, warmup=0.0)
            c1, s1 = time.process_time(), sum(sp.cpu_times()[:2])
            queued = max((c["queued"] for c in sim.state()["md_conns"]), default=0)
            ok = got >= 0.95 * rate and queued < rate / 4
            steps.append({"offered": rate, "received_per_s": round(got), "queued": queued,
                          "kept_up": ok,
                          "consumer_cpu_ns_per_msg": round((c1 - c0) / n * 1e9),
                          "sim_cpu_ns_per_msg": round((s1 - s0) / n * 1e9)})
            sim.tape(action="pause")
            ws.settimeout(0.3)
            try:                                   # drain the backlog
                while True:
                    ws.recv()
            except websocket.WebSocketTimeoutException:
                pass
            ws.settimeout(10)
            if ok:
                best = got
                break
    finally:
        ws.close()
    return best, steps


def percentile(sorted_ns: list[int], p: float) -> int:
    return sorted_ns[min(len(sorted_ns) - 1, int(round(p / 100 * (len(sorted_ns) - 1))))]


def rest_orders(sim_base: str, base_base: str, n: int, chunk: int = 50) -> tuple[dict, dict]:
    """n order round trips each, on one keep-alive requests.Session per server, interleaved in
    chunks so that the simulator and the baseline see the same machine load. Simulator: signed
    MARKET orders alternating BUY/SELL (each one fills, RESULT response). Baseline: a POST that
    returns a fixed JSON body."""
    import requests

    from pipeline.sim.testing import SIM_TEST_API_KEY, sign as hmac_sign

    sessions = {}
    for name in ("sim", "base"):
        sess = requests.Session()
        sess.headers["X-MBX-APIKEY"] = SIM_TEST_API_KEY
        sessions[name] = sess
    lat: dict[str, list[int]] = {"sim": [], "base": []}
    i = 0
    warm = 50
    while len(lat["sim"]) < n:
        for name in ("sim", "base"):
            sess = sessions[name]
            for _ in range(chunk):
                i += 1
                if name == "sim":
                    q = urllib.parse.urlencode({
                        "symbol": "BTCUSDT", "side": "BUY" if i % 2 else "SELL", "type": "MARKET",
                        "quantity": "0.00010", "newOrderRespType": "RESULT",
                        "timestamp": int(time.time() * 1000)})
                    url = f"{sim_base}/api/v3/order?{q}&signature={hmac_sign(q)}"
                else:
                    url = f"{base_base}/order"
                t0 = time.perf_counter_ns()
                r = sess.post(url)
                dt = time.perf_counter_ns() - t0
                if r.status_code != 200:
                    raise RuntimeError(f"{name} order {i}: {r.status_code} {r.text}")
                if warm > 0:
                    warm -= 1
                else:
                    lat[name].append(dt)
    out = []
    for name in ("sim", "base"):
        v = sorted(lat[name])
        out.append({"per_s": len(v) / (sum(v) / 1e9), "p50": percentile(v, 50),
                    "p90": percentile(v, 90), "p99": percentile(v, 99), "max": v[-1]})
    return out[0], out[1]


# ----------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short run (about 15 s)")
    ap.add_argument("--json", type=Path, help="write the machine-readable result here")
    ap.add_argument("--seconds", type=float, help="market-data measurement length per rate step")
    ap.add_argument("--orders", type=int, help="REST order round trips")
    ap.add_argument("--baseline-server", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.baseline_server:
        baseline_server(args.baseline_server)
        return 0
    seconds = args.seconds or (1.5 if args.quick else 4.0)
    n_orders = args.orders or (500 if args.quick else 3000)

    from pipeline.sim.testing import start_sim

    streams = "/".join(f"{s}@{k}" for s in ("btcusdt", "ethusdt", "solusdt")
                       for k in ("trade", "aggTrade", "bookTicker", "depth@100ms"))
    with tempfile.TemporaryDirectory(prefix="bench-sim-") as tmpd:
        tmp = Path(tmpd)
        base_proc, base_port = start_baseline(tmp)
        sim = start_sim(tmp, log_level="WARNING", rate=200_000, bursts=False, paused=True,
                        ws_send_queue=2_000_000, weight_limit_1m=10_000_000,
                        order_limit_10s=10_000_000, order_limit_1d=100_000_000,
                        accounts=[{"balances": {"USDT": "100000000", "BTC": "10000"}}])
        try:
            rest, base_rest = rest_orders(sim.rest_url, f"http://127.0.0.1:{base_port}", n_orders)
            base_ws_1, _ = ws_rate(f"ws://127.0.0.1:{base_port}/ws", seconds)
            ws_per_s, steps = ws_sustained(sim, f"{sim.ws_url}/ws/{streams}", seconds,
                                           [200_000, 160_000, 130_000, 115_000, 100_000, 90_000,
                                            80_000, 65_000, 50_000, 35_000, 20_000])
            base_ws_2, _ = ws_rate(f"ws://127.0.0.1:{base_port}/ws", seconds)
            base_ws = (base_ws_1 + base_ws_2) / 2     # before and after: same load as the steps
        finally:
            sim.stop()
            base_proc.terminate()
            base_proc.wait(10)
    result = {
        "name": "bench_sim",
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "results": {
            "ws_msgs_per_s": round(ws_per_s),
            "ws_offered_rate_kept_up": next((x["offered"] for x in steps if x["kept_up"]), 0),
            "ws_sim_cpu_ns_per_msg": steps[-1]["sim_cpu_ns_per_msg"],
            "ws_consumer_cpu_ns_per_msg": steps[-1]["consumer_cpu_ns_per_msg"],
            "rest_orders_per_s": round(rest["per_s"], 1),
            "rest_order_p50_ns": rest["p50"],
            "rest_order_p90_ns": rest["p90"],
            "rest_order_p99_ns": rest["p99"],
            "rest_order_max_ns": rest["max"],
        },
        "baselines": {
            "raw_aiohttp_ws_msgs_per_s": round(base_ws),
            "raw_aiohttp_post_per_s": round(base_rest["per_s"], 1),
            "raw_aiohttp_post_p50_ns": base_rest["p50"],
            "raw_aiohttp_post_p99_ns": base_rest["p99"],
        },
    }
    result["ratios"] = {
        "ws_vs_raw_aiohttp": round(ws_per_s / base_ws, 3),
        "rest_orders_per_s_vs_raw_aiohttp": round(rest["per_s"] / base_rest["per_s"], 3),
        "rest_p50_raw_over_sim": round(base_rest["p50"] / rest["p50"], 3),
    }
    r, b = result["results"], result["baselines"]
    print(f"{'metric':<34}{'simulator':>14}{'raw aiohttp':>14}")
    print(f"{'ws msgs/s (one consumer)':<34}{r['ws_msgs_per_s']:>14,}{b['raw_aiohttp_ws_msgs_per_s']:>14,}")
    print(f"{'REST orders/s (one session)':<34}{r['rest_orders_per_s']:>14,.0f}{b['raw_aiohttp_post_per_s']:>14,.0f}")
    print(f"{'REST order p50 (us)':<34}{r['rest_order_p50_ns'] / 1e3:>14,.0f}{b['raw_aiohttp_post_p50_ns'] / 1e3:>14,.0f}")
    print(f"{'REST order p99 (us)':<34}{r['rest_order_p99_ns'] / 1e3:>14,.0f}{b['raw_aiohttp_post_p99_ns'] / 1e3:>14,.0f}")
    print(f"targets: ws >= 100,000 msg/s: {'met' if r['ws_msgs_per_s'] >= 100_000 else 'MISSED'}; "
          f"REST p50 <= 1 ms: {'met' if r['rest_order_p50_ns'] <= 1_000_000 else 'MISSED'}")
    for x in steps:
        print(f"  ws step: offered {x['offered']:>7,}/s received {x['received_per_s']:>7,}/s "
              f"queued {x['queued']:>7,} cpu/msg sim {x['sim_cpu_ns_per_msg']:>6,} ns "
              f"consumer {x['consumer_cpu_ns_per_msg']:>6,} ns "
              f"{'kept up' if x['kept_up'] else 'fell behind'}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
