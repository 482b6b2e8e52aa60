"""The [risk] section of the config: the gateway's pre-trade risk limits (RiskConfig, per
symbol RiskSymbolLimits), read by pipeline.gateway.risk into the risk kernel (ext/risk.pyx; the
rules are in pipeline/gateway/risk_py.py). Split out of pipeline/config.py, which re-exports
every name here and loads the section like any other."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

TradingStateName = Literal["ACTIVE", "REDUCING", "HALTED"]
_VENUE_NAMES = ("SIM", "BINANCE", "OKX")
_STP_MODES = ("", "NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH")   # sign_py.STP_MODES


@dataclass(frozen=True)
class RiskSymbolLimits:
    """Our own limits for one instrument, [risk.symbols."BINANCE:BTCUSDT"]. Quantities are in the
    base asset and read as decimals (0.1 stays exactly 0.1). The venue's filters (tick, step,
    min/max quantity, min notional) come from its exchangeInfo at start, not from here."""

    max_order_qty: float                    # largest single order (base asset), > 0
    max_position_qty: float                 # |position| at worst case with open orders, >= 0
    max_order_notional: float | None = None  # quote currency; None = [risk].max_order_notional
    max_tick_age_ms: int | None = None       # None = [risk].max_tick_age_ms

    def __post_init__(self) -> None:
        if self.max_tick_age_ms is not None and not 1 <= self.max_tick_age_ms <= 1_000_000:
            raise ValueError(f"max_tick_age_ms must be in 1..1000000, got {self.max_tick_age_ms}")
        if not 0 < self.max_order_qty < float("inf"):
            raise ValueError(f"max_order_qty must be > 0, got {self.max_order_qty}")
        if not 0 <= self.max_position_qty < float("inf"):
            raise ValueError(f"max_position_qty must be >= 0, got {self.max_position_qty}")
        if self.max_order_notional is not None and not 0 < self.max_order_notional < float("inf"):
            raise ValueError(f"max_order_notional must be > 0, got {self.max_order_notional}")


@dataclass(frozen=True)
class RiskConfig:
    """Pre-trade risk of the gateway (ext/risk.pyx; rules in pipeline/gateway/risk_py.py)."""

    max_order_notional: float = 1_000.0    # quote currency per order, unless a symbol overrides it
    max_gross_notional: float = 10_000.0   # Σ worst-case |position incl. open orders| × reference
    collar_bps: float = 50.0               # limit price within ref ± ref*bps/10000 (inclusive)
    ref_stale_ms: int = 2_000              # older reference price → risk-increasing orders rejected
    max_tick_age_ms: int = 1_000           # a signal whose trigger tick is older → risk-increasing
                                           # orders rejected (STALE_TRIGGER); per symbol too
    duplicate_window_ms: int = 0           # the same order of a strategy again within this →
                                           # DUPLICATE_ORDER (0 = off; the Binance configs: 100)
    self_trade_prevention: bool = False    # refuse an order crossing our own resting one
                                           # (SELF_TRADE; the Binance configs: true)
    self_trade_prevention_mode: str = ""   # Binance selfTradePreventionMode sent on every order:
                                           # NONE, EXPIRE_TAKER, EXPIRE_MAKER, EXPIRE_BOTH
                                           # ("" = not sent: the symbol's default applies)
    window_collar_bps: float = 0.0         # time-window collar: a risk-increasing order priced
                                           # more than this from the lowest or highest reference
                                           # of the last window_collar_ms → PRICE_WINDOW (0 = off)
    window_collar_ms: int = 1_000          # ... that window (a reference counts 15/16 to all of it)
    throttle_orders: int = 10              # order-rate limit: never more than this many orders ...
    throttle_window_ms: int = 1_000        # ... in any sliding window this long (refused, not queued)
    runaway_signals: int = 50              # more signals than this ...
    runaway_window_ms: int = 1_000         # ... within this window → HALTED
    runaway_fills: int = 0                 # more fills than this (0 = off; Binance configs 50)
    runaway_fill_window_ms: int = 1_000    # ... within this window → HALTED
    recv_window_ms: int = 5_000            # Binance recvWindow sent with every order (1..5000:
                                           # a signed request stays replayable this long)
    start_state: TradingStateName = "ACTIVE"
    # per instrument, keyed "VENUE:SYMBOL" (venue's spelling); an instrument without an entry
    # cannot be traded
    symbols: dict[str, RiskSymbolLimits] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("max_order_notional", "max_gross_notional", "collar_bps"):
            v = getattr(self, name)
            if not 0 < v < float("inf"):
                raise ValueError(f"{name} must be a finite number > 0, got {v}")
        for name, hi in (("ref_stale_ms", 1_000_000), ("max_tick_age_ms", 1_000_000),
                         ("throttle_orders", 1_000_000),
                         ("throttle_window_ms", 1_000_000), ("runaway_signals", 4096),
                         ("runaway_window_ms", 1_000_000), ("recv_window_ms", 5_000),
                         ("runaway_fill_window_ms", 1_000_000)):
            v = getattr(self, name)
            if not 1 <= v <= hi:
                raise ValueError(f"{name} must be in 1..{hi}, got {v}")
        if self.self_trade_prevention_mode not in _STP_MODES:
            raise ValueError(f"self_trade_prevention_mode must be one of {_STP_MODES}, got "
                             f"{self.self_trade_prevention_mode!r}")
        if not 0 <= self.window_collar_bps < float("inf"):
            raise ValueError(f"window_collar_bps must be a finite number >= 0 (0 = off), got "
                             f"{self.window_collar_bps}")
        if not 1 <= self.window_collar_ms <= 1_000_000:
            raise ValueError(f"window_collar_ms must be in 1..1000000, got {self.window_collar_ms}")
        if not 0 <= self.runaway_fills <= 4096:
            raise ValueError(f"runaway_fills must be in 0..4096, got {self.runaway_fills}")
        if not 0 <= self.duplicate_window_ms <= 60_000:
            raise ValueError(f"duplicate_window_ms must be in 0..60000, got "
                             f"{self.duplicate_window_ms}")
        for key in self.symbols:
            venue, _, sym = key.partition(":")
            if venue not in _VENUE_NAMES or not sym:
                raise ValueError(f"symbols key must be 'VENUE:SYMBOL' with VENUE one of "
                                 f"{', '.join(_VENUE_NAMES)}, got {key!r}")

    def limits_for(self, venue: str, symbol: str) -> RiskSymbolLimits:
        """The limits of one instrument; KeyError naming the missing [risk.symbols] entry."""
        key = f"{venue.upper()}:{symbol.upper()}"
        try:
            return self.symbols[key]
        except KeyError:
            raise KeyError(f"no [risk.symbols.\"{key}\"] limits: {key} cannot be traded") from None

    def tick_age_ms_for(self, venue: str, symbol: str) -> int:
        """The trigger-tick age limit of one instrument: its own, else [risk].max_tick_age_ms."""
        lim = self.symbols.get(f"{venue.upper()}:{symbol.upper()}")
        return self.max_tick_age_ms if lim is None or lim.max_tick_age_ms is None \
            else lim.max_tick_age_ms

    def order_notional_for(self, venue: str, symbol: str) -> float:
        lim = self.limits_for(venue, symbol)
        return self.max_order_notional if lim.max_order_notional is None else lim.max_order_notional
