"""The order path (OrderPath.process): the risk kernel decides, then encode → sign, one call;
nothing signed on a reject; and InstrumentRules built from exchangeInfo filters."""
from __future__ import annotations

import hashlib
import hmac

import pytest

from pipeline.gateway.instruments import InstrumentRules
from pipeline.gateway.reasons import Reason
from tests.gateway_helpers import (BINANCE, LIMITS, NOW, SECRET, T0, Sig, btc_rules, engines,
                                   order_paths, signers)

PAIRS = list(zip(engines(), signers()))
TRIPLES = list(zip(engines(), signers(), order_paths()))


@pytest.fixture(params=TRIPLES, ids=["cython", "python"])
def path(request):
    Engine, Signer, Path = request.param
    e = Engine(**LIMITS)
    e.set_instrument(btc_rules())
    e.set_reference(1, 50_000.0, T0)
    s = Signer(SECRET)
    s.set_instrument(btc_rules())
    return e, s, Path(e, s)


def test_accept_gives_the_signed_body(path):
    e, s, p = path
    body = p.process(Sig()(seq=42, strategy_id=7, side=-1, qty=0.25, price=50_012.5), NOW,
                     1_700_000_000_123)
    assert p.last_reason == Reason.ACCEPT and s.signed_count == 1
    q, _, sig = body.partition(b"&signature=")
    assert q == (b"symbol=BTCUSDT&side=SELL&type=LIMIT&timeInForce=GTC&recvWindow=5000"
                 b"&quantity=0.25000&price=50012.50&newClientOrderId=pl7.17979cfe362a0000.2a"
                 b"&timestamp=1700000000123")
    assert sig.decode() == hmac.new(SECRET.encode(), q, hashlib.sha256).hexdigest()
    assert len(b"pl7.17979cfe362a0000.2a") <= 36


def test_market_order_body(path):
    e, s, p = path
    body = p.process(Sig()(order_type=2, qty=0.001), NOW, 1)
    assert b"&type=MARKET&recvWindow=5000&quantity=0.00100&newClientOrderId=" in body
    assert b"price=" not in body and b"timeInForce" not in body


@pytest.mark.parametrize("over,reason", [(dict(price=60_000.0), Reason.PRICE_COLLAR),
                                         (dict(qty=float("nan")), Reason.BAD_QTY),
                                         (dict(symbol=5), Reason.UNKNOWN_SYMBOL)])
def test_reject_signs_nothing(path, over, reason):
    e, s, p = path
    before = e.snapshot()
    assert p.process(Sig()(**over), NOW, 1) is None
    assert p.last_reason == reason and s.signed_count == 0
    assert e.snapshot()[4] == before[4]            # no open order was added


def test_malformed_message_through_the_path(path):
    e, s, p = path
    assert p.process(b"\x00" * 12, NOW, 1) is None
    assert p.last_reason == Reason.MALFORMED == Reason.BAD_MESSAGE and s.signed_count == 0


def test_probe_gives_the_same_body_and_changes_nothing(path):
    e, s, p = path
    msg = Sig()(seq=42, strategy_id=7, side=-1, qty=0.25, price=50_012.5)
    before = e.snapshot()
    probed = p.probe(msg, NOW, 1_700_000_000_123)
    assert e.snapshot() == before and s.signed_count == 0
    assert p.process(msg, NOW, 1_700_000_000_123) == probed is not None


def test_the_order_path_reports_sequence_gaps(path):
    e, s, p = path
    make = Sig()
    p.process(make(seq=5, strategy_id=3), NOW, 1)
    assert p.last_reason == Reason.ACCEPT and p.last_gap == 4         # first seen at seq 5
    p.process(make(seq=6, strategy_id=3), NOW, 1)
    assert p.last_gap == 0
    p.process(make(seq=9, strategy_id=3), NOW, 1)
    assert p.last_gap == 2
    p.process(make(seq=9, strategy_id=3), NOW, 1)
    assert p.last_reason == Reason.DUPLICATE and p.last_gap == 0


def test_a_restored_mark_makes_a_replayed_signal_a_duplicate(path):
    e, s, p = path
    assert e.restore_mark(4, 1_000, 7) and e.restore_mark(4, 1_000, 5)   # only moves up
    assert p.process(Sig()(strategy_id=4, epoch=1_000, seq=7), NOW, 1) is None
    assert p.last_reason == Reason.DUPLICATE
    assert p.process(Sig()(strategy_id=4, epoch=1_000, seq=8), NOW, 1) is not None


