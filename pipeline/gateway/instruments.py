"""Per-instrument rules for the risk kernels, in exact integer units.

Both risk engines (ext/risk.pyx and its twin risk_py.py) check exchange filters on integers: a price
is held as `price_units = round(price * 10**price_decimals)`, a quantity as
`qty_units = round(qty * 10**qty_decimals)`, so "price % tickSize == 0" is an integer modulo and
"price * quantity >= minNotional" an exact integer comparison, never a float-remainder guess.
The decimals come from the filter values themselves (tickSize "0.01000000" → 2), which is also the
precision the encoder prints (no float artifacts: the digits are formatted from the integers).

`from_binance()` builds the rules from one symbol of GET /api/v3/exchangeInfo (filters as documented
in tests/data/binance/rest_exchangeInfo.json): PRICE_FILTER, LOT_SIZE, MIN_NOTIONAL or
NOTIONAL. Our own limits (max order quantity, max position, max order notional) come from config.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any

MAX_DECIMALS = 12
# Prices and quantities beyond this many units are "absurd" and rejected (keeps every unit value
# exactly representable in a double with a rounding tolerance far below one unit).
MAX_UNITS = 10**13
MAX_SYMBOL_ID = 255          # the kernels keep a fixed table of 256 instruments (id 0 = none)
MAX_NAME_BYTES = 64          # percent-encoded symbol name (6 fullwidth chars = 54)


def _dec(value: Any, what: str) -> Decimal:
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{what}: not a decimal number: {value!r}") from None
    if not d.is_finite() or d < 0:
        raise ValueError(f"{what}: must be a finite number >= 0, got {value!r}")
    return d


def decimals_of(*values: Decimal) -> int:
    """The fewest decimals that represent every value exactly ("0.01000000" → 2)."""
    n = 0
    for v in values:
        if v != 0:
            n = max(n, -min(0, v.normalize().as_tuple().exponent))
    return n


def to_units(value: Decimal, decimals: int, rounding: str = ROUND_FLOOR) -> int:
    return int((value * (Decimal(10) ** decimals)).to_integral_value(rounding=rounding))


@dataclass(frozen=True)
class InstrumentRules:
    """One instrument as the kernels see it. All *_units are integers (0 disables a filter bound)."""

    symbol_id: int
    venue: int
    name: str                    # the venue's spelling, e.g. BTCUSDT
    price_decimals: int
    qty_decimals: int
    tick_units: int              # tickSize in price units (>= 1)
    step_units: int              # stepSize in qty units (>= 1)
    min_price_units: int
    max_price_units: int         # 0 = no maximum
    min_qty_units: int
    max_qty_units: int           # 0 = no maximum
    min_notional_units: int      # in units of 10**-(price_decimals + qty_decimals); 0 = none
    max_notional_units: int      # 0 = none
    notional_applies_to_market: bool   # minNotional also checks MARKET orders (at the reference)
    max_notional_applies_to_market: bool  # maxNotional also checks MARKET orders
    max_order_qty_units: int     # our limit (>= 1)
    max_position_units: int      # our limit on |position| at worst case (>= 0)
    max_order_notional: float    # our limit, quote currency (> 0)

    def __post_init__(self) -> None:
        if not 0 < self.symbol_id <= MAX_SYMBOL_ID:
            raise ValueError(f"symbol_id must be in 1..{MAX_SYMBOL_ID}, got {self.symbol_id}")
        if not 0 <= self.venue <= 255:
            raise ValueError(f"venue must be 0..255, got {self.venue}")
        if not self.name or len(self.encoded_name) > MAX_NAME_BYTES:
            raise ValueError(f"name must be 1..{MAX_NAME_BYTES} bytes once percent-encoded")
        for f in ("price_decimals", "qty_decimals"):
            if not 0 <= getattr(self, f) <= MAX_DECIMALS:
                raise ValueError(f"{f} must be 0..{MAX_DECIMALS}, got {getattr(self, f)}")
        for f in ("tick_units", "step_units", "max_order_qty_units"):
            if not 1 <= getattr(self, f) <= MAX_UNITS:
                raise ValueError(f"{f} must be 1..{MAX_UNITS}, got {getattr(self, f)}")
        for f in ("min_price_units", "max_price_units", "min_qty_units", "max_qty_units",
                  "max_position_units"):
            if not 0 <= getattr(self, f) <= MAX_UNITS:
                raise ValueError(f"{f} must be 0..{MAX_UNITS}, got {getattr(self, f)}")
        for f in ("min_notional_units", "max_notional_units"):
            if not 0 <= getattr(self, f) < 2**62:
                raise ValueError(f"{f} must be 0..2**62, got {getattr(self, f)}")
        m = self.max_order_notional
        if not (isinstance(m, float) and m > 0 and m < float("inf")):
            raise ValueError(f"max_order_notional must be a finite float > 0, got {m!r}")

    @property
    def encoded_name(self) -> bytes:
        """The name as it appears in a query string (UTF-8, percent-encoded: Binance signs that)."""
        from urllib.parse import quote
        return quote(self.name, safe="").encode("ascii")

    # ------------------------------------------------------------------ builders
    @classmethod
    def build(cls, *, symbol_id: int, venue: int, name: str, tick: Any, step: Any,
              min_price: Any = 0, max_price: Any = 0, min_qty: Any = 0, max_qty: Any = 0,
              min_notional: Any = 0, max_notional: Any = 0, notional_applies_to_market: bool = True,
              max_notional_applies_to_market: bool = False,
              max_order_qty: Any, max_position_qty: Any, max_order_notional: float
              ) -> InstrumentRules:
        """From decimal values (strings keep them exact: "0.01", not 0.01)."""
        tick_d, step_d = _dec(tick, "tick"), _dec(step, "step")
        if tick_d == 0 or step_d == 0:
            raise ValueError("tick and step must be > 0")
        minp, maxp = _dec(min_price, "min_price"), _dec(max_price, "max_price")
        minq, maxq = _dec(min_qty, "min_qty"), _dec(max_qty, "max_qty")
        mo_q, mp_q = _dec(max_order_qty, "max_order_qty"), _dec(max_position_qty, "max_position_qty")
        pd = decimals_of(tick_d, minp)
        qd = decimals_of(step_d, minq)
        nd = pd + qd
        return cls(
            symbol_id=int(symbol_id), venue=int(venue), name=str(name),
            price_decimals=pd, qty_decimals=qd,
            tick_units=to_units(tick_d, pd), step_units=to_units(step_d, qd),
            min_price_units=to_units(minp, pd, ROUND_CEILING),
            max_price_units=min(to_units(maxp, pd), MAX_UNITS),
            min_qty_units=to_units(minq, qd, ROUND_CEILING),
            max_qty_units=min(to_units(maxq, qd), MAX_UNITS),
            min_notional_units=to_units(_dec(min_notional, "min_notional"), nd, ROUND_CEILING),
            max_notional_units=min(to_units(_dec(max_notional, "max_notional"), nd), 2**62 - 1),
            notional_applies_to_market=bool(notional_applies_to_market),
            max_notional_applies_to_market=bool(max_notional_applies_to_market),
            max_order_qty_units=to_units(mo_q, qd),
            max_position_units=min(to_units(mp_q, qd), MAX_UNITS),
            max_order_notional=float(max_order_notional),
        )

    @classmethod
    def from_binance(cls, info: Mapping[str, Any], *, symbol_id: int, venue: int,
                     max_order_qty: Any, max_position_qty: Any, max_order_notional: float
                     ) -> InstrumentRules:
        """From one element of exchangeInfo["symbols"] plus our own limits."""
        filters = {f["filterType"]: f for f in info.get("filters", ())}
        pf, lot = filters.get("PRICE_FILTER"), filters.get("LOT_SIZE")
        if pf is None or lot is None:
            raise ValueError(f"{info.get('symbol')}: exchangeInfo lacks PRICE_FILTER or LOT_SIZE")
        kw: dict[str, Any] = dict(tick=pf["tickSize"], min_price=pf["minPrice"],
                                  max_price=pf["maxPrice"], step=lot["stepSize"],
                                  min_qty=lot["minQty"], max_qty=lot["maxQty"])
        if "NOTIONAL" in filters:
            n = filters["NOTIONAL"]
            kw.update(min_notional=n.get("minNotional", 0), max_notional=n.get("maxNotional", 0),
                      notional_applies_to_market=bool(n.get("applyMinToMarket", True)),
                      max_notional_applies_to_market=bool(n.get("applyMaxToMarket", False)))
        elif "MIN_NOTIONAL" in filters:
            n = filters["MIN_NOTIONAL"]
            kw.update(min_notional=n["minNotional"],
                      notional_applies_to_market=bool(n.get("applyToMarket", True)))
        return cls.build(symbol_id=symbol_id, venue=venue, name=info["symbol"],
                         max_order_qty=max_order_qty, max_position_qty=max_position_qty,
                         max_order_notional=max_order_notional, **kw)
