"""The operator's log of a real gateway against the simulator: every order decision one INFO line
with the ids that join it (client order id, strategy, epoch, seq, symbol), as JSON lines in
[logging].dir, and no secret in it."""
from __future__ import annotations

import json

import pytest

from tests.integration.gateway_harness import (BUY, SELL, StrategySide, cid_of,  # noqa: F401
                                               gw_factory, sim)

pytestmark = pytest.mark.timeout(60)
__all__ = ["sim", "gw_factory"]   # fixtures


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]   # every line parses


def test_order_decisions_halt_and_cancel_are_logged_as_json_lines_with_ids(sim, gw_factory,
                                                                          tmp_path):
    from pipeline.sim.testing import SIM_TEST_API_KEY, SIM_TEST_SECRET
    logs = tmp_path / "logs"
    gw = gw_factory(risk={"max_consecutive_rejects": 2, "max_order_qty": 1.0},
                    extra_toml=f'[logging]\ndir = "{logs}"\nformat = "json"\n').start()
    ref = gw.status()["refs"]["BTCUSDT"]
    high = round(ref * 1.02, 2)
    with StrategySide(gw.channel) as st:
        filled = st.send(side=BUY, qty=0.002)                 # SENT, FILL, FILLED
        gw.wait(lambda s: s["orders"].get("FILLED") == 1, what="one fill")
        too_big = st.send(side=BUY, qty=2.0)                  # refused by the gateway's risk
        gw.wait(lambda s: sum(s["rejects"].values()) >= 1, what="risk reject")
        resting = st.limit(SELL, 0.9, high)                   # rests: ACK
        gw.wait(lambda s: [o["state"] for o in s["open_orders"]] == ["ACK"], what="ACK")
        venue_no = st.limit(SELL, 0.9, high)                  # -2010 insufficient balance
        st.limit(SELL, 0.9, high)                             # again → HALTED, cancel all
        gw.wait(lambda s: s["trading"] == "HALTED" and not s["open_orders"], what="HALTED")
    assert gw.stop() == 0
    path = logs / "gateway.log"
    recs = _lines(path)
    assert all(r["role"] == "gateway" and r["level"] and r["ts"].endswith("Z") for r in recs)
    orders = [r for r in recs if r["logger"] == "pipeline.orders"]

    def events(sig) -> list[str]:
        return [r["event"] for r in orders if r.get("cid") == cid_of(sig)]

    for r in orders:                                         # the ids to join them, every line
        if "cid" in r:
            assert {"strategy", "epoch", "seq", "symbol"} <= set(r), r
    one = [r for r in orders if r.get("cid") == cid_of(filled)]
    assert {(r["strategy"], r["epoch"], r["seq"], r["symbol"]) for r in one} == \
        {(filled.strategy_id, filled.epoch, filled.seq, "BTCUSDT")}
    assert events(filled)[0] == "SENT" and "FILL" in events(filled) and "FILLED" in events(filled)
    fill = next(r for r in one if r["event"] == "FILL")
    assert fill["qty"] == pytest.approx(0.002) and fill["price"] > 0 and fill["order_id"] >= 0
    refused = [r for r in orders if r.get("cid") == cid_of(too_big)]
    assert [r["event"] for r in refused] == ["REJECTED"]
    assert refused[0]["by"] == "gateway" and refused[0]["reason"] and refused[0]["level"] == "INFO"
    assert events(resting)[:2] == ["SENT", "ACK"] and events(resting)[-1] == "CANCELED"
    venue = [r for r in orders if r.get("cid") == cid_of(venue_no) and r["event"] == "REJECTED"]
    assert len(venue) == 1 and "-2010" in venue[0]["why"]
    halts = [r for r in recs if r["logger"] == "pipeline.events" and r["event"] == "HALTED"]
    assert len(halts) == 1 and "consecutive order rejects" in halts[0]["why"]
    assert halts[0]["frm"] == "ACTIVE"
    clock = [r for r in recs if r.get("event") == "CLOCK_SYNC"]
    assert clock and "offset_ms" in clock[0]
    text = path.read_text()
    assert SIM_TEST_SECRET not in text and SIM_TEST_API_KEY not in text
    assert "signature=" not in text.lower().replace("signature=<redacted>", "")


def test_an_unknown_outcome_and_its_resolution_are_logged_as_text_lines(sim, gw_factory,
                                                                       tmp_path):
    logs = tmp_path / "logs"
    gw = gw_factory(reference_poll_ms=60_000, user_stream=False,
                    extra_toml=f'[logging]\ndir = "{logs}"\n').start()
    with StrategySide(gw.channel) as st:
        sim.fault("http_5xx", count=1)                # the venue creates it, the reply is a 503
        sig = st.send(side=BUY, qty=0.003)
        gw.wait(lambda s: s["orders"].get("FILLED") == 1, what="UNKNOWN resolved as filled")
    assert gw.stop() == 0
    cid = cid_of(sig)
    lines = [ln for ln in (logs / "gateway.log").read_text().splitlines() if f"cid={cid} " in ln]
    ids = f"cid={cid} strategy={sig.strategy_id} epoch={sig.epoch} seq={sig.seq} symbol=BTCUSDT"
    assert all(ids in ln for ln in lines), lines
    events = [ln.split("pipeline.orders: order ", 1)[1].split(" ", 1)[0] for ln in lines]
    assert events[:3] == ["SENT", "UNKNOWN", "RESOLVED"], lines
    unknown, resolved = lines[1], lines[2]
    assert " WARNING " in unknown and "outcome unknown" in unknown
    assert " INFO " in resolved and "to=FILLED" in resolved
