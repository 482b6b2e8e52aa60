# cython: language_level=3
"""Exposes the C layout of ext/records.pxd so tests can compare it with pipeline/records.py."""
from pipeline._ext.records cimport TickRecord, SignalRecord, RingHeader, JournalOrder, OrderEventRecord
from pipeline._ext.records cimport (JOURNAL_RECORD_SIZE, JOURNAL_PAYLOAD_OFFSET, JOURNAL_KIND_ORDER,
                                     JOURNAL_KIND_TEXT, JOURNAL_VIA_REST, JOURNAL_VIA_WS_API)

cdef TickRecord _t
cdef SignalRecord _s
cdef RingHeader _h
cdef JournalOrder _j


cdef inline Py_ssize_t _off(void *field, void *base):
    return <char *>field - <char *>base


def tick_layout():
    """{field: offset} of TickRecord plus '__size__'."""
    return {
        "seq": _off(&_t.seq, &_t),
        "symbol": _off(&_t.symbol, &_t),
        "venue": _off(&_t.venue, &_t),
        "flags": _off(&_t.flags, &_t),
        "kind": _off(&_t.kind, &_t),
        "side": _off(&_t.side, &_t),
        "exch_ts": _off(&_t.exch_ts, &_t),
        "local_ts": _off(&_t.local_ts, &_t),
        "mono_ts": _off(&_t.mono_ts, &_t),
        "price": _off(&_t.price, &_t),
        "qty": _off(&_t.qty, &_t),
        "id": _off(&_t.id, &_t),
        "__size__": sizeof(TickRecord),
    }


def signal_layout():
    """{field: offset} of SignalRecord plus '__size__'."""
    return {
        "epoch": _off(&_s.epoch, &_s),
        "seq": _off(&_s.seq, &_s),
        "trigger_seq": _off(&_s.trigger_seq, &_s),
        "trigger_mono": _off(&_s.trigger_mono, &_s),
        "created_mono": _off(&_s.created_mono, &_s),
        "ttl_ns": _off(&_s.ttl_ns, &_s),
        "qty": _off(&_s.qty, &_s),
        "price": _off(&_s.price, &_s),
        "strategy_id": _off(&_s.strategy_id, &_s),
        "symbol": _off(&_s.symbol, &_s),
        "venue": _off(&_s.venue, &_s),
        "side": _off(&_s.side, &_s),
        "order_type": _off(&_s.order_type, &_s),
        "tif": _off(&_s.tif, &_s),
        "version": _off(&_s.version, &_s),
        "action": _off(&_s.action, &_s),
        "replace_back": _off(&_s.replace_back, &_s),
        "__size__": sizeof(SignalRecord),
    }


def order_event_layout():
    """{field: offset} of OrderEventRecord plus '__size__'."""
    cdef OrderEventRecord e
    return {
        "seq": _off(&e.seq, &e), "epoch": _off(&e.epoch, &e),
        "client_seq": _off(&e.client_seq, &e), "ts_ns": _off(&e.ts_ns, &e),
        "mono_ns": _off(&e.mono_ns, &e), "price": _off(&e.price, &e), "qty": _off(&e.qty, &e),
        "fee": _off(&e.fee, &e), "filled": _off(&e.filled, &e),
        "remaining": _off(&e.remaining, &e), "trade_id": _off(&e.trade_id, &e),
        "order_id": _off(&e.order_id, &e), "strategy_id": _off(&e.strategy_id, &e),
        "symbol": _off(&e.symbol, &e), "venue_code": _off(&e.venue_code, &e),
        "kind": _off(&e.kind, &e), "side": _off(&e.side, &e), "maker": _off(&e.maker, &e),
        "reason_code": _off(&e.reason_code, &e), "fee_asset": _off(&e.fee_asset, &e),
        "reason": _off(&e.reason, &e),
        "__size__": sizeof(OrderEventRecord),
    }


