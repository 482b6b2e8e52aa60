# Table of contents of ext/orderpath.pyx — the gateway's hot path from a signal record to the
# request's bytes on the socket, in one compiled call: the risk kernel decides, the signer signs,
# the journal writer (ext/journal.pyx) records, the request writer (ext/wirefmt.pyx) sends.
# Pure-Python twin: pipeline/gateway/orderpath_py.py (same class, same methods, same results);
# tests/parity/test_orderpath_send_parity.py.
from libc.stdint cimport int64_t, uint8_t
from pipeline._ext.risk cimport RiskEngine, CheckedOrder, MAX_SYMBOLS
from pipeline._ext.sign cimport BinanceSigner

# ---------------------------------------------------------------- STATES OF send()
cdef enum:
    J_NONE = 0                  # no journal given (the JSON-lines journal: Python wrote it before)
    J_WRITTEN = 1               # the ORDER record is in the file (and msync'ed when sync)
    J_FULL = 2                  # no free slot: the owner grows the file; nothing sent
    J_SYNC_FAILED = 3           # msync failed: nothing sent
    J_NO_NAME = 4               # no set_name for the symbol: nothing journalled or sent
cdef enum:
    W_NONE = 0                  # not tried (no writer / fd < 0 / journal not written)
    W_SENT = 1                  # the whole request went out
    W_SHORT = 2                 # `sent` bytes went out; the caller writes writer.tail(sent)
    W_CLOSED = 3                # the held connection was closed by the venue: nothing sent
    W_ERROR = 4                 # send() failed (-errno in `sent`): some bytes may be out
    W_TOO_BIG = 5               # the request does not fit the writer's buffer: nothing sent

cdef class OrderPath:
    cdef readonly RiskEngine risk
    cdef readonly BinanceSigner signer
    # ---------------------------------------------------------------- RESULT OF THE LAST CALL
    cdef readonly int last_reason          # Reason of the last process()/send()/probe() (0 = signed)
    cdef readonly int64_t last_gap         # signals missing before the last one (risk.last_gap)
    cdef readonly int64_t risk_done_ns     # CLOCK_MONOTONIC when the last risk check ended
    cdef readonly int64_t signed_ns        # CLOCK_MONOTONIC when the last body was signed
    cdef readonly int journal_state        # send(): J_NONE / J_WRITTEN / J_FULL / J_SYNC_FAILED / J_NO_NAME
    cdef readonly int wire_state           # send(): W_NONE / W_SENT / W_SHORT / W_CLOSED / W_ERROR / W_TOO_BIG
    cdef readonly Py_ssize_t sent          # send(): bytes send() wrote, or -errno (W_ERROR)
    cdef readonly int64_t written_ns       # send(): CLOCK_MONOTONIC right before send()
    # ---------------------------------------------------------------- JOURNAL NAMES (set_name)
    cdef char names[MAX_SYMBOLS][24]
    cdef uint8_t name_len[MAX_SYMBOLS]

    # ---------------------------------------------------------------- STEPS
    # risk check, then encode + sign (the body, or None with last_reason)
    cdef object _process(self, msg, now_mono, int64_t timestamp_ms, CheckedOrder *o)
