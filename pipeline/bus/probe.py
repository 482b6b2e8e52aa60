"""Bus probe: a paced writer and verifying readers, each its own pinned process.

Used by the bus demo (scripts/bus_demo.py), the benchmark (scripts/bench_bus.py) and the stress
tests. Every record the writer publishes carries fields derived from its sequence k (in the manner
of the Disruptor's perf tests): id = k, exch_ts = k + 13, local_ts = k - 7, price = k,
qty = a multiplicative hash of k. A reader checks every record it receives against them (a torn or
misplaced record is an invariant violation) and checks that sequences are contiguous except across
GAP records whose lost count equals the jump — so every record a reader did not see is in its lost
count, or the reader reports `lost_unreported`.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import queue
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from pipeline.records import TICK_DTYPE, Kind

STORE_RECORDS = 1 << 19   # records a reader keeps before verifying them in bulk (32 MiB)


def checksum(k: np.ndarray | int):
    """A float64-exact 32-bit multiplicative hash of the sequence."""
    return ((np.asarray(k, dtype=np.uint64) * np.uint64(2654435761)) & np.uint64(0xFFFFFFFF)
            ).astype(np.float64)


def derived_records(first: int, n: int) -> np.ndarray:
    """n TRADE records for sequences first .. first+n-1 with the derived fields."""
    k = np.arange(first, first + n, dtype=np.int64)
    a = np.zeros(n, dtype=TICK_DTYPE)
    a["kind"] = Kind.TRADE
    a["id"] = k
    a["exch_ts"] = k + 13
    a["local_ts"] = k - 7
    a["price"] = k
    a["qty"] = checksum(k)
    a["symbol"] = k & 0xFFFF
    return a


@dataclass
class VerifyState:
    """A reader's running verification of the derived stream."""

    expect: int = 0               # the next sequence the reader should see
    received: int = 0
    lost_reported: int = 0        # sum of GAP ids
    gaps: int = 0
    violations: int = 0           # torn / misplaced records delivered
    lost_unreported: int = 0      # sequence jumps not covered by a GAP record

    def check(self, batch: np.ndarray) -> None:
        if len(batch) == 0:
            return
        kinds = batch["kind"]
        gap_idx = np.flatnonzero(kinds == Kind.GAP)
        # split at GAP records: each GAP moves `expect` forward by its lost count
        start = 0
        for gi in list(gap_idx) + [len(batch)]:
            seg = batch[start:gi]
            if len(seg):
                self._check_segment(seg)
            if gi < len(batch):
                g = batch[gi]
                if int(g["seq"]) != self.expect:
                    self.lost_unreported += abs(int(g["seq"]) - self.expect)
                    self.expect = int(g["seq"])
                self.lost_reported += int(g["id"])
                self.gaps += 1
                self.expect += int(g["id"])
            start = gi + 1

    def _check_segment(self, seg: np.ndarray) -> None:
        seq = seg["seq"]
        first = int(seq[0])
        if first != self.expect:
            # records vanished without a GAP (or reappeared): count them, resynchronise
            self.lost_unreported += abs(first - self.expect)
        k = np.arange(first, first + len(seg), dtype=np.int64)
        bad = ((seq != k) | (seg["id"] != k) | (seg["exch_ts"] != k + 13)
               | (seg["local_ts"] != k - 7) | (seg["price"] != k) | (seg["qty"] != checksum(k))
               | (seg["kind"] != Kind.TRADE))
        self.violations += int(np.count_nonzero(bad))
        self.received += len(seg)
        self.expect = first + len(seg)


@dataclass
class ReaderResult:
    name: str
    wait: str
    core: int | None
    verify: dict
    reader_counters: dict
    seconds: float
    latency_ns: list[int] = field(default_factory=list)   # percentiles, see LATENCY_PCTS

    @property
    def lost_unreported_total(self) -> int:
        return self.verify["lost_unreported"]


LATENCY_PCTS = (50, 90, 99, 99.9, 100)


def percentiles(samples: np.ndarray) -> list[int]:
    if len(samples) == 0:
        return [0] * len(LATENCY_PCTS)
    return [int(x) for x in np.percentile(samples, LATENCY_PCTS)]


def pin(core: int | None) -> None:
    if core is not None:
        os.sched_setaffinity(0, {core})


