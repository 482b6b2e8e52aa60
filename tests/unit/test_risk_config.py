"""[risk] config section → engine limits and instrument rules (strict, documented defaults)."""
from __future__ import annotations

import json

import pytest

from pipeline import config
from pipeline.gateway import risk_py
from pipeline.gateway.reasons import Reason, TradingState
from pipeline.gateway.risk import (
    RiskEngine,
    add_instrument,
    engine_from_config,
    engine_kwargs,
    rules_for,
)
from tests.gateway_helpers import NOW, T0, Sig

TOML = '''
[risk]
max_order_notional = 2000
max_gross_notional = 50000.0
collar_bps = 25
ref_stale_ms = 500
max_tick_age_ms = 250
duplicate_window_ms = 150
self_trade_prevention = true
throttle_orders = 5
throttle_window_ms = 1000
runaway_signals = 20
runaway_window_ms = 1000
runaway_fills = 40
runaway_fill_window_ms = 2000
window_collar_bps = 120
window_collar_ms = 500
start_state = "REDUCING"

[risk.symbols."BINANCE:BTCUSDT"]
max_order_qty = 0.05
max_position_qty = 0.2

[risk.symbols."BINANCE:ETHUSDT"]
max_order_qty = 1.5
max_position_qty = 3
max_order_notional = 5000
max_tick_age_ms = 40
'''


def test_defaults_are_valid():
    cfg = config.loads("")
    assert cfg.risk == config.RiskConfig()
    assert engine_kwargs(cfg.risk)["state"] == TradingState.ACTIVE


def test_risk_section_to_engine_and_rules(vectors):
    cfg = config.loads(TOML).risk
    kw = engine_kwargs(cfg)
    assert kw == dict(max_gross_notional=50000.0, collar_bps=25.0, ref_stale_ns=500_000_000,
                      throttle_orders=5, throttle_window_ns=1_000_000_000, runaway_signals=20,
                      runaway_window_ns=1_000_000_000, max_tick_age_ns=250_000_000,
                      duplicate_window_ns=150_000_000, self_trade=True,
                      runaway_fills=40, runaway_fill_window_ns=2_000_000_000,
                      window_collar_bps=120, window_collar_ns=500_000_000,
                      state=TradingState.REDUCING)
    info = json.loads((vectors / "binance" / "rest_exchangeInfo.json").read_text())
    syms = {s["symbol"]: s for s in info["recorded_excerpt"]["message"]["symbols"]}
    btc = rules_for(cfg, venue="BINANCE", symbol_id=1, exchange_symbol=syms["BTCUSDT"])
    eth = rules_for(cfg, venue="BINANCE", symbol_id=2, exchange_symbol=syms["ETHUSDT"])
    assert (btc.max_order_qty_units, btc.max_position_units, btc.max_order_notional) == \
        (5000, 20000, 2000.0)
    assert eth.max_order_notional == 5000.0
    with pytest.raises(KeyError, match="BINANCE:LTCBTC"):
        rules_for(cfg, venue="BINANCE", symbol_id=3, exchange_symbol=syms["LTCBTC"])
    for Engine in (RiskEngine, risk_py.RiskEngine):
        e = engine_from_config(cfg, Engine)
        e.set_instrument(btc)
        e.set_reference(1, 50_000.0, T0)
        assert e.state == TradingState.REDUCING
        assert e.check(Sig()(qty=0.01), NOW) == Reason.REDUCE_ONLY
        add_instrument(e, cfg, eth)                     # its own max_tick_age_ms
        assert (e.max_tick_age(1), e.max_tick_age(2)) == (250_000_000, 40_000_000)


@pytest.mark.parametrize("text,needle", [
    ("[risk]\ncollar = 1", "unknown key 'risk.collar'"),
    ("[risk]\ncollar_bps = 0", "collar_bps"),
    ("[risk]\nthrottle_orders = 0", "throttle_orders"),
    ("[risk]\nmax_tick_age_ms = 0", "max_tick_age_ms"),
    ("[risk]\nduplicate_window_ms = -1", "duplicate_window_ms"),
    ("[risk.symbols.\"BINANCE:BTCUSDT\"]\nmax_order_qty = 1\nmax_position_qty = 1\n"
     "max_tick_age_ms = 0", "max_tick_age_ms"),
    ("[risk]\nrecv_window_ms = 60001", "recv_window_ms"),
    ("[risk]\nrecv_window_ms = 5001", "recv_window_ms must be in 1..5000"),  # Binance's cap
    ("[risk]\nstart_state = \"PAUSED\"", "start_state"),
    ("[risk.symbols.\"NYSE:IBM\"]\nmax_order_qty = 1\nmax_position_qty = 1", "VENUE:SYMBOL"),
    ("[risk.symbols.\"BINANCE:BTCUSDT\"]\nmax_order_qty = 1", "max_position_qty"),
    ("[risk.symbols.\"BINANCE:BTCUSDT\"]\nmax_order_qty = -1\nmax_position_qty = 1",
     "max_order_qty"),
])
def test_bad_risk_config_is_an_error_naming_the_key(text, needle):
    with pytest.raises(config.ConfigError, match=needle):
        config.loads(text)
