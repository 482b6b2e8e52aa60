"""A run of several venues: each role's own view of the config (PipelineConfig.for_role), the
launcher's view of the run (pipeline/launcher/views.py), and the strategy process's side
(pipeline/strategy/venues.py: several rings in, each gateway's trading state)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from pipeline import config
from pipeline.bus.ring import TickRing
from pipeline.config import ConfigError
from pipeline.launcher import views
from pipeline.launcher.supervisor import LaunchError, Launcher
from pipeline.records import TICK_DTYPE, Kind, TradingState
from pipeline.strategy.venues import GatewayStates, MultiReader, MultiRing
from pipeline.telemetry.status import ENV_SEGMENT, StatusBlock

REPO = Path(__file__).resolve().parents[2]

BASE = """
[roles.gw]
kind = "gateway"
[roles.gw_b]
kind = "gateway"
[roles.gw_b.config.gateway]
venue = "OKX"
symbols = ["BTC-USDT"]
channel = "chan-b"
state_dir = "state-b"
api_key_env = "B_KEY"
api_secret_env = "B_SECRET"
api_passphrase_env = "B_PASS"
[roles.gw_b.config.risk.symbols."OKX:BTC-USDT"]
max_order_qty = 1.0
max_position_qty = 1.0
[roles.strat]
kind = "strategy"
[gateway]
venue = "SIM"
symbols = ["BTCUSDT"]
channel = "chan-a"
state_dir = "state-a"
api_key_env = "A_KEY"
api_secret_env = "A_SECRET"
[risk.symbols."SIM:BTCUSDT"]
max_order_qty = 1.0
max_position_qty = 1.0
"""


def test_a_role_view_lays_its_sections_over_the_files(monkeypatch):
    monkeypatch.delenv("PIPELINE_ROLE", raising=False)
    cfg = config.loads(BASE)
    b = cfg.for_role("gw_b")
    assert cfg.for_role("gw") is cfg and cfg.for_role("nobody") is cfg
    assert (b.gateway.venue, b.gateway.channel, b.gateway.symbols) == ("OKX", "chan-b",
                                                                       ["BTC-USDT"])
    assert b.gateway.reference == cfg.gateway.reference          # untouched keys: the file's
    assert sorted(b.risk.symbols) == ["OKX:BTC-USDT", "SIM:BTCUSDT"]   # tables merge
    assert b.role_name == "gw_b" and cfg.role_name == ""
    assert b.for_role("gw") is cfg                               # every view knows the others
    # a role reads its view: explicitly, or from $PIPELINE_ROLE (the launcher sets it)
    assert config.loads(BASE, role="gw_b").gateway.channel == "chan-b"
    monkeypatch.setenv("PIPELINE_ROLE", "gw_b")
    assert config.loads(BASE).gateway.channel == "chan-b"
    assert config.loads(BASE, role="").gateway.channel == "chan-a"


def test_arrays_in_a_role_view_replace_the_files():
    cfg = config.loads("""
