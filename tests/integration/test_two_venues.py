"""configs/two-venues.toml as a trader runs it, pointed at the test simulator: the launcher runs a
Binance and an OKX collector (each its own tick ring), one strategy process reading both rings
with an SMA instance per venue, and a gateway per venue. Orders fill on both venues; the kill
switch of the OKX gateway alone (`pipeline kill --role gateway_okx`) HALTs it, the strategy sees
that venue's gateway HALTED, and the Binance gateway keeps trading. A dead OKX collector HALTs the
OKX gateway only (the launcher's halt is per venue), suspends only the OKX instance (staleness is
per ring), and the run goes on trading Binance."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline import config
from pipeline.config import SIM_TEST_PASSPHRASE
from pipeline.sim.testing import SIM_TEST_API_KEY, SIM_TEST_SECRET
from sim_fixtures import sim_factory  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(180)
SIM_URLS = ("http://127.0.0.1:18766", "ws://127.0.0.1:18766")


def pointed_at(sim, tmp_path: Path, shm_name: str) -> Path:
    """The shipped config with its simulator role replaced by the test's simulator: the URLs,
    output paths and shared-memory names rewritten, nothing else."""
    text = (REPO / "configs/two-venues.toml").read_text()
    for url in SIM_URLS:
        assert url in text, url
    text = text.replace(SIM_URLS[0], sim.rest_url).replace(SIM_URLS[1], sim.ws_url)
    text = re.sub(r"\n\[roles\.sim\]\nkind = \"sim\"\n", "\n", text)
    text = re.sub(r"\n\[sim\]\n.*?\n(?=\[collector\])", "\n", text, flags=re.S)
    assert "[sim]" not in text and "18766" not in text
    text = text.replace('"two-venues-out/', f'"{tmp_path}/out/')
    text = text.replace('"pipeline-2v', f'"{shm_name}')
    keys = tmp_path / "out" / "sim-keys"
    keys.parent.mkdir(parents=True)
    keys.touch(mode=0o600)
    keys.write_text(f"api_key={SIM_TEST_API_KEY}\napi_secret={SIM_TEST_SECRET}\n"
                    f"api_passphrase={SIM_TEST_PASSPHRASE}\n")
    path = tmp_path / "two-venues.toml"
    path.write_text(text)
    return path


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in (
        "PIPELINE_API_KEY", "PIPELINE_API_SECRET", "PIPELINE_API_PASSPHRASE",
        "PIPELINE_INSTRUMENTS", "PIPELINE_ROLE")}


def _status(state_dir: str) -> dict:
    try:
        return json.loads((Path(state_dir) / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def _wait(what: str, cond, timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    out = Path(proc.args[proc.args.index("--summary-json") + 1]).with_name("launcher.out")
    while time.monotonic() < deadline:
        if cond():
            return
        assert proc.poll() is None, f"the launcher ended while waiting for {what}: " + \
            out.read_text()[-3000:]
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}: " + out.read_text()[-3000:])


def test_two_venues_trade_and_one_gateway_halt_is_seen_while_the_other_trades(
        sim_factory, tmp_path, shm_name):  # noqa: F811
    sim = sim_factory(symbols=["BTCUSDT"], paused=False, rate=1000.0)
    path = pointed_at(sim, tmp_path, shm_name)
    cfg = config.load(path, role="")
    okx = cfg.for_role("gateway_okx")
    assert (cfg.gateway.venue, okx.gateway.venue) == ("BINANCE", "OKX")
    assert okx.gateway.state_dir != cfg.gateway.state_dir
    assert cfg.for_role("collector_okx").ring.name == okx.ring.name != cfg.ring.name
    summary = tmp_path / "summary.json"
    console = open(tmp_path / "launcher.out", "w")
    launcher = subprocess.Popen(
        [sys.executable, str(REPO / "scripts/launch.py"), "--config", str(path), "--duration",
         "0", "--summary-json", str(summary)], cwd=REPO, env=_env(),
        stdout=console, stderr=subprocess.STDOUT, text=True)
    try:
        # both venues fill
        _wait("fills on both venues", lambda: _status(cfg.gateway.state_dir).get("fills", 0) >= 1
              and _status(okx.gateway.state_dir).get("fills", 0) >= 1, 90, launcher)
        # the OKX gateway's kill switch alone
        kill = subprocess.run([sys.executable, "-m", "pipeline.cli", "kill", "--config", str(path),
                               "--role", "gateway_okx"], cwd=REPO, env=_env(),
                              capture_output=True, text=True, timeout=60)
        assert kill.returncode == 0, kill.stdout + kill.stderr
        _wait("the OKX gateway HALTED", lambda: _status(okx.gateway.state_dir).get("trading")
              == "HALTED", 10, launcher)
        assert _status(cfg.gateway.state_dir)["trading"] == "ACTIVE"
        binance_fills = _status(cfg.gateway.state_dir)["fills"]
        okx_orders = _status(okx.gateway.state_dir)["accepted"]
        # the Binance gateway keeps trading
        _wait("more Binance fills after the OKX halt",
              lambda: _status(cfg.gateway.state_dir).get("fills", 0) > binance_fills, 60, launcher)
        assert _status(okx.gateway.state_dir)["accepted"] == okx_orders
        time.sleep(0.5)                  # > the strategy's look at the gateways' states (20 ms)
    finally:
        launcher.terminate()
        launcher.wait(timeout=90)
        console.close()
    out = (tmp_path / "launcher.out").read_text()
    assert launcher.returncode == 0, out[-4000:]
    s = json.loads(summary.read_text())
    roles = s["roles"]
    assert roles["gateway"]["fills"] > binance_fills and roles["gateway_okx"]["fills"] >= 1
    for name in ("collector", "collector_okx"):
        assert roles[name]["ticks"] > 100, (name, roles[name])
    for name, r in roles.items():
        assert r["exit_code"] == 0, (name, r)
    strat = roles["strategy"]["report"]
    okx_ch, bin_ch = okx.gateway.channel, cfg.gateway.channel
    assert strat["gateway_states"] == {okx_ch: "HALTED", bin_ch: "ACTIVE"}
    assert {"channel": okx_ch, "state": "HALTED"} in [
        {k: c[k] for k in ("channel", "state")} for c in strat["gateway_state_changes"]]
    for ch in (okx_ch, bin_ch):       # each instance's signals went to its venue's gateway
        assert strat["channels"][ch]["sent"] >= 1, ch
    assert set(strat["ring_rings"]) == {cfg.ring.name, okx.ring.name}
    assert not [n for n in os.listdir("/dev/shm") if n.startswith(shm_name)]
    # the summary reports every gateway: its trading section, with the market from its own
    # ring (ids from the run's instrument cache), and its fills
    by_gw = s["trading_by_gateway"]
    assert set(by_gw) == {"gateway", "gateway_okx"} and s["trading"] == by_gw["gateway"]
    for name, sym in (("gateway", "BTCUSDT"), ("gateway_okx", "BTC-USDT")):
        d = by_gw[name]
        assert d["currency"] == "USDT" and by_gw[name]["fills"]["count"] >= 1, (name, d)
        assert d["symbols"][sym]["market"]["last"] > 0, (name, d["symbols"])
    from pipeline.telemetry.report import summary_lines
    text = "\n".join(summary_lines(s))
    assert "gateway gateway:" in text and "gateway gateway_okx:" in text, text
    assert "market BTC-USDT" in text and "market BTCUSDT" in text, text


def _launch(path: Path, tmp_path: Path) -> subprocess.Popen:
    console = open(tmp_path / "launcher.out", "w")
    try:
        return subprocess.Popen(
            [sys.executable, str(REPO / "scripts/launch.py"), "--config", str(path),
             "--duration", "0", "--summary-json", str(tmp_path / "summary.json")], cwd=REPO,
            env=_env(), stdout=console, stderr=subprocess.STDOUT, text=True)
    finally:
        console.close()


def test_a_dead_okx_collector_halts_the_okx_gateway_only_and_binance_trades_on(
        sim_factory, tmp_path, shm_name):  # noqa: F811
    sim = sim_factory(symbols=["BTCUSDT"], paused=False, rate=1000.0)
    path = pointed_at(sim, tmp_path, shm_name)
    # the OKX instance's feed goes stale a second after its collector died
    path.write_text(path.read_text().replace("stats_every_s = 0", "stats_every_s = 0\n"
                                             "feed_stale_ms = 1000"))
    cfg = config.load(path, role="")
    okx = cfg.for_role("gateway_okx")
    launcher = _launch(path, tmp_path)
    try:
        _wait("fills on both venues", lambda: _status(cfg.gateway.state_dir).get("fills", 0) >= 1
              and _status(okx.gateway.state_dir).get("fills", 0) >= 1, 90, launcher)
        run = json.loads((Path(cfg.launcher.run_dir) / "launcher.json").read_text())
        os.kill(run["roles"]["collector_okx"]["pid"], signal.SIGKILL)   # no restart policy
        _wait("the OKX gateway HALTED", lambda: _status(okx.gateway.state_dir).get("trading")
              == "HALTED", 20, launcher)
        assert _status(cfg.gateway.state_dir)["trading"] == "ACTIVE"
        binance_fills = _status(cfg.gateway.state_dir)["fills"]
        okx_orders = _status(okx.gateway.state_dir)["accepted"]
        _wait("more Binance fills after the OKX collector died",
              lambda: _status(cfg.gateway.state_dir).get("fills", 0) > binance_fills, 60, launcher)
        assert launcher.poll() is None                  # the run goes on
        assert _status(okx.gateway.state_dir)["accepted"] == okx_orders
        assert _status(cfg.gateway.state_dir)["trading"] == "ACTIVE"
        time.sleep(1.5)                  # > feed_stale_ms after the death: the STALE is out
    finally:
        launcher.terminate()
        launcher.wait(timeout=90)
    out = (tmp_path / "launcher.out").read_text()
    assert launcher.returncode == 3, out[-4000:]        # ended as asked, a role failed for good
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["stop_reason"] == "SIGTERM" and s["halted_gateways"] == ["gateway_okx"], s
    assert s["failed_roles"] == ["collector_okx"]
    from pipeline.telemetry.report import summary_lines
    assert "gateway gateway_okx (HALTED):" in "\n".join(summary_lines(s))
    halts = [e for e in s["events"] if e["event"] == "halt"]
    assert [(h["gateways"], h["final"]) for h in halts] == [(["gateway_okx"], True)], halts
    assert any(e["event"] == "run-continues" and e["trading"] == ["gateway"]
               for e in s["events"]), s["events"]
    roles = s["roles"]
    assert roles["collector_okx"]["exit_code"] == -signal.SIGKILL
    for name in ("gateway", "gateway_okx", "strategy", "collector"):
        assert roles[name]["exit_code"] == 0, (name, roles[name])
    strat = roles["strategy"]["report"]
    assert strat["gateway_states"] == {okx.gateway.channel: "HALTED",
                                       cfg.gateway.channel: "ACTIVE"}
    # the OKX ring alone went stale: only the OKX instance (id 2) was suspended
    assert [e["ring"] for e in strat["ring_stale_events"] if e["state"] == "STALE"] == \
        [okx.ring.name], strat["ring_stale_events"]
    by_id = {x["id"]: x for x in strat["strategies"]}
    assert by_id[2]["stales"] >= 1 and by_id[1]["stales"] == 0, by_id


def test_pipeline_demo_runs_two_venues_with_each_gateways_own_keys(tmp_path, shm_name):
    """`pipeline demo --config` of the shipped two-venues config (its own simulator, on a free
    port) with a credentials file per gateway: the demo writes the simulator's test keys into
    each, 0600, and both venues' gateways receive orders."""
    from tests.integration.demo_harness import free_port
    text = (REPO / "configs/two-venues.toml").read_text()
    okx_line = 'credentials_file = "two-venues-out/sim-keys"        # api_key, api_secret'
    assert okx_line in text
    text = text.replace(okx_line, okx_line.replace("sim-keys", "okx-keys"))
    text = text.replace("18766", str(free_port()))
    text = text.replace('"two-venues-out/', f'"{tmp_path}/out/')
    text = text.replace('"pipeline-2v', f'"{shm_name}')
    path = tmp_path / "two-venues.toml"
    path.write_text(text)
    cfg = config.load(path, role="")
    okx = cfg.for_role("gateway_okx")
    assert cfg.gateway.credentials_file != okx.gateway.credentials_file
    r = subprocess.run([sys.executable, "-m", "pipeline.cli", "demo", "--config", str(path),
                        "--seconds", "15", "--out", str(tmp_path / "demo")], cwd=REPO,
                       env=_env(), capture_output=True, text=True, timeout=150)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for g in (cfg.gateway, okx.gateway):
        keys = Path(g.credentials_file)
        assert keys.stat().st_mode & 0o777 == 0o600, keys
        assert f"api_key={SIM_TEST_API_KEY}" in keys.read_text()
    s = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert s["stop_reason"] == "duration" and not s["halted"], s["stop_reason"]
    for name in ("gateway", "gateway_okx"):
        assert s["roles"][name]["exit_code"] == 0 and s["roles"][name]["orders"] >= 1, \
            (name, s["roles"][name])
    assert "gateway gateway_okx:" in r.stdout          # the printed summary: every gateway


def test_the_kill_switch_without_a_role_halts_every_gateway_of_the_file(tmp_path):
    """`python -m pipeline.gateway kill` on a file of two gateways: without --role the run-wide
    kill switch (both state dirs get their KILL file, the next start of each is HALTED); with
    --role only that gateway's."""
    text = (REPO / "configs/two-venues.toml").read_text()
    text = text.replace('"two-venues-out/', f'"{tmp_path}/out/')
    path = tmp_path / "two-venues.toml"
    path.write_text(text)
    cfg = config.load(path, role="")
    kills = [Path(cfg.gateway.state_dir) / "KILL",
             Path(cfg.for_role("gateway_okx").gateway.state_dir) / "KILL"]

    def kill(*extra):
        r = subprocess.run([sys.executable, "-m", "pipeline.cli", "kill", "--config", str(path),
                            *extra], cwd=REPO, env=_env(), capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        return r.stderr

    err = kill("--role", "gateway_okx")
    assert [k.exists() for k in kills] == [False, True]
    kills[1].unlink()
    err = kill()
    assert [k.exists() for k in kills] == [True, True], err
    assert "no gateway gateway running" in err and "no gateway gateway_okx running" in err
