import pytest

from pipeline.records import Venue
from pipeline.registry import SymbolRegistry, UnknownSymbol


def test_ids_follow_order_and_round_trip():
    reg = SymbolRegistry([("BINANCE", "BTCUSDT", "BTC", "USDT"), ("OKX", "BTC-USDT", "BTC", "USDT")])
    assert reg.id(Venue.BINANCE, "btcusdt") == 1
    assert reg.id(Venue.OKX, "BTC-USDT") == 2
    assert reg.instrument(2).symbol == "BTC-USDT" and reg.instrument(2).venue == Venue.OKX
    assert len(reg) == 2


def test_unknown_symbol_is_an_error():
    reg = SymbolRegistry([("BINANCE", "BTCUSDT", "BTC", "USDT")])
    with pytest.raises(UnknownSymbol, match="BINANCE:NOPEUSDT"):
        reg.id(Venue.BINANCE, "NOPEUSDT")
    assert reg.get(Venue.BINANCE, "NOPEUSDT") == 0
    with pytest.raises(UnknownSymbol):
        reg.instrument(0)


def test_duplicate_rejected():
    with pytest.raises(ValueError, match="twice"):
        SymbolRegistry([("SIM", "X", "A", "B"), ("SIM", "x", "A", "B")])
