"""The one schema: numpy dtypes and ext/records.pxd agree field by field."""
import numpy as np

from pipeline import _native
from pipeline.records import (JOURNAL_ORDER_DTYPE, JOURNAL_PAYLOAD_OFFSET, JOURNAL_RECORD_SIZE,
                              JOURNAL_TEXT_DTYPE, RING_HEADER_DTYPE, SIGNAL_DTYPE, SIGNAL_FIELDS,
                              SIGNAL_STRUCT, TICK_DTYPE, JournalKind, JournalVia, Kind, make_tick,
                              struct_format)

layout = _native.load("records")


def _offsets(dtype):
    return {name: dtype.fields[name][1] for name in dtype.names}


def test_tick_record_is_one_cache_line():
    assert TICK_DTYPE.itemsize == 64
    assert TICK_DTYPE.isalignedstruct


def test_tick_offsets_match_pxd():
    c = layout.tick_layout()
    assert c.pop("__size__") == TICK_DTYPE.itemsize
    assert c == _offsets(TICK_DTYPE)


def test_signal_offsets_match_pxd():
    c = layout.signal_layout()
    assert c.pop("__size__") == SIGNAL_DTYPE.itemsize
    assert c == _offsets(SIGNAL_DTYPE)


def test_signal_struct_is_built_from_the_dtype_and_packs_the_same_bytes():
    rec = np.zeros(1, dtype=SIGNAL_DTYPE)
    values = (7, 8, 9, 10, 11, 12, 0.25, 50_000.5, 3, 4, 2, -1, 1, 1, 1, 2, 300)
    for name, v in zip(SIGNAL_FIELDS, values):
        rec[name] = v
    assert SIGNAL_STRUCT.pack(*values) == rec.tobytes()
    assert SIGNAL_STRUCT.unpack(rec.tobytes()) == values
    assert SIGNAL_FIELDS == tuple(n for n in SIGNAL_DTYPE.names if n != "_pad")
    # every field at its dtype offset: the tick record (no padding) gives the same bytes too
    t = make_tick(Kind.TRADE, seq=1, symbol=2, venue=3, side=-1, price=1.5, qty=2.5, id=9)
    import struct
    assert struct.Struct(struct_format(TICK_DTYPE)).unpack(t.tobytes()) == tuple(t[0].tolist())


def test_ring_header_offsets_match_pxd():
    c = layout.ring_header_layout()
    assert c.pop("__size__") == RING_HEADER_DTYPE.itemsize == 256
    assert c == _offsets(RING_HEADER_DTYPE)
    # hot words on their own cache lines
    assert c["cursor"] % 64 == 0 and c["heartbeat_mono"] % 64 == 0 and c["futex_word"] % 64 == 0


def test_kind_constants_match_pxd():
    assert layout.kind_values() == {k.name: int(k) for k in Kind}


def test_make_tick_round_trip():
    r = make_tick(Kind.TRADE, seq=7, venue=2, symbol=3, side=-1, price=1.5, qty=2.0, id=99)
    assert r.dtype == TICK_DTYPE and len(r) == 1
    assert (int(r["seq"][0]), int(r["kind"][0]), int(r["side"][0]), int(r["id"][0])) == (7, 1, -1, 99)
    assert np.isclose(r["price"][0], 1.5)


def test_journal_order_record_offsets_match_pxd():
    c = layout.journal_order_layout()
    assert c.pop("__size__") == JOURNAL_ORDER_DTYPE.itemsize == JOURNAL_RECORD_SIZE
    assert c == _offsets(JOURNAL_ORDER_DTYPE)


def test_journal_text_record_shares_the_head_and_constants_match_pxd():
    head = {n: o for n, o in _offsets(JOURNAL_TEXT_DTYPE).items() if n != "payload"}
    assert head == {n: o for n, o in _offsets(JOURNAL_ORDER_DTYPE).items() if n in head}
    assert JOURNAL_TEXT_DTYPE.fields["payload"][1] == JOURNAL_PAYLOAD_OFFSET
    assert layout.journal_constants() == {
        "record_size": JOURNAL_RECORD_SIZE, "payload_offset": JOURNAL_PAYLOAD_OFFSET,
        "ORDER": int(JournalKind.ORDER), "TEXT": int(JournalKind.TEXT),
        "REST": int(JournalVia.REST), "WS_API": int(JournalVia.WS_API)}


def test_order_event_offsets_match_pxd_and_the_struct_packs_the_same_bytes():
    from pipeline.records import (ORDER_EVENT_BODY_STRUCT, ORDER_EVENT_DTYPE, ORDER_EVENT_FIELDS,
                                  ORDER_EVENT_STRUCT, RING_RECORD_DTYPES)
    c = layout.order_event_layout()
    assert c.pop("__size__") == ORDER_EVENT_DTYPE.itemsize == 160
    assert c == _offsets(ORDER_EVENT_DTYPE)
    assert RING_RECORD_DTYPES[160] is ORDER_EVENT_DTYPE     # a size of its own among ring records
    rec = np.zeros(1, dtype=ORDER_EVENT_DTYPE)
    values = (5, 6, 7, 8, 9, 1.5, 2.5, 0.01, 2.5, 0.0, 11, 12, 3, 4, -2010, 2, -1, 1, 9,
              b"USDT", b"MIN_NOTIONAL")
    for name, v in zip(ORDER_EVENT_FIELDS, values):
        rec[name] = v
    assert ORDER_EVENT_STRUCT.pack(*values) == rec.tobytes()
    assert ORDER_EVENT_BODY_STRUCT.pack(*values[1:]) == rec.tobytes()[8:]
