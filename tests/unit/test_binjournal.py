"""The binary write-ahead journal (pipeline/gateway/binjournal.py over ext/journal.pyx): records in
order across restarts and file growth, a torn last record, a corrupt record, a full disk, the fsync
policy, a SIGKILLed writer, the rebuild reading it as it reads JSON lines, and the export for
people (`python -m pipeline.gateway journal`)."""
from __future__ import annotations

import errno
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from pipeline.gateway import binjournal, journal_py
from pipeline.gateway.binjournal import BinaryJournal, read
from pipeline.gateway.journal import JournalWriteError
from pipeline.records import JOURNAL_RECORD_SIZE as REC

REPO = Path(__file__).resolve().parents[2]


def order(j, n: int, attempt: int = 1, price: float = 100.5):
    j.write_order(cid=f"pl1.a.{n:x}", symbol="BTCUSDT", symbol_id=7, strategy=1, epoch=10,
                  sig_seq=n, side=1 if n % 2 else -1, order_type=1, tif=1, qty=0.25,
                  price=price, trigger_mono=1, created_mono=2, recv_mono=3,
                  ts_ms=1_700_000_000_000 + n, attempt=attempt, via="rest")


def kinds(path, stats=None):
    return [r["k"] for r in read(path, stats)]


@pytest.mark.parametrize("writer", [None, journal_py.JournalWriter], ids=["kernel", "twin"])
def test_records_come_back_in_order_across_growth_and_restart(tmp_path, writer):
    p = tmp_path / "j.bin"
    j = BinaryJournal(p, fsync="never", chunk_records=3, writer_cls=writer)
    j.write("start", pid=1)
    order(j, 1)
    j.write("state", cid="pl1.a.1", to="ACK", why="x" * 700)       # spans several slots
    for i in range(10):
        j.write("fill", trade_id=i)
    j.close()
    assert p.stat().st_size % REC == 0 and p.stat().st_size > REC * 4   # it grew
    j = BinaryJournal(p, fsync="never", chunk_records=3, writer_cls=writer)
    assert j.torn_at_open == 0
    order(j, 2, attempt=2)                                          # a -1021 retry: request only
    j.write("stop")
    j.close()
    recs = list(read(p))
    assert [r["k"] for r in recs] == (["start", "signal", "order", "request", "state"]
                                      + ["fill"] * 10 + ["request", "stop"])
    assert [r["trade_id"] for r in recs if r["k"] == "fill"] == list(range(10))
    o = recs[2]
    assert (o["cid"], o["symbol"], o["symbol_id"], o["side"], o["qty"], o["price"]) == (
        "pl1.a.1", "BTCUSDT", 7, 1, 0.25, 100.5)
    assert recs[3]["ts_ms"] == 1_700_000_000_001 and recs[3]["method"] == "POST"
    assert recs[4]["why"] == "x" * 700
    assert all(r["t"] > 0 and r["m"] > 0 for r in recs)


def test_a_torn_last_record_is_cleared_and_does_not_hide_the_next_sessions_records(tmp_path):
    p = tmp_path / "j.bin"
    j = BinaryJournal(p, fsync="always")
    j.write("start", n=1)
    end = REC * (1 + j.w.next_slot)
    j.close()
    with open(p, "r+b") as f:              # a record half written when the process died: its
        f.seek(end + 8)                    # bytes are there, its seq (stored last) is not
        f.write(b"\x01" * 100)
    j = BinaryJournal(p)
    assert j.torn_at_open == 1
    j.write("start", n=2)
    j.write("trading", state="HALTED")
    j.close()
    assert [(r["k"], r.get("n")) for r in read(p)] == [("start", 1), ("start", 2),
                                                       ("trading", None)]
    assert BinaryJournal(p).torn_at_open == 0          # a journal that ends cleanly is left alone


