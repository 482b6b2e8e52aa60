"""The compiled OKX order path (ext/okx_sign.pyx) against its pure-Python twin
(pipeline/venues/okx/okx_sign_py.py): identical timestamps, signatures and bodies on random orders,
identical decisions through the risk kernel; the signature verifies with hmac/base64 on its own,
the body is the JSON OKX documents, and the simulator's own check accepts it."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import _native
from pipeline.gateway import risk_py
from pipeline.venues.okx import okx_sign_py
from pipeline.gateway.instruments import InstrumentRules
from pipeline.gateway.risk import RiskEngine
from pipeline.records import Venue
from pipeline.venues.okx import orders as ox
from tests.gateway_helpers import LIMITS, NOW, T0, SECRET, Sig

okx_sign = _native.load("okx_sign")
OKX = int(Venue.OKX)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def rules(symbol_id=1, name="BTC-USDT", **over):
    kw = dict(symbol_id=symbol_id, venue=OKX, name=name, tick="0.1", step="0.00000001",
              min_qty="0.00001", max_qty="1000", max_order_qty="1", max_position_qty="2",
              max_order_notional=60_000.0)
    kw.update(over)
    return InstrumentRules.build(**kw)


def both(secret=SECRET, *rs):
    out = []
    for cls in (okx_sign.OkxOrderSigner, okx_sign_py.OkxOrderSigner):
        s = cls(secret)
        for r in rs or (rules(),):
            s.set_instrument(r)
        out.append(s)
    return out


def test_iso_timestamp_matches_the_twin_and_known_values():
    assert okx_sign.iso_ms(1607418537715) == "2020-12-08T09:08:57.715Z"   # OKX's doc example
    for ms in (0, 1, 999, 951782400000, 4102444799999, 1709164800123, 1700000000000):
        assert okx_sign.iso_ms(ms) == ox.iso_ms(ms)
        assert ox.parse_iso_ms(ox.iso_ms(ms)) == ms


@SETTINGS
@given(ms=st.integers(0, 253402300799999))
def test_iso_timestamp_parity(ms):
    assert okx_sign.iso_ms(ms) == ox.iso_ms(ms)


@SETTINGS
@given(side=st.sampled_from([1, -1]),
       kind=st.sampled_from([(1, 1), (1, 2), (1, 3), (2, 0), (3, 0)]),
       qu=st.integers(1, 10**12), pu=st.integers(1, 10**12),
       strategy=st.integers(0, 2**16 - 1), epoch=st.integers(0, 2**64 - 1),
       seq=st.integers(0, 2**40 - 1), ts=st.integers(0, 4102444799999),
       secret=st.sampled_from([SECRET, "k", "x" * 100]))
def test_signed_orders_are_identical_and_verify(side, kind, qu, pu, strategy, epoch, seq, ts,
                                                 secret):
    ck, py = both(secret)
    cid = okx_sign_py.okx_client_id(strategy, epoch, seq)
    a = ck.encode_sign(1, side, kind[0], kind[1], qu, pu, cid, ts)
    b = py.encode_sign(1, side, kind[0], kind[1], qu, pu, cid, ts)
    assert a == b
    t, sig, body = okx_sign_py.split(a)
    want = base64.b64encode(hmac.new(secret.encode(), ox.prehash(t, "POST", ox.ORDER_PATH, body),
                                     hashlib.sha256).digest()).decode()
    assert sig == want and ox.parse_iso_ms(t) == ts
    d = json.loads(body)
    assert d["instId"] == "BTC-USDT" and d["tdMode"] == "cash" and d["side"] == ox.SIDE[side]
    assert d["ordType"] == ox.ORD_TYPE[kind] and len(d["clOrdId"]) <= 32
    assert ox.our_cid(d["clOrdId"]) == f"pl{strategy:x}.{epoch:x}.{seq:x}"
    assert ("px" in d) == (kind[0] != 2) and (d.get("tgtCcy") == "base_ccy") == (kind[0] == 2)
    assert ck.encode(1, side, kind[0], kind[1], qu, pu, cid) == body
    assert ck.sign(t, "POST", ox.ORDER_PATH, body) == py.sign(t, "POST", ox.ORDER_PATH, body) == sig


def test_bad_orders_are_refused_alike():
    ck, py = both()
    for args in ((2, 1, 1, 1, 1, 1, b"1x1x1", 0), (1, 0, 1, 1, 1, 1, b"1x1x1", 0),
                 (1, 1, 1, 9, 1, 1, b"1x1x1", 0), (1, 1, 1, 1, 0, 1, b"1x1x1", 0),
                 (1, 1, 1, 1, 1, 1, b"pl1.2.3", 0), (1, 1, 1, 1, 1, 1, b"a" * 33, 0),
                 (1, 1, 1, 1, 1, 1, b"1x1x1", -1)):
        for s in (ck, py):
            with pytest.raises(ValueError):
                s.encode_sign(*args)
    for s in (ck, py):
        with pytest.raises(ValueError):
            s.set_instrument(rules(name='BAD"NAME'))
        assert "redacted" in repr(s) and SECRET not in repr(s)
        with pytest.raises(TypeError):
            import pickle
            pickle.dumps(s)


def _paths():
    ck_engine = RiskEngine(**LIMITS)
    py_engine = risk_py.RiskEngine(**LIMITS)
    out = []
    for eng, path_cls, sig_cls in ((ck_engine, okx_sign.OkxOrderPath, okx_sign.OkxOrderSigner),
                                   (py_engine, okx_sign_py.OkxOrderPath,
                                    okx_sign_py.OkxOrderSigner)):
        r = rules()
        eng.set_instrument(r)
        eng.set_reference(1, 50_000.0, T0)
        s = sig_cls(SECRET)
        s.set_instrument(r)
        out.append(path_cls(eng, s))
    return out


def test_order_path_decides_and_signs_alike():
    ck, py = _paths()
    sig = Sig()
    msgs = [sig(venue=OKX), sig(venue=OKX, side=-1, price=50_100.0),
            sig(venue=OKX, order_type=2, qty=0.5), sig(venue=OKX, qty=5.0),      # too big
            sig(venue=OKX, price=90_000.0),                                       # collar
            sig(venue=OKX, symbol=7), sig(venue=OKX, order_type=3, tif=0, price=49_900.0),
            b"\x00" * 10]
    signed = 0
    for m in msgs:
        p = ck.probe(m, NOW, 1_700_000_000_123)
        assert p == py.probe(m, NOW, 1_700_000_000_123)
        a = ck.process(m, NOW, 1_700_000_000_123)
        b = py.process(m, NOW, 1_700_000_000_123)
        assert a == b == p and ck.last_reason == py.last_reason, (m, ck.last_reason)
        signed += a is not None
    assert ck.signer.signed_count == py.signer.signed_count == signed >= 4


def test_market_body_has_no_price():
    ck, _ = both()
    body = ck.encode(1, 1, 2, 0, 150, 0, b"1x2x3")
    assert json.loads(body) == {"instId": "BTC-USDT", "tdMode": "cash", "clOrdId": "1x2x3",
                                "side": "buy", "ordType": "market", "tgtCcy": "base_ccy",
                                "sz": "0.00000150"}
