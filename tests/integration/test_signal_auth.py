"""Only our strategies reach the gateway: a real gateway process against the simulator, and
senders that are not ours — another uid (a forked child that setuid()s to nobody), the same uid
without the channel token, the same uid with the token but no HELLO — get no order placed, each
refusal counted by kind in the gateway's status; the real sender with the token trades.

The other-uid child is forked (multiprocessing "fork"), not exec'd: the interpreter and its
packages live under /root, which nobody cannot read, so `subprocess(user=...)` could not even start
Python, and a test that failed that way would prove nothing. The forked child has everything
loaded already; it drops to nobody before it opens anything."""
from __future__ import annotations

import math
import multiprocessing as mp
import os
import pwd
import stat
import time
from pathlib import Path

import pytest

from pipeline.bus import channel, signals
from pipeline.records import OrderType, TimeInForce, Venue
from tests.integration.gateway_harness import BUY, StrategySide, acct, gw_factory, sim

pytestmark = pytest.mark.timeout(90)
__all__ = ["sim", "gw_factory"]   # fixtures


def _buy_frame(strategy_id: int = 1, seq: int = 1) -> bytes:
    now = time.perf_counter_ns()
    return signals.encode(signals.Signal(
        epoch=time.time_ns(), seq=seq, trigger_seq=0, trigger_mono=now, created_mono=now,
        ttl_ns=5_000_000_000, qty=0.002, price=math.nan, strategy_id=strategy_id, symbol=0,
        venue=int(Venue.SIM), side=BUY, order_type=int(OrderType.MARKET),
        tif=int(TimeInForce.NONE)))


def _attack(data_ep: str, ctl_ep: str, token: bytes | None, frame: bytes,
            wait_s: float = 1.5, hold=None) -> dict:
    """Connect a PUSH (NULL mechanism, like the attack in the issue) and, given a token, a PLAIN
    PUSH and DEALER; push the frame, say HELLO, and report whatever came back. `hold(out)` runs
    before the sockets close (the caller waits there until the gateway has counted them)."""
    import zmq
    out: dict = {}
    ctx = zmq.Context()
    socks = []
    try:
        raw = ctx.socket(zmq.PUSH)
        raw.setsockopt(zmq.LINGER, 0)
        raw.connect(data_ep)
        socks.append(raw)
        try:
            raw.send(frame, zmq.NOBLOCK)
            out["raw_sent"] = True
        except zmq.Again:
            out["raw_sent"] = False
        if token is not None:
            push = ctx.socket(zmq.PUSH)
            dealer = ctx.socket(zmq.DEALER)
            for s in (push, dealer):
                s.setsockopt(zmq.LINGER, 0)
                s.setsockopt(zmq.PLAIN_USERNAME, b"1")
                s.setsockopt(zmq.PLAIN_PASSWORD, token)
                socks.append(s)
            push.connect(data_ep)
            dealer.connect(ctl_ep)
            dealer.send(signals.hello_frame(1, 7, token), zmq.NOBLOCK)
            try:
                push.send(frame, zmq.NOBLOCK)    # queued until (if ever) the connection is
            except zmq.Again:                    # accepted
                pass
            out["reply"] = dealer.recv() if dealer.poll(int(wait_s * 1000)) else None
        else:
            time.sleep(wait_s)
        if hold is not None:
            hold(out)
    finally:
        for s in socks:
            s.close()
        ctx.term()
    return out


def _as_nobody(conn, data_ep: str, ctl_ep: str, token: bytes | None, paths: list[str],
               frame: bytes) -> None:
    try:
        pw = pwd.getpwnam("nobody")
        os.setgroups([])
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)
        res = {"uid": os.getuid(), "open": {}}
        for p in paths:                   # the token file, the signal ring, the socket dir
            try:
                if os.path.isdir(p):
                    os.listdir(p)
                else:
                    os.close(os.open(p, os.O_RDONLY))
                res["open"][p] = "opened"
            except OSError as exc:
                res["open"][p] = type(exc).__name__
        def hold(out):                    # report, keep the sockets until the test is done
            conn.send({**res, **out})
            conn.poll(60)
        _attack(data_ep, ctl_ep, token, frame, hold=hold)
    except BaseException as exc:  # noqa: BLE001 - reported to the test
        conn.send({"error": repr(exc)})
    finally:
        conn.close()
        os._exit(0)


class _Nobody:
    """A forked child running as nobody that attacks, reports, and keeps its sockets open
    until the test has looked (then `done`)."""

    def __init__(self, *args):
        ctx = mp.get_context("fork")
        self.conn, child = ctx.Pipe()
        self.p = ctx.Process(target=_as_nobody, args=(child, *args))
        self.p.start()

    def report(self) -> dict:
        assert self.conn.poll(30), "the nobody child never reported"
        return self.conn.recv()

    def done(self) -> None:
        try:
            self.conn.send("done")
        except OSError:
            pass
        self.p.join(10)
        if self.p.is_alive():
            self.p.kill()
            self.p.join(5)


def _no_order(gw, sim) -> dict:
    st = gw.status()
    assert st["intake"]["received"] == 0, st["intake"]
    assert not st["orders"], st["orders"]
    assert not acct(sim)["fills"]
    return st["intake"]["refused"]