def test_a_corrupt_record_is_skipped_counted_and_reading_carries_on(tmp_path, caplog):
    p = tmp_path / "j.bin"
    j = BinaryJournal(p)
    j.write("a")
    j.write("b", x="y" * 300)
    j.write("c")
    j.close()
    with open(p, "r+b") as f:
        f.seek(REC * 2 + 45)                # inside record "b"'s payload
        f.write(b"#")
    stats: dict = {}
    assert kinds(p, stats) == ["a", "c"]
    assert stats["torn"] >= 1 and "checksum" in caplog.text


def test_a_full_disk_keeps_text_records_pending_and_refuses_the_order_record(tmp_path,
                                                                             monkeypatch):
    p = tmp_path / "j.bin"
    j = BinaryJournal(p, fsync="always", chunk_records=2)
    j.write("a")
    j.write("b")                                        # the preallocated room is used up

    def full(fd, off, n):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(binjournal.os, "posix_fallocate", full)
    j.write("c")                                        # kept, not lost, never raises here
    assert j.pending == 1 and j.write_errors == 1
    with pytest.raises(JournalWriteError):
        j.commit()
    with pytest.raises(JournalWriteError):
        order(j, 1)                                     # the write-ahead record: not sent
    assert j.write_errors == 3
    size = p.stat().st_size
    monkeypatch.undo()                                  # room again
    j.commit()
    assert j.pending == 0
    order(j, 2)
    j.close()
    assert p.stat().st_size > size
    assert kinds(p) == ["a", "b", "c", "signal", "order", "request"]


class SpyWriter(journal_py.JournalWriter):
    syncs = 0

    def sync(self):
        SpyWriter.syncs += 1
        super().sync()


@pytest.mark.parametrize("policy, after_commit, after_interval", [
    ("always", 1, 1), ("interval", 0, 1), ("never", 0, 0)])
def test_the_fsync_policy_is_the_json_journals(tmp_path, policy, after_commit, after_interval):
    SpyWriter.syncs = 0
    j = BinaryJournal(tmp_path / "j.bin", fsync=policy, fsync_ms=0, writer_cls=SpyWriter)
    j.write("a")
    j.commit()
    assert SpyWriter.syncs == after_commit
    j.maybe_sync()
    assert j.wait_synced(10.0)            # "interval": the msync is the sync thread's
    assert SpyWriter.syncs == after_interval
    j.close()


class BlockedSync(journal_py.JournalWriter):
    """A writer whose msync waits for `release` (a slow disk)."""
    entered = None
    release = None
    syncs = 0

    def sync(self):
        BlockedSync.entered.set()
        assert BlockedSync.release.wait(10.0)
        BlockedSync.syncs += 1
        super().sync()


def test_interval_msync_runs_on_the_sync_thread_and_the_loop_writes_on(tmp_path):
    """Under "interval" the loop's maybe_sync asks the sync thread for the msync and returns:
    while that msync waits for a slow disk the loop writes and journals on; the records written
    meanwhile are synced by the next interval's msync; close waits for the msync in flight."""
    import threading
    BlockedSync.entered, BlockedSync.release = threading.Event(), threading.Event()
    BlockedSync.syncs = 0
    j = BinaryJournal(tmp_path / "j.bin", fsync="interval", fsync_ms=0, writer_cls=BlockedSync)
    try:
        order(j, 1)
        j.maybe_sync()                                  # returns with the msync in flight
        assert BlockedSync.entered.wait(10.0)
        assert not j.wait_synced(0.05)
        order(j, 2)                                     # the loop goes on meanwhile
        j.write("state", cid="pl1.a.2", to="NEW")
        j.maybe_sync()                                  # asked again (served after the first)
        BlockedSync.release.set()
        assert j.wait_synced(10.0)
        assert BlockedSync.syncs == 2 and j.syncs == 2
        assert j.w.synced_slot == j.w.next_slot          # everything written is synced
    finally:
        BlockedSync.release.set()
        j.close()
    assert kinds(tmp_path / "j.bin").count("request") == 2


