"""The gateway as its own process against the simulator over real sockets: the order path."""
from __future__ import annotations

import pytest

pytest.importorskip("pipeline.bus.signals", reason="signal codec (issue 6) not merged yet")
pytest.importorskip("pipeline.gateway.risk", reason="risk kernel (issue 7) not merged yet")
pytest.importorskip("pipeline.gateway.signing", reason="signing kernel (issue 7) not merged yet")
pytest.importorskip("pipeline.sim.testing", reason="simulator (issue 3) not merged yet")

from pipeline.sim.testing import start_sim  # noqa: E402
from tests.integration.gateway_harness import (BUY, SELL, SIM_DEFAULTS, GatewayProc,  # noqa: E402
                                               StrategySide, cid_of)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def sim(tmp_path):
    s = start_sim(tmp_path, **SIM_DEFAULTS)
    yield s
    s.stop()


@pytest.fixture
def gw_factory(tmp_path, sim):
    made: list[GatewayProc] = []

    def make(**kw) -> GatewayProc:
        g = GatewayProc(tmp_path, kw.pop("sim", sim), **kw)
        made.append(g)
        return g

    yield make
    for g in made:
        g.stop()


def acct(sim) -> dict:
    return next(iter(sim.state()["accounts"].values()))


def test_signal_becomes_order_fill_position_and_journal(sim, gw_factory):
    gw = gw_factory().start()
    with StrategySide(gw.channel) as st:
        sig = st.send(side=BUY, qty=0.002)
        s = gw.wait(lambda s: s["fills"] >= 1 and not s["open_orders"], what="one fill")
    cid = cid_of(sig)
    pos = s["positions"]["BTCUSDT"]
    assert pos["qty"] == pytest.approx(0.002)
    assert pos["avg_price"] > 0
    # the simulator agrees: one order with our id, filled, and fills for 0.002 BTC
    a = acct(sim)
    fills = a["fills"]
    assert sum(float(f["qty"]) for f in fills) == pytest.approx(0.002)
    assert float(a["balances"]["BTC"]["free"]) == pytest.approx(1.002)
    # the journal shows each step, in order
    j = gw.journal()
    kinds = [(r["k"], r.get("to") or r.get("decision") or "") for r in j
             if r.get("cid") == cid or (r["k"] == "signal" and r.get("seq") == sig.seq)]
    steps = [k for k, _ in kinds]
    for want in ("signal", "order", "request", "response", "fill", "state"):
        assert want in steps, (want, kinds)
    assert steps.index("signal") < steps.index("order") < steps.index("request") < \
        steps.index("response") < steps.index("fill")
    assert ("state", "FILLED") in kinds
    req = next(r for r in j if r["k"] == "request" and r["cid"] == cid)
    assert "signature" not in req["body"] and f"newClientOrderId={cid}" in req["body"]
    assert gw.stop() == 0
