"""The run summary as a trader reads it: PnL with its currency, the final position, fees, fills
(and where they were counted), orders by state, hop latency; used by the launcher's CLI."""
from __future__ import annotations

from pipeline.registry import SymbolRegistry, UnknownSymbol
from pipeline.records import Venue


def pnl_currency(cfg) -> str:
    """The quote currency of the gateway's symbols (PnL is counted in it), "" if they differ or
    are unknown to the registry."""
    quotes = set()
    reg = SymbolRegistry()
    for sym in cfg.gateway.symbols:
        try:
            quotes.add(reg.instrument(reg.id(Venue[cfg.gateway.venue], sym)).quote)
        except (UnknownSymbol, KeyError, AttributeError):
            return ""
    return quotes.pop() if len(quotes) == 1 else ""