[roles.s]
kind = "strategy"
[roles.s.config.strategy]
rings = ["r2"]
[[roles.s.config.strategy.instances]]
id = 7
[[strategy.instances]]
id = 1
[[strategy.instances]]
id = 2
""", role="")
    assert [i.id for i in cfg.for_role("s").strategy.instances] == [7]
    assert [i.id for i in cfg.strategy.instances] == [1, 2]


def test_bad_role_sections_are_errors_naming_the_role():
    with pytest.raises(ConfigError, match="'launcher' cannot be set per role"):
        config.loads('[roles.c]\nkind = "collector"\n[roles.c.config.launcher]\nrun_id = "x"\n')
    with pytest.raises(ConfigError, match=r"collector\.venue.*view of role c"):
        config.loads('[roles.c]\nkind = "collector"\n[roles.c.config.collector]\nvenue = "kraken"\n')
    with pytest.raises(ConfigError, match="no role 'gw_c'"):
        config.loads(BASE, role="gw_c")
    with pytest.raises(ConfigError, match="not a venue"):
        config.loads('[strategy]\nchannels = { okx = "c" }\n')


def test_the_launcher_gives_each_gateway_only_its_own_secrets(monkeypatch, tmp_path):
    for n in ("A_KEY", "A_SECRET", "B_KEY", "B_SECRET", "B_PASS"):
        monkeypatch.setenv(n, n.lower() + "-value")
    monkeypatch.delenv("PIPELINE_ROLE", raising=False)
    text = BASE.replace('state_dir = "state-', f'state_dir = "{tmp_path}/state-')
    la = Launcher(config.loads(text), str(tmp_path / "c.toml"))
    env = {n: la._env(r) for n, r in la.roles.items()}
    assert {"A_KEY", "A_SECRET"} <= set(env["gw"]) and not {"B_KEY", "B_PASS"} & set(env["gw"])
    assert {"B_KEY", "B_SECRET", "B_PASS"} <= set(env["gw_b"]) and "A_KEY" not in env["gw_b"]
    assert not {"A_KEY", "B_KEY", "B_SECRET", "B_PASS"} & set(env["strat"])
    slots = views.parse_gateway_slots(env["strat"][views.ENV_GATEWAY_SLOTS])
    assert slots == {"chan-a": la.roles["gw"].slot, "chan-b": la.roles["gw_b"].slot}
    monkeypatch.delenv("B_PASS")                  # the OKX gateway's own credential is checked
    with pytest.raises(LaunchError, match="gateway gw_b's credentials are missing: set B_PASS"):
        Launcher(config.loads(text), str(tmp_path / "c.toml"))


def test_two_gateways_on_one_channel_or_state_dir_are_refused(tmp_path):
    for key, val in (("channel", "chan-a"), ("state_dir", "state-a")):
        text = BASE.replace(f'{key} = "{val[:-1]}b"', f'{key} = "{val}"')
        with pytest.raises(ValueError, match=f"roles gw and gw_b have the same \\[gateway\\].{key}"):
            views.check(config.loads(text, role=""), "c.toml")


def test_the_runs_rings_and_a_strategy_ring_nobody_writes(monkeypatch):
    monkeypatch.delenv("PIPELINE_ROLE", raising=False)
    cfg = config.load(REPO / "configs/two-venues.toml")
    assert views.rings(cfg) == {"pipeline-2v-binance-ticks": 65536, "pipeline-2v-okx-ticks": 65536}
    assert views.gateway_channels(cfg) == ["pipeline-2v-signals", "pipeline-2v-okx-signals"]
    views.check(cfg, "two-venues.toml")
    bad = config.loads('[roles.s]\nkind = "strategy"\n[strategy]\nrings = ["elsewhere"]\n')
    with pytest.raises(ValueError, match="'elsewhere', which no role of the run writes"):
        views.rings(bad)
    for text in ("a=1,b", "a=x", "=1"):
        with pytest.raises(ValueError, match="not channel=slot"):
            views.parse_gateway_slots(text)
    assert views.parse_gateway_slots("") == {}
    assert views.parse_gateway_slots("a=1,b=22") == {"a": 1, "b": 22}


def test_the_two_venues_config_asks_each_venue_for_its_own_symbols(monkeypatch):
    monkeypatch.delenv("PIPELINE_ROLE", raising=False)
    from pipeline.launcher import venues
    cfg = config.load(REPO / "configs/two-venues.toml")
    want = {(s.venue, s.listing): syms for s, syms in venues.wanted(cfg).items()}
    assert want == {("BINANCE", "binance"): {"BTCUSDT"}, ("OKX", "okx"): {"BTC-USDT"}}
    assert venues.check_tradable(cfg, "two-venues.toml") == []   # every instance has a gateway
    s = cfg.for_role("strategy").strategy
    assert s.channel_of("OKX") == "pipeline-2v-okx-signals"
    assert s.channel_of("BINANCE") == cfg.gateway.channel


def _rec(price: float) -> np.ndarray:
    r = np.zeros(1, TICK_DTYPE)
    r["kind"], r["price"], r["qty"] = int(Kind.TRADE), price, 1.0
    return r


def test_one_reader_over_several_rings_takes_every_rings_records(shm_name):
    a = TickRing.create(shm_name + "a", 64)
    b = TickRing.create(shm_name + "b", 64)
    try:
        wa, wb = a.writer(), b.writer()
        ring = MultiRing([a, b])
        rd = MultiReader([a.reader(wait="blocking"), b.reader(wait="blocking")])
        buf = np.empty(16, TICK_DTYPE)
        assert not rd.core.wait(1_000_000) and rd.poll_into(buf) == 0   # nothing yet: timeout
        wb.publish_array(_rec(2.0))            # the ring it is not parked on first
        assert rd.core.wait(1_000_000_000)
        assert rd.poll_into(buf) == 1 and buf[0]["price"] == 2.0
        wa.publish_array(np.concatenate([_rec(1.0), _rec(1.5)]))
        wb.publish_array(_rec(3.0))
        got = []
        while rd.core.wait(1_000_000):
            n = rd.poll_into(buf)
            got += buf["price"][:n].tolist()
        assert sorted(got) == [1.0, 1.5, 3.0]
        st = rd.stats()
        assert st["received"] == 4 and st["lag"] == 0 and set(st["rings"]) == {a.name, b.name}
        assert not ring.writer_closed
        wa.close()
        assert not ring.writer_closed            # one feed ended, the other goes on
        wb.close()
        assert ring.writer_closed and not rd.core.wait(1_000_000_000)   # returns at once
    finally:
        for r in (a, b):
            r.close()


class _Inst:
    def __init__(self, sid: int, hook: bool = False):
        self.strategy_id = sid
        self.seen: list[str] = []
        if hook:
            self.on_gateway_state = lambda s: self.seen.append(s) or [("intent", s)]


def test_a_gateways_halt_reaches_its_venues_strategies_only(shm_name):
    block = StatusBlock.create(shm_name + "-status", 3)
    try:
        a, b, c = _Inst(1, hook=True), _Inst(2, hook=True), _Inst(3)
        env = {ENV_SEGMENT: block.name, views.ENV_GATEWAY_SLOTS: "chan-a=0,chan-b=2"}
        gs = GatewayStates({"chan-a": [a], "chan-b": [b, c]}, environ=env)
        assert gs.poll(0) == []                         # both ACTIVE at first: no hook call
        assert a.gateway_state == b.gateway_state == c.gateway_state == "ACTIVE"
        block.slots[2]["trading_state"] = int(TradingState.HALTED)
        assert gs.poll(1) == []                         # looked at most every 20 ms
        out = gs.poll(10**9)
        assert out == [(b, ("intent", "HALTED"))]
        assert (a.gateway_state, b.gateway_state, c.gateway_state) == ("ACTIVE", "HALTED", "HALTED")
        assert a.seen == [] and b.seen == ["HALTED"]
        assert gs.stats()["gateway_states"] == {"chan-a": "ACTIVE", "chan-b": "HALTED"}
        assert [ch["state"] for ch in gs.stats()["gateway_state_changes"]] == [
            "ACTIVE", "ACTIVE", "HALTED"]
        gs.close()
        none = GatewayStates({"chan-a": [a]}, environ={})   # outside the launcher: nothing
        assert none.poll(10**12) == [] and none.block is None
    finally:
        block.close()


def test_a_quiet_ring_suspends_only_its_venues_instances(shm_name):
    """Per-ring staleness: ring b's writer stops heartbeating; the reader hands out STALE records
    for b's venue's instances only (one per (venue, symbol)), nothing for ring a's, and marks b
    fresh again when its writer beats. A ring whose venue is not known makes a STALE for all."""
    a = TickRing.create(shm_name + "a", 64)
    b = TickRing.create(shm_name + "b", 64)
    try:
        wa, wb = a.writer(), b.writer()
        rd = MultiReader([a.reader(wait="blocking"), b.reader(wait="blocking")],
                         stale_ns=200_000_000, ring_venues={a.name: {1}, b.name: {3}},
                         instances=[(1, 5), (3, 7), (3, 8), (3, 8)])
        buf = np.empty(16, TICK_DTYPE)
        wa.heartbeat()
        wb.heartbeat()
        assert rd.check_stale() == 0                     # both fresh
        time.sleep(0.3)
        wa.heartbeat()                                   # a beats on, b has gone quiet
        assert rd.check_stale() == 2 and rd.stale == [False, True]
        assert rd.core.wait(0)                           # the STALE records are there to read
        n = rd.poll_into(buf)
        assert n == 2 and set(buf["kind"][:n]) == {int(Kind.STALE)}
        assert sorted(zip(buf["venue"][:n].tolist(), buf["symbol"][:n].tolist())) == [(3, 7),
                                                                                     (3, 8)]
        assert rd.poll_into(buf) == 0
        assert rd.check_stale() == 0                     # said once, not again
        wb.heartbeat()
        assert rd.check_stale() == 0 and rd.stale == [False, False]     # fresh again
        st = rd.stats()
        assert st["stale_records"] == 2 and st["stale_rings"] == []
        assert [(e["ring"], e["state"]) for e in st["stale_events"]] == [(b.name, "STALE"),
                                                                         (b.name, "FRESH")]
        # venues not known yet: learnt from the first records read, else a STALE for everyone
        rd2 = MultiReader([a.reader(wait="blocking"), b.reader(wait="blocking")],
                          stale_ns=200_000_000, instances=[(1, 5), (3, 7)])
        rec = _rec(1.0)
        rec["venue"], rec["symbol"] = 1, 5
        wa.publish_array(rec)
        assert rd2.core.wait(1_000_000_000) and rd2.poll_into(buf) == 1
        time.sleep(0.3)
        assert rd2.check_stale() == 2                    # a (learnt: venue 1) and b (unknown)
        n = rd2.poll_into(buf)
        assert sorted(zip(buf["venue"][:n].tolist(), buf["symbol"][:n].tolist())) == [(0, 0),
                                                                                     (1, 5)]
        assert MultiRing([a, b]).heartbeat_age_ns() is None   # the loop's one-ring check is off
    finally:
        for r in (a, b):
            r.close()


def test_the_runs_rings_carry_their_collectors_venues(monkeypatch):
    monkeypatch.delenv("PIPELINE_ROLE", raising=False)
    from pipeline.records import Venue
    cfg = config.load(REPO / "configs/two-venues.toml")
    assert views.ring_venues(cfg) == {"pipeline-2v-binance-ticks": {int(Venue.BINANCE)},
                                      "pipeline-2v-okx-ticks": {int(Venue.OKX)}}


def test_gateways_of_two_venues_on_one_key_variable_are_refused(tmp_path):
    """Keys from the environment: an OKX and a SIM gateway both on $A_KEY would both read one
    venue's key; distinct names or a credentials file each pass."""
    text = BASE.replace('api_key_env = "B_KEY"', 'api_key_env = "A_KEY"')
    with pytest.raises(ValueError, match=r"roles gw \(SIM\) and gw_b \(OKX\) both read their API "
                                         r"key from \$A_KEY"):
        views.check(config.loads(text, role=""), "c.toml")
    views.check(config.loads(BASE, role=""), "c.toml")           # B_KEY: its own
    keys = tmp_path / "okx.keys"
    filed = text.replace('api_key_env = "A_KEY"\napi_secret_env = "B_SECRET"',
                         f'api_key_env = "A_KEY"\napi_secret_env = "B_SECRET"\n'
                         f'credentials_file = "{keys}"')
    assert filed != text
    views.check(config.loads(filed, role=""), "c.toml")          # a file: no variables read
