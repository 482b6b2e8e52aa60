"""Binance selfTradePreventionMode: the signer puts it on every order when configured (both
twins, byte for byte), the config validates it, and the simulator's matching engine honours it as
Binance does (EXPIRE_TAKER / EXPIRE_MAKER / EXPIRE_BOTH → EXPIRED_IN_MATCH, preventedQuantity)."""
from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from pipeline.config import RiskConfig, SimAccountConfig
from pipeline.gateway import sign_py
from pipeline.gateway.signing import BinanceSigner
from pipeline.sim.accounts import Account
from pipeline.sim.book import Book
from pipeline.sim.errors import ApiError
from pipeline.sim.instruments import parse8, spec
from pipeline.sim.matching import Engine
from tests.gateway_helpers import SECRET, btc_rules


# ------------------------------------------------------------------ the signer
@pytest.mark.parametrize("first", [True, False], ids=["recv_window_first", "doc_layout"])
@pytest.mark.parametrize("mode", ["", "NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"])
def test_the_signer_sends_the_mode_and_both_twins_sign_the_same_bytes(first, mode):
    bodies = []
    for S in (BinanceSigner, sign_py.BinanceSigner):
        s = S(SECRET, resp_type="FULL", recv_window_first=first, stp_mode=mode)
        s.set_instrument(btc_rules())
        bodies.append(s.encode_sign(1, -1, 1, 1, 100, 5_000_000, b"pl1.1.1", 1_700_000_000_000))
    assert bodies[0] == bodies[1]
    params = dict(parse_qsl(bodies[0].decode()))
    if mode:
        assert params["selfTradePreventionMode"] == mode
    else:
        assert "selfTradePreventionMode" not in params
    body, sig = bodies[0].rsplit(b"&signature=", 1)   # the signature covers the mode too
    assert sign_py.BinanceSigner(SECRET).sign(body) == sig.decode()


@pytest.mark.parametrize("S", [BinanceSigner, sign_py.BinanceSigner], ids=["cython", "python"])
def test_the_signer_refuses_an_unknown_mode(S):
    with pytest.raises(ValueError, match="stp_mode"):
        S(SECRET, stp_mode="EXPIRE_ALL")


def test_the_config_key_is_validated():
    assert RiskConfig().self_trade_prevention_mode == ""
    assert RiskConfig(self_trade_prevention_mode="EXPIRE_MAKER").self_trade_prevention_mode \
        == "EXPIRE_MAKER"
    with pytest.raises(ValueError, match="self_trade_prevention_mode"):
        RiskConfig(self_trade_prevention_mode="expire_maker")


# ------------------------------------------------------------------ the simulator
def _engine():
    b = Book(spec("BTCUSDT"), update_id=10)
    for p, q in (("100.00", "1"), ("99.99", "2"), ("99.98", "3")):
        b.set_level(True, parse8(p), parse8(q))
    for p, q in (("100.01", "1"), ("100.02", "2"), ("100.03", "3")):
        b.set_level(False, parse8(p), parse8(q))
    b.last_price = parse8("100.00")
    acct = Account(SimAccountConfig(balances={"USDT": "10000", "BTC": "20"}), 1)
    events: list[dict] = []
    acct.listeners[1] = events.append
    return Engine({"BTCUSDT": b}, {acct.api_key: acct}, clock_ms=lambda: 42), acct, events


def _rest_sell(eng, acct, price="100.02", qty="1", cid="maker"):
    o, _, _ = eng.place(acct, {"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT",
                               "timeInForce": "GTC", "price": price, "quantity": qty,
                               "newClientOrderId": cid})
    assert o.status == "NEW"
    return o


def _buy(eng, acct, mode, price="100.03", qty="2", otype="LIMIT"):
    p = {"symbol": "BTCUSDT", "side": "BUY", "type": otype, "quantity": qty,
         "newClientOrderId": "taker"}
    if otype == "LIMIT":
        p.update(timeInForce="GTC", price=price)
    if mode is not None:
        p["selfTradePreventionMode"] = mode
    return eng.place(acct, p)


