"""Shared builders for the gateway risk/signing tests (both engines, both signers)."""
from __future__ import annotations

import itertools
import math

from pipeline.gateway import risk_py, sign_py
from pipeline.gateway.instruments import InstrumentRules
from pipeline.gateway.risk import make_signal
from pipeline.records import Venue

T0 = 10**12                     # reference price stamp (CLOCK_MONOTONIC ns)
NOW = T0 + 1_000
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"   # Binance doc key
BINANCE = int(Venue.BINANCE)

LIMITS = dict(max_gross_notional=1_000_000.0, collar_bps=100.0, ref_stale_ns=2_000_000_000,
              throttle_orders=100, throttle_window_ns=1_000_000_000, runaway_signals=1000,
              runaway_window_ns=1_000_000_000)


def btc_rules(symbol_id: int = 1, **over) -> InstrumentRules:
    """BTCUSDT filters as in the recorded 2021 exchangeInfo (tick 0.01, step 0.00001, minNotional 10)."""
    kw = dict(symbol_id=symbol_id, venue=BINANCE, name="BTCUSDT", tick="0.01000000",
              min_price="0.01000000", max_price="1000000.00000000", step="0.00001000",
              min_qty="0.00001000", max_qty="9000.00000000", min_notional="10.00000000",
              max_order_qty="1", max_position_qty="2", max_order_notional=60_000.0)
    kw.update(over)
    return InstrumentRules.build(**kw)


def toy_rules(symbol_id: int = 2, **over) -> InstrumentRules:
    """A small instrument whose every bound is easy to sit on."""
    kw = dict(symbol_id=symbol_id, venue=BINANCE, name="TOYUSDT", tick="0.05", min_price="10",
              max_price="100", step="0.5", min_qty="1", max_qty="5", min_notional="20",
              max_notional="400", max_order_qty="4.5", max_position_qty="100",
              max_order_notional=270.0)
    kw.update(over)
    return InstrumentRules.build(**kw)


def eth_rules(symbol_id: int = 3, **over) -> InstrumentRules:
    kw = dict(symbol_id=symbol_id, venue=BINANCE, name="ETHUSDT", tick="0.01", min_price="0.01",
              max_price="1000000", step="0.0001", min_qty="0.0001", max_qty="9000",
              min_notional="10", max_order_qty="10", max_position_qty="10",
              max_order_notional=1e6)
    kw.update(over)
    return InstrumentRules.build(**kw)


class Sig:
    """Signal factory with a fresh seq per call (so duplicates only happen on purpose)."""

    def __init__(self):
        self._seq = itertools.count(1)

    def __call__(self, **over) -> bytes:
        kw = dict(epoch=1_700_000_000_000_000_000, seq=next(self._seq), symbol=1, venue=BINANCE,
                  side=1, order_type=1, tif=1, qty=0.01, price=50_000.0, created_mono=NOW - 10,
                  ttl_ns=1_000_000_000, strategy_id=1)
        kw.update(over)
        if kw["order_type"] == 2 and "price" not in over:
            kw["price"] = math.nan
        if kw["order_type"] != 1 and "tif" not in over:
            kw["tif"] = 0
        return make_signal(**kw)


def engines():
    from pipeline.gateway.risk import RiskEngine
    return [RiskEngine, risk_py.RiskEngine]


def signers():
    from pipeline.gateway.signing import BinanceSigner
    return [BinanceSigner, sign_py.BinanceSigner]


def order_paths():
    """The order path kernel and its twin (each runs its own engine and signer kind)."""
    from pipeline.gateway import orderpath_py
    from pipeline.gateway.orderpath import OrderPath
    return [OrderPath, orderpath_py.OrderPath]
