"""Run the gateway as its own process against a venue (the simulator in tests and benchmarks),
and play the strategy's side of the signal channel.

    sim = start_sim(tmp_path, **SIM_DEFAULTS)            # pipeline.sim.testing
    gw = GatewayProc(tmp_path, sim).start()
    with StrategySide(gw.channel) as st:
        st.send(side=1, qty=0.001)                       # MARKET buy
    gw.wait(lambda s: s["fills"] == 1)                   # polls <state_dir>/status.json
    gw.journal()                                         # the journal's records
    gw.stop()                                            # SIGTERM; returns the exit code

The gateway reads its credentials from the environment (the simulator's test key pair by default).
"""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import tomlkit

from pipeline.gateway.orders import client_id_of
from pipeline.records import OrderSide, OrderType, TimeInForce, Venue

REPO = Path(__file__).resolve().parents[2]   # the checkout (cwd of the subprocess)
SIM_DEFAULTS = dict(rate=200, paused=True, ping_interval_s=20.0, pong_timeout_s=60.0,
                    weight_limit_1m=100_000, order_limit_10s=10_000)
# SIM:BTCUSDT's id: the gateway's run directory is `tmp` (PIPELINE_RUN_DIR), whose fresh instrument
# cache (pipeline/instruments.py) numbers its only instrument 1.
BTC = 1


GATEWAY_ONLY = ("max_loss", "max_consecutive_rejects", "reduce_at_loss")
PER_SYMBOL = ("max_order_qty", "max_position_qty")


def gateway_toml(gw: dict[str, Any], risk: dict[str, Any]) -> str:
    """[gateway], [gateway.risk] (max_loss, max_consecutive_rejects), [risk] (the risk engine's
    limits, recv_window_ms) and [risk.symbols."<venue>:<symbol>"] (max_order_qty,
    max_position_qty) from flat dicts."""
    mine = {k: v for k, v in risk.items() if k in GATEWAY_ONLY}
    top = {k: v for k, v in risk.items() if k not in GATEWAY_ONLY and k not in PER_SYMBOL}
    venue = gw.get("venue", "SIM")
    top["symbols"] = {f"{venue}:{sym}": {k: float(risk[k]) for k in PER_SYMBOL}
                      for sym in gw.get("symbols", ["BTCUSDT"])}
    return tomlkit.dumps({"gateway": {**gw, "risk": mine}, "risk": top})


