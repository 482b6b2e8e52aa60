"""Instrument registry: (venue, native symbol) ↔ the uint32 `symbol` id carried in records.

The instruments are the venue's own: the launcher loads them at start (pipeline/instruments.py:
Binance exchangeInfo, OKX public/instruments) for the symbols the config names, with their filters,
and writes them to `<run_dir>/instruments.json`; every role reads that cache, so ids agree across
processes. Ids are assigned deterministically from the cache: a fresh cache numbers its instruments
in (venue, symbol) order from 1, and an existing cache keeps its ids and appends new instruments
after the highest (0 means "no instrument"; the kernels keep ids <= 255).
Unknown symbols raise UnknownSymbol: a collector counts and logs them, it never invents an id.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Iterable

from pipeline.records import Venue


class UnknownSymbol(KeyError):
    """A (venue, symbol) pair that is not in the registry."""

    def __str__(self) -> str:  # KeyError quotes its arg; say what it is
        return f"unknown instrument {self.args[0]!r}"


@dataclass(frozen=True)
class Instrument:
    """One instrument. Filters are the venue's decimal strings ("" = the venue has none)."""

    id: int
    venue: Venue
    symbol: str          # the venue's own spelling: BTCUSDT (Binance), BTC-USDT (OKX)
    base: str
    quote: str
    status: str = ""     # the venue's trading status: TRADING (Binance), live (OKX)
    tick: str = ""       # price increment
    step: str = ""       # quantity increment
    min_qty: str = ""
    max_qty: str = ""
    min_price: str = ""
    max_price: str = ""
    min_notional: str = ""   # quote currency
    max_notional: str = ""

    @property
    def key(self) -> str:
        return f"{self.venue.name}:{self.symbol}"

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["venue"] = self.venue.name
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Instrument":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"instrument {d.get('symbol')!r}: unknown keys {sorted(unknown)}")
        kw = dict(d)
        kw["venue"] = Venue[str(d["venue"]).upper()]
        kw["id"] = int(d["id"])
        kw["symbol"] = str(d["symbol"]).upper()
        return cls(**kw)


MAX_ID = 255   # the risk and signing kernels keep a table of 256 instruments (id 0 = none)


class SymbolRegistry:
    """From Instrument objects (their ids kept) or (venue, symbol, base, quote) tuples (numbered
    in the order given, from 1: test fixtures and ad-hoc registries)."""

    def __init__(self, instruments: Iterable[Instrument | tuple[str | Venue, str, str, str]] = ()):
        self._by_key: dict[tuple[int, str], Instrument] = {}
        self._by_id: dict[int, Instrument] = {}
        for item in instruments:
            if isinstance(item, Instrument):
                inst = item
            else:
                venue, symbol, base, quote = item
                v = Venue[venue] if isinstance(venue, str) else Venue(venue)
                inst = Instrument(max(self._by_id, default=0) + 1, v, symbol.upper(),
                                  base.upper(), quote.upper())
            key = (int(inst.venue), inst.symbol.upper())
            if key in self._by_key:
                raise ValueError(f"instrument {inst.venue.name}:{inst.symbol} listed twice")
            if not 0 < inst.id <= MAX_ID:
                raise ValueError(f"instrument {inst.key}: id {inst.id} outside 1..{MAX_ID}")
            if inst.id in self._by_id:
                raise ValueError(f"instrument id {inst.id} given to both "
                                 f"{self._by_id[inst.id].key} and {inst.key}")
            self._by_key[key] = inst
            self._by_id[inst.id] = inst

    def id(self, venue: Venue | int, symbol: str) -> int:
        """The id of a venue's symbol (case-insensitive); UnknownSymbol if absent."""
        inst = self._by_key.get((int(venue), symbol.upper()))
        if inst is None:
            raise UnknownSymbol(f"{Venue(venue).name}:{symbol}")
        return inst.id

    def get(self, venue: Venue | int, symbol: str, default: int = 0) -> int:
        inst = self._by_key.get((int(venue), symbol.upper()))
        return default if inst is None else inst.id

    def find(self, venue: Venue | int, symbol: str) -> Instrument | None:
        return self._by_key.get((int(venue), symbol.upper()))

    def instrument(self, id: int) -> Instrument:
        inst = self._by_id.get(id)
        if inst is None:
            raise UnknownSymbol(f"id {id}")
        return inst

    def for_venue(self, venue: Venue | int) -> list[Instrument]:
        return [i for i in self if i.venue == int(venue)]

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self):
        return iter(self._by_id[k] for k in sorted(self._by_id))

    def __contains__(self, key: tuple[Venue | int, str]) -> bool:
        return (int(key[0]), key[1].upper()) in self._by_key


# The offline universe: instruments for tools that read data with no venue to ask (the
# backtester, its synthetic data and benchmarks). The live roles never use it: their instruments
# come from the venue (pipeline/instruments.py).
OFFLINE_INSTRUMENTS: tuple[tuple[str, str, str, str], ...] = (
    ("BINANCE", "BTCUSDT", "BTC", "USDT"), ("BINANCE", "ETHUSDT", "ETH", "USDT"),
    ("BINANCE", "BNBUSDT", "BNB", "USDT"), ("BINANCE", "SOLUSDT", "SOL", "USDT"),
    ("BINANCE", "XRPUSDT", "XRP", "USDT"), ("BINANCE", "XRPETH", "XRP", "ETH"),
    ("BINANCE", "ETHBTC", "ETH", "BTC"), ("BINANCE", "LTCBTC", "LTC", "BTC"),
    ("BINANCE", "BNBBTC", "BNB", "BTC"), ("BINANCE", "NKNUSDT", "NKN", "USDT"),
    ("BINANCE", "BLZETH", "BLZ", "ETH"), ("BINANCE", "LRCBTC", "LRC", "BTC"),
    ("BINANCE", "RUNEEUR", "RUNE", "EUR"), ("OKX", "BTC-USDT", "BTC", "USDT"),
    ("OKX", "ETH-USDT", "ETH", "USDT"), ("OKX", "UNI-USD-SWAP", "UNI", "USD"),
    ("OKX", "BTC-USD-220527", "BTC", "USD"), ("SIM", "BTCUSDT", "BTC", "USDT"),
    ("SIM", "ETHUSDT", "ETH", "USDT"), ("SIM", "SOLUSDT", "SOL", "USDT"),
)
DEFAULT = SymbolRegistry(OFFLINE_INSTRUMENTS)   # the backtester's (offline) registry
