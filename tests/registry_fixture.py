"""The fixed instrument universe the unit and replay tests use (a fixture: the pipeline itself
loads its instruments from the venue, pipeline/instruments.py). Ids in list order from 1; the
OKX and Binance symbols are those of the recordings the tests replay."""
from __future__ import annotations

from pipeline.registry import SymbolRegistry

FIXTURE_INSTRUMENTS: tuple[tuple[str, str, str, str], ...] = (
    ("BINANCE", "BTCUSDT", "BTC", "USDT"),
    ("BINANCE", "ETHUSDT", "ETH", "USDT"),
    ("BINANCE", "BNBUSDT", "BNB", "USDT"),
    ("BINANCE", "SOLUSDT", "SOL", "USDT"),
    ("BINANCE", "XRPUSDT", "XRP", "USDT"),
    ("BINANCE", "XRPETH", "XRP", "ETH"),
    ("BINANCE", "ETHBTC", "ETH", "BTC"),
    ("BINANCE", "LTCBTC", "LTC", "BTC"),
    ("BINANCE", "BNBBTC", "BNB", "BTC"),
    ("BINANCE", "NKNUSDT", "NKN", "USDT"),
    ("BINANCE", "BLZETH", "BLZ", "ETH"),
    ("BINANCE", "LRCBTC", "LRC", "BTC"),
    ("BINANCE", "RUNEEUR", "RUNE", "EUR"),
    ("OKX", "BTC-USDT", "BTC", "USDT"),
    ("OKX", "ETH-USDT", "ETH", "USDT"),
    ("OKX", "UNI-USD-SWAP", "UNI", "USD"),
    ("OKX", "BTC-USD-220527", "BTC", "USD"),
    ("SIM", "BTCUSDT", "BTC", "USDT"),
    ("SIM", "ETHUSDT", "ETH", "USDT"),
    ("SIM", "SOLUSDT", "SOL", "USDT"),
)

DEFAULT = SymbolRegistry(FIXTURE_INSTRUMENTS)
FIXTURE_JSON = [i.to_json() for i in DEFAULT]   # the instruments.json "instruments" list


def write_cache(path) -> str:
    """An instruments.json with the fixture (for a role started with PIPELINE_INSTRUMENTS)."""
    from pipeline.instruments import write_cache as write
    write(path, DEFAULT, {})
    return str(path)