def ring_header_layout():
    """{field: offset} of RingHeader plus '__size__'."""
    return {
        "magic": _off(&_h.magic, &_h),
        "version": _off(&_h.version, &_h),
        "record_size": _off(&_h.record_size, &_h),
        "capacity": _off(&_h.capacity, &_h),
        "owner_pid": _off(&_h.owner_pid, &_h),
        "writer_pid": _off(&_h.writer_pid, &_h),
        "epoch_ns": _off(&_h.epoch_ns, &_h),
        "created_mono": _off(&_h.created_mono, &_h),
        "writer_start_ns": _off(&_h.writer_start_ns, &_h),
        "cursor": _off(&_h.cursor, &_h),
        "tag": _off(&_h.tag, &_h),
        "resync_req": _off(&_h.resync_req, &_h),
        "_pad1": _off(&_h._pad1, &_h),
        "heartbeat_mono": _off(&_h.heartbeat_mono, &_h),
        "writer_closed": _off(&_h.writer_closed, &_h),
        "_pad2": _off(&_h._pad2, &_h),
        "futex_word": _off(&_h.futex_word, &_h),
        "waiters": _off(&_h.waiters, &_h),
        "_pad3": _off(&_h._pad3, &_h),
        "__size__": sizeof(RingHeader),
    }


def kind_values():
    """The KIND_* constants of the .pxd by name (compared with records.Kind)."""
    return {
        "NONE": KIND_NONE, "TRADE": KIND_TRADE, "AGG_TRADE": KIND_AGG_TRADE,
        "BID": KIND_BID, "ASK": KIND_ASK, "BOOK_BID": KIND_BOOK_BID, "BOOK_ASK": KIND_BOOK_ASK,
        "BOOK_CLEAR": KIND_BOOK_CLEAR, "GAP": KIND_GAP, "RESYNC_START": KIND_RESYNC_START,
        "RESYNC_DONE": KIND_RESYNC_DONE, "STALE": KIND_STALE, "HEARTBEAT": KIND_HEARTBEAT,
    }

def journal_order_layout():
    """{field: offset} of JournalOrder (its head flattened) plus '__size__'."""
    return {
        "seq": _off(&_j.head.seq, &_j),
        "t": _off(&_j.head.t, &_j),
        "m": _off(&_j.head.m, &_j),
        "kind": _off(&_j.head.kind, &_j),
        "span": _off(&_j.head.span, &_j),
        "length": _off(&_j.head.length, &_j),
        "crc": _off(&_j.head.crc, &_j),
        "_hpad": _off(&_j.head._hpad, &_j),
        "epoch": _off(&_j.epoch, &_j),
        "sig_seq": _off(&_j.sig_seq, &_j),
        "qty": _off(&_j.qty, &_j),
        "price": _off(&_j.price, &_j),
        "trigger_mono": _off(&_j.trigger_mono, &_j),
        "created_mono": _off(&_j.created_mono, &_j),
        "recv_mono": _off(&_j.recv_mono, &_j),
        "ts_ms": _off(&_j.ts_ms, &_j),
        "symbol_id": _off(&_j.symbol_id, &_j),
        "strategy": _off(&_j.strategy, &_j),
        "side": _off(&_j.side, &_j),
        "order_type": _off(&_j.order_type, &_j),
        "tif": _off(&_j.tif, &_j),
        "attempt": _off(&_j.attempt, &_j),
        "via": _off(&_j.via, &_j),
        "cid_len": _off(&_j.cid_len, &_j),
        "symbol_len": _off(&_j.symbol_len, &_j),
        "_opad": _off(&_j._opad, &_j),
        "cid": _off(&_j.cid, &_j),
        "symbol": _off(&_j.symbol, &_j),
        "_rest": _off(&_j._rest, &_j),
        "__size__": sizeof(JournalOrder),
    }


def journal_constants():
    return {"record_size": JOURNAL_RECORD_SIZE, "payload_offset": JOURNAL_PAYLOAD_OFFSET,
            "ORDER": JOURNAL_KIND_ORDER, "TEXT": JOURNAL_KIND_TEXT, "REST": JOURNAL_VIA_REST,
            "WS_API": JOURNAL_VIA_WS_API}
