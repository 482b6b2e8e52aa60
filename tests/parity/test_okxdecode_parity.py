"""OKX trade decoder: Cython kernel vs pure-Python twin vs the cool-path parser.

Both decoders must give the same status and the same records (bit for bit) for every frame, valid
or not; on valid trades pushes both must equal pipeline.venues.okx.market.parse_trades."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.records import TICK_DTYPE
from registry_fixture import DEFAULT
from pipeline.venues.okx import market as okx
from pipeline.venues.okx import okxdecode_py

SYMS = okx.symbols_from_registry(DEFAULT)
REC = "okx/recorded/cryptofeed_okx_ws_public_2022-05-13.jsonl"


def both():
    return okx.trade_decoder(SYMS, "cython"), okx.trade_decoder(SYMS, "python")


def run(dec, frames, cap=None, local_ts=5):
    out = np.zeros(cap if cap is not None else 4 * len(frames) + 4, dtype=TICK_DTYPE)
    status = np.full(len(frames), -1, dtype=np.int8)
    pos, used = dec.decode(frames, local_ts, out, 0, status)
    return out[:pos], used, status


def same(frames, cap=None):
    (c, p) = both()
    rc, uc, sc = run(c, frames, cap)
    rp, up, sp = run(p, frames, cap)
    assert uc == up and np.array_equal(sc, sp)
    assert rc.tobytes() == rp.tobytes()
    assert c.counts == p.counts and c.errors == p.errors and c.records == p.records
    return rc, sc


def recorded_frames(vectors):
    for line in (vectors / REC).read_text().splitlines():
        d = json.loads(line)
        if d["dir"] == "received":
            yield d["raw"].encode()


def test_recording_agrees_with_cool_path(vectors):
    frames = list(recorded_frames(vectors))
    recs, status = same(frames)
    trades = [f for f, s in zip(frames, status) if s == okxdecode_py.ST_OK]
    assert len(trades) == 74
    assert all(s in (okxdecode_py.ST_OK, okxdecode_py.ST_NOT_TRADES) for s in status)
    want = okx.trade_records([json.loads(f) for f in trades], SYMS, 5)
    assert recs.tobytes() == want.tobytes()


def test_doc_sample_with_new_fields_and_several_items(vectors):
    m = {"arg": {"channel": "trades", "instId": "BTC-USDT"},
         "data": [{"instId": "BTC-USDT", "tradeId": "130639474", "px": "42219.9",
                   "sz": "0.12060306", "side": "buy", "ts": "1630048897897", "count": "3",
                   "source": "0", "seqId": 1234},
                  {"instId": "BTC-USDT", "tradeId": "130639475", "px": "42219.8", "sz": "1",
                   "side": "sell", "ts": "1630048897898"}]}
    frame = json.dumps(m, separators=(",", ":")).encode()
    recs, status = same([frame])
    assert list(status) == [0] and len(recs) == 2
    assert recs.tobytes() == okx.parse_trades(m, SYMS, 5).tobytes()


def test_out_full_stops_without_half_written_message():
    f = b'{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[' + b",".join(
        b'{"tradeId":"%d","px":"1","sz":"1","side":"buy","ts":"1"}' % i for i in range(3)) + b"]}"
    for cap in (0, 2, 3, 5):
        for dec in both():
            out = np.zeros(cap, dtype=TICK_DTYPE)
            pos, used = dec.decode([f, f], 0, out)
            assert (pos, used) == {0: (0, 0), 2: (0, 0), 3: (3, 1), 5: (3, 1)}[cap]


def test_numbers_match_python_float():
    cases = ["0", "-0", "0.1", "42219.9", "0.00000001", "123456789012345678901234567890",
             "1.2345678901234567890123", "9007199254740993", "00012.500", "99999999999999999999.9"]
    for s in cases:
        f = (b'{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"tradeId":"1","px":"'
             + s.encode() + b'","sz":"1","side":"buy","ts":"1"}]}')
        recs, status = same([f])
        assert list(status) == [0]
        assert np.float64(float(s)).tobytes() == recs["price"][0].tobytes(), s


def test_statuses_are_counted():
    base = (b'{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"tradeId":"1","px":"1",'
            b'"sz":"1","side":"buy","ts":"1"}]}')
    bad = {
        base.replace(b"BTC-USDT", b"DOGE-USD"): "unknown_symbol",
        base.replace(b'"px":"1"', b'"px":"1e3"'): "bad_number",
        base.replace(b'"px":"1"', b'"px":1'): "bad_number",
        base.replace(b'"ts":"1"', b'"ts":"x"'): "bad_int",
        base.replace(b'"buy"', b'"BUY"'): "bad_side",
        base.replace(b'"sz":"1",', b""): "missing_field",
        base[:-3]: "malformed",
        base + b" ": "malformed",
        b'{"arg":{"channel":"books"}}': "not_trades",
        b"pong": "not_trades",
    }
    for dec in both():
        out = np.zeros(16, dtype=TICK_DTYPE)
        pos, used = dec.decode(list(bad) + [base, "text"], 0, out)
        assert (pos, used) == (1, len(bad) + 2)
        want = {}
        for v in bad.values():
            want[v] = want.get(v, 0) + 1
        want.update(ok=1, not_bytes=1)
        assert dec.counts == want
        assert dec.errors == len(bad) - 2 + 1


TEMPLATE = (b'{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT",'
            b'"tradeId":"338476307","px":"30236","sz":"0.0002","side":"buy","ts":"1652459224818",'
            b'"count":"3","seqId":1234}]}')


@st.composite
def mutated(draw):
    b = bytearray(TEMPLATE)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "dup"]))
        if not b:
            break
        i = draw(st.integers(0, len(b) - 1))
        if op == "flip":
            b[i] = draw(st.sampled_from(b'"\\{}[],:0123456789.-eE ab\x00\xff'))
        elif op == "insert":
            b[i:i] = draw(st.binary(min_size=1, max_size=6))
        elif op == "delete":
            del b[i:i + draw(st.integers(1, 5))]
        elif op == "truncate":
            del b[i:]
        else:
            b[i:i] = b[i:i + draw(st.integers(1, 40))]
    return bytes(b)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(mutated(), st.binary(max_size=80)), min_size=1, max_size=8),
       st.integers(0, 12))
def test_fuzzed_frames_agree_and_only_count(frames, cap):
    recs, status = same(frames, cap)
    c = okx.trade_decoder(SYMS)
    for f in frames:
        out = np.zeros(8, dtype=TICK_DTYPE)
        st_, w = c.decode_one(f, 5, out)
        if st_ == 0:   # whatever the kernel accepts, the cool path reads the same way
            want = okx.parse_trades(json.loads(f), SYMS, 5)
            assert out[:w].tobytes() == want.tobytes()


@settings(max_examples=120, deadline=None)
@given(st.lists(st.fixed_dictionaries({
    "tradeId": st.integers(0, 10**18 - 1).map(str),
    "px": st.from_regex(r"[0-9]{1,25}(\.[0-9]{1,25})?", fullmatch=True).filter(
        lambda s: len(s) <= 40),
    "sz": st.from_regex(r"[0-9]{1,12}(\.[0-9]{1,12})?", fullmatch=True),
    "side": st.sampled_from(["buy", "sell"]),
    "ts": st.integers(0, 9_000_000_000_000).map(str)}), min_size=1, max_size=5),
    st.sampled_from(sorted(SYMS)))
def test_valid_pushes_match_cool_path(items, inst):
    m = {"arg": {"channel": "trades", "instId": inst}, "data": items}
    f = json.dumps(m, separators=(",", ":")).encode()
    recs, status = same([f])
    assert list(status) == [0]
    assert recs.tobytes() == okx.parse_trades(m, SYMS, 5).tobytes()


def test_bad_arguments_are_errors():
    for dec in both():
        with pytest.raises(ValueError):
            dec.decode([], 0, np.zeros(3, dtype=np.int64))
        with pytest.raises(ValueError):
            type(dec)({"X" * 40: 1})
        with pytest.raises(TypeError):
            dec.decode_one(None, 0, np.zeros(3, dtype=TICK_DTYPE))
        with pytest.raises(TypeError):
            dec.decode_one(b"x", 0, None)
        with pytest.raises(TypeError):
            dec.decode(None, 0, np.zeros(3, dtype=TICK_DTYPE))
