"""Start the simulator as a real subprocess, for tests, benchmarks and launchers.

    sim = start_sim(tmp_path, rate=500, paused=True)
    requests.get(sim.rest_url + "/api/v3/time")
    sim.fault("drop")
    sim.state()["accounts"][SIM_TEST_API_KEY]["balances"]
    sim.stop()

Config overrides are [sim] keys (see pipeline.config.SimConfig); they are written to a TOML file
in `tmp_path`, so the subprocess goes through the same strict loading as production.
A pytest fixture using this lives in tests/sim_fixtures.py.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import tomlkit

from pipeline.config import SIM_TEST_API_KEY, SIM_TEST_SECRET

__all__ = ["SimProcess", "start_sim", "sign", "signed_query", "ws_signed_params", "sim_toml",
           "SIM_TEST_API_KEY", "SIM_TEST_SECRET"]


def sim_toml(**overrides: Any) -> str:
    """A [sim] section with `overrides`; lists of tables (accounts, faults) as [[sim.x]]."""
    return tomlkit.dumps({"sim": overrides})


def sign(query: str | bytes, secret: str = SIM_TEST_SECRET) -> str:
    """Binance HMAC-SHA256 signature (hex) of a query string / body."""
    if isinstance(query, str):
        query = query.encode()
    return hmac.new(secret.encode(), query, hashlib.sha256).hexdigest()


class SimProcess:
    """A running simulator subprocess."""

    def __init__(self, proc: subprocess.Popen, info: dict, log_path: Path, config_path: Path) -> None:
        self.proc = proc
        self.info = info
        self.port: int = info["port"]
        self.rest_url: str = info["rest_url"]
        self.ws_url: str = info["ws_url"]
        self.log_path = log_path
        self.config_path = config_path

    def __repr__(self) -> str:
        return f"SimProcess(pid={self.proc.pid}, port={self.port})"

    def _post(self, path: str, body: dict, timeout: float = 5.0) -> dict:
        req = urllib.request.Request(self.rest_url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"simulator {path}: {exc.code} {exc.read().decode(errors='replace')}") from None

    def fault(self, name: str, **params: Any) -> dict:
        """Inject a fault now (see pipeline/sim/faults.py for names and params)."""
        return self._post("/_sim/fault", {"fault": name, **params})

    def tape(self, **body: Any) -> dict:
        """Pause / resume the tape or change its rate: tape(action="pause"), tape(rate=5000)."""
        return self._post("/_sim/tape", body)

    def trade(self, symbol: str, price: str, qty: str, side: str = "SELL") -> dict:
        """Print a trade on the tape now (resting orders it trades through fill)."""
        return self._post("/_sim/trade", {"symbol": symbol, "price": price, "qty": qty, "side": side})

    def state(self) -> dict:
        with urllib.request.urlopen(self.rest_url + "/_sim/state", timeout=5.0) as r:
            return json.loads(r.read())

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait; SIGKILL if it does not exit. Returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def __enter__(self) -> "SimProcess":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def start_sim(tmp_path: str | Path, timeout: float = 20.0, log_level: str = "INFO",
              **config_overrides: Any) -> SimProcess:
    """Start `python -m pipeline.sim` on an ephemeral loopback port; wait for its ready file."""
    tmp = Path(tmp_path)
    tmp.mkdir(parents=True, exist_ok=True)
    stamp = f"{os.getpid()}-{time.monotonic_ns()}"
    cfg_path = tmp / f"sim-{stamp}.toml"
    ready = tmp / f"sim-{stamp}.ready.json"
    log_path = tmp / f"sim-{stamp}.log"
    config_overrides.setdefault("port", 0)
    cfg_path.write_text(sim_toml(**config_overrides))
    logf = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.sim", "--config", str(cfg_path), "--ready-file", str(ready),
         "--log-level", log_level],
        stdout=logf, stderr=subprocess.STDOUT, cwd=str(Path(__file__).resolve().parents[2]))
    logf.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready.exists():
            info = json.loads(ready.read_text())
            return SimProcess(proc, info, log_path, cfg_path)
        if proc.poll() is not None:
            raise RuntimeError(f"simulator exited with {proc.returncode}:\n"
                               f"{log_path.read_text(errors='replace')[-4000:]}")
        time.sleep(0.02)
    proc.kill()
    proc.wait(5)
    raise TimeoutError(f"simulator not ready after {timeout} s:\n"
                       f"{log_path.read_text(errors='replace')[-4000:]}")


def signed_query(params: dict[str, Any], secret: str = SIM_TEST_SECRET) -> str:
    """urlencode(params) + timestamp (if absent) + &signature=..."""
    p = dict(params)
    p.setdefault("timestamp", int(time.time() * 1000))
    q = urllib.parse.urlencode(p)
    return q + "&signature=" + sign(q, secret)


def ws_signed_params(params: dict[str, Any], api_key: str = SIM_TEST_API_KEY,
                     secret: str = SIM_TEST_SECRET) -> dict[str, Any]:
    """WebSocket API params with apiKey, timestamp (if absent) and the HMAC signature over the
    params sorted by name (web-socket-api.md "SIGNED request security")."""
    p = {**params, "apiKey": api_key}
    p.setdefault("timestamp", int(time.time() * 1000))
    payload = "&".join(f"{k}={'true' if v is True else 'false' if v is False else v}"
                       for k, v in sorted(p.items()))
    p["signature"] = sign(payload, secret)
    return p
