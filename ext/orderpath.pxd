# Table of contents of ext/orderpath.pyx — the gateway's hot path from a signal record to a signed
# request body, in one compiled call: the risk kernel decides, then the signer signs.
# Pure-Python twin: pipeline/gateway/orderpath_py.py (same class, same methods, same results).
from libc.stdint cimport int64_t
from pipeline._ext.risk cimport RiskEngine
from pipeline._ext.sign cimport BinanceSigner

cdef class OrderPath:
    cdef readonly RiskEngine risk
    cdef readonly BinanceSigner signer
    cdef readonly int last_reason          # Reason of the last process()/probe() (0 = signed)
    cdef readonly int64_t last_gap         # signals missing before the last one (risk.last_gap)
    cdef readonly int64_t risk_done_ns     # CLOCK_MONOTONIC when the last risk check ended
