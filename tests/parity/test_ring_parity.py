"""Cython kernel vs pure-Python twin: identical records and identical counts for any sequence of
publishes and polls (hypothesis), and the two interoperate on one segment."""
import numpy as np
from hypothesis import given, settings, strategies as st

from pipeline.bus.probe import derived_records
from pipeline.bus.ring import TickRing

CMP_FIELDS = [f for f in derived_records(0, 1).dtype.names if f != "mono_ts"]

ops = st.lists(
    st.one_of(
        st.tuples(st.just("publish"), st.integers(1, 40)),
        st.tuples(st.just("array"), st.integers(0, 70)),
        st.tuples(st.just("poll"), st.integers(2, 50)),
    ),
    min_size=1, max_size=30,
)


def _same(a, b):
    assert len(a) == len(b)
    for f in CMP_FIELDS:
        assert np.array_equal(a[f], b[f]), f


@settings(max_examples=60, deadline=None)
@given(cap_log2=st.integers(1, 5), script=ops)
def test_same_records_and_counts(cap_log2, script):
    from conftest import unique_shm_name
    cap = 1 << cap_log2
    rings = [TickRing.create(f"{unique_shm_name()}-{b}", cap, backend=b)
             for b in ("cython", "python")]
    try:
        writers = [r.writer() for r in rings]
        readers = [r.reader(start=0, max_batch=64) for r in rings]
        k = 0
        for op, n in script:
            if op == "publish":
                for w in writers:
                    for j in range(k, k + n):
                        w.publish(1, 2, j & 0xFF, 1, 0, j + 13, j - 7, float(j), 1.5, j)
                k += n
            elif op == "array":
                arr = derived_records(k, n)
                for w in writers:
                    w.publish_array(arr)
                k += n
            else:
                a, b = (r.poll(max_batch=n) for r in readers)
                _same(a, b)
        tail = [r.poll(max_batch=1 << 12) for r in readers]
        _same(*tail)
        assert readers[0].stats() == readers[1].stats()
        assert rings[0].cursor == rings[1].cursor == k
    finally:
        for r in rings:
            r.close()


def test_python_writer_cython_reader_and_back(shm_name):
    with TickRing.create(shm_name, 16, backend="python") as ring:
        other = TickRing.attach(shm_name, backend="cython")
        r_c = other.reader(start=0)
        r_py = ring.reader(start=0)
        ring.writer().publish_array(derived_records(0, 20))
        a, b = r_c.poll(), r_py.poll()
        _same(a, b)
        assert a["kind"][0] == 16 and a["id"][0] == 19     # both lapped: all but the newest
        assert r_c.stats() == r_py.stats()
        del r_c
        other.close()
