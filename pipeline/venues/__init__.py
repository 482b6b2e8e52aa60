"""The venues: one package each (binance/, okx/), and the one place a venue's name maps to its
adapters, so the collector, the gateway and the launcher never name a venue.

    COLLECTOR_ADAPTERS  [collector].venue → (module, class) of its market-data adapter
                        (pipeline/venues/base.py VenueAdapter)
    GATEWAY_ADAPTERS    [gateway].venue → (module, class) of its gateway adapter (signer, REST,
                        instruments, streams, wire, execution, reconcile); the simulator (SIM)
                        speaks Binance's protocol
A new venue adds its package and one line in each.
"""
from __future__ import annotations

import importlib

COLLECTOR_ADAPTERS: dict[str, tuple[str, str]] = {
    "binance": ("pipeline.venues.binance.market", "BinanceAdapter"),
    "okx": ("pipeline.venues.okx.adapter", "OkxAdapter"),
}
GATEWAY_ADAPTERS: dict[str, tuple[str, str]] = {
    "BINANCE": ("pipeline.venues.binance.gateway", "BinanceVenue"),
    "SIM": ("pipeline.venues.binance.gateway", "BinanceVenue"),
    "OKX": ("pipeline.venues.okx.gateway", "OkxVenue"),
}


def adapter_class(table: dict[str, tuple[str, str]], venue: str) -> type:
    """The adapter class of `venue` in one of the tables (KeyError if it has none)."""
    module, name = table[venue]
    return getattr(importlib.import_module(module), name)


def gateway_adapters() -> dict[str, type]:
    """[gateway].venue → its gateway adapter class (imports them)."""
    return {v: adapter_class(GATEWAY_ADAPTERS, v) for v in GATEWAY_ADAPTERS}


__all__ = ["COLLECTOR_ADAPTERS", "GATEWAY_ADAPTERS", "adapter_class", "gateway_adapters"]
