"""The gateway with the binary write-ahead journal (`journal_format = "binary"`), as its own
process against the simulator: each order's ORDER record comes before its request goes out and
before its answer, the journal exports as JSON lines (`python -m pipeline.gateway journal`), and a
restart rebuilds from it (tests/integration/test_gateway_safety.py runs the SIGKILL recovery test
with both formats)."""
from __future__ import annotations

import json

import pytest

from tests.integration.gateway_harness import BUY, SELL, StrategySide, cid_of, gw_factory, sim

pytestmark = pytest.mark.timeout(60)
__all__ = ["sim", "gw_factory"]   # fixtures


def test_binary_journal_records_each_order_before_its_answer_and_exports_json_lines(sim,
                                                                                    gw_factory):
    gw = gw_factory(journal_format="binary").start()
    with StrategySide(gw.channel) as st:
        sigs = [st.send(side=BUY if i % 2 == 0 else SELL, qty=0.001) for i in range(5)]
        gw.wait(lambda s: s["fills"] >= 5 and not s["open_orders"], what="five fills")
    wire = gw.status()["wire"]
    # the compiled order path journalled and wrote them (a connection was held ready), the wire
    # thread only when every connection was carrying an order
    assert wire["compiled"] >= 1 and wire["sent"] == 5, wire
    assert (gw.state_dir / "journal.bin").exists() and not (gw.state_dir / "journal.jsonl").exists()
    j = gw.journal()
    for sig in sigs:
        cid = cid_of(sig)
        steps = [r["k"] for r in j if r.get("cid") == cid]
        assert steps[:3] == ["signal", "order", "request"], steps
        assert "response" in steps and "fill" in steps
        req = next(r for r in j if r["k"] == "request" and r["cid"] == cid)
        resp = next(r for r in j if r["k"] == "response" and r["cid"] == cid)
        assert req["m"] <= resp["stamps"]["written"] < resp["m"]    # journalled, then written
        order = next(r for r in j if r["k"] == "order" and r["cid"] == cid)
        assert (order["strategy"], order["epoch"], order["seq"]) == (
            sig.strategy_id, sig.epoch, sig.seq)
    assert gw.stop() == 0
    r = gw.cli("journal")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["k"] for x in lines] == [x["k"] for x in gw.journal()]
    assert lines[-1]["k"] == "stop"
    # a restart reads it back: every order known, none open, positions flat again
    gw.start()
    s = gw.status()
    assert s["orders"] == {"FILLED": 5} and s["positions"]["BTCUSDT"]["qty"] == pytest.approx(0.001)
