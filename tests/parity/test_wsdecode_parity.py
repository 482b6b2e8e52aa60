"""The Cython frame decoder (pipeline._ext.wsdecode) and its Python twin agree on every message:
recorded sessions, and hypothesis-generated frames with malformed, truncated, non-UTF-8, oversized
and fragmented input split at arbitrary points. Nothing raises; errors are counted events."""
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline._ext import wsdecode as C
from pipeline.venues.binance import wsdecode_py as P
from pipeline.venues.binance.wsdecode_py import ws_frame
from pipeline.records import TICK_DTYPE, Venue
from tests.collector_helpers import BINANCE, BSYMS, gz_lines

BTC = BINANCE["BTCUSDT"]


def drive(mod, chunks, max_message=4096, out_size=64):
    s = mod.SymbolState(BSYMS, int(Venue.BINANCE))
    s.load_book(BTC, 100, [(10.0, 1.0), (9.5, 2.0)], [(11.0, 1.0), (11.5, 3.0)])
    dec = mod.WsDecoder(s, max_message, True, True)
    out = np.zeros(out_size, dtype=TICK_DTYPE)
    log = []
    for data, ts in chunks:
        dec.feed(data, ts)
        for _ in range(100_000):
            n = dec.decode(out)
            log.append(out[:n].tobytes())
            ev = dec.event
            if ev == P.EV_NONE:
                break
            err = dec.error if ev in (P.EV_BAD, P.EV_PROTOCOL) else ""
            log.append((ev, dec.reason if ev == P.EV_MESSAGE else 0, dec.message, err))
            if ev == P.EV_PROTOCOL:
                break
    return (log, dec.counters(), dec.take_recording(), s.top(BTC, 100), s.depth_last(BTC),
            s.depth_synced(BTC), [s.last_id(k, BTC) for k in range(3)], dec.pending())


def assert_same(chunks, **kw):
    a = drive(C, chunks, **kw)
    b = drive(P, chunks, **kw)
    assert a[1] == b[1]                      # counters
    assert a[0] == b[0]                      # records and events, in order
    assert a[2:] == b[2:]                    # recording, books, ids, pending bytes
    return a


def test_recorded_frames_agree(vectors):
    lines = list(gz_lines(vectors / "binance/recorded/hftbacktest_spot/ethusdt_20240808.gz"))[:3000]
    with open(vectors / "binance/recorded/cryptofeed_binance_spot_ws_2021-10-12.jsonl") as f:
        lines += [(int(d["recv_ts"] * 1e9), d["raw"].encode()) for d in map(json.loads, f)]
    stream = [(ws_frame(raw), ts) for ts, raw in lines]
    # whole frames, and the same bytes cut into odd-sized chunks
    a = assert_same(stream, max_message=1 << 20, out_size=4096)
    assert a[1]["hot_messages"] > 2500 and a[1]["protocol_errors"] == 0
    blob = b"".join(f for f, _ in stream)
    cut = [(blob[i:i + 997], i) for i in range(0, len(blob), 997)]
    assert_same(cut, max_message=1 << 20, out_size=4096)


# ----------------------------------------------------------------------------- fuzz
ODD = ["1.5", "01.5", "1.", "-1", ".5", "1e3", "", "\u0663", "1.50000000000000000000000001",
       "99999999999999999999.123", "0.00000000", "10.0", "11.0"]
PRICES = ["9.0", "9.5", "10.0", "10.5", "11.0", "11.5", "12.0"]


@st.composite
def message(draw):
    kind = draw(st.sampled_from(["trade", "agg", "bbo", "depth", "depth", "other", "junk"]))
    num = st.sampled_from(PRICES * 5 + ODD)
    sym = draw(st.sampled_from(["BTCUSDT", "BTCUSDT", "ETHUSDT", "NOPE", "btcusdt"]))
    if kind == "trade":
        d = {"e": "trade", "E": draw(st.integers(0, 10**13)), "s": sym,
             "t": draw(st.integers(-2, 30)), "p": draw(num), "q": draw(num),
             "T": 1, "m": draw(st.sampled_from([True, False, 1, None])), "M": True}
    elif kind == "agg":
        d = {"e": "aggTrade", "E": 5, "s": sym, "a": draw(st.integers(0, 30)), "p": draw(num),
             "q": draw(num), "f": 1, "l": 2, "T": 1, "m": draw(st.booleans()), "M": True}
    elif kind == "bbo":
        d = {"u": draw(st.integers(0, 200)), "s": sym, "b": draw(num), "B": draw(num),
             "a": draw(num), "A": draw(num)}
    elif kind == "depth":
        U = draw(st.integers(95, 110))
        lv = st.lists(st.tuples(st.sampled_from(PRICES), st.sampled_from(["0", "1.5", "2"] + ODD)),
                      max_size=6)
        d = {"e": "depthUpdate", "E": 7, "s": sym, "U": U, "u": U + draw(st.integers(-1, 3)),
             "b": [list(x) for x in draw(lv)], "a": [list(x) for x in draw(lv)]}
    elif kind == "other":
        d = {"e": draw(st.sampled_from(["kline", "serverShutdown", "x"])), "E": 1, "k": {"a": [1]}}
    else:
        return draw(st.binary(max_size=80))
    if draw(st.booleans()):
        d = {"stream": "x@y", "data": d}
    seps = draw(st.sampled_from([(",", ":"), (", ", ": "), (",\n", " :\t")]))
    raw = json.dumps(d, separators=seps, ensure_ascii=draw(st.booleans())).encode()
    mut = draw(st.sampled_from(["none"] * 12 + ["truncate", "flip", "insert", "nonutf8"]))
    if mut == "truncate" and raw:
        raw = raw[:draw(st.integers(0, len(raw) - 1))]
    elif mut == "flip" and raw:
        i = draw(st.integers(0, len(raw) - 1))
        raw = raw[:i] + bytes([draw(st.integers(0, 255))]) + raw[i + 1:]
    elif mut == "insert":
        i = draw(st.integers(0, len(raw)))
        raw = raw[:i] + draw(st.sampled_from([b"\\", b"\\u0041", b" ", b"\"", b"{", b"]"])) + raw[i:]
    elif mut == "nonutf8":
        i = draw(st.integers(0, len(raw)))
        raw = raw[:i] + b"\xff\xfe" + raw[i:]
    return raw