def test_expire_taker_stops_the_taker_at_our_own_resting_order(monkeypatch):
    eng, acct, events = _engine()
    maker = _rest_sell(eng, acct)                              # our SELL at 100.02
    taker, fills, _ = _buy(eng, acct, "EXPIRE_TAKER")
    assert [f["price"] for f in fills] == ["100.01000000"]     # the better level only
    assert taker.status == "EXPIRED_IN_MATCH" and not taker.is_open
    assert taker.prevented_qty == parse8("1") and taker.prevented_match_id >= 0
    assert maker.status == "NEW" and maker.is_open              # the maker stays
    d = taker.details()
    assert d["selfTradePreventionMode"] == "EXPIRE_TAKER" and d["preventedQuantity"] == "1.00000000"
    ev = [e for e in events if e.get("c") == "taker" and e.get("x") == "TRADE_PREVENTION"]
    assert len(ev) == 1 and ev[0]["X"] == "EXPIRED_IN_MATCH" and ev[0]["A"] == "1.00000000"
    assert acct.locked.get("USDT", 0) == 0                      # nothing of the taker rests


def test_expire_maker_expires_our_resting_order_and_the_taker_goes_on():
    eng, acct, events = _engine()
    maker = _rest_sell(eng, acct)
    taker, fills, _ = _buy(eng, acct, "EXPIRE_MAKER")
    assert maker.status == "EXPIRED_IN_MATCH" and maker.prevented_qty == parse8("1")
    assert taker.status == "FILLED" and len(fills) == 2          # 100.01 and 100.02 (the tape)
    assert not any(e[3] is maker for e in eng.resting_sell["BTCUSDT"])
    assert acct.locked.get("BTC", 0) == 0                         # the maker's lock released
    ev = [e for e in events if e.get("c") == "maker" and e.get("x") == "TRADE_PREVENTION"]
    assert len(ev) == 1 and ev[0]["V"] == "NONE"                 # the maker's own mode


def test_expire_both_expires_the_taker_and_the_maker_it_met_with_one_match_id():
    eng, acct, _ = _engine()
    maker = _rest_sell(eng, acct)
    taker, _, _ = _buy(eng, acct, "EXPIRE_BOTH")
    assert maker.status == taker.status == "EXPIRED_IN_MATCH"
    assert maker.prevented_match_id == taker.prevented_match_id >= 0


@pytest.mark.parametrize("mode", [None, "NONE"])
def test_none_keeps_the_old_model(mode):
    eng, acct, _ = _engine()
    maker = _rest_sell(eng, acct)
    taker, fills, _ = _buy(eng, acct, mode)
    assert taker.status == "FILLED" and maker.status == "NEW"
    assert taker.details()["selfTradePreventionMode"] == "NONE"
    assert "preventedQuantity" not in taker.details()


def test_a_taker_filled_before_it_reaches_our_order_is_not_prevented():
    eng, acct, _ = _engine()
    maker = _rest_sell(eng, acct, price="100.03")
    taker, fills, _ = _buy(eng, acct, "EXPIRE_TAKER", qty="1")  # 100.01 fills all of it
    assert taker.status == "FILLED" and maker.status == "NEW"


def test_a_taker_whose_limit_does_not_reach_our_order_is_not_prevented():
    eng, acct, _ = _engine()
    maker = _rest_sell(eng, acct, price="100.03")
    taker, _, _ = _buy(eng, acct, "EXPIRE_BOTH", price="100.02", qty="5")
    assert taker.status == "PARTIALLY_FILLED" and maker.status == "NEW"   # rests at 100.02


def test_a_market_order_is_prevented_too():
    eng, acct, _ = _engine()
    _rest_sell(eng, acct, price="100.02")
    taker, fills, _ = _buy(eng, acct, "EXPIRE_TAKER", otype="MARKET", qty="3")
    assert taker.status == "EXPIRED_IN_MATCH" and len(fills) == 1


def test_an_unknown_mode_is_refused_like_binance():
    eng, acct, _ = _engine()
    with pytest.raises(ApiError) as e:
        _buy(eng, acct, "EXPIRE_ALL")
    assert e.value.code == -1100 and "selfTradePreventionMode" in str(e.value)