class GatewayProc:
    _n = 0

    def __init__(self, tmp: Path, sim, *, state_dir: Path | None = None, channel: str | None = None,
                 api_key: str | None = None, api_secret: str | None = None,
                 env: dict[str, str] | None = None, risk: dict[str, Any] | None = None,
                 extra_toml: str = "", **overrides: Any):
        from pipeline.sim.testing import SIM_TEST_API_KEY, SIM_TEST_SECRET
        GatewayProc._n += 1
        self.tmp = Path(tmp)
        self.sim = sim
        self.channel = channel or f"gwtest-{os.getpid()}-{time.monotonic_ns()}"
        self.state_dir = state_dir or (self.tmp / f"gw-state-{GatewayProc._n}")
        cfg = dict(venue="SIM", symbols=["BTCUSDT"], channel=self.channel,
                   rest_url=sim.rest_url, ws_api_url=sim.ws_url + "/ws-api/v3",
                   state_dir=str(self.state_dir), journal_fsync="always",
                   request_timeout_s=2.0, clock_samples=3, reference="rest",
                   reference_poll_ms=500, status_every_ms=50, unknown_poll_ms=50,
                   unknown_poll_max_ms=400, drain_s=1.0)
        cfg.update(overrides)
        rk = dict(max_order_qty=1.0, max_position_qty=5.0, max_gross_notional=1e6,
                  max_order_notional=1e6, collar_bps=500.0, ref_stale_ms=60_000,
                  throttle_orders=1000, runaway_signals=2000)
        rk.update(risk or {})
        self.config_path = self.tmp / f"gateway-{GatewayProc._n}.toml"
        self.config_path.write_text(gateway_toml(cfg, rk) + extra_toml)
        self.env = dict(os.environ)
        self.env["PIPELINE_API_KEY"] = api_key or SIM_TEST_API_KEY
        self.env["PIPELINE_API_SECRET"] = api_secret or SIM_TEST_SECRET
        self.env["PYTHONPATH"] = str(REPO) + os.pathsep + self.env.get("PYTHONPATH", "")
        self.env["PIPELINE_RUN_DIR"] = str(self.tmp)      # its instrument cache lives here
        self.env.pop("PIPELINE_INSTRUMENTS", None)
        self.env.update(env or {})
        self.proc: subprocess.Popen | None = None
        self.out_path = self.tmp / f"gateway-{GatewayProc._n}.out"
        self.err_path = self.tmp / f"gateway-{GatewayProc._n}.err"
        self.ready_path = self.tmp / f"gateway-{GatewayProc._n}.ready"

    # ------------------------------------------------------------------ process
    def spawn(self, *args: str) -> subprocess.Popen:
        self.ready_path.unlink(missing_ok=True)
        out = self.out_path.open("ab")
        err = self.err_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline.gateway", *args, "--config", str(self.config_path),
             "--ready-file", str(self.ready_path)],
            stdout=out, stderr=err, env=self.env, cwd=str(REPO))
        out.close()
        err.close()
        return self.proc

    def start(self, timeout: float = 20.0) -> "GatewayProc":
        self.spawn()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready_path.exists():
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.proc.returncode}:\n{self.stderr()}")
            time.sleep(0.02)
        self.kill()
        raise TimeoutError(f"gateway not ready after {timeout} s:\n{self.stderr()}")

    def cli(self, command: str, timeout: float = 20.0) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pipeline.gateway", command, "--config",
                               str(self.config_path)], env=self.env, cwd=str(REPO),
                              capture_output=True, text=True, timeout=timeout)

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.remove_orphan_ring()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL the gateway (if it runs), then remove the signal ring it could not unlink."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.remove_orphan_ring()

    def remove_orphan_ring(self) -> str | None:
        """Unlink this channel's signal ring and order-event ring if their owner is gone (a
        killed gateway leaves them in /dev/shm), and its socket directory; never a live
        gateway's. Returns the signal ring's name if it was removed."""
        from pipeline.bus import channel
        from pipeline.bus import ring as ringmod
        from pipeline.bus.events import event_ring_name
        from pipeline.bus.signals import ring_name
        if self.proc is None or self.proc.poll() is not None:
            channel.remove_stale(self.channel)
        removed = []
        for name in (ring_name(self.channel), event_ring_name(self.channel)):
            info = ringmod.inspect(name)
            if info is None or info.get("owner_alive"):
                continue
            try:
                ringmod.unlink(name)
            except FileNotFoundError:
                continue
            removed.append(name)
        return ring_name(self.channel) if ring_name(self.channel) in removed else None

    def stderr(self) -> str:
        try:
            return self.err_path.read_text(errors="replace")
        except OSError:
            return ""

    def stdout(self) -> str:
        try:
            return self.out_path.read_text(errors="replace")
        except OSError:
            return ""

    # ------------------------------------------------------------------ state
    def status(self) -> dict:
        for _ in range(50):
            try:
                return json.loads((self.state_dir / "status.json").read_text())
            except (OSError, ValueError):
                time.sleep(0.01)
        raise RuntimeError("no readable status.json")

    def wait(self, pred: Callable[[dict], bool], timeout: float = 10.0, what: str = "") -> dict:
        deadline = time.monotonic() + timeout
        st: dict = {}
        while time.monotonic() < deadline:
            st = self.status()
            if pred(st):
                return st
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.proc.returncode}:\n{self.stderr()}")
            time.sleep(0.02)
        raise TimeoutError(f"gateway status never satisfied {what or pred}: {st}\n"
                           f"{self.stderr()[-3000:]}")

    def journal(self) -> list[dict]:
        """The journal's records (journal.bin or journal.jsonl, whichever the gateway writes)."""
        from pipeline.gateway.binjournal import read
        b = self.state_dir / "journal.bin"
        if b.exists():
            return list(read(b))
        out = []
        p = self.state_dir / "journal.jsonl"
        if not p.exists():
            return out
        for line in p.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def journal_text(self) -> str:
        """The journal as text: JSON lines (the binary journal exported, then its raw bytes
        as latin-1, so a search sees every byte the file holds)."""
        b = self.state_dir / "journal.bin"
        if b.exists():
            import io
            from pipeline.gateway.binjournal import export
            out = io.BytesIO()
            export(b, out)
            return out.getvalue().decode() + b.read_bytes().decode("latin-1")
        p = self.state_dir / "journal.jsonl"
        return p.read_text() if p.exists() else ""