@st.composite
def frames(draw):
    raw = draw(message())
    how = draw(st.sampled_from(["text"] * 8 + ["frag", "binary", "ping", "close", "pong",
                                                "oversized", "badhdr"]))
    if how == "text":
        return ws_frame(raw)
    if how == "frag":
        k = draw(st.integers(0, len(raw)))
        return ws_frame(raw[:k], 1, fin=False) + ws_frame(b"", 0, fin=False) + \
            ws_frame(raw[k:], 0)
    if how == "binary":
        return ws_frame(raw, 2)
    if how in ("ping", "close", "pong"):
        return ws_frame(raw[:125], {"ping": 9, "close": 8, "pong": 10}[how])
    if how == "oversized":
        return ws_frame(raw + b" " * 5000)
    kind = draw(st.sampled_from(["rsv", "opcode", "mask", "ctl_long", "cont"]))
    if kind == "rsv":
        return ws_frame(raw, rsv=draw(st.integers(1, 7)))
    if kind == "opcode":
        return ws_frame(raw, draw(st.sampled_from([3, 7, 11, 15])))
    if kind == "mask":
        return ws_frame(raw, mask=b"abcd")
    if kind == "ctl_long":
        return ws_frame(raw.ljust(130, b" "), 9)
    return ws_frame(raw, 0)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fs=st.lists(frames(), max_size=12), cuts=st.lists(st.integers(1, 300), max_size=8),
       out_size=st.sampled_from([3, 8, 64]))
def test_fuzz_kernel_and_twin_agree(fs, cuts, out_size):
    blob = b"".join(fs)
    chunks, i, ts = [], 0, 1_000
    for c in cuts:
        chunks.append((blob[i:i + c], ts))
        i += c
        ts += 1
    chunks.append((blob[i:], ts))
    log, counters = assert_same(chunks, max_message=4096, out_size=out_size)[:2]
    # every record written is whole: a known kind with a registered symbol
    for item in log:
        if isinstance(item, bytes) and item:
            recs = np.frombuffer(item, dtype=TICK_DTYPE)
            assert set(recs["kind"]) <= {1, 2, 3, 4, 5, 6}
            assert set(recs["symbol"]) <= set(BINANCE.values())
            assert np.isfinite(recs["price"]).all() and (recs["qty"] >= 0).all()


def test_frame_split_at_every_byte_gives_the_same_records():
    msgs = [b'{"e":"trade","E":1,"s":"BTCUSDT","t":%d,"p":"1.5","q":"2","m":false}' % i
            for i in range(1, 4)]
    blob = b"".join(ws_frame(m) for m in msgs) + ws_frame(b"x" * 300)
    whole = drive(C, [(blob, 1)])
    for mod in (C, P):
        split = drive(mod, [(blob[i:i + 1], 1) for i in range(len(blob))])
        recs = b"".join(x for x in split[0] if isinstance(x, bytes))
        assert recs == b"".join(x for x in whole[0] if isinstance(x, bytes))
        assert split[1]["records"] == 3


@pytest.mark.parametrize("mod", [C, P], ids=["cython", "python"])
def test_depth_hot_path_applies_and_detects(mod):
    s = mod.SymbolState(BSYMS, 2)
    s.load_book(BTC, 100, [(10.0, 1.0)], [(11.0, 1.0)])
    dec = mod.WsDecoder(s)
    out = np.zeros(16, dtype=TICK_DTYPE)
    ok = b'{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":101,"u":103,"b":[["10.5","1"]],"a":[]}'
    dec.feed(ws_frame(ok), 9)
    assert dec.decode(out) == 1 and dec.event == P.EV_NONE
    assert s.depth_last(BTC) == 103 and s.top(BTC, 1)[0] == [(10.5, 1.0)]
    gap = ok.replace(b'"U":101,"u":103', b'"U":105,"u":106')
    dec.feed(ws_frame(gap), 10)
    assert dec.decode(out) == 0 and dec.event == P.EV_MESSAGE and dec.reason == P.R_DEPTH_SEQ
    cross = ok.replace(b'"U":101,"u":103', b'"U":104,"u":104').replace(b'10.5', b'11.5')
    dec.feed(ws_frame(cross), 11)
    assert dec.decode(out) == 0 and dec.reason == P.R_CROSSED
    assert not s.depth_synced(BTC)
