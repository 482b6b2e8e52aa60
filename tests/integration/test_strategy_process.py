"""End to end with real processes: a ring writer process → the strategy process (python -m
pipeline.strategy) → a real ZeroMQ PULL socket in this test (SignalReceiver, the gateway's end).
Timing is pinned by events: the HELLO proves the strategy's reader exists; the writer closing the
ring makes the strategy drain and exit; SIGTERM with no gateway must end it within 2 s."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from pipeline.bus.ring import TickRing
from pipeline.bus.signals import SignalReceiver
from pipeline.records import TICK_DTYPE, Kind, Venue
from registry_fixture import DEFAULT as REG
from registry_fixture import write_cache
from pipeline.strategy.sma import sma_cross_signals

pytestmark = pytest.mark.timeout(60)
HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
FAST, SLOW, INC = 5, 20, 0.01


def make_ticks(n: int, seed: int, gap_at: int | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    sym = REG.id(Venue.SIM, "BTCUSDT")
    other = REG.id(Venue.SIM, "ETHUSDT")
    p = np.round(50_000 + np.cumsum(rng.choice([-1, 0, 1], n) * INC * 100), 2)
    r = np.zeros(n, TICK_DTYPE)
    r["kind"] = Kind.TRADE
    r["venue"] = Venue.SIM
    r["symbol"] = sym
    r["price"] = p
    r["qty"] = 0.01
    r["exch_ts"] = 1_700_000_000_000_000_000 + np.arange(n) * 1_000_000
    r["symbol"][rng.random(n) < 0.1] = other          # another instrument: ignored
    if gap_at is not None:
        r[gap_at]["kind"] = Kind.GAP
        r[gap_at]["symbol"] = 0
        r[gap_at]["id"] = 7
    return r


def expected(recs: np.ndarray) -> list[tuple[int, int, float]]:
    """(trigger_seq, side, qty) the strategy must send, from the vectorized rule (long/flat)."""
    sym = REG.id(Venue.SIM, "BTCUSDT")
    ctl = recs["kind"] >= int(Kind.GAP)
    mine = (recs["kind"] == int(Kind.TRADE)) & (recs["symbol"] == sym)
    idx = np.flatnonzero(mine)
    after_gap = np.zeros(len(recs), bool)
    for g in np.flatnonzero(ctl):
        nxt = idx[idx > g]
        if len(nxt):
            after_gap[nxt[0]] = True
    at, d = sma_cross_signals(recs["price"][idx], FAST, SLOW, INC, resets=after_gap[idx])
    out, pos = [], 0
    for i, t in zip(idx[at].tolist(), d.tolist()):
        tgt = 1 if t > 0 else 0
        if tgt != pos:
            out.append((i, 1 if tgt > pos else -1, 0.5))
            pos = tgt
    return out


def write_config(tmp: Path, ring: str, channel: str, exit_on_close: bool,
                 strategy_extra: str = "") -> Path:
    p = tmp / "strategy.toml"
    p.write_text(f"""
