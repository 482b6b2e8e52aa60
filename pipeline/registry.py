"""Instrument registry: (venue, native symbol) ↔ the uint32 `symbol` id carried in records.

Every process builds the same registry from the same config (instrument list order defines the
ids, from 1; 0 means "no instrument"), so ids agree across processes without any shared state.
Unknown symbols raise UnknownSymbol: a collector counts and logs them, it never invents an id.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from pipeline.records import Venue


class UnknownSymbol(KeyError):
    """A (venue, symbol) pair that is not in the registry."""

    def __str__(self) -> str:  # KeyError quotes its arg; say what it is
        return f"unknown instrument {self.args[0]!r}"


@dataclass(frozen=True)
class Instrument:
    id: int
    venue: Venue
    symbol: str          # the venue's own spelling: BTCUSDT (Binance), BTC-USDT (OKX)
    base: str
    quote: str


# Default universe (used when a config names none): Binance spot and OKX spot majors, and the
# symbols found in tests/data recordings.
DEFAULT_INSTRUMENTS: tuple[tuple[str, str, str, str], ...] = (
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


class SymbolRegistry:
    """Ids are assigned in the order instruments are given, from 1."""

    def __init__(self, instruments: Iterable[tuple[str | Venue, str, str, str]] = DEFAULT_INSTRUMENTS):
        self._by_key: dict[tuple[int, str], Instrument] = {}
        self._by_id: list[Instrument | None] = [None]
        for venue, symbol, base, quote in instruments:
            v = Venue[venue] if isinstance(venue, str) else Venue(venue)
            key = (int(v), symbol.upper())
            if key in self._by_key:
                raise ValueError(f"instrument {v.name}:{symbol} listed twice")
            inst = Instrument(len(self._by_id), v, symbol.upper(), base.upper(), quote.upper())
            self._by_key[key] = inst
            self._by_id.append(inst)

    def id(self, venue: Venue | int, symbol: str) -> int:
        """The id of a venue's symbol (case-insensitive); UnknownSymbol if absent."""
        inst = self._by_key.get((int(venue), symbol.upper()))
        if inst is None:
            raise UnknownSymbol(f"{Venue(venue).name}:{symbol}")
        return inst.id

    def get(self, venue: Venue | int, symbol: str, default: int = 0) -> int:
        inst = self._by_key.get((int(venue), symbol.upper()))
        return default if inst is None else inst.id

    def instrument(self, id: int) -> Instrument:
        if not 0 < id < len(self._by_id):
            raise UnknownSymbol(f"id {id}")
        inst = self._by_id[id]
        assert inst is not None
        return inst

    def for_venue(self, venue: Venue | int) -> list[Instrument]:
        return [i for i in self._by_id[1:] if i is not None and i.venue == int(venue)]

    def __len__(self) -> int:
        return len(self._by_id) - 1

    def __iter__(self):
        return iter(i for i in self._by_id[1:] if i is not None)


DEFAULT = SymbolRegistry()
