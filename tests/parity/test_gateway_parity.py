"""Cython kernels vs their pure-Python twins on random inputs (hypothesis): identical decisions,
identical state after every step, identical signed bytes; fuzzed messages give only reason codes."""
from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.gateway import orderpath_py, risk_py, sign_py
from pipeline.gateway.orderpath import OrderPath
from pipeline.gateway.instruments import InstrumentRules
from pipeline.gateway.reasons import Reason
from pipeline.gateway.risk import RiskEngine, make_signal
from pipeline.gateway.signing import BinanceSigner
from pipeline.records import SIGNAL_STRUCT
from tests.gateway_helpers import BINANCE, SECRET

REASONS = {int(r) for r in Reason}
COLLARS = [10.0, 50.0, 100.0, 250.0]          # also used to put prices exactly on the band edge
SETTINGS = settings(max_examples=120, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def instruments(draw, symbol_id):
    pd = draw(st.integers(0, 8))
    qd = draw(st.integers(0, 8))
    tick = draw(st.integers(1, 50))
    step = draw(st.integers(1, 50))
    def dec(units, d):
        return f"{units / 10**d:.{d}f}" if d else str(units)
    min_p = draw(st.integers(0, 100)) * tick
    max_p = draw(st.sampled_from([0, 10**6, 10**12]))
    min_q = draw(st.integers(0, 10)) * step
    rules = InstrumentRules.build(
        symbol_id=symbol_id, venue=draw(st.sampled_from([BINANCE, BINANCE, 1])),
        name=draw(st.sampled_from(["BTCUSDT", "ETHBTC", "X", "１２３"])),
        tick=dec(tick, pd), step=dec(step, qd), min_price=dec(min_p, pd),
        max_price=dec(max_p, pd), min_qty=dec(min_q, qd),
        max_qty=dec(draw(st.sampled_from([0, 10**7, 10**10])), qd),
        min_notional=draw(st.sampled_from(["0", "0", "0.001", "10"])),
        max_notional=draw(st.sampled_from(["0", "100", "1000000"])),
        notional_applies_to_market=draw(st.booleans()),
        max_notional_applies_to_market=draw(st.booleans()),
        max_order_qty=dec(draw(st.integers(1, 10**5)) * step, qd),
        max_position_qty=dec(draw(st.integers(0, 10**6)) * step, qd),
        max_order_notional=draw(st.floats(1.0, 1e7)),
    )
    # decimals as the rules derived them (a "0.10" tick has 1 decimal, not 2)
    r = rules
    return r, r.price_decimals, r.qty_decimals, r.tick_units, r.step_units


limits = st.fixed_dictionaries(dict(
    max_gross_notional=st.floats(1.0, 1e8),
    collar_bps=st.sampled_from(COLLARS) | st.floats(0.5, 5000.0) | st.integers(1, 5000).map(float),
    ref_stale_ns=st.sampled_from([1, 10**9, 10**11, 10**11]), throttle_orders=st.integers(1, 8),
    throttle_window_ns=st.sampled_from([1, 10**6, 10**9, 10**10]) | st.integers(1, 10**10),
    runaway_signals=st.integers(3, 30),
    runaway_window_ns=st.sampled_from([1, 10**9, 10**10]) | st.integers(1, 10**10),
    max_tick_age_ns=st.sampled_from([1, 10**6, 10**9]) | st.integers(1, 10**10),
    duplicate_window_ns=st.sampled_from([0, 0, 1, 10**6, 10**9, 10**12]),
    self_trade=st.booleans(), state=st.sampled_from([0] * 8 + [1, 2]),
    window_collar_bps=st.sampled_from([0.0, 0.0, 10.0, 50.0, 300.0]) | st.floats(0.5, 5000.0),
    window_collar_ns=st.sampled_from([16, 10**6, 10**9, 10**10]) | st.integers(16, 10**10),
))

weird_floats = st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, -1.0, 1e300, 5e-324,
                                1e-9, 1e13])


