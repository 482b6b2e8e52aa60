"""Instruments from the venue (pipeline/instruments.py) over real HTTP against the simulator, which
serves Binance's exchangeInfo and OKX's public/instruments: filters, the run-directory cache,
stable ids, unlisted symbols, offline starts, and the launcher's checks before anything starts."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import config
from pipeline import instruments as I
from pipeline.launcher import supervisor
from pipeline.records import Venue
from sim_fixtures import sim_factory  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(90)
SYMS = ["BTCUSDT", "XRPUSDT", "DOGEUSDT"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def sim(sim_factory):  # noqa: F811
    return sim_factory(symbols=SYMS)


def test_binance_listing_gives_filters_and_a_cache_every_reader_agrees_on(sim, tmp_path):
    src = I.Source("SIM", "binance", sim.rest_url)
    reg = I.load({src: {"XRPUSDT", "BTCUSDT"}}, tmp_path)
    assert reg.id(Venue.SIM, "BTCUSDT") == 1 and reg.id(Venue.SIM, "XRPUSDT") == 2
    x = reg.find(Venue.SIM, "XRPUSDT")
    assert (x.base, x.quote, x.status) == ("XRP", "USDT", "TRADING")
    assert (x.tick, x.step, x.min_qty, x.max_qty, x.min_notional) == \
        ("0.0001", "0.1", "0.1", "9000000", "5")
    # another process reading the cache (as the roles do) sees the same ids and filters
    cached, header = I.read_cache(tmp_path / "instruments.json")
    assert [i.to_json() for i in cached] == [i.to_json() for i in reg]
    assert header["sources"] == {"SIM": sim.rest_url}
    # a role handed the cache needs no venue: the ids come from the file
    role = I.registry_for({src: {"XRPUSDT"}}, tmp_path / "elsewhere",
                          environ={I.ENV_CACHE: str(tmp_path / "instruments.json")})
    assert role.id(Venue.SIM, "XRPUSDT") == 2


def test_any_listed_symbol_of_any_venue_name_works(sim, tmp_path):
    """BINANCE:DOGEUSDT (not in any fixed list) from a venue speaking Binance's format."""
    reg = I.load({I.Source("BINANCE", "binance", sim.rest_url): {"DOGEUSDT"}}, tmp_path)
    d = reg.find(Venue.BINANCE, "DOGEUSDT")
    assert d.id == 1 and d.tick == "0.00001" and d.step == "1" and d.min_notional == "1"


def test_okx_listing_from_public_instruments(sim, tmp_path):
    reg = I.load({I.Source("OKX", "okx", sim.rest_url): {"BTC-USDT", "XRP-USDT"}}, tmp_path)
    b = reg.find(Venue.OKX, "BTC-USDT")
    assert (b.id, b.base, b.quote, b.status, b.tick, b.step, b.min_qty) == \
        (1, "BTC", "USDT", "live", "0.01", "0.00001", "0.00001")
    assert reg.id(Venue.OKX, "XRP-USDT") == 2


def test_unlisted_symbols_are_named(sim, tmp_path):
    src = I.Source("SIM", "binance", sim.rest_url)
    with pytest.raises(I.InstrumentError, match=r"SIM:NOPEUSDT: not listed by the venue"):
        I.load({src: {"BTCUSDT", "NOPEUSDT"}}, tmp_path)
    with pytest.raises(I.InstrumentError, match=r"OKX:NOPE-USDT: not listed"):
        I.load({I.Source("OKX", "okx", sim.rest_url): {"NOPE-USDT", "BTC-USDT"}}, tmp_path)
    assert not (tmp_path / "instruments.json").exists()     # nothing cached from a failed load


def test_ids_stay_stable_when_the_config_grows(sim, tmp_path):
    src = I.Source("SIM", "binance", sim.rest_url)
    first = I.load({src: {"XRPUSDT"}}, tmp_path)
    assert first.id(Venue.SIM, "XRPUSDT") == 1
    grown = I.load({src: {"BTCUSDT", "DOGEUSDT", "XRPUSDT"}}, tmp_path)
    assert grown.id(Venue.SIM, "XRPUSDT") == 1               # kept
    assert grown.id(Venue.SIM, "BTCUSDT") == 2 and grown.id(Venue.SIM, "DOGEUSDT") == 3