def test_a_failed_background_msync_is_counted_and_asked_again(tmp_path):
    class Failing(journal_py.JournalWriter):
        fail = True

        def sync(self):
            if Failing.fail:
                Failing.fail = False
                raise OSError(errno.EIO, "I/O error")
            super().sync()

    j = BinaryJournal(tmp_path / "j.bin", fsync="interval", fsync_ms=0, writer_cls=Failing)
    try:
        order(j, 1)
        j.maybe_sync()
        assert j.wait_synced(10.0)
        assert j.sync_errors == 1 and j.syncs == 0 and j._dirty      # not lost: due again
        j.maybe_sync()
        assert j.wait_synced(10.0)
        assert j.syncs == 1 and j.w.synced_slot == j.w.next_slot
    finally:
        j.close()


WRITER = """
import sys, time
from pipeline.gateway.binjournal import BinaryJournal
j = BinaryJournal(sys.argv[1], fsync="never", chunk_records=64)
i = 0
while True:
    i += 1
    j.write("fill", trade_id=i, pad="z" * (i % 500))
    if i == 200:
        print("ready", flush=True)
"""


def test_a_sigkilled_writer_loses_nothing_it_wrote_and_the_file_reopens(tmp_path):
    p = tmp_path / "j.bin"
    w = subprocess.Popen([sys.executable, "-c", WRITER, str(p)], stdout=subprocess.PIPE,
                         cwd=str(REPO), env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert w.stdout.readline().strip() == b"ready"
        time.sleep(0.2)
        w.send_signal(signal.SIGKILL)
        w.wait(5)
    finally:
        if w.poll() is None:
            w.kill()
    ids = [r["trade_id"] for r in read(p)]
    assert len(ids) >= 200 and ids == list(range(1, len(ids) + 1))    # no hole, no garbage
    j = BinaryJournal(p)
    j.write("start")
    j.close()
    recs = list(read(p))
    assert recs[-1]["k"] == "start" and len(recs) == len(ids) + 1


def test_rebuild_reads_the_binary_journal_as_it_reads_json_lines(tmp_path):
    from pipeline.gateway.journal import Journal
    from pipeline.gateway import journal as jmod

    b = BinaryJournal(tmp_path / "j.bin")
    b.write("start", pid=1)
    order(b, 1)
    b.write("state", cid="pl1.a.1", frm="NEW", to="ACK", why="accepted", order_id=5, filled=0)
    b.write("trading", state="REDUCING", frm="ACTIVE", why="test")
    b.close()
    got = [{k: v for k, v in r.items() if k not in ("t", "m")} for r in read(tmp_path / "j.bin")]
    j = Journal(tmp_path / "j.jsonl")
    for r in got:
        j.write(r["k"], **{k: v for k, v in r.items() if k != "k"})
    j.close()
    back = [{k: v for k, v in r.items() if k not in ("t", "m")}
            for r in jmod.read(tmp_path / "j.jsonl")]
    assert back == got
    assert got[2] == {"k": "order", "cid": "pl1.a.1", "symbol": "BTCUSDT", "symbol_id": 7,
                      "side": 1, "order_type": 1, "tif": 1, "qty": 0.25, "price": 100.5,
                      "strategy": 1, "epoch": 10, "seq": 1}
    assert list(binjournal.read_any(tmp_path / "j.bin")) and \
        list(binjournal.read_any(tmp_path / "j.jsonl"))


def test_a_market_order_has_no_price_and_a_file_that_is_not_a_journal_is_refused(tmp_path):
    b = BinaryJournal(tmp_path / "j.bin")
    order(b, 1, price=math.nan)
    b.close()
    assert next(r for r in read(tmp_path / "j.bin") if r["k"] == "order")["price"] is None
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"x" * (REC * 2))
    with pytest.raises(ValueError, match="not a binary gateway journal"):
        BinaryJournal(bad)


