"""The signal ring (strategy → gateway over shared memory): the tick ring's kernel with 128-byte
slots, through both backends; and the signal channel's switch to it (READY_RING), its ZeroMQ
fallback for a second sender, and the handshake again after the gateway is replaced."""
from __future__ import annotations

import multiprocessing as mp
import time

import numpy as np
import pytest
from conftest import unique_shm_name

from pipeline.bus import signals as S
from pipeline.bus.ring import RingFormatError, SignalRing, TickRing
from pipeline.records import SIGNAL_DTYPE, SIGNAL_SLOT_DTYPE

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=["cython", "python"])
def backend(request):
    return request.param


def sig(seq: int, **kw) -> S.Signal:
    f = dict(epoch=7, seq=seq, trigger_seq=seq * 3, trigger_mono=100 + seq, created_mono=200 + seq,
             ttl_ns=10**9, qty=0.5 + seq, price=float("nan"), strategy_id=3, symbol=1, venue=1,
             side=1 if seq % 2 else -1, order_type=2, tif=0)
    f.update(kw)
    return S.Signal(**f)


def test_slot_layout_is_seq_then_the_signal_record():
    assert SIGNAL_SLOT_DTYPE.itemsize == 128
    assert SIGNAL_SLOT_DTYPE.fields["seq"][1] == 0
    assert SIGNAL_SLOT_DTYPE.fields["signal"] == (SIGNAL_DTYPE, 8)


def test_publish_bytes_round_trip_and_zeroed_padding(shm_name, backend):
    with SignalRing.create(shm_name, 8, backend=backend) as ring:
        w = ring.writer()
        r = ring.reader(start=0, wait="busy_spin")
        sent = [sig(i) for i in range(1, 4)]
        assert [w.publish_bytes(S.encode(s)) for s in sent] == [0, 1, 2]
        got = r.poll()
        assert got.dtype == SIGNAL_SLOT_DTYPE and list(got["seq"]) == [0, 1, 2]
        assert [S.encode(x) for x in S.from_array(got["signal"])] == [S.encode(x) for x in sent]
        assert not got["_pad"].any()
        w.publish_bytes(b"\x01" * 10)                 # a shorter body: the rest is zeroed
        (slot,) = r.poll()
        assert slot.tobytes()[8:18] == b"\x01" * 10 and not any(slot.tobytes()[18:])


def test_misuse_is_refused_clearly(shm_name, backend):
    with SignalRing.create(shm_name, 8, backend=backend) as ring:
        w = ring.writer()
        with pytest.raises(ValueError, match="does not fit"):
            w.publish_bytes(b"x" * 121)
        with pytest.raises(TypeError, match="tick records"):
            w.publish(1, price=1.0)
        with pytest.raises(TypeError, match="SIGNAL_SLOT_DTYPE"):
            w.publish_array(np.zeros(2, dtype=np.int64))
        with pytest.raises(RingFormatError, match="not a TickRing"):
            TickRing.attach(shm_name, backend=backend)
    tick_name = unique_shm_name()
    with TickRing.create(tick_name, 8, backend=backend):
        with pytest.raises(RingFormatError, match="not a SignalRing"):
            SignalRing.attach(tick_name, backend=backend)


def test_a_lapped_reader_counts_what_it_lost_and_gets_no_gap_record(shm_name, backend):
    with SignalRing.create(shm_name, 8, backend=backend) as ring:
        w = ring.writer()
        r = ring.reader(start=0, max_batch=64)
        for i in range(1, 21):
            w.publish_bytes(S.encode(sig(i)))
        got = r.poll()
        assert list(got["seq"]) == [19]                         # skips to the newest, valid
        assert [s.seq for s in S.from_array(got["signal"])] == [20]
        assert r.lost == 19 and r.gaps == 1 and r.received == 1
        assert ring.resync_requests == 0          # no books from signals: nothing to resync


def test_the_two_backends_share_one_segment(shm_name):
    with SignalRing.create(shm_name, 16, backend="python") as owner:
        w = owner.writer()
        other = SignalRing.attach(shm_name, backend="cython")
        try:
            r = other.reader(start=0)
            w.publish_bytes(S.encode(sig(1)))
            w.publish_array(np.zeros(2, dtype=SIGNAL_SLOT_DTYPE))
            got = r.poll()
            assert list(got["seq"]) == [0, 1, 2]
            assert got[0]["signal"].tobytes() == S.encode(sig(1))
        finally:
            other.close()