def reader_main(ring_name: str, name: str, wait: str, core: int | None, max_batch: int,
                slow_ns: int, measure: bool, ready, results, backend: str = "cython") -> None:
    """Read until the writer closes and the ring is drained; verify everything; report."""
    from pipeline.bus.ring import TickRing
    pin(core)
    ring = TickRing.attach(ring_name, backend=backend, timeout=5.0)
    reader = ring.reader(wait=wait, max_batch=max_batch, start=0)
    core_ = reader.core
    out = np.empty(max_batch, dtype=TICK_DTYPE)
    # Received records are kept and verified in bulk (when the store fills and at the end), so
    # verification never delays the next wake-up and so never inflates the measured latency.
    store = np.empty(STORE_RECORDS + max_batch, dtype=TICK_DTYPE)
    arrival = np.empty(len(store) if measure else 0, dtype=np.int64)
    lat_chunks: list[np.ndarray] = []
    nstore = 0
    vs = VerifyState()
    perf = time.perf_counter_ns
    poll_into = core_.poll_into
    wait_ = core_.wait

    def flush():
        batch = store[:nstore]
        vs.check(batch)
        if measure:
            data = batch["kind"] != Kind.GAP
            lat_chunks.append((arrival[:nstore] - batch["mono_ts"])[data])

    ready.set()
    t0 = time.perf_counter()
    while True:
        if not wait_(100_000_000):
            if ring.writer_closed and core_.available() <= 0:
                break
            continue
        n = poll_into(out)
        if measure:
            arrival[nstore:nstore + n] = perf()
        store[nstore:nstore + n] = out[:n]
        nstore += n
        if nstore >= STORE_RECORDS:
            flush()
            nstore = 0
        if slow_ns:
            time.sleep(slow_ns / 1e9)
    flush()
    seconds = time.perf_counter() - t0
    samples = np.concatenate(lat_chunks) if lat_chunks else np.empty(0, dtype=np.int64)
    res = ReaderResult(name, wait, core, asdict(vs), reader.stats(), seconds, percentiles(samples))
    del reader, core_, poll_into, wait_
    ring.close()
    results.put(asdict(res))


def writer_main(ring_name: str, core: int | None, total: int, rate: int, batch: int,
                n_readers: int, ready_events, results, backend: str = "cython",
                seconds: float = 0.0) -> None:
    """Publish `total` derived records (or for `seconds` if total == 0) at `rate` records/s
    (0 = as fast as possible, in batches of `batch`), then close the writer."""
    from pipeline.bus.ring import TickRing
    pin(core)
    ring = TickRing.attach(ring_name, backend=backend, timeout=5.0)
    w = ring.writer()
    for ev in ready_events:
        ev.wait(30)
    perf = time.perf_counter_ns
    t0 = perf()
    deadline = t0 + int(seconds * 1e9) if seconds else None
    k = w.next_seq
    published = 0
    if rate <= 0:
        block = derived_records(k, batch)
        while (total and published < total) or (deadline and perf() < deadline):
            n = min(batch, total - published) if total else batch
            blk = block[:n]
            # derived fields shift by the block's first sequence: update in place, vectorized
            kk = np.arange(k, k + n, dtype=np.int64)
            blk["id"] = kk
            blk["exch_ts"] = kk + 13
            blk["local_ts"] = kk - 7
            blk["price"] = kk
            blk["qty"] = checksum(kk)
            blk["symbol"] = kk & 0xFFFF
            w.publish_array(blk)
            k += n
            published += n
    else:
        period = 1_000_000_000 / rate
        publish = w.publish
        trade = int(Kind.TRADE)
        i = 0
        while (total and published < total) or (deadline and perf() < deadline):
            target = t0 + int(i * period)
            while perf() < target:
                pass
            publish(trade, 0, k & 0xFFFF, 0, 0, k + 13, k - 7, float(k),
                    float((k * 2654435761) & 0xFFFFFFFF), k)
            k += 1
            i += 1
            published += 1
    elapsed = (perf() - t0) / 1e9
    w.heartbeat()
    w.close()
    ring.close()
    results.put({"name": "writer", "published": published, "seconds": elapsed,
                 "rate": published / elapsed if elapsed else 0.0})


def run(ring_name: str, capacity: int, readers: list[dict], *, total: int = 0, rate: int = 0,
        seconds: float = 0.0, batch: int = 1024, writer_core: int | None = None,
        backend: str = "cython", timeout: float = 300.0) -> dict:
    """Create a ring, run one writer and the given readers as separate spawned processes, and
    return {"writer": {...}, "readers": [...]}. Each reader dict: name, wait, core, max_batch,
    slow_ns, measure."""
    from pipeline.bus.ring import TickRing
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    ring = TickRing.create(ring_name, capacity, backend=backend)
    procs = []
    try:
        events = []
        for r in readers:
            ev = ctx.Event()
            events.append(ev)
            p = ctx.Process(target=reader_main, name=r["name"], daemon=True, args=(
                ring_name, r["name"], r.get("wait", "busy_spin"), r.get("core"),
                r.get("max_batch", 4096), r.get("slow_ns", 0), r.get("measure", False), ev,
                results, backend))
            p.start()
            procs.append(p)
        w = ctx.Process(target=writer_main, name="writer", daemon=True, args=(
            ring_name, writer_core, total, rate, batch, len(readers), events, results, backend,
            seconds))
        w.start()
        procs.append(w)
        out = {"writer": None, "readers": []}
        deadline = time.monotonic() + timeout
        pending = len(procs)
        while pending:
            try:
                res = results.get(timeout=0.2)
            except queue.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"probe process {dead[0].name} died "
                                       f"(exit code {dead[0].exitcode})") from None
                if time.monotonic() > deadline:
                    raise TimeoutError(f"bus probe did not finish within {timeout} s") from None
                continue
            pending -= 1
            if res["name"] == "writer":
                out["writer"] = res
            else:
                out["readers"].append(res)
        for p in procs:
            p.join(timeout=10)
        return out
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(5)
        ring.close()