@st.composite
def scenario(draw, collar_bps=100.0):
    """Mostly valid signals (prices near the reference, on the grid) with one field broken now and
    then, interleaved with the gateway's updates."""
    insts = [draw(instruments(i)) for i in range(1, draw(st.integers(1, 3)) + 1)]
    # a reference that is a multiple of 10**(pd+4) makes ref * bps / 10000 exact in binary64,
    # so prices can sit exactly on the collar edge
    ref_units = {r[0].symbol_id: r[3] * draw(st.integers(1, 10**5) | st.integers(1, 10).map(
                 lambda k, pd=r[1]: k * 10**(pd + 4))) for r in insts}
    ops, now, seq, last = [], 10**12, 0, None
    for _ in range(draw(st.integers(1, 25))):
        now += draw(st.sampled_from([0, 1, 1000, 10**6, 10**8, 3 * 10**9]))
        kind = draw(st.sampled_from(["sig"] * 8 + ["ref", "fill", "release", "state", "pos",
                                                   "gate", "tickage", "own"]))
        rules, pd, qd, tick, step = draw(st.sampled_from(insts))
        sid = rules.symbol_id
        if kind == "sig":
            seq += 1
            otype = draw(st.sampled_from([1, 1, 1, 2, 3]))
            pu = ref_units[sid] + draw(st.integers(-30, 30)) * tick \
                + draw(st.sampled_from([0] * 9 + [1]))           # off the tick grid now and then
            if draw(st.integers(0, 3)) == 0:                     # on (or next to) a collar edge
                band = int(ref_units[sid] * draw(st.sampled_from([collar_bps] + COLLARS))
                           // 10_000)
                pu = ref_units[sid] + draw(st.sampled_from([-1, 1])) * band \
                    + draw(st.sampled_from([0, 0, 1, -1]))
                pu = max(pu, 1)
            f = dict(epoch=10**18, seq=seq, symbol=sid, venue=rules.venue,
                     side=draw(st.sampled_from([1, -1])), order_type=otype,
                     tif=draw(st.sampled_from([1, 2, 3])) if otype == 1 else 0,
                     qty=(draw(st.integers(1, 2000)) * step + draw(st.sampled_from([0] * 9 + [1])))
                     / 10**qd,
                     price=pu / 10**pd if otype != 2 else math.nan,
                     created_mono=now - draw(st.sampled_from([0, 1, 10**6])),
                     ttl_ns=draw(st.sampled_from([10**9, 10**10])),
                     trigger_mono=draw(st.sampled_from([0, now, now - 1, now - 10**6,
                                                        now - 10**9, now - 10**10, -5])),
                     strategy_id=draw(st.integers(0, 3)), version=1)
            if last is not None and draw(st.integers(0, 3)) == 0:   # the same order again
                f.update({k: last[k] for k in ("symbol", "venue", "side", "order_type", "tif",
                                               "qty", "price", "strategy_id")})
            last = dict(f)
            if draw(st.integers(0, 4)) == 0:          # break one field
                key = draw(st.sampled_from(sorted(f)))
                f[key] = draw({
                    "epoch": st.sampled_from([0, -1, 1, 10**18 - 1]),
                    "seq": st.integers(-1, seq + 1), "symbol": st.sampled_from([0, 9, 255, 2**32 - 1]),
                    "venue": st.integers(0, 255), "side": st.integers(-128, 127),
                    "order_type": st.integers(0, 255), "tif": st.integers(0, 255),
                    "qty": weird_floats | st.floats(allow_nan=True, allow_infinity=True),
                    "price": weird_floats | st.floats(allow_nan=True, allow_infinity=True),
                    "created_mono": st.sampled_from([0, -1, now + 1, now - 10**11]),
                    "trigger_mono": st.sampled_from([-(2**63), 2**63 - 1, now + 1, 1]),
                    "ttl_ns": st.sampled_from([0, -1, 1]),
                    "strategy_id": st.integers(0, 2**32 - 1), "version": st.integers(0, 255),
                }[key])
            ops.append(("sig", make_signal(**f), now))
        elif kind == "ref":
            ref_units[sid] = max(tick, ref_units[sid] + draw(st.integers(-50, 50)) * tick)
            ops.append(("ref", sid, ref_units[sid] / 10**pd, now))
        elif kind == "fill":
            ops.append(("fill", sid, draw(st.sampled_from([1, -1])),
                        draw(st.integers(0, 1000)) * step / 10**qd))
        elif kind == "release":
            ops.append(("release", sid, draw(st.sampled_from([1, -1])),
                        draw(st.integers(0, 1000)) * step / 10**qd))
        elif kind == "own":                   # the gateway's book: our best resting BUY / SELL
            ops.append(("own", sid, draw(st.sampled_from([0, 1, -1, 5])) * tick / 10**pd
                        + ref_units[sid] / 10**pd if draw(st.booleans()) else 0.0,
                        ref_units[sid] / 10**pd + draw(st.sampled_from([1, 0, 5])) * tick / 10**pd
                        if draw(st.booleans()) else 0.0))
            ops[-1] = ops[-1][:2] + tuple(x if x * 10**pd <= 1e13 else 0.0 for x in ops[-1][2:])
        elif kind == "tickage":
            ops.append(("tickage", sid, draw(st.sampled_from([1, 10**6, 10**9, 10**12]))))
        elif kind == "pos":
            ops.append(("pos", sid, draw(st.integers(-10**4, 10**4)) * step / 10**qd))
        elif kind == "gate":                  # the venue's limits as ratelimit.HostGate pushes them
            ahead = st.sampled_from([0, 0, 1, 10**6, 10**9])
            ops.append(("gate", now + draw(ahead) if draw(st.booleans()) else 0,
                        now + draw(ahead) if draw(st.booleans()) else 0,
                        draw(st.sampled_from([0, 1, 1000, 10**8, 2**62])),
                        now + draw(ahead) if draw(st.booleans()) else 0))
        else:
            ops.append(("state", draw(st.sampled_from([0, 0, 0, 1, 2]))))
    refs = [(sid, u / 10**[r for r in insts if r[0].symbol_id == sid][0][1])
            for sid, u in ref_units.items()]
    return [r[0] for r in insts], refs, ops


def _engines(Engine, Signer, lim, rules, refs):
    e = Engine(**lim)
    s = Signer(SECRET, resp_type="RESULT")
    for r in rules:
        e.set_instrument(r)
        s.set_instrument(r)
    for sid, ref in refs:
        e.set_reference(sid, ref, 10**12)
    return e, s


def _path_of(e, s):
    return (OrderPath if isinstance(e, RiskEngine) else orderpath_py.OrderPath)(e, s)


def _run(Engine, Signer, lim, rules, refs, ops):
    e, s = _engines(Engine, Signer, lim, rules, refs)
    p = _path_of(e, s)
    trace = []
    for op in ops:
        if op[0] == "sig":
            body = p.process(op[1], op[2], 1_700_000_000_000 + op[2] // 10**6)
            trace.append((p.last_reason, p.last_gap, body))
        elif op[0] == "ref":
            trace.append(e.set_reference(op[1], op[2], op[3]))
        elif op[0] == "fill":
            e.apply_fill(op[1], op[2], op[3])
        elif op[0] == "release":
            e.release_open(op[1], op[2], op[3])
        elif op[0] == "pos":
            e.set_position(op[1], op[2])
        elif op[0] == "gate":
            e.set_venue_gate(*op[1:])
        elif op[0] == "tickage":
            e.set_max_tick_age(op[1], op[2])
        elif op[0] == "own":
            e.set_own_quotes(op[1], op[2], op[3])
        else:
            e.set_state(op[1])
        trace.append(e.snapshot())
    return trace, s.signed_count


@SETTINGS
@given(lim=limits, data=st.data())
def test_kernel_and_twin_agree_on_decisions_state_and_bytes(lim, data):
    rules, refs, ops = data.draw(scenario(lim["collar_bps"]))
    a = _run(RiskEngine, BinanceSigner, lim, rules, refs, ops)
    b = _run(risk_py.RiskEngine, sign_py.BinanceSigner, lim, rules, refs, ops)
    assert a == b
    for step in a[0]:
        if isinstance(step, tuple) and len(step) == 2 and isinstance(step[0], int):
            reason, body = step
            assert reason in REASONS
            assert (body is None) == (reason != 0)      # nothing signed on a reject


@SETTINGS
@given(lim=limits, data=st.lists(st.tuples(
    st.binary(min_size=0, max_size=100) | st.binary(min_size=80, max_size=80)
    | st.binary(min_size=80, max_size=80).map(lambda b: b[:76] + b"\x01" + b[77:]),  # version 1
    st.integers(-(2**63), 2**63 - 1) | st.integers(1, 10**13)), min_size=1, max_size=30),
    ref_mono=st.integers(-(2**63), 2**63 - 1))
def test_fuzzed_messages_give_only_reason_codes(lim, data, ref_mono):
    engines = [RiskEngine(**lim), risk_py.RiskEngine(**lim)]
    rules = InstrumentRules.build(symbol_id=1, venue=BINANCE, name="BTCUSDT", tick="0.01",
                                  step="0.00001", max_order_qty="1", max_position_qty="2",
                                  max_order_notional=1e5)
    for e in engines:
        e.set_instrument(rules)
        e.set_reference(1, 50_000.0, 0)
        e.set_reference(1, 50_000.0, ref_mono)      # ignored when negative
    for msg, now in data:
        got = [e.check(msg, now) for e in engines]
        assert got[0] == got[1] and got[0] in REASONS
    assert engines[0].snapshot() == engines[1].snapshot()


@SETTINGS
@given(fields=st.tuples(
    st.integers(-(2**63), 2**63 - 1), st.integers(-(2**63), 2**63 - 1),
    st.integers(-(2**63), 2**63 - 1), st.integers(-(2**63), 2**63 - 1),
    st.integers(-(2**63), 2**63 - 1), st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True), st.floats(allow_nan=True, allow_infinity=True),
    st.integers(0, 2**32 - 1), st.integers(0, 3), st.integers(0, 255), st.integers(-128, 127),
    st.integers(0, 255), st.integers(0, 255), st.integers(0, 255), st.integers(0, 255),
    st.integers(0, 2**16 - 1)))
def test_every_field_value_gives_a_reason_code(fields):
    msg = SIGNAL_STRUCT.pack(*fields)
    engines = [RiskEngine(max_gross_notional=1e9, collar_bps=1e4, ref_stale_ns=10**12,
                          throttle_orders=10**6, throttle_window_ns=10**9, runaway_signals=4096,
                          runaway_window_ns=1),
               risk_py.RiskEngine(max_gross_notional=1e9, collar_bps=1e4, ref_stale_ns=10**12,
                                  throttle_orders=10**6, throttle_window_ns=10**9,
                                  runaway_signals=4096, runaway_window_ns=1)]
    for e in engines:
        e.set_instrument(InstrumentRules.build(symbol_id=1, venue=BINANCE, name="BTCUSDT",
                                               tick="0.01", step="0.00001", max_order_qty="100",
                                               max_position_qty="1000",
                                               max_order_notional=1e9))
        e.set_reference(1, 50_000.0, 0)
    now = max(fields[4], 1)
    got = [e.check(msg, now) for e in engines]
    assert got[0] == got[1] and got[0] in REASONS


@SETTINGS
@given(units=st.integers(1, 10**13), decimals=st.integers(0, 12),
       ts=st.integers(0, 2**53), cid=st.text("abcXYZ019._-:/", max_size=36),
       side=st.sampled_from([1, -1]), otype=st.sampled_from([1, 2, 3]),
       tif=st.sampled_from([1, 2, 3]), first=st.booleans(),
       resp=st.sampled_from(["", "ACK", "RESULT", "FULL"]), rw=st.integers(1, 60000))
def test_encoder_bytes_identical(units, decimals, ts, cid, side, otype, tif, first, resp, rw):
    rules = InstrumentRules.build(symbol_id=5, venue=BINANCE, name="ETHBTC",
                                  tick=f"{10**-decimals:.{decimals}f}",
                                  step=f"{10**-decimals:.{decimals}f}", max_order_qty="1",
                                  max_position_qty="1", max_order_notional=1.0)
    out = []
    for Signer in (BinanceSigner, sign_py.BinanceSigner):
        s = Signer(SECRET, recv_window_ms=rw, resp_type=resp, recv_window_first=first)
        s.set_instrument(rules)
        out.append(s.encode_sign(5, side, otype, tif, units, units + 1, cid.encode(), ts))
    assert out[0] == out[1]
    q, _, sig = out[0].partition(b"&signature=")
    assert sign_py.HmacSha256(SECRET).hexdigest(q) == sig.decode()


@SETTINGS
@given(ref_k=st.integers(1, 10_000), bps=st.sampled_from(COLLARS + [1.0, 7.0, 333.0]),
       sign=st.sampled_from([1, -1]), nudge=st.sampled_from([-1, 0, 0, 1]),
       side=st.sampled_from([1, -1]))
def test_collar_edges_follow_the_exact_rule_on_both_engines(ref_k, bps, sign, nudge, side):
    """Prices on, just inside and just outside the collar edge: both engines agree with the exact
    rational rule |price - ref| <= ref * bps / 10000 (inclusive) when the edge is representable."""
    from fractions import Fraction
    ref_units = ref_k * 10_000 * 100                 # ref = ref_k * 10000.00, so the band is exact
    band_units = ref_units * int(bps) // 10_000
    pu = ref_units + sign * band_units + nudge       # nudge: one tick either way
    price, ref = pu / 100, ref_units / 100
    exact_ok = abs(Fraction(pu, 100) - Fraction(ref_units, 100)) <= \
        Fraction(ref_units, 100) * Fraction(int(bps)) / 10_000
    rules = InstrumentRules.build(symbol_id=1, venue=BINANCE, name="BTCUSDT", tick="0.01",
                                  step="0.00001", max_order_qty="1", max_position_qty="10",
                                  max_order_notional=1e12)
    got = []
    for Engine in (RiskEngine, risk_py.RiskEngine):
        e = Engine(max_gross_notional=1e15, collar_bps=bps, ref_stale_ns=10**9,
                   throttle_orders=10, throttle_window_ns=10**9, runaway_signals=10,
                   runaway_window_ns=10**9)
        e.set_instrument(rules)
        e.set_reference(1, ref, 10**12)
        got.append(e.check(make_signal(epoch=1, seq=1, symbol=1, venue=BINANCE, side=side,
                                       order_type=1, tif=1, qty=0.001, price=price,
                                       created_mono=10**12, ttl_ns=10**9), 10**12))
    assert got[0] == got[1] == (Reason.ACCEPT if exact_ok else Reason.PRICE_COLLAR)


@SETTINGS
@given(rows=st.lists(st.tuples(
    st.sampled_from([1, 2, 3, 4, 5, 7, 16, 17, 18, 19, 20, 0, 99]), st.sampled_from([0, 1, 2, 9]),
    st.sampled_from([BINANCE, BINANCE, 1, 3]),
    st.floats(allow_nan=True, allow_infinity=True) | st.floats(1.0, 1e5),
    st.integers(0, 2**62)), max_size=40), now=st.integers(1, 2**62),
    window=st.tuples(st.sampled_from([0.0, 1.0, 100.0, 1e4]),
                     st.sampled_from([16, 10**6, 10**9, 10**12])))
def test_apply_ticks_parity(rows, now, window):
    import numpy as np

    from pipeline.records import TICK_DTYPE
    a = np.zeros(len(rows), dtype=TICK_DTYPE)
    for i, (kind, symbol, venue, price, mono) in enumerate(rows):
        a[i]["kind"], a[i]["symbol"], a[i]["venue"] = kind, symbol, venue
        a[i]["price"], a[i]["mono_ts"] = price, mono
    out = []
    for Engine in (RiskEngine, risk_py.RiskEngine):
        e = Engine(max_gross_notional=1e12, collar_bps=100.0, ref_stale_ns=10**9,
                   throttle_orders=10, throttle_window_ns=10**9, runaway_signals=10,
                   runaway_window_ns=10**9, window_collar_bps=window[0],
                   window_collar_ns=window[1])
        for sid in (1, 2):
            e.set_instrument(InstrumentRules.build(
                symbol_id=sid, venue=BINANCE, name="X", tick="0.01", step="0.001",
                max_order_qty="10", max_position_qty="10", max_order_notional=1e9))
        n = e.apply_ticks(a)
        m = make_signal(epoch=1, seq=1, symbol=1, venue=BINANCE, side=1, order_type=1, tif=1,
                        qty=0.5, price=100.0, created_mono=now, ttl_ns=10**9)
        out.append((n, e.snapshot(), e.check(m, now)))
    assert out[0] == out[1]


def test_twins_have_the_same_public_api():
    import inspect

    from pipeline import _native
    sign = _native.load("sign")
    pairs = [(RiskEngine, risk_py.RiskEngine), (BinanceSigner, sign_py.BinanceSigner),
             (sign.HmacSha256, sign_py.HmacSha256), (sign.OkxSigner, sign_py.OkxSigner),
             (sign.Ed25519Signer, sign_py.Ed25519Signer), (OrderPath, orderpath_py.OrderPath)]
    for kernel, twin in pairs:
        k = {n for n in dir(kernel) if not n.startswith("_")}
        t = {n for n, v in inspect.getmembers(twin) if not n.startswith("_") and callable(v)}
        assert t <= k, (kernel.__name__, t - k)           # every twin method exists in the kernel
        kc = {n for n in k if callable(getattr(kernel, n, None))}
        assert kc <= t | {"resp_type_name"}, (kernel.__name__, kc - t)
    for fn in ("okx_prehash", "ed25519_verify"):
        assert callable(getattr(sign, fn)) and callable(getattr(sign_py, fn))


def _run_with_probes(Engine, Signer, lim, rules, refs, ops):
    """Like _run, but every signal is first probed: the probe must answer what the real check
    then answers, and leave every piece of state as it found it."""
    e, s = _engines(Engine, Signer, lim, rules, refs)
    p = _path_of(e, s)
    probes = []
    for op in ops:
        if op[0] == "sig":
            ts = 1_700_000_000_000 + op[2] // 10**6
            before = e.snapshot()
            probed = e.probe(op[1], op[2])
            probed_body = p.probe(op[1], op[2], ts)
            assert e.snapshot() == before                  # no effect at all
            body = p.process(op[1], op[2], ts)
            assert probed == p.last_reason                 # the same answer as the real check
            assert probed_body == body                     # and the same bytes
            probes.append(probed)
        elif op[0] == "ref":
            e.set_reference(op[1], op[2], op[3])
        elif op[0] == "gate":
            e.set_venue_gate(*op[1:])
        elif op[0] == "tickage":
            e.set_max_tick_age(op[1], op[2])
        elif op[0] == "own":
            e.set_own_quotes(op[1], op[2], op[3])
        elif op[0] == "state":
            e.set_state(op[1])
    return probes


@SETTINGS
@given(lim=limits, data=st.data())
def test_probe_answers_like_check_and_changes_nothing_on_both_engines(lim, data):
    rules, refs, ops = data.draw(scenario(lim["collar_bps"]))
    a = _run_with_probes(RiskEngine, BinanceSigner, lim, rules, refs, ops)
    b = _run_with_probes(risk_py.RiskEngine, sign_py.BinanceSigner, lim, rules, refs, ops)
    assert a == b