[ring]
name = "{ring}"
capacity = 65536
[reader]
wait = "blocking"
max_batch = 512
[strategy]
channel = "{channel}"
linger_ms = 200
hello_every_s = 0.05
stats_every_s = 0
exit_when_writer_closes = {str(exit_on_close).lower()}
{strategy_extra}
[[strategy.instances]]
kind = "sma"
id = 7
venue = "SIM"
symbol = "BTCUSDT"
qty = 0.5
ttl_ms = 60000
params = {{ fast = {FAST}, slow = {SLOW}, price_increment = {INC} }}
""")
    return p


def spawn_strategy(cfg: Path, stats: Path) -> subprocess.Popen:
    # the ids of the ticks this test writes: the fixture's, handed over as the launcher would
    env = dict(os.environ, PYTHONUNBUFFERED="1",
               PIPELINE_INSTRUMENTS=write_cache(cfg.parent / "instruments.json"))
    return subprocess.Popen([sys.executable, "-m", "pipeline.strategy", "--config", str(cfg),
                             "--stats-json", str(stats)], cwd=REPO, env=env,
                            stderr=subprocess.PIPE, text=True)


def spawn_writer(ring: str, npy: Path) -> subprocess.Popen:
    w = subprocess.Popen([sys.executable, str(HERE / "ring_writer_proc.py"), ring, str(npy)],
                         cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert w.stdout.readline().strip() == "attached"
    return w


def wait_line(stream, needle: str, timeout: float) -> list[str]:
    """Read stderr lines until one contains `needle` (the process's own event)."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return seen
    raise AssertionError(f"never saw {needle!r}; stderr so far:\n{''.join(seen)}")


def test_end_to_end_signals_exact(tmp_path, shm_name):
    channel = f"pltest-sig-{uuid.uuid4().hex[:8]}"
    recs = make_ticks(6000, seed=3, gap_at=3000)
    exp = expected(recs)
    assert len(exp) > 20
    np.save(tmp_path / "ticks.npy", recs)
    with TickRing.create(shm_name, 1 << 16) as ring, SignalReceiver(channel) as rx:
        proc = spawn_strategy(write_config(tmp_path, shm_name, channel, True), tmp_path / "s.json")
        try:
            deadline = time.monotonic() + 20
            while 7 not in rx.hellos:                  # HELLO ⇒ the strategy's reader exists
                assert proc.poll() is None, proc.stderr.read()
                assert time.monotonic() < deadline, "no HELLO from the strategy process"
                rx.recv(timeout=0.05)
            writer = spawn_writer(shm_name, tmp_path / "ticks.npy")
            writer.stdin.write("go\n")
            writer.stdin.flush()
            got = []
            while len(got) < len(exp):
                sig = rx.recv(timeout=20)
                assert sig is not None, f"got {len(got)} of {len(exp)} signals"
                got.append(sig)
            assert writer.wait(timeout=20) == 0
            assert proc.wait(timeout=20) == 0, proc.stderr.read()
            while (extra := rx.recv(timeout=0.2)) is not None:   # nothing after the expected
                got.append(extra)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert ring.cursor == len(recs)
    assert [(s.trigger_seq, s.side, s.qty) for s in got] == exp
    assert [s.seq for s in got] == list(range(1, len(exp) + 1))
    assert len({s.epoch for s in got}) == 1
    for s in got:
        assert s.strategy_id == 7 and s.symbol == REG.id(Venue.SIM, "BTCUSDT")
        assert s.ttl_ns == 60_000_000_000 and s.trigger_mono > 0
        assert s.created_mono >= s.trigger_mono
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["ticks"] == len(recs) and stats["sent"] == len(exp) and stats["dropped"] == 0
    assert stats["ring_lost"] == 0 and stats["exit_reason"] == "writer closed"
    assert stats["strategies"][0]["gaps"] == 1


def test_sigterm_without_gateway_exits_within_2s(tmp_path, shm_name):
    channel = f"pltest-sig-{uuid.uuid4().hex[:8]}"
    recs = make_ticks(3000, seed=5)
    np.save(tmp_path / "ticks.npy", recs)
    with TickRing.create(shm_name, 1 << 16):
        cfg = write_config(tmp_path, shm_name, channel, False)
        proc = spawn_strategy(cfg, tmp_path / "s.json")
        try:
            wait_line(proc.stderr, "strategy process running", 20)
            writer = spawn_writer(shm_name, tmp_path / "ticks.npy")
            writer.stdin.write("go\n")
            writer.stdin.flush()
            assert writer.wait(timeout=20) == 0
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=5)
            elapsed = time.monotonic() - t0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert rc == 0
    assert elapsed < 2.0, f"strategy took {elapsed:.2f} s to stop with no gateway"
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["ready"] is False and stats["sent"] == 0
    assert stats["exit_reason"] == "stop requested"
    assert stats["dropped"] == stats["signals"]        # every signal accounted for, none sent


def test_quiet_feed_with_an_old_writer_heartbeat_suspends_the_strategy(tmp_path, shm_name):
    """The writer heartbeats, publishes half the tape and goes quiet: once its heartbeat is older
    than feed_stale_ms the strategy process hands its strategies a STALE record (they suspend and
    restart their windows); the second half then yields exactly the signals of a tape with a
    STALE marker at the split."""
    channel = f"pltest-sig-{uuid.uuid4().hex[:8]}"
    recs = make_ticks(6000, seed=3)
    split = 3000
    marker = np.zeros(1, TICK_DTYPE)
    marker["kind"] = Kind.STALE
    exp = [(i if i < split else i - 1, side, qty)
           for i, side, qty in expected(np.insert(recs, split, marker))]
    assert any(i >= split for i, _, _ in exp)
    assert exp != expected(recs)                 # the marker changes what the strategy does
    with TickRing.create(shm_name, 1 << 16) as ring, SignalReceiver(channel) as rx:
        cfg = write_config(tmp_path, shm_name, channel, True, "feed_stale_ms = 300")
        proc = spawn_strategy(cfg, tmp_path / "s.json")
        try:
            deadline = time.monotonic() + 20
            while 7 not in rx.hellos:
                assert proc.poll() is None, proc.stderr.read()
                assert time.monotonic() < deadline, "no HELLO from the strategy process"
                rx.recv(timeout=0.05)
            w = ring.writer()
            w.heartbeat()
            w.publish_array(recs[:split])
            wait_line(proc.stderr, "feed stale", 20)
            w.heartbeat()
            w.publish_array(recs[split:])
            w.close()
            got = []
            while len(got) < len(exp):
                sig = rx.recv(timeout=20)
                assert sig is not None, f"got {len(got)} of {len(exp)} signals"
                got.append(sig)
            assert proc.wait(timeout=20) == 0
            while (extra := rx.recv(timeout=0.2)) is not None:
                got.append(extra)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert [(s.trigger_seq, s.side, s.qty) for s in got] == exp
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["feed_stales"] == 1 and stats["strategies"][0]["stales"] == 1
