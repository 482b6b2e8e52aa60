"""The tick ring in one process, through both backends (Cython kernel and pure-Python twin)."""
import os

import numpy as np
import pytest

from pipeline.bus import ring as ringmod
from pipeline.bus import shm as shmmod
from pipeline.bus.ring import (RingError, RingExistsError, RingFormatError, RingSpaceError,
                               TickRing)
from pipeline.bus.probe import VerifyState, derived_records
from pipeline.records import FLAG_SYNTHETIC, TICK_DTYPE, Kind

BACKENDS = ["cython", "python"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


def publish_derived(w, first, n):
    for k in range(first, first + n):
        w.publish(int(Kind.TRADE), 0, k & 0xFFFF, 0, 0, k + 13, k - 7, float(k),
                  float((k * 2654435761) & 0xFFFFFFFF), k)


def test_publish_then_poll(shm_name, backend):
    with TickRing.create(shm_name, 16, backend=backend) as ring:
        w = ring.writer()
        r = ring.reader(start=0)
        assert len(r.poll()) == 0
        publish_derived(w, 0, 5)
        b = r.poll()
        assert list(b["seq"]) == [0, 1, 2, 3, 4]
        assert list(b["exch_ts"]) == [13, 14, 15, 16, 17]
        assert (b["mono_ts"] > 0).all()
        assert r.stats()["received"] == 5 and r.lost == 0
        assert len(r.poll()) == 0


def test_lapped_reader_skips_to_the_newest_with_exact_gap_and_asks_for_resync(shm_name,
                                                                               backend):
    with TickRing.create(shm_name, 8, backend=backend) as ring:
        w = ring.writer()
        r = ring.reader(start=0, max_batch=64)
        publish_derived(w, 0, 3)
        assert len(r.poll()) == 3
        assert ring.resync_requests == 0
        publish_derived(w, 3, 20)          # 20 new records into 8 slots: lapped
        b = r.poll()
        assert b["kind"][0] == Kind.GAP
        assert b["id"][0] == 19 and b["seq"][0] == 3          # all but the newest: lost
        assert b["flags"][0] & FLAG_SYNTHETIC
        assert list(b["seq"][1:]) == [22]                     # the newest record, not seq 15
        assert r.lost == 19 and r.gaps == 1 and r.received == 3 + 1
        assert ring.resync_requests == 1                      # the collector will resync
        vs = VerifyState(expect=3)
        vs.check(b)
        assert vs.violations == 0 and vs.lost_unreported == 0 and vs.lost_reported == 19
        publish_derived(w, 23, 2)          # and then it goes on with what comes next
        assert list(r.poll()["seq"]) == [23, 24]
        ring.request_resync()              # a consumer may ask too
        assert ring.resync_requests == 2


def test_reader_sees_writer_heartbeat_age(shm_name, backend):
    with TickRing.create(shm_name, 8, backend=backend) as ring:
        assert ring.heartbeat_age_ns() is None                # never beat
        w = ring.writer()
        w.heartbeat()
        age = ring.heartbeat_age_ns()
        assert 0 <= age < 1_000_000_000


def test_max_batch_splits_and_keeps_room_for_gap(shm_name, backend):
    with TickRing.create(shm_name, 64, backend=backend) as ring:
        w = ring.writer()
        r = ring.reader(start=0, max_batch=4)
        publish_derived(w, 0, 10)
        got = []
        while True:
            b = r.poll()
            if len(b) == 0:
                break
            assert len(b) <= 3
            got.extend(b["seq"])
        assert got == list(range(10))


def test_publish_array_assigns_sequence_and_stamp(shm_name, backend):
    with TickRing.create(shm_name, 1024, backend=backend) as ring:
        w = ring.writer()
        r = ring.reader(start=0, max_batch=2048)
        arr = derived_records(0, 700)
        arr["seq"] = 999                     # ignored: the ring assigns sequences
        assert w.publish_array(arr) == 699
        b = r.poll()
        assert list(b["seq"]) == list(range(700))
        vs = VerifyState()
        vs.check(b)
        assert vs.violations == 0 and vs.received == 700
        with pytest.raises(TypeError, match="TICK_DTYPE"):
            w.publish_array(np.zeros(3, dtype=np.int64))


def test_publish_array_larger_than_ring(shm_name, backend):
    with TickRing.create(shm_name, 16, backend=backend) as ring:
        w = ring.writer()
        r = ring.reader(start=0, max_batch=64)
        w.publish_array(derived_records(0, 100))
        b = r.poll()
        assert b["kind"][0] == Kind.GAP and b["id"][0] == 99
        assert list(b["seq"][1:]) == [99]          # the newest; the rest are ring backlog


def test_wait_times_out_then_sees_data(shm_name, backend):
    with TickRing.create(shm_name, 16, backend=backend) as ring:
        w = ring.writer()
        for wait in ("busy_spin", "yielding", "sleeping", "blocking"):
            r = ring.reader(wait=wait)
            assert r.wait(timeout=0.01) is False
            publish_derived(w, w.next_seq, 1)
            assert r.wait(timeout=1.0) is True
            assert len(r.poll()) == 1


def test_writer_close_ends_waits(shm_name, backend):
    with TickRing.create(shm_name, 16, backend=backend) as ring:
        w = ring.writer()
        r = ring.reader(wait="blocking")
        w.close()
        assert ring.writer_closed
        assert r.wait(timeout=5.0) is False


def test_attach_reads_what_owner_writes(shm_name, backend):
    with TickRing.create(shm_name, 16, backend=backend) as ring:
        other = TickRing.attach(shm_name, backend=backend)
        r = other.reader(start=0)
        publish_derived(ring.writer(), 0, 2)
        assert list(r.poll()["id"]) == [0, 1]
        assert other.owner_pid == os.getpid() and other.writer_pid == os.getpid()
        del r
        other.close()
        assert os.path.exists(ringmod.segment_path(shm_name))   # attach never unlinks
    assert not os.path.exists(ringmod.segment_path(shm_name))    # the owner does


def test_capacity_must_be_power_of_two(shm_name):
    with pytest.raises(ValueError, match="power of two"):
        TickRing.create(shm_name, 1000)


def test_create_refuses_live_owner(shm_name):
    with TickRing.create(shm_name, 16):
        with pytest.raises(RingExistsError, match="in use"):
            TickRing.create(shm_name, 16)


def test_attach_missing_and_garbage(shm_name):
    with pytest.raises(RingError, match="no ring named"):
        TickRing.attach(shm_name)
    shm = shmmod.open_segment(shm_name, create=True, size=4096)
    try:
        with pytest.raises(RingFormatError, match="not an initialised ring"):
            TickRing.attach(shm_name)
        # a garbage segment whose owner is unknown is replaced by create
        with TickRing.create(shm_name, 16) as ring:
            assert ring.capacity == 16
    finally:
        shm.close()


def test_segment_is_the_object_multiprocessing_shared_memory_opens(shm_name):
    import sys
    from multiprocessing import resource_tracker, shared_memory
    with TickRing.create(shm_name, 16) as ring:
        ring.writer().publish(int(Kind.TRADE), price=1.0)
        other = shared_memory.SharedMemory(shm_name)
        if sys.version_info < (3, 13):   # attaching registers it (gh-82300): undo that
            resource_tracker.unregister(other._name, "shared_memory")
        cursor = np.frombuffer(other.buf, dtype="<i8", count=9)[8]
        assert cursor == 1 and other.size == ringmod.segment_size(16)
        del cursor
        other.close()


def test_no_room_in_dev_shm_fails_at_creation(shm_name):
    st = os.statvfs("/dev/shm")
    free = st.f_bavail * st.f_frsize
    cap = 1
    while ringmod.segment_size(cap) <= free:
        cap <<= 1
    with pytest.raises(RingSpaceError, match="free"):
        TickRing.create(shm_name, cap)
    assert not os.path.exists(ringmod.segment_path(shm_name))


def test_second_live_writer_refused(shm_name):
    with TickRing.create(shm_name, 16) as ring:
        ring.writer()
        # same process may re-take the writer role; another live pid may not
        ring._header["writer_pid"] = os.getppid()
        other = TickRing.attach(shm_name)
        with pytest.raises(RingError, match="live writer"):
            other.writer()
        other.close()


def test_reader_rejects_bad_arguments(shm_name):
    with TickRing.create(shm_name, 16) as ring:
        with pytest.raises(ValueError, match="wait strategy"):
            ring.reader(wait="spin")
        with pytest.raises(ValueError, match="max_batch"):
            ring.reader(max_batch=1)
        out = np.empty(4, dtype=np.float64)
        with pytest.raises(ValueError):
            ring.reader().poll_into(out)


def test_inspect_reports_header(shm_name):
    assert ringmod.inspect(shm_name) is None
    with TickRing.create(shm_name, 32) as ring:
        publish_derived(ring.writer(), 0, 3)
        info = ringmod.inspect(shm_name)
        assert info["valid"] and info["capacity"] == 32 and info["cursor"] == 3
        assert info["owner_alive"]
    assert TICK_DTYPE.itemsize == 64


def test_use_after_close_is_an_error_not_a_crash(shm_name, backend):
    ring = TickRing.create(shm_name, 16, backend=backend)
    w = ring.writer()
    r = ring.reader()
    publish = w.publish
    ring.close()
    with pytest.raises(ValueError, match="closed"):
        r.poll_into(np.empty(4, dtype=TICK_DTYPE))
    with pytest.raises(ValueError, match="closed"):
        r.wait(timeout=0.01)
    with pytest.raises(ValueError, match="closed"):
        publish(int(Kind.TRADE))
    ring.close()   # idempotent


def test_reader_counters_stay_readable_after_close(shm_name, backend):
    ring = TickRing.create(shm_name, 16, backend=backend)
    r = ring.reader(start=0)
    publish_derived(ring.writer(), 0, 3)
    r.poll()
    ring.close()
    assert r.stats() == {"received": 3, "lost": 0, "gaps": 0, "overwritten": 0, "next_seq": 3,
                         "lag": None}


def test_every_core_method_after_close_is_an_error(shm_name, backend):
    ring = TickRing.create(shm_name, 16, backend=backend)
    w = ring.writer()
    core = ring.core
    ring.close()
    for call in (lambda: core.cursor, core.heartbeat, core.close_writer, lambda: core.waiters,
                 lambda: core.writer_closed, core.sync_writer, lambda: core.claim_writer(0, 1)):
        with pytest.raises(ValueError, match="closed"):
            call()
    w.close()          # idempotent after the ring closed


def test_writer_started_after_a_parked_reader_still_wakes_it(shm_name):
    """A reader parks (blocking wait) before the writer exists; the writer must wake it."""
    import threading
    import time
    with TickRing.create(shm_name, 16) as ring:
        r = ring.reader(wait="blocking", start=0)
        woke = []
        t = threading.Thread(target=lambda: woke.append((r.core.wait(5_000_000_000),
                                                          time.perf_counter())))
        t.start()
        deadline = time.monotonic() + 5
        while ring.core.waiters == 0 and time.monotonic() < deadline:
            time.sleep(0.001)
        assert ring.core.waiters == 1
        w = ring.writer()                       # the collector starts after the strategy
        t0 = time.perf_counter()
        publish_derived(w, 0, 1)
        t.join(5)
        assert woke and woke[0][0] is True
        assert woke[0][1] - t0 < 1.0            # woken by the writer, not by the 5 s timeout
        assert ring.core.waiters == 0