def test_offline_start_uses_the_cache_and_says_so(sim, tmp_path):
    src = I.Source("SIM", "binance", sim.rest_url)
    I.load({src: {"BTCUSDT"}}, tmp_path)
    sim.stop()
    said: list[str] = []
    reg = I.load({src: {"BTCUSDT"}}, tmp_path, say=said.append)
    assert reg.id(Venue.SIM, "BTCUSDT") == 1
    assert len(said) == 1 and "unreachable" in said[0] and "offline start" in said[0]
    said.clear()
    I.load({src: {"BTCUSDT"}}, tmp_path, offline=True, say=said.append)
    assert "offline start" in said[0]
    # a symbol the cache lacks cannot start offline
    with pytest.raises(I.InstrumentError, match=r"cannot load .* lacks SIM:XRPUSDT"):
        I.load({src: {"BTCUSDT", "XRPUSDT"}}, tmp_path)
    with pytest.raises(I.InstrumentError, match=r"offline start: .* lacks SIM:XRPUSDT"):
        I.load({src: {"XRPUSDT"}}, tmp_path, offline=True)


def _run_config(tmp_path, port, shm_name, sim_symbols, collector_symbols) -> Path:
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text(f"""
[ring]
name = "{shm_name}"
[launcher]
run_id = "{shm_name}-run"
run_dir = "{tmp_path / 'run'}"
status_interval = 0
[sim]
port = {port}
symbols = {json.dumps(sim_symbols)}
rate = 300.0
[collector]
venue_id = "SIM"
ws_url = "ws://127.0.0.1:{port}"
rest_url = "http://127.0.0.1:{port}"
symbols = {json.dumps(collector_symbols)}
channels = ["trade", "bookTicker"]
[roles.sim]
kind = "sim"
ready = "started"
[roles.collector]
kind = "collector"
""")
    return cfg


