"""Seed the fuzz corpus from the test vectors (tests/data): `python -m fuzz.seed [--out DIR]`.

Writes fuzz/corpus/<harness>/seed-<sha1> files (content-addressed, so re-running adds nothing
twice). The fuzzer adds its own finds next to them (a regression corpus: every file is replayed by
tests/unit/test_fuzz.py)."""
from __future__ import annotations

import argparse
import hashlib
import json
import struct
from pathlib import Path

from pipeline.venues.binance.wsdecode_py import ws_frame

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
CORPUS = Path(__file__).resolve().parent / "corpus"
KEYS = {"orderId", "status", "lastUpdateId", "code", "e", "result", "error", "serverTime"}


def _walk(x, found: list):
    if isinstance(x, dict):
        found.append(x)
        for v in x.values():
            _walk(v, found)
    elif isinstance(x, list):
        for v in x:
            _walk(v, found)


def messages(path: Path) -> list[bytes]:
    """The wire text of every example ("message" / "raw") in a vector file."""
    out: list[bytes] = []
    dicts: list[dict] = []
    _walk(json.loads(path.read_text()), dicts)
    for d in dicts:
        for k in ("raw", "message"):
            m = d.get(k)
            if isinstance(m, str):
                out.append(m.encode())
            elif isinstance(m, (dict, list)):
                out.append(json.dumps(m, separators=(",", ":")).encode())
    return out


def recorded(path: Path, n: int) -> list[bytes]:
    out = []
    for line in path.read_text().splitlines()[:n]:
        d = json.loads(line)
        if d.get("dir", "received") == "received" and "raw" in d:
            out.append(d["raw"].encode())
    return out


def seeds() -> dict[str, list[bytes]]:
    b = DATA / "binance"
    bmsg = [m for f in sorted(b.glob("ws_*.json")) if f.name != "ws_api_order_place.json"
            for m in messages(f)]
    bmsg += recorded(b / "recorded" / "cryptofeed_binance_spot_ws_2021-10-12.jsonl", 40)
    ws_binance = [b"\0" + ws_frame(m) for m in bmsg]
    ws_binance.append(b"\0" + b"".join(ws_frame(m) for m in bmsg[:12]))
    # the same stream cut into three reads (first byte: 2 cuts, then two 2-byte offsets)
    blob = b"".join(ws_frame(m) for m in bmsg[:6])
    ws_binance.append(b"\2" + struct.pack("<HH", 7, len(blob) // 2) + blob)
    ws_binance += [b"\0" + ws_frame(b"ping", 9), b"\0" + ws_frame(b"\x03\xe8bye", 8),
                   b"\0" + ws_frame(bmsg[0][:10], 1, fin=False) + ws_frame(bmsg[0][10:], 0)]

    o = DATA / "okx"
    omsg = [m for f in sorted(o.glob("ws_*.json")) for m in messages(f)]
    omsg += recorded(o / "recorded" / "cryptofeed_okx_ws_public_2022-05-13.jsonl", 60)
    ws_okx = [b"\x10" + m for m in omsg]
    ws_okx.append(b"\x10" + b"\n".join(omsg[:20]))
    ws_okx.append(b"\x01" + b"\n".join(m for m in omsg if b'"trades"' in m)[:4000])

    dicts: list[dict] = []
    for f in ("rest_order.json", "ws_api_order_place.json", "rest_depth_snapshot.json"):
        _walk(json.loads((b / f).read_text()), dicts)
    bodies = [json.dumps(d, separators=(",", ":")).encode() for d in dicts if KEYS & set(d)]
    st = lambda code: struct.pack("<H", code - 100)          # noqa: E731
    hdr = b"X-MBX-USED-WEIGHT-1M: 12\nX-MBX-ORDER-COUNT-10S: 3\n\n"
    rest = [st(200) + hdr + body for body in bodies[:40]]
    rest += [st(429) + b"Retry-After: 7\n\n" + b'{"code":-1003,"msg":"Too many requests."}',
             st(418) + b"Retry-After: 120\n\n" + b'{"code":-1003,"msg":"banned"}',
             st(503) + b"\n\n" + b'{"code":-1007,"msg":"Timeout waiting for response"}',
             st(400) + b"\n\n" + b'{"code":-1021,"msg":"Timestamp outside recvWindow."}',
             st(200) + b"\n\n" + b'{"serverTime":1700000000000}',
             st(200) + b"\n\n" + b'{"e":"executionReport","s":"BTCUSDT","c":"pl1.1.0",'
             b'"x":"TRADE","X":"PARTIALLY_FILLED","i":5,"t":9,"l":"0.1","L":"100.0","z":"0.1",'
             b'"n":"0","N":"BNB","S":"BUY"}',
             st(200) + b"\n\n" + b'{"status":429,"error":{"code":-1003,"msg":"x","data":'
             b'{"retryAfter":1700000000000}},"rateLimits":[{"rateLimitType":"ORDERS",'
             b'"interval":"SECOND","intervalNum":10,"limit":50,"count":3}]}']

    good = bytes([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])        # every field its first (valid) pick
    risk = [b"\4" + good, b"\4" + good + b"\4" + good + b"\x0c" + b"\4" + good,
            b"\x08\0\0\0" + b"\4" + good + b"\x09\0\0\x0b" + b"\4" + good,
            b"\x0b\2" + b"\4" + good + b"\x0b\0" + b"\4" + good,
            b"".join(b"\4" + good for _ in range(30)),                  # throttle, runaway
            b"\x10" * 3 + b"\4" + good,                                 # a stale reference
            b"\1" + bytes(80), b"\0" + bytes(79)]
    return {"ws_binance": ws_binance, "ws_okx": ws_okx, "rest_reply": rest, "risk_kernel": risk}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=CORPUS, help="corpus root (default fuzz/corpus)")
    args = ap.parse_args(argv)
    for name, items in seeds().items():
        d = args.out / name
        d.mkdir(parents=True, exist_ok=True)
        new = 0
        for data in items:
            p = d / f"seed-{hashlib.sha1(data).hexdigest()[:16]}"
            if not p.exists():
                p.write_bytes(data)
                new += 1
        print(f"{name}: {new} new seed(s), {len(list(d.iterdir()))} file(s) in {d}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
