"""Order-path facade: the compiled kernel (ext/orderpath.pyx) when built, else ExtensionNotBuilt.

    path = OrderPath(risk_engine, signer)          # compiled RiskEngine + the venue's signer
    body = path.process(signal_bytes, time.perf_counter_ns(), timestamp_ms)
    if body is None: reason = path.last_reason      # the risk kernel's answer; nothing signed

    path.set_name(symbol_id, b"BTCUSDT")           # the journal record's symbol name
    body = path.send(signal_bytes, now, timestamp_ms, journal_writer, request_writer, fd,
                     sync, via)                    # + ORDER record + the request on fd
    path.journal_state, path.wire_state, path.sent, path.written_ns

The risk kernel decides, the signer signs, the journal writer records, the request writer sends:
one compiled call. The pure-Python twin is `pipeline.gateway.orderpath_py.OrderPath` (for the
twin engine, signer, journal writer and request writer); the J_* / W_* state codes are its.
"""
from __future__ import annotations

from pipeline import _native
from pipeline.gateway.orderpath_py import (J_FULL, J_NO_NAME, J_NONE, J_SYNC_FAILED, J_WRITTEN,
                                           JOURNAL_STATES, W_CLOSED, W_ERROR, W_NONE, W_SENT,
                                           W_SHORT, W_TOO_BIG, WIRE_STATES)

_orderpath = _native.load("orderpath")
OrderPath = _orderpath.OrderPath

__all__ = ["OrderPath", "J_NONE", "J_WRITTEN", "J_FULL", "J_SYNC_FAILED", "J_NO_NAME", "W_NONE",
           "W_SENT", "W_SHORT", "W_CLOSED", "W_ERROR", "W_TOO_BIG", "JOURNAL_STATES",
           "WIRE_STATES"]
