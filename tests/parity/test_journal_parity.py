"""The binary journal's writer (ext/journal.pyx) vs its pure-Python twin
(pipeline/gateway/journal_py.py) on random record sequences (hypothesis): byte-identical files,
identical positions after every step, identical "no room" answers; and what one writes, the reader
gives back field for field."""
from __future__ import annotations

import math
import mmap
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.gateway import binjournal, journal_py
from pipeline.records import JOURNAL_RECORD_SIZE as REC

Kernel = binjournal.kernel_writer()
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])
i64 = st.integers(-2**63, 2**63 - 1)
ascii_id = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789.-_", max_size=40)

orders = st.fixed_dictionaries({
    "t": i64, "m": i64,
    "cid": ascii_id.map(str.encode),
    "symbol": st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", max_size=24).map(str.encode),
    "symbol_id": st.integers(0, 2**32 - 1), "strategy": st.integers(0, 2**32 - 1),
    "epoch": i64, "sig_seq": i64, "side": st.sampled_from([1, -1]),
    "order_type": st.integers(0, 255), "tif": st.integers(0, 255),
    "qty": st.floats(allow_nan=False), "price": st.floats(allow_nan=True),
    "trigger_mono": i64, "created_mono": i64, "recv_mono": i64, "ts_ms": i64,
    "attempt": st.integers(0, 255), "via": st.sampled_from([1, 2]),
})
texts = st.tuples(i64, i64, st.binary(max_size=1200))
ops = st.lists(st.one_of(orders.map(lambda o: ("order", o)), texts.map(lambda t: ("text", t)),
                         st.integers(-1, 48).map(lambda n: ("prefault", n))),
               max_size=30)


def mapped(path, slots: int) -> mmap.mmap:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    os.ftruncate(fd, REC * (1 + slots))
    mm = mmap.mmap(fd, 0)
    os.close(fd)
    return mm


def apply(w, op):
    kind, arg = op
    if kind == "order":
        return w.write_order(**arg)
    if kind == "prefault":          # the pages touched; no byte changes (a[:] == b[:] after it)
        return w.prefault(arg)
    return w.write_text(*arg)


@SETTINGS
@given(ops=ops, slots=st.integers(1, 40), start_seq=st.integers(1, 2**40))
def test_kernel_and_twin_write_identical_bytes(tmp_path, ops, slots, start_seq):
    a, b = mapped(tmp_path / "k.bin", slots), mapped(tmp_path / "p.bin", slots)
    try:
        k, p = Kernel(a, 0, start_seq), journal_py.JournalWriter(b, 0, start_seq)
        for op in ops:
            assert apply(k, op) == apply(p, op)
            assert (k.next_slot, k.next_seq, k.records) == (p.next_slot, p.next_seq, p.records)
            assert a[:] == b[:]
        k.sync()
        p.sync()
        assert k.synced_slot == p.synced_slot == k.next_slot
        k.detach()
        p.detach()
    finally:
        a.close()
        b.close()


@SETTINGS
@given(ops=ops)
def test_what_the_kernel_writes_the_reader_gives_back(tmp_path, ops):
    path = tmp_path / "r.bin"
    mm = mapped(path, 400)
    mm[0:REC] = binjournal._file_header(1)
    w = Kernel(mm, 0, 1)
    expected = []
    for op in ops:
        kind, arg = op
        if kind == "prefault":
            w.prefault(arg)
            continue
        assert apply(w, op)
        if kind == "text":
            expected.append(("text", arg))
        else:
            expected.append(("order", arg))
    w.detach()
    mm.close()
    got = [data for _, _, data in binjournal.scan(path.read_bytes(), 400)]
    assert len(got) == len(expected)
    for data, (kind, arg) in zip(got, expected):
        head = int.from_bytes(data[8:16], "little", signed=True)
        if kind == "text":
            t, m, payload = arg
            n = int.from_bytes(data[28:32], "little")
            assert (head, n, data[40:40 + n]) == (t, len(payload), payload)
            continue
        recs = binjournal.decode(data)
        req = recs[-1]
        assert req["k"] == "request" and req["cid"] == arg["cid"].decode()
        assert req["attempt"] == arg["attempt"] and req["ts_ms"] == arg["ts_ms"]
        assert req["t"] == arg["t"] and req["m"] == arg["m"]
        if arg["attempt"] <= 1:
            sig, order = recs[0], recs[1]
            assert (sig["strategy"], sig["epoch"], sig["seq"]) == (arg["strategy"], arg["epoch"],
                                                                  arg["sig_seq"])
            assert order["symbol"] == arg["symbol"].decode()
            assert (order["side"], order["order_type"], order["tif"]) == (
                arg["side"], arg["order_type"], arg["tif"])
            assert order["qty"] == arg["qty"]
            if math.isnan(arg["price"]):
                assert order["price"] is None
            else:
                assert order["price"] == arg["price"]
