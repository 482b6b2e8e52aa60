"""The relay's conversions and config checks (pipeline/sim/relay.py, [sim] tape = "relay")."""
from __future__ import annotations

import random

import pytest

from pipeline.config import SimConfig
from pipeline.sim.instruments import parse8
from pipeline.sim.relay import BIG, spec_of, units
from pipeline.venues.binance.market import dec


def test_units_of_a_parsed_venue_decimal_is_exact():
    """Every decimal a float holds exactly enough (15 significant digits) comes back exact, the
    large ones through the repr path."""
    rng = random.Random(5)
    samples = ["0.00000001", "61837.63000000", "0.35130000", "9999999.99999999",
               "9000000000.00000000", "123456789012.345"]
    samples += [f"{rng.randrange(10**7)}.{rng.randrange(10**8):08d}" for _ in range(5000)]
    for s in samples:
        assert units(dec(s, "price")) == parse8(s), s


def test_spec_of_a_listing_keeps_the_venues_filters_and_unlimits_zeros():
    s = spec_of({"symbol": "PEPEUSDT", "base": "PEPE", "quote": "USDT", "status": "TRADING",
                 "tick": "0.00000001", "step": "1", "min_qty": "1", "max_qty": "0",
                 "min_price": "0.00000001", "max_price": "1", "min_notional": "1",
                 "max_notional": ""})
    assert (s.tick, s.step, s.min_qty, s.max_qty) == (1, parse8("1"), parse8("1"), BIG)
    assert (s.min_price, s.max_price, s.min_notional, s.max_notional) == \
        (1, parse8("1"), parse8("1"), BIG)
    assert (s.base, s.quote, s.start_price) == ("PEPE", "USDT", 0)


@pytest.mark.parametrize("kw, msg", [
    ({}, "upstream_ws_url"),
    ({"upstream_ws_url": "wss://x"}, "upstream_rest_url"),
    ({"upstream_ws_url": "wss://x", "upstream_rest_url": "https://x",
      "upstream_channels": ["trade", "bookTicker"]}, "depth channel"),
    ({"upstream_ws_url": "wss://x", "upstream_rest_url": "https://x",
      "upstream_channels": ["depth@100ms"]}, "trade or aggTrade"),
    ({"upstream_ws_url": "wss://x", "upstream_rest_url": "https://x",
      "upstream_channels": ["trade", "kline_1m", "depth"]}, "upstream_channels"),
])
def test_a_relay_config_without_what_it_needs_is_a_clear_error(kw, msg):
    with pytest.raises(ValueError, match=msg):
        SimConfig(tape="relay", **kw)
    SimConfig(tape="relay", upstream_ws_url="wss://stream.binance.com:9443",
              upstream_rest_url="https://api.binance.com")
