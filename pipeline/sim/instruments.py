"""Embedded instrument specs, exact decimal arithmetic and the exchangeInfo body.

All prices, quantities and balances inside the simulator are Python ints in units of 1e-8 (Binance
prints 8 decimals everywhere), so filters (`price % tickSize == 0`) and balances are exact.
`fmt8(6183763000000) == "61837.63000000"`, `parse8("0.1") == 10000000`.

The simulator must run without ../shared, so the symbols it can list are embedded here. Filter
values follow Binance spot (2024) for BTCUSDT / ETHUSDT; the others are plausible.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

E8 = 100_000_000


class DecimalError(ValueError):
    """A decimal parameter is not a valid number (Binance: -1100 illegal characters)."""


def parse8(text: str) -> int:
    """A decimal string → int units of 1e-8. More than 8 decimals that are not zero is an error."""
    try:
        d = Decimal(text)
    except (InvalidOperation, TypeError, ValueError):
        raise DecimalError(f"not a decimal: {text!r}") from None
    if not d.is_finite():
        raise DecimalError(f"not a finite decimal: {text!r}")
    scaled = d * E8
    if scaled != scaled.to_integral_value():
        raise DecimalError(f"more than 8 decimals: {text!r}")
    return int(scaled)


def fmt8(units: int) -> str:
    """int units of 1e-8 → Binance's 8-decimal string."""
    if units < 0:
        return "-" + fmt8(-units)
    return f"{units // E8}.{units % E8:08d}"


def mul8(a: int, b: int) -> int:
    """(a × b) in 1e-8 units, truncated toward zero (price × qty → quote)."""
    return a * b // E8


@dataclass(frozen=True)
class InstrumentSpec:
    symbol: str
    base: str
    quote: str
    tick: int            # PRICE_FILTER tickSize (1e-8 units)
    min_price: int
    max_price: int
    step: int            # LOT_SIZE stepSize
    min_qty: int
    max_qty: int
    min_notional: int    # NOTIONAL minNotional (quote, 1e-8 units)
    max_notional: int
    start_price: int     # synthetic tape starting mid
    typical_qty: int     # synthetic tape median trade size

    def filters(self) -> list[dict]:
        return [
            {"filterType": "PRICE_FILTER", "minPrice": fmt8(self.min_price),
             "maxPrice": fmt8(self.max_price), "tickSize": fmt8(self.tick)},
            {"filterType": "LOT_SIZE", "minQty": fmt8(self.min_qty), "maxQty": fmt8(self.max_qty),
             "stepSize": fmt8(self.step)},
            {"filterType": "NOTIONAL", "minNotional": fmt8(self.min_notional),
             "applyMinToMarket": True, "maxNotional": fmt8(self.max_notional),
             "applyMaxToMarket": False, "avgPriceMins": 5},
        ]


def _spec(symbol, base, quote, tick, min_price, max_price, step, min_qty, max_qty, min_notional,
          start, typical) -> InstrumentSpec:
    p = parse8
    return InstrumentSpec(symbol, base, quote, p(tick), p(min_price), p(max_price), p(step),
                          p(min_qty), p(max_qty), p(min_notional), p("9000000"), p(start),
                          p(typical))


SPECS: dict[str, InstrumentSpec] = {s.symbol: s for s in (
    _spec("BTCUSDT", "BTC", "USDT", "0.01", "0.01", "1000000", "0.00001", "0.00001", "9000", "5",
          "61837.63", "0.005"),
    _spec("ETHUSDT", "ETH", "USDT", "0.01", "0.01", "1000000", "0.0001", "0.0001", "9000", "5",
          "2682.51", "0.05"),
    _spec("SOLUSDT", "SOL", "USDT", "0.01", "0.01", "1000000", "0.001", "0.001", "9000", "5",
          "145.20", "1"),
    _spec("BNBUSDT", "BNB", "USDT", "0.01", "0.01", "1000000", "0.001", "0.001", "9000", "5",
          "512.30", "0.5"),
    _spec("XRPUSDT", "XRP", "USDT", "0.0001", "0.0001", "10000", "0.1", "0.1", "9000000", "5",
          "0.5712", "500"),
    _spec("ETHBTC", "ETH", "BTC", "0.00001", "0.00001", "922327", "0.0001", "0.0001", "100000",
          "0.0001", "0.04338", "0.1"),
    _spec("DOGEUSDT", "DOGE", "USDT", "0.00001", "0.00001", "1000", "1", "1", "9000000", "1",
          "0.1234", "2000"),
    _spec("ADAUSDT", "ADA", "USDT", "0.0001", "0.0001", "1000", "0.1", "0.1", "9000000", "5",
          "0.3612", "1000"),
    _spec("LTCUSDT", "LTC", "USDT", "0.01", "0.01", "100000", "0.001", "0.001", "90000", "5",
          "71.25", "2"),
)}


def spec(symbol: str) -> InstrumentSpec:
    s = SPECS.get(symbol.upper())
    if s is None:
        raise KeyError(f"the simulator has no instrument spec for {symbol!r} "
                       f"(known: {', '.join(sorted(SPECS))})")
    return s


RATE_LIMITS_JSON = lambda weight_1m, orders_10s, orders_1d: [  # noqa: E731
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": weight_1m},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": orders_10s},
    {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": orders_1d},
    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
]


def exchange_info(specs: list[InstrumentSpec], server_time_ms: int, rate_limits: list[dict]) -> dict:
    """GET /api/v3/exchangeInfo body (the current field set, trimmed to what the sim supports)."""
    return {
        "timezone": "UTC",
        "serverTime": server_time_ms,
        "rateLimits": rate_limits,
        "exchangeFilters": [],
        "symbols": [{
            "symbol": s.symbol, "status": "TRADING",
            "baseAsset": s.base, "baseAssetPrecision": 8,
            "quoteAsset": s.quote, "quotePrecision": 8, "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
            "icebergAllowed": False, "ocoAllowed": False, "otoAllowed": False,
            "quoteOrderQtyMarketAllowed": True, "allowTrailingStop": False,
            "cancelReplaceAllowed": False, "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": s.filters(),
            "permissions": [], "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "NONE",      # matching.py STP_MODES
            "allowedSelfTradePreventionModes": ["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER",
                                                "EXPIRE_BOTH"],
        } for s in specs],
    }
