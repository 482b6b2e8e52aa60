"""Hypothesis: the Binance routing/parsers never raise on arbitrary decoded JSON and give either
records, a depth diff, a control word or an error kind. BookRebuilder semantics."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.collector.book import BookRebuilder
from pipeline.records import (FLAG_LAST_IN_MSG, FLAG_SNAPSHOT, TICK_DTYPE, Kind, make_tick)
from pipeline.venues.binance import market as B
from tests.collector_helpers import BSYMS

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(),
                    st.text(max_size=12), st.sampled_from(["1.5", "0.001", "BTCUSDT", "trade",
                                                           "aggTrade", "depthUpdate"]))
json_values = st.recursive(scalars, lambda c: st.lists(c, max_size=4)
                           | st.dictionaries(st.text(max_size=3), c, max_size=5), max_leaves=12)
keys = st.sampled_from(list("eEstpqmaUubBA") + ["T", "M", "stream", "data", "result", "id"])
messages = st.dictionaries(keys, json_values, max_size=10)


@settings(max_examples=150, deadline=None)
@given(msg=st.one_of(messages, json_values, st.builds(lambda d: {"stream": "x", "data": d},
                                                       messages)))
def test_route_never_raises(msg):
    r = B.route(msg, BSYMS, 1)
    outcomes = [r.records is not None, r.depth is not None, r.control is not None,
                r.error is not None]
    assert sum(outcomes) == 1
    if r.records is not None:
        assert r.records.dtype == TICK_DTYPE and len(r.records) in (1, 2)
        assert np.isfinite(r.records["price"]).all()
    if r.depth is not None:
        assert r.depth.first_id <= r.depth.last_id


def rec(kind, sym=1, price=0.0, qty=0.0, flags=0, id=0):
    return make_tick(kind, venue=2, symbol=sym, price=price, qty=qty, flags=flags, id=id)


def test_book_rebuilder_validity_and_top():
    rb = BookRebuilder()
    batch = np.concatenate([
        rec(Kind.RESYNC_START),
        rec(Kind.BOOK_CLEAR, flags=FLAG_SNAPSHOT, id=10),
        rec(Kind.BOOK_BID, price=10.0, qty=1.0, flags=FLAG_SNAPSHOT, id=10),
        rec(Kind.BOOK_BID, price=9.0, qty=2.0, flags=FLAG_SNAPSHOT, id=10),
        rec(Kind.BOOK_ASK, price=11.0, qty=3.0, flags=FLAG_SNAPSHOT | FLAG_LAST_IN_MSG, id=10),
    ])
    rb.apply(batch)
    assert not rb.valid(2, 1)
    rb.apply(np.concatenate([rec(Kind.RESYNC_DONE, id=10),
                             rec(Kind.BOOK_BID, price=10.0, qty=0.0, id=11),
                             rec(Kind.BOOK_ASK, price=10.5, qty=1.0, flags=FLAG_LAST_IN_MSG, id=11)]))
    assert rb.valid(2, 1) and rb.last_id[(2, 1)] == 11
    assert rb.top(2, 1, 5) == ([(9.0, 2.0)], [(10.5, 1.0), (11.0, 3.0)])
    rb.apply(rec(Kind.GAP, id=3))                   # venue sequence break for symbol 1
    assert not rb.valid(2, 1)
    rb.apply(rec(Kind.RESYNC_DONE, id=20))
    assert rb.valid(2, 1)
    rb.apply(make_tick(Kind.GAP, id=100))           # this reader was lapped: every book suspect
    assert not rb.valid(2, 1)
