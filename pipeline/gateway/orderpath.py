"""Order-path facade: the compiled kernel (ext/orderpath.pyx) when built, else ExtensionNotBuilt.

    path = OrderPath(risk_engine, signer)          # compiled RiskEngine + BinanceSigner
    body = path.process(signal_bytes, time.perf_counter_ns(), timestamp_ms)
    if body is None: reason = path.last_reason      # the risk kernel's answer; nothing signed

The risk kernel decides, the signer signs; one compiled call. The pure-Python twin is
`pipeline.gateway.orderpath_py.OrderPath` (for the twin engine and signer).
"""
from __future__ import annotations

from pipeline import _native

_orderpath = _native.load("orderpath")
OrderPath = _orderpath.OrderPath

__all__ = ["OrderPath"]
