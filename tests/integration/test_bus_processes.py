"""The tick bus across real processes and real shared memory."""
import multiprocessing as mp
import os
import signal
import time

import numpy as np
import pytest

from pipeline.bus import probe
from pipeline.bus import ring as ringmod
from pipeline.bus.ring import TickRing
from pipeline.records import TICK_DTYPE, Kind

CTX = mp.get_context("spawn")


def _publish(w, first, n):
    w.publish_array(probe.derived_records(first, n))


@pytest.mark.parametrize("readers", [
    [dict(name="spin", wait="busy_spin", core=1)],
    [dict(name="spin", wait="busy_spin", core=1),
     dict(name="blocking-slow", wait="blocking", core=0, slow_ns=300_000),
     dict(name="sleeping", wait="sleeping", core=0, max_batch=256)],
], ids=["1-reader", "3-readers"])
def test_stress_ten_million_records(shm_name, readers):
    """Disruptor-style: 10 M derived records as fast as the writer can; every reader checks every
    record; nothing torn, and every record a reader did not see is in its lost count."""
    total = 10_000_000
    out = probe.run(shm_name, 1 << 14, readers, total=total, batch=1024, writer_core=0,
                    timeout=240)
    assert out["writer"]["published"] == total
    assert len(out["readers"]) == len(readers)
    for r in out["readers"]:
        v, c = r["verify"], r["reader_counters"]
        assert v["violations"] == 0, r
        assert v["lost_unreported"] == 0, r
        assert v["received"] + v["lost_reported"] == total, r
        assert c["received"] == v["received"] and c["lost"] == v["lost_reported"], r
    assert not os.path.exists(ringmod.segment_path(shm_name))


def _stoppable_reader(name, progress, results):
    ring = TickRing.attach(name, timeout=5)
    r = ring.reader(wait="blocking", start=0, max_batch=1 << 16)
    got = []
    while True:
        if not r.wait(timeout=0.05):
            if ring.writer_closed and r.lag() <= 0:
                break
            continue
        b = r.poll()
        got.append(b.copy())
        progress.put(r.next_seq)
    results.put(np.concatenate(got) if got else np.empty(0, TICK_DTYPE))
    del r
    ring.close()


def test_sigstopped_reader_sees_exact_gap_then_the_newest_records(shm_name):
    cap = 1024
    with TickRing.create(shm_name, cap) as ring:
        w = ring.writer()
        progress, results = CTX.Queue(), CTX.Queue()
        p = CTX.Process(target=_stoppable_reader, args=(shm_name, progress, results), daemon=True)
        p.start()
        try:
            _publish(w, 0, 10)
            while progress.get(timeout=20) < 10:
                pass
            os.kill(p.pid, signal.SIGSTOP)
            _publish(w, 10, cap + 50)          # laps the stopped reader
            os.kill(p.pid, signal.SIGCONT)
            while progress.get(timeout=20) < 10 + cap + 50:   # took the GAP and the newest
                pass
            _publish(w, 10 + cap + 50, 5)      # what comes next arrives in order
            w.close()
            got = results.get(timeout=20)
            p.join(10)
        finally:
            if p.is_alive():
                p.kill()
        assert p.exitcode == 0
        assert list(got["seq"][:10]) == list(range(10))
        gap = got[10]
        lost = cap + 50 - 1                    # all but the newest of what it missed
        assert gap["kind"] == Kind.GAP and gap["id"] == lost and gap["seq"] == 10
        rest = got[11:]
        last = 10 + cap + 50
        assert list(rest["seq"]) == [last - 1] + list(range(last, last + 5))
        assert ring.resync_requests == 1
        vs = probe.VerifyState()
        vs.check(got)
        assert vs.violations == 0 and vs.lost_unreported == 0 and vs.lost_reported == lost


def _attach_and_exit(name, mode, ready):
    ring = TickRing.attach(name, timeout=5)
    r = ring.reader(start=0)
    r.poll()
    ready.set()
    if mode == "kill":
        time.sleep(60)                     # SIGKILLed by the test
    del r
    ring.close()


def test_attachers_exiting_or_killed_leave_segment_alive(shm_name):
    with TickRing.create(shm_name, 64) as ring:
        w = ring.writer()
        _publish(w, 0, 5)
        for mode in ("exit", "kill"):
            ready = CTX.Event()
            p = CTX.Process(target=_attach_and_exit, args=(shm_name, mode, ready), daemon=True)
            p.start()
            assert ready.wait(20)
            if mode == "kill":
                p.kill()
            p.join(20)
            assert os.path.exists(ringmod.segment_path(shm_name)), mode
        # the owner still writes and reads
        r = ring.reader(start=0)
        _publish(w, 5, 5)
        assert list(r.poll()["seq"]) == list(range(10))
    assert not os.path.exists(ringmod.segment_path(shm_name))