needs_root = pytest.mark.skipif(os.getuid() != 0, reason="needs root to setuid() to nobody")


@needs_root
def test_a_sender_running_as_another_uid_gets_no_order_placed(sim, gw_factory):
    gw = gw_factory().start()
    token = channel.read_token_file(gw.channel)
    data_ep, ctl_ep = signals.endpoints(gw.channel)
    d = channel.channel_dir(gw.channel, create=False)
    ring = Path("/dev/shm") / signals.ring_name(gw.channel)
    from pipeline.bus.events import event_ring_name
    evt = Path("/dev/shm") / event_ring_name(gw.channel)   # the return channel: order events
    assert evt.exists()
    # nobody even gets the real token handed over: the filesystem stops it before ZAP does
    child = _Nobody(data_ep, ctl_ep, token, [str(d / "token"), str(ring), str(d), str(evt)],
                    _buy_frame())
    try:
        res = child.report()
    finally:
        child.done()
    assert "error" not in res, res
    assert res["uid"] != 0
    assert set(res["open"].values()) == {"PermissionError"}, res["open"]
    assert res["reply"] is None                      # no READY for nobody
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(ring).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(evt).st_mode) == 0o600     # nobody cannot read our order events
    time.sleep(0.3)
    _no_order(gw, sim)
    with StrategySide(gw.channel) as st:             # ours still trades
        st.send(side=BUY, qty=0.002)
        gw.wait(lambda s: s["fills"] >= 1, what="our strategy's fill")
    assert gw.stop() == 0


@needs_root
def test_the_peer_uid_is_checked_even_if_the_socket_directory_is_opened_up(sim, gw_factory,
                                                                          monkeypatch):
    """Defence in depth: with the private directories and sockets opened to everyone (a careless
    chmod), a process of another uid holding the right token still gets nothing through: ZAP reads
    its uid from SO_PEERCRED and refuses the connection, counted as `uid`. (A base directory of
    its own, so other runs' channels in /tmp/pipeline-<uid> are never opened up.)"""
    import shutil
    import tempfile
    top = Path(tempfile.mkdtemp(prefix="plauth-", dir="/tmp"))
    base = top / "ipc"
    monkeypatch.setenv(channel.ENV_DIR, str(base))
    try:
        gw = gw_factory(env={channel.ENV_DIR: str(base)}).start()
        token = channel.read_token_file(gw.channel)
        data_ep, ctl_ep = signals.endpoints(gw.channel)
        d = channel.channel_dir(gw.channel, create=False)
        for p, mode in ((top, 0o711), (base, 0o711), (d, 0o755), (d / "sig", 0o777),
                        (d / "ctl", 0o777)):
            os.chmod(p, mode)
        child = _Nobody(data_ep, ctl_ep, token, [], _buy_frame())
        try:
            res = child.report()
            assert "error" not in res, res
            assert res["reply"] is None
            st = gw.wait(lambda s: s["intake"]["refused"]["uid"] >= 2, timeout=30,
                         what="uid refusals counted")
        finally:
            child.done()
            for p in (base, d):
                os.chmod(p, 0o700)
        assert st["intake"]["refused"]["token"] == 0
        _no_order(gw, sim)
        assert "running as uid 65534" in gw.stderr() and token.decode() not in gw.stderr()
        assert gw.stop() == 0
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_a_same_uid_sender_without_the_token_gets_no_order_and_is_counted(sim, gw_factory):
    gw = gw_factory().start()
    token = channel.read_token_file(gw.channel)
    data_ep, ctl_ep = signals.endpoints(gw.channel)
    # the attack: one frame pushed without credentials; then a made-up token
    def counted(out):                     # the sockets stay open until the gateway counted
        gw.wait(lambda s: s["intake"]["refused"]["no_auth"] >= 1
                and s["intake"]["refused"]["token"] >= 2, timeout=30,
                what="no_auth and token refusals")
    bad = _attack(data_ep, ctl_ep, b"f" * 64, _buy_frame(), wait_s=1.0, hold=counted)
    assert bad["reply"] is None
    _no_order(gw, sim)
    # the right connection token but frames before any HELLO: refused before_ready
    import zmq
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 0)
    push.setsockopt(zmq.PLAIN_USERNAME, b"1")
    push.setsockopt(zmq.PLAIN_PASSWORD, token)
    push.connect(data_ep)
    push.send(_buy_frame())
    gw.wait(lambda s: s["intake"]["refused"]["before_ready"] >= 1, what="before_ready counted")
    _no_order(gw, sim)
    # our strategy (id 1) says HELLO; a frame of an id no HELLO announced is still refused
    with StrategySide(gw.channel) as ours:
        push.send(_buy_frame(strategy_id=77))
        gw.wait(lambda s: s["intake"]["refused"]["unknown_strategy"] >= 1,
                what="unknown_strategy counted")
        _no_order(gw, sim)
        ours.send(side=BUY, qty=0.002)
        gw.wait(lambda s: s["fills"] >= 1, what="our strategy's fill")
    push.close()
    ctx.term()
    err = gw.stderr()
    assert "refused (token)" in err and "refused (no_auth)" in err
    assert token.decode() not in err and token.decode() not in gw.journal_text()
    assert token.decode() not in (gw.state_dir / "status.json").read_text()
    assert gw.stop() == 0
