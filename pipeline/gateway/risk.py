"""Risk facade: the compiled kernel (ext/risk.pyx) when built, else a clear ExtensionNotBuilt.

    from pipeline.gateway.risk import RiskEngine, Reason, make_signal
    eng = engine_from_config(cfg.risk)            # or RiskEngine(max_gross_notional=..., ...)
    eng.set_instrument(InstrumentRules.from_binance(...))
    eng.set_reference(symbol_id, mid, time.perf_counter_ns())
    reason = eng.check(signal_bytes, time.perf_counter_ns())   # 0 = ACCEPT

The pure-Python twin is `pipeline.gateway.risk_py.RiskEngine` (same constructor and methods).
"""
from __future__ import annotations

import math

from pipeline import _native
from pipeline.gateway.instruments import InstrumentRules
from pipeline.gateway.reasons import Reason, TradingState
from pipeline.records import SIGNAL_STRUCT, SIGNAL_VERSION

_risk = _native.load("risk")
RiskEngine = _risk.RiskEngine

__all__ = ["RiskEngine", "Reason", "TradingState", "InstrumentRules", "make_signal",
           "engine_kwargs", "engine_from_config", "rules_for", "add_instrument",
           "sync_own_quotes"]


def make_signal(*, epoch: int, seq: int, symbol: int, venue: int, side: int, order_type: int,
                tif: int, qty: float, price: float = math.nan, created_mono: int, ttl_ns: int,
                strategy_id: int = 1, trigger_seq: int = 0, trigger_mono: int = 0,
                version: int = SIGNAL_VERSION) -> bytes:
    """One SIGNAL_DTYPE record as bytes (cool path: tests, tools)."""
    return SIGNAL_STRUCT.pack(epoch, seq, trigger_seq, trigger_mono, created_mono, ttl_ns, qty,
                              price, strategy_id, symbol, venue, side, order_type, tif, version,
                              0, 0)


def engine_kwargs(cfg) -> dict:
    """Constructor arguments of either engine from a `pipeline.config.RiskConfig`."""
    return dict(
        max_gross_notional=cfg.max_gross_notional,
        collar_bps=cfg.collar_bps,
        ref_stale_ns=cfg.ref_stale_ms * 1_000_000,
        throttle_orders=cfg.throttle_orders,
        throttle_window_ns=cfg.throttle_window_ms * 1_000_000,
        runaway_signals=cfg.runaway_signals,
        runaway_window_ns=cfg.runaway_window_ms * 1_000_000,
        max_tick_age_ns=cfg.max_tick_age_ms * 1_000_000,
        duplicate_window_ns=cfg.duplicate_window_ms * 1_000_000,
        self_trade=cfg.self_trade_prevention,
        runaway_fills=cfg.runaway_fills,
        runaway_fill_window_ns=cfg.runaway_fill_window_ms * 1_000_000,
        window_collar_bps=cfg.window_collar_bps,
        window_collar_ns=cfg.window_collar_ms * 1_000_000,
        state=int(TradingState[cfg.start_state]),
    )


def engine_from_config(cfg, engine_cls=None):
    """A risk engine (compiled by default) configured from a RiskConfig; instruments are added by
    the caller from exchangeInfo (InstrumentRules.from_binance) with cfg.limits_for(symbol)."""
    return (engine_cls or RiskEngine)(**engine_kwargs(cfg))


def add_instrument(eng, cfg, rules: InstrumentRules) -> None:
    """set_instrument, then the symbol's own [risk.symbols."VENUE:SYMBOL"] overrides that live in
    the engine rather than in InstrumentRules (max_tick_age_ms)."""
    from pipeline.records import Venue
    eng.set_instrument(rules)
    eng.set_max_tick_age(rules.symbol_id,
                         cfg.tick_age_ms_for(Venue(rules.venue).name, rules.name) * 1_000_000)


def sync_own_quotes(eng, orders, symbol_id: int) -> None:
    """Our best resting BUY and SELL on one symbol from the order book of record (`orders`: the
    gateway's Order objects; the open GTC LIMIT and LIMIT_MAKER ones count) into the kernel, which
    refuses what would cross them (SELF_TRADE). The kernel raises them itself on every accept; the
    gateway calls this when an order of the symbol ends (and at start), which lowers them."""
    from pipeline.records import OrderType, TimeInForce
    bid = ask = 0.0
    for o in orders:
        if o.symbol_id != symbol_id or not o.is_open:
            continue
        if not (o.order_type == OrderType.LIMIT_MAKER
                or (o.order_type == OrderType.LIMIT and o.tif == TimeInForce.GTC)):
            continue
        if o.side == 1:
            bid = max(bid, o.price)
        elif ask == 0.0 or o.price < ask:
            ask = o.price
    eng.set_own_quotes(symbol_id, bid, ask)


def rules_for(cfg, *, venue, symbol_id: int, exchange_symbol) -> InstrumentRules:
    """InstrumentRules for one symbol of the venue's exchangeInfo, with our limits from the
    RiskConfig (KeyError if [risk.symbols."VENUE:SYMBOL"] is missing: the symbol is not tradable)."""
    from pipeline.records import Venue
    v = Venue[venue] if isinstance(venue, str) else Venue(venue)
    name = exchange_symbol["symbol"]
    lim = cfg.limits_for(v.name, name)
    return InstrumentRules.from_binance(
        exchange_symbol, symbol_id=symbol_id, venue=int(v), max_order_qty=lim.max_order_qty,
        max_position_qty=lim.max_position_qty,
        max_order_notional=float(cfg.order_notional_for(v.name, name)))
