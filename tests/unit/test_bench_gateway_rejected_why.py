"""scripts/bench_gateway.py --e2e says why its REJECTED orders were rejected: the gateway
journal's state records to REJECTED, grouped by reason with the numbers taken out."""
from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "scripts" / "bench_gateway.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_gateway_reasons", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_rejected_orders_are_grouped_by_reason_without_their_numbers():
    recs = [{"k": "state", "to": "FILLED", "why": "filled"},
            {"k": "state", "to": "REJECTED", "why": "400 -2010 Account has insufficient balance"},
            {"k": "state", "to": "REJECTED", "why": "400 -2010 Account has insufficient balance"},
            {"k": "state", "to": "REJECTED", "why": "not sent: cannot connect to 127.0.0.1:18765"},
            {"k": "signal", "to": "REJECTED", "why": "not a state record"}]
    assert _bench().rejected_reasons(recs) == {
        "N -N Account has insufficient balance": 2,
        "not sent: cannot connect to N.N.N.N:N": 1}


def test_no_rejected_order_gives_no_reasons():
    assert _bench().rejected_reasons([{"k": "state", "to": "FILLED", "why": "filled"}]) == {}