def test_export_cli_writes_json_lines_for_people(tmp_path):
    state = tmp_path / "st"
    b = BinaryJournal(state / "journal.bin")
    b.write("start", pid=1)
    order(b, 1)
    b.close()
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[gateway]\nstate_dir = "{state}"\njournal_format = "binary"\n')
    out = tmp_path / "out.jsonl"
    r = subprocess.run([sys.executable, "-m", "pipeline.gateway", "journal", "--config", str(cfg),
                        "--out", str(out)], cwd=str(REPO), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["k"] for x in lines] == ["start", "signal", "order", "request"]
    r = subprocess.run([sys.executable, "-m", "pipeline.gateway", "journal", "--help"],
                       cwd=str(REPO), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "journal" in r.stdout and "JSON lines" in r.stdout
    assert orjson.loads(orjson.dumps(lines[0])) == lines[0]


def _minor_faults() -> int:
    import resource
    return resource.getrusage(resource.RUSAGE_THREAD).ru_minflt


def test_prefault_takes_the_write_fault_after_msync_off_the_next_order_record(tmp_path):
    """After an msync the page of the next ORDER record is write-protected again (ext4, xfs: the
    next store faults into the filesystem, ~10-30 us, and that store is the compiled order path's,
    between signed and on the wire). The loop's prefault takes that fault in its housekeeping:
    the record written after it faults no more, and no byte of the file changed."""
    j = BinaryJournal(tmp_path / "j.bin", fsync="interval")
    try:
        w = j.w
        kw = dict(t=1, m=2, cid=b"pl1.a.1", symbol=b"BTCUSDT", symbol_id=7, strategy=1,
                  epoch=10, sig_seq=1, side=1, order_type=1, tif=1, qty=0.25, price=100.5,
                  trigger_mono=1, created_mono=2, recv_mono=3, ts_ms=1, attempt=1, via=1)

        def faults_of_writes(prefault: bool) -> int:
            total = 0
            for _ in range(20):
                w.write_order(**kw)
                w.sync()
                if prefault:
                    before = j._mm[:]
                    j.prefault()
                    assert j._mm[:] == before          # nothing written by the prefault
                a = _minor_faults()
                w.write_order(**kw)
                total += _minor_faults() - a
                w.sync()
            return total

        without = faults_of_writes(False)
        if without < 10:
            pytest.skip(f"this filesystem does not write-protect pages after msync "
                        f"({without} faults in 20 writes)")
        assert faults_of_writes(True) <= 1
        j.flush()
    finally:
        j.close()
    assert kinds(tmp_path / "j.bin").count("request") == 80     # every record reads back


def _mapped_rss_kb(path) -> int:
    """Resident KiB of this process's mappings of `path` (/proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5:         # a mapping's header line
            inside = line.endswith(str(path))
        elif inside and line.startswith("Rss:"):
            total += int(head[1])
    return total


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs /proc/self/smaps")
def test_reopening_a_long_journal_does_not_keep_its_pages_resident(tmp_path):
    """The scan at open reads every record; the mapping does not keep them (RSS stays small),
    and everything still reads back and appends after them (bounded memory, issue 17)."""
    p = tmp_path / "j.bin"
    j = BinaryJournal(p, fsync="never", chunk_records=40_000)
    for i in range(30_000):                                    # ~7.5 MB of records
        order(j, i)
    j.close()
    j = BinaryJournal(p, fsync="never", chunk_records=40_000)
    try:
        assert _mapped_rss_kb(p) < 1024, "the journal's pages stayed resident after the scan"
        order(j, 30_000)
        j.write("stop")
    finally:
        j.close()
    recs = [r for r in read(p) if r["k"] == "order"]
    assert len(recs) == 30_001 and recs[-1]["cid"] == f"pl1.a.{30_000:x}"