class StrategySide:
    """The strategy's end of the signal channel (pipeline.bus.signals.SignalSender)."""

    def __init__(self, channel: str, strategy_id: int = 1, epoch: int | None = None,
                 ready_timeout: float = 10.0, venue: int = int(Venue.SIM)):
        from pipeline.bus import signals
        self.signals = signals
        self.tx = signals.SignalSender(channel, strategy_id=strategy_id, epoch=epoch,
                                       hello_every_s=0.05)
        self.strategy_id = strategy_id
        self.venue = venue                   # the signals' venue (the gateway's [gateway] venue)
        self.raw_sent: list[bytes] = []
        self.ctl_frames: list[bytes] = []
        try:
            self.wait_ready(ready_timeout)
        except TimeoutError:
            self.tx.close()
            raise

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Handshake (again: after a gateway restart a sender must say HELLO to the new one,
        which refuses signals before that)."""
        deadline = time.monotonic() + timeout
        self.tx.check_gateway()
        while not self.tx.service():
            if time.monotonic() > deadline:
                raise TimeoutError(f"gateway never answered READY: {self.tx.stats()}")
            time.sleep(0.01)

    def make(self, *, side: int = 1, qty: float = 0.001, price: float = math.nan,
             order_type: int = OrderType.MARKET, tif: int = TimeInForce.NONE,
             symbol: int = BTC, ttl_ms: int = 5000, seq: int | None = None):
        now = time.perf_counter_ns()
        return self.signals.Signal(epoch=self.tx.epoch, seq=seq or 0, trigger_seq=0,
                                   trigger_mono=now, created_mono=now,
                                   ttl_ns=ttl_ms * 1_000_000, qty=qty, price=price,
                                   strategy_id=self.strategy_id, symbol=symbol,
                                   venue=self.venue, side=int(side),
                                   order_type=int(order_type), tif=int(tif))

    def send(self, **kw: Any):
        """Number and send one signal (SignalSender assigns (epoch, seq)). Returns it."""
        sig = self.make(**kw)
        seq = self.tx.seq + 1
        assert self.tx.send(sig)
        sent = sig._replace(epoch=self.tx.epoch, seq=seq)
        self.raw_sent.append(self.signals.encode(sent))
        return sent

    def resend(self, sig) -> None:
        """Push exactly these bytes again (a duplicate / replay)."""
        self.tx.push.send(self.signals.encode(sig))
        self.raw_sent.append(self.signals.encode(sig))

    def limit(self, side: int, qty: float, price: float, **kw: Any):
        return self.send(side=side, qty=qty, price=price, order_type=OrderType.LIMIT,
                         tif=TimeInForce.GTC, **kw)

    def close(self) -> None:
        self.tx.close()

    def __enter__(self) -> "StrategySide":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def cid_of(sig) -> str:
    return client_id_of(sig)


BUY, SELL = int(OrderSide.BUY), int(OrderSide.SELL)
