"""Strategy plug-ins: `kind` names a built-in, a module's class or a file's class (relative to the
config file); every mistake is a ConfigError naming it, raised before any I/O; each instance
numbers its own orders."""
from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest

from pipeline import config
from pipeline.records import TICK_DTYPE, Kind, Venue
from pipeline.registry import DEFAULT as REG
from pipeline.strategy import loader
from pipeline.strategy.process import build_strategies
from pipeline.strategy.sma import SmaCrossover

PLUGIN = '''
from dataclasses import dataclass
from pipeline.strategy import Strategy

@dataclass(frozen=True)
class P:
    lookback: int = 10
    band: float = 0.5

class Breakout(Strategy):
    Params = P
    kind = "breakout"
    def on_trades(self, trades):
        return []

class NotAStrategy:
    pass
'''


def write_plugin(tmp_path, rel="strategies/brk.py", text=PLUGIN):
    p = tmp_path / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(textwrap.dedent(text))
    return p


def cfg_file(tmp_path, kind, params="{ lookback = 20 }", name="pipe.toml"):
    c = tmp_path / "conf" / name
    c.parent.mkdir(exist_ok=True)
    c.write_text(f'[[strategy.instances]]\nid = 2\nkind = "{kind}"\nparams = {params}\n')
    return c


def build(path):
    return build_strategies(config.load(path), source=str(path))


def test_file_plugin_is_found_relative_to_the_config_file(tmp_path, monkeypatch):
    write_plugin(tmp_path, "conf/strategies/brk.py")
    monkeypatch.chdir("/")                       # not relative to the working directory
    c = cfg_file(tmp_path, "strategies/brk.py:Breakout")
    (s,) = build(c)
    assert type(s).__name__ == "Breakout" and s.params.lookback == 20 and s.params.band == 0.5
    assert s.strategy_id == 2


def test_module_plugin_and_builtin(tmp_path, monkeypatch):
    write_plugin(tmp_path, "pkgx/brkmod.py")
    (tmp_path / "pkgx" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    (s,) = build(cfg_file(tmp_path, "pkgx.brkmod:Breakout"))
    assert type(s).__name__ == "Breakout"
    assert loader.resolve("sma") is SmaCrossover
    assert loader.resolve("pipeline.strategy.sma:SmaCrossover") is SmaCrossover
    sys.modules.pop("pkgx.brkmod", None)
    sys.modules.pop("pkgx", None)


@pytest.mark.parametrize("kind,params,msg", [
    ("strategies/nope.py:Breakout", "{}", r"no such file .*nope\.py"),
    ("strategies/brk.py:Missing", "{}", r"has no class 'Missing'"),
    ("strategies/brk.py:NotAStrategy", "{}", r"'NotAStrategy' is not a subclass of "
                                             r"pipeline.strategy.Strategy"),
    ("no_such_pkg_xyz.mod:Cls", "{}", r"no module 'no_such_pkg_xyz'"),
    ("momentum", "{}", r"unknown strategy kind 'momentum'"),
    ("strategies/brk.py:Breakout", "{ lookbak = 3 }", r"unknown key .*lookbak"),
    ("strategies/brk.py:Breakout", '{ lookback = "3" }', r"lookback.*must be an integer"),
    ("strategies/brk.py:Breakout", '{ band = true }', r"band.*must be a number"),
])
def test_plugin_mistakes_are_config_errors_naming_them(tmp_path, kind, params, msg):
    write_plugin(tmp_path, "conf/strategies/brk.py")
    with pytest.raises(config.ConfigError, match=msg):
        build(cfg_file(tmp_path, kind, params))


def test_a_plugin_that_fails_to_import_names_its_error(tmp_path):
    write_plugin(tmp_path, "conf/strategies/bad.py", "import numpy\nraise RuntimeError('boom')\n")
    with pytest.raises(config.ConfigError, match=r"importing .*bad\.py.* failed: RuntimeError: "
                                                  r"boom"):
        build(cfg_file(tmp_path, "strategies/bad.py:X"))


def test_launcher_refuses_a_bad_plugin_before_starting_anything(tmp_path):
    from pipeline.launcher import supervisor
    c = tmp_path / "l.toml"
    c.write_text('[roles.strategy]\nkind = "strategy"\n[[strategy.instances]]\n'
                 'kind = "strategies/none.py:X"\n')
    with pytest.raises(supervisor.LaunchError, match=r"no such file"):
        supervisor.Launcher(config.load(c), str(c))


def _ticks(n, seed=1):
    rng = np.random.default_rng(seed)
    r = np.zeros(n, TICK_DTYPE)
    r["seq"] = np.arange(n)
    r["kind"] = Kind.TRADE
    r["venue"] = Venue.SIM
    r["symbol"] = REG.id(Venue.SIM, "BTCUSDT")
    r["price"] = 100 + np.cumsum(rng.integers(-1, 2, n))
    return r


def test_each_instance_numbers_its_own_orders():
    cfg = config.loads('[[strategy.instances]]\nid = 1\nparams = { fast = 2, slow = 5, '
                       'price_increment = 1.0 }\n[[strategy.instances]]\nid = 2\n'
                       'params = { fast = 3, slow = 7, price_increment = 1.0 }\n')
    a, b = build_strategies(cfg)
    a.epoch = b.epoch = 99
    recs = _ticks(3000)
    seqs = {1: [], 2: []}
    for i in range(0, len(recs), 50):
        for st in (a, b):
            for sig in st.on_ticks(recs[i:i + 50]):
                sig = st.stamp(sig)
                seqs[sig.strategy_id].append((sig.epoch, sig.seq))
    for sid, got in seqs.items():
        assert len(got) > 10
        assert got == [(99, k) for k in range(1, len(got) + 1)], sid


def test_order_intents_carry_client_ids_and_fills_make_the_position():
    from pipeline.strategy.orders import Cancel, EventKind, OrderEvent, Replace
    s = SmaCrossover(strategy_id=5, qty=1.0)
    m = s.market(1, 0.5)
    lim = s.limit(-1, 0.2, 101.0, tif="IOC")
    po = s.post_only(1, 0.3, 99.0)
    assert (m.seq, lim.seq, po.seq) == (1, 2, 3) and m.order_type == 2 and np.isnan(m.price)
    assert (lim.order_type, lim.tif, lim.price) == (1, 2, 101.0)
    assert (po.order_type, po.tif) == (3, 0)
    assert s.cancel(3) == Cancel(5, 3)
    r = s.replace(3, 98.5)
    assert isinstance(r, Replace) and r.client_id == 3 and r.new.seq == 4 and r.new.price == 98.5
    with pytest.raises(ValueError, match="tif"):
        s.limit(1, 1.0, 1.0, tif="DAY")
    s.order_event(OrderEvent(EventKind.FILL, 1, 10, price=100.0, qty=0.5, fee=0.05))
    s.order_event(OrderEvent(EventKind.FILL, 2, 11, price=101.0, qty=0.1, fee=0.01))
    s.order_event(OrderEvent(EventKind.EXPIRED, 2, 11, reason="IOC"))
    assert s.net_qty == pytest.approx(0.4) and s.fees_paid == pytest.approx(0.06)
    assert 1 not in s.orders and 2 not in s.orders and 3 in s.orders