def test_a_symbol_the_simulator_will_not_list_stops_the_run_before_anything_starts(tmp_path,
                                                                                   shm_name):
    path = _run_config(tmp_path, free_port(), shm_name, ["BTCUSDT"], ["BTCUSDT", "XRPUSDT"])
    with pytest.raises(supervisor.LaunchError, match=r"SIM:XRPUSDT: not listed by the venue"):
        supervisor.Launcher(config.load(path), str(path))
    r = subprocess.run([sys.executable, str(REPO / "scripts/launch.py"), "--config", str(path),
                        "--preflight"], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert r.returncode == 2 and "SIM:XRPUSDT: not listed by the venue" in r.stderr
    assert "add it to [sim].symbols" in r.stderr


def test_preflight_asks_a_running_venue_and_fails_on_an_unlisted_symbol(sim, tmp_path):
    cfg = tmp_path / "p.toml"
    body = f"""
[collector]
venue_id = "BINANCE"
rest_url = "{sim.rest_url}"
symbols = SYMBOLS
[roles.collector]
kind = "collector"
"""
    cfg.write_text(body.replace("SYMBOLS", '["DOGEUSDT", "XRPUSDT"]'))
    r = subprocess.run([sys.executable, str(REPO / "scripts/launch.py"), "--config", str(cfg),
                        "--preflight"], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert "BINANCE:DOGEUSDT: tick 0.00001, step 1, qty 1..9000000, min notional 1 USDT" in r.stdout
    cfg.write_text(body.replace("SYMBOLS", '["DOGEUSDT", "SHIBUSDT"]'))
    r = subprocess.run([sys.executable, str(REPO / "scripts/launch.py"), "--config", str(cfg),
                        "--preflight"], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert r.returncode == 2 and "BINANCE:SHIBUSDT: not listed by the venue" in r.stderr


def test_launcher_run_caches_instruments_and_the_collector_uses_their_ids(tmp_path, shm_name):
    """SIM:XRPUSDT (outside the old fixed universe) through the launcher: the cache in the run
    directory, and the records in the ring carry the ids it gives."""
    port = free_port()
    path = _run_config(tmp_path, port, shm_name, ["XRPUSDT", "BTCUSDT"], ["XRPUSDT", "BTCUSDT"])
    rec = tmp_path / "ticks"
    path.write_text(path.read_text() + f"""
[roles.recorder]
kind = "recorder"
wait = "sleeping"
args = ["--out", "{rec}"]
""")
    r = subprocess.run([sys.executable, str(REPO / "scripts/launch.py"), "--config", str(path),
                        "--duration", "3"], capture_output=True, text=True, timeout=80, cwd=REPO)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "instruments: 2 in" in r.stdout
    reg, _ = I.read_cache(tmp_path / "run" / "instruments.json")
    ids = {i.symbol: i.id for i in reg}
    assert ids == {"BTCUSDT": 1, "XRPUSDT": 2}
    from pipeline.collector.recorder import load_segments
    recs = load_segments(rec)
    seen = set(int(s) for s in recs["symbol"][recs["symbol"] > 0])
    assert seen == {1, 2}


def test_roles_started_alone_on_one_run_directory_agree(sim, tmp_path):
    """Two processes loading different symbols into one run directory at once (as roles started
    without the launcher do) end with one cache, every id unique, each process's ids in it."""
    code = ("import json, sys; from pipeline import instruments as I; "
            "reg = I.load({I.Source('SIM', 'binance', sys.argv[1]): set(sys.argv[3:])}, sys.argv[2],"
            " refresh=False); print(json.dumps({i.symbol: i.id for i in reg}))")
    procs = [subprocess.Popen([sys.executable, "-c", code, sim.rest_url, str(tmp_path), *syms],
                              stdout=subprocess.PIPE, text=True, cwd=REPO)
             for syms in (["XRPUSDT", "BTCUSDT"], ["DOGEUSDT", "BTCUSDT"])]
    seen = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
    final, _ = I.read_cache(tmp_path / "instruments.json")
    ids = {i.symbol: i.id for i in final}
    assert sorted(ids) == ["BTCUSDT", "DOGEUSDT", "XRPUSDT"]
    assert sorted(ids.values()) == [1, 2, 3]
    for s in seen:                       # what each process used is what the cache says
        assert all(ids[k] == v for k, v in s.items())


def test_a_gateway_symbol_without_risk_limits_stops_the_run_before_anything_starts(tmp_path,
                                                                                  shm_name):
    path = _run_config(tmp_path, free_port(), shm_name, ["BTCUSDT", "XRPUSDT"], ["BTCUSDT"])
    path.write_text(path.read_text() + """
[gateway]
venue = "SIM"
symbols = ["XRPUSDT"]
credentials_file = "CREDS"
[roles.gateway]
kind = "gateway"
[roles.strategy]
kind = "strategy"
[[strategy.instances]]
venue = "SIM"
symbol = "BTCUSDT"
""".replace("CREDS", str(tmp_path / "keys")))
    (tmp_path / "keys").touch(mode=0o600)
    with pytest.raises(supervisor.LaunchError,
                       match=r'no \[risk.symbols."SIM:XRPUSDT"\] limits: SIM:XRPUSDT cannot be traded'):
        supervisor.Launcher(config.load(path), str(path)).check_tradable()
    r = subprocess.run([sys.executable, str(REPO / "scripts/launch.py"), "--config", str(path),
                        "--preflight"], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert r.returncode == 2 and "SIM:XRPUSDT cannot be traded" in r.stderr
    path.write_text(path.read_text() + '[risk.symbols."SIM:XRPUSDT"]\nmax_order_qty = 10.0\n'
                    'max_position_qty = 10.0\n')
    launcher = supervisor.Launcher(config.load(path), str(path))
    launcher.check_tradable()
    assert any("strategy 1 trades SIM:BTCUSDT, which [gateway].symbols does not name" in w
               for w in launcher.placement_warnings)