# ----------------------------------------------------------------------------- the channel
def _handshake(tx: S.SignalSender, rx: S.SignalReceiver | None = None, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while not tx.service():
        if rx is not None:
            rx.wait(1)
        assert time.monotonic() < deadline, "no READY"
        time.sleep(0.002)


def _recv_all(rx: S.SignalReceiver, n: int, timeout: float = 5.0) -> list[S.Signal]:
    out: list[S.Signal] = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        s = rx.recv(timeout=0.1)
        if s is not None:
            out.append(s)
    return out


def test_the_sender_moves_to_the_ring_offered_on_ready():
    name = unique_shm_name()
    with S.SignalReceiver(name, ring_capacity=16, ring_wait="busy_spin") as rx, \
            S.SignalSender(name, strategy_id=3, hello_every_s=0.01) as tx:
        _handshake(tx, rx)
        assert tx.stats()["ring"] and rx.ring is not None
        for i in range(3):
            assert tx.send(sig(0, created_mono=time.perf_counter_ns()))
        got = _recv_all(rx, 3)
        assert [s.seq for s in got] == [1, 2, 3] and all(s.epoch == tx.epoch for s in got)
        assert tx.sent_ring == 3 and rx.received_ring == 3
        assert rx.ring_stats() == {"ring_received": 3, "ring_lost": 0}


def test_a_second_sender_stays_on_zeromq_and_is_still_heard():
    name = unique_shm_name()
    with S.SignalReceiver(name, ring_capacity=16) as rx, \
            S.SignalSender(name, strategy_id=1, hello_every_s=0.01) as a, \
            S.SignalSender(name, strategy_id=2, hello_every_s=0.01) as b:
        _handshake(a, rx)
        _handshake(b, rx)
        assert a.stats()["ring"] and not b.stats()["ring"]
        assert "live writer" in b.ring_refused
        a.send(sig(0, strategy_id=1))
        b.send(sig(0, strategy_id=2))
        got = _recv_all(rx, 2)
        assert sorted(s.strategy_id for s in got) == [1, 2]
        assert a.sent_ring == 1 and b.sent_ring == 0


def test_a_gateway_without_a_ring_keeps_zeromq():
    name = unique_shm_name()
    with S.SignalReceiver(name) as rx, \
            S.SignalSender(name, strategy_id=3, hello_every_s=0.01) as tx:
        _handshake(tx, rx)
        assert not tx.stats()["ring"]
        tx.send(sig(0))
        assert len(_recv_all(rx, 1)) == 1


def _gateway_child(name: str, q, n: int) -> None:
    rx = S.SignalReceiver(name, ring_capacity=16, ring_wait="blocking")
    q.put("up")
    got = []
    deadline = time.monotonic() + 20
    while len(got) < n and time.monotonic() < deadline:
        s = rx.recv(timeout=0.1)
        if s is not None:
            got.append(s.seq)
    q.put(got)
    rx.close()


def test_a_replaced_gateway_gets_a_new_handshake_and_ring():
    name = unique_shm_name()
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    first = ctx.Process(target=_gateway_child, args=(name, q, 1))
    first.start()
    assert q.get(timeout=20) == "up"
    with S.SignalSender(name, strategy_id=3, hello_every_s=0.05) as tx:
        _handshake(tx)
        tx.send(sig(0))
        assert q.get(timeout=20) == [1]
        first.join(10)
        second = ctx.Process(target=_gateway_child, args=(name, q, 1))
        second.start()
        assert q.get(timeout=20) == "up"
        deadline = time.monotonic() + 10
        while not (tx.service() and tx.ring_detached == 1):   # owner gone: detach, HELLO again
            assert time.monotonic() < deadline, tx.stats()
            time.sleep(0.01)
        assert tx.stats()["ring"]                            # the new gateway's ring
        tx.send(sig(0))
        assert q.get(timeout=20) == [2]
        second.join(10)