def _owner_then_die(name, ready):
    TickRing.create(name, 64)
    ready.set()
    time.sleep(60)


def test_segment_of_killed_owner_is_replaced(shm_name, caplog):
    ready = CTX.Event()
    p = CTX.Process(target=_owner_then_die, args=(shm_name, ready), daemon=True)
    p.start()
    assert ready.wait(20)
    p.kill()
    p.join(20)
    assert os.path.exists(ringmod.segment_path(shm_name))       # left behind
    info = ringmod.inspect(shm_name)
    assert info["valid"] and not info["owner_alive"]
    with caplog.at_level("WARNING"):
        with TickRing.create(shm_name, 128) as ring:
            assert ring.capacity == 128 and ring.owner_pid == os.getpid()
    assert "stale" in caplog.text
    assert not os.path.exists(ringmod.segment_path(shm_name))


def _be_writer(name, ready, done):
    ring = TickRing.attach(name, timeout=5)
    w = ring.writer()
    w.publish(int(Kind.TRADE), price=1.0)
    ready.set()
    done.wait(30)
    ring.close()


def test_second_writer_refused_while_the_first_lives(shm_name):
    """The writer started long after the ring (as under the launcher) is still seen as alive."""
    with TickRing.create(shm_name, 64) as ring:
        time.sleep(1.2)                          # the ring's epoch is now well in the past
        ready, done = CTX.Event(), CTX.Event()
        p = CTX.Process(target=_be_writer, args=(shm_name, ready, done), daemon=True)
        p.start()
        try:
            assert ready.wait(20)
            other = TickRing.attach(shm_name)
            with pytest.raises(ringmod.RingError, match="live writer"):
                other.writer()
            other.close()
        finally:
            done.set()
            p.join(10)
        assert ring.writer_pid == p.pid
        ring.writer()                            # its writer exited: the role can be taken over
        assert ring.writer_pid == os.getpid()


def _die_mid_write(name, where, ready):
    """A writer (the twin, so the test can stop it inside publish) that publishes 5 records and
    then stops for good inside the 6th: after marking the slot WRITING with half a body
    ("after_mark"), or after stamping it but before the cursor store ("before_cursor")."""
    from pipeline.bus import ring_py
    from pipeline.records import SEQ_WRITING
    ring = TickRing.attach(name, backend="python", timeout=5)
    w = ring.writer()
    w.heartbeat()
    for i in range(5):
        w.publish(int(Kind.TRADE), symbol=1, price=100.0 + i, qty=1.0)
    core = ring.core
    if where == "after_mark":
        slot = core.wseq & core.mask
        core.seqs[slot] = SEQ_WRITING
        core.recs[slot]["price"] = 999.0             # half a body: price written, qty not yet
    else:
        def hang(self, next_seq):                    # the slot is stamped; the cursor is not
            ready.set()
            time.sleep(120)
        ring_py.RingCore._commit = hang
        w.publish(int(Kind.TRADE), symbol=1, price=999.0, qty=9.0)
    ready.set()
    time.sleep(120)                                  # SIGKILLed here by the test


@pytest.mark.parametrize("where", ["after_mark", "before_cursor"])
def test_writer_killed_mid_write_leaves_no_slot_to_consume(shm_name, where):
    with TickRing.create(shm_name, 64) as ring:
        r = ring.reader(start=0)
        ready = CTX.Event()
        p = CTX.Process(target=_die_mid_write, args=(shm_name, where, ready), daemon=True)
        p.start()
        assert ready.wait(30)
        os.kill(p.pid, signal.SIGKILL)
        p.join(20)
        got = r.poll()
        assert list(got["price"]) == [100.0, 101.0, 102.0, 103.0, 104.0]   # only complete ones
        assert r.poll().size == 0 and not r.wait(timeout=0.05)             # nothing half-made
        assert r.lost == 0 and r.gaps == 0
        hb = ring.heartbeat_age_ns()
        assert hb is not None and hb > 0               # readers can see the writer went quiet
        w = ring.writer()                              # a new collector takes over the ring
        w.publish(int(Kind.TRADE), symbol=1, price=200.0, qty=2.0)
        nxt = r.poll()
        assert list(nxt["seq"]) == [5] and list(nxt["price"]) == [200.0]
        assert list(nxt["qty"]) == [2.0]
        del r