def test_signer_without_the_instrument_rolls_back_the_open_order():
    for Engine, Signer, Path in TRIPLES:
        e = Engine(**LIMITS)
        e.set_instrument(btc_rules())
        e.set_reference(1, 50_000.0, T0)
        s = Signer(SECRET)                          # no set_instrument
        p = Path(e, s)
        assert p.process(Sig()(), NOW, 1) is None
        assert p.last_reason == Reason.UNKNOWN_SYMBOL
        assert e.open_orders(1) == (0.0, 0.0)
        s.set_instrument(btc_rules())
        assert p.process(Sig()(seq=99), NOW, -1) is None        # negative timestamp
        assert p.last_reason == Reason.MALFORMED and e.open_orders(1) == (0.0, 0.0)


def test_one_client_id_builder_compiled_and_twin():
    from pipeline.gateway.orders import client_id
    from pipeline.gateway.signing import _sign
    for args in ((0, 1, 1), (7, 0x17979cfe362a0000, 0x2a), (2**16 - 1, 2**63 - 1, 2**40 - 1)):
        assert _sign.client_id(*args) == client_id(*args)
    assert client_id(7, 0x17979cfe362a0000, 0x2a) == "pl7.17979cfe362a0000.2a"


def test_encode_rejects_bad_arguments():
    for _, Signer in PAIRS:
        s = Signer(SECRET)
        s.set_instrument(btc_rules())
        for args in ((2, 1, 1, 1, 1, 1, b"", 0), (1, 0, 1, 1, 1, 1, b"", 0),
                     (1, 1, 1, 0, 1, 1, b"", 0), (1, 1, 1, 1, 0, 1, b"", 0),
                     (1, 1, 1, 1, 1, 1, b"bad id!", 0), (1, 1, 1, 1, 1, 1, b"x" * 37, 0)):
            with pytest.raises(ValueError):
                s.encode_sign(*args)
        with pytest.raises(ValueError):
            Signer(SECRET, recv_window_ms=0)
        with pytest.raises(ValueError):
            Signer(SECRET, resp_type="MAYBE")


# ------------------------------------------------------------------ InstrumentRules
def test_notional_filter_and_missing_filters():
    info = {"symbol": "BTCUSDT", "filters": [
        {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "0", "tickSize": "0.01"},
        {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000", "stepSize": "0.00001"},
        {"filterType": "NOTIONAL", "minNotional": "5.0", "applyMinToMarket": False,
         "maxNotional": "10000.00", "applyMaxToMarket": False, "avgPriceMins": 5}]}
    r = InstrumentRules.from_binance(info, symbol_id=4, venue=BINANCE, max_order_qty="1",
                                     max_position_qty="1", max_order_notional=100.0)
    assert (r.min_notional_units, r.max_notional_units, r.max_price_units) == \
        (5 * 10**7, 10_000 * 10**7, 0)
    assert r.notional_applies_to_market is False
    with pytest.raises(ValueError, match="PRICE_FILTER"):
        InstrumentRules.from_binance({"symbol": "X", "filters": []}, symbol_id=4, venue=BINANCE,
                                     max_order_qty="1", max_position_qty="1",
                                     max_order_notional=1.0)


@pytest.mark.parametrize("over", [dict(symbol_id=0), dict(symbol_id=256), dict(tick="0"),
                                  dict(step="-1"), dict(tick="abc"), dict(max_order_qty="0"),
                                  dict(max_order_notional=float("nan")), dict(name=""),
                                  dict(tick="0.0000000000001")])
def test_bad_instrument_rules(over):
    kw = dict(symbol_id=1, venue=BINANCE, name="BTCUSDT", tick="0.01", step="0.001",
              max_order_qty="1", max_position_qty="1", max_order_notional=1.0)
    kw.update(over)
    with pytest.raises(ValueError):
        InstrumentRules.build(**kw)


def test_longest_client_order_id_fits_binance():
    from pipeline.gateway.sign_py import check_client_id, client_order_id
    cid = client_order_id(2**16 - 1, 2**63 - 1, 2**40 - 1)    # the risk check's bounds
    assert len(cid) == 34 and check_client_id(cid) == cid
