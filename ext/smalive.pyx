# cython: language_level=3
"""The live SMA crossover over one batch of tick records, in C: the demo strategy's hot path.

Exactly the rule of pipeline/strategy/sma.py (read its docstring), record for record what the
Python path does (Strategy.on_ticks → SmaCrossover.on_trades → SmaCore.update → Strategy.target):
  - a control record concerns the strategy if it is global (symbol 0) or the strategy's own
    instrument (or the strategy trades every instrument): GAP / RESYNC_START count a gap,
    STALE a stale; both suspend the strategy and restart the windows (the trend is kept);
  - a trade (TRADE / AGG_TRADE) of the instrument ends a suspension; its price becomes
    q = rint(price / price_increment) (half-even, as Python's round); NaN, ±inf or |q| >= 2**62
    count as a bad price and never signal;
  - a change of trend (after `slow` prices) moves the intended position (long/flat, or
    long/short with allow_short) and, if that changes it, writes a MARKET signal record.
The window sums are 128-bit integers, so the arithmetic is exact like Python's ints. Signals
come out with epoch = seq = 0 (the sender numbers them) and created_mono = CLOCK_MONOTONIC; or,
given the sender's signal ring and numbering, each is numbered and published into the ring the
moment it is decided (the rest of the batch runs after), which takes the Python between the
decision and the shared-memory write off the tick → order path.
"""
cimport cython
cimport numpy as cnp
from libc.math cimport rint, fabs, NAN
from libc.stdint cimport int64_t, uint32_t
from libc.stdlib cimport calloc, free
from libc.string cimport memset
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC

from pipeline._ext.records cimport (TickRecord, SignalRecord, KIND_TRADE, KIND_AGG_TRADE,
                                    KIND_GAP, KIND_RESYNC_START, KIND_STALE)
from pipeline._ext.ring cimport RingCore

cnp.import_array()

DEF Q_LIMIT = 4611686018427387904.0      # 2**62
DEF SIGNAL_VERSION = 1                   # pipeline.records.SIGNAL_VERSION (checked by a test)
DEF ORDER_MARKET = 2
DEF CONTROL_MIN = 16                     # Kind.GAP: kinds >= this are the pipeline's own


cdef class SmaLive:
    def __cinit__(self, *args, **kwargs):
        self.buf = NULL
        self.ring = None

    def __init__(self, int64_t fast, int64_t slow, double price_increment, *, uint32_t symbol,
                 int venue, uint32_t strategy_id, double qty, bint allow_short, int64_t ttl_ns):
        if fast < 1 or fast >= slow:
            raise ValueError(f"SMA windows need 1 <= fast < slow, got fast={fast} slow={slow}")
        if not price_increment > 0:
            raise ValueError(f"price_increment must be > 0, got {price_increment}")
        self.fast, self.slow = fast, slow
        self.price_increment = price_increment
        self.symbol, self.venue, self.strategy_id = symbol, venue, strategy_id
        self.qty, self.allow_short, self.ttl_ns = qty, allow_short, ttl_ns
        self.buf = <int64_t *>calloc(slow, sizeof(int64_t))
        if self.buf == NULL:
            raise MemoryError()
        self.trend = 0
        self.position = 0
        self.suspended = False
        self.gaps = self.stales = self.bad_prices = 0
        self._reset()

    def __dealloc__(self):
        free(self.buf)

    cdef void _reset(self) noexcept nogil:
        self.count = 0
        self.sf = 0
        self.ss = 0

    @cython.cdivision(True)
    cdef int _update(self, int64_t q) noexcept nogil:
        """SmaCore.update: the new trend if it changed (+1 / -1, not the first one), else 0."""
        cdef int64_t k = self.count, slow = self.slow, fast = self.fast
        cdef i128 d
        cdef int t, old
        if k >= slow:
            self.ss -= self.buf[k % slow]
        if k >= fast:
            self.sf -= self.buf[(k - fast) % slow]
        self.buf[k % slow] = q
        self.sf += q
        self.ss += q
        self.count = k + 1
        if k + 1 < slow:
            return 0
        d = self.sf * slow - self.ss * fast
        t = (d > 0) - (d < 0)
        if t == 0 or t == self.trend:
            return 0
        old = self.trend
        self.trend = t
        return t if old else 0

    cdef int _trade(self, const TickRecord *r, SignalRecord *out) noexcept nogil:
        """One trade of the instrument; 1 if it wrote a signal into `out`."""
        cdef double x = r.price / self.price_increment
        cdef int t, tgt, delta
        cdef timespec ts
        self.suspended = False
        if not fabs(x) < Q_LIMIT:                # NaN, ±inf, beyond int64-safe units
            self.bad_prices += 1
            return 0
        t = self._update(<int64_t>rint(x))
        if t == 0:
            return 0
        tgt = t if (t > 0 or self.allow_short) else 0       # Strategy.target
        delta = tgt - self.position
        if delta == 0:
            return 0
        self.position = tgt
        clock_gettime(CLOCK_MONOTONIC, &ts)
        memset(out, 0, sizeof(SignalRecord))
        out.trigger_seq = r.seq
        out.trigger_mono = r.mono_ts
        out.created_mono = ts.tv_sec * 1_000_000_000 + ts.tv_nsec
        out.ttl_ns = self.ttl_ns
        out.qty = (delta if delta > 0 else -delta) * self.qty
        out.price = NAN
        out.strategy_id = self.strategy_id
        out.symbol = self.symbol
        out.venue = <unsigned char>self.venue
        out.side = 1 if delta > 0 else -1
        out.order_type = ORDER_MARKET
        out.tif = 0
        out.version = SIGNAL_VERSION
        if self.ring is not None:
            self.seq += 1
            out.epoch = self.epoch
            out.seq = self.seq
            self.ring._publish_body(<const unsigned char *>out, sizeof(SignalRecord))
        return 1

    @cython.boundscheck(False)
    @cython.wraparound(False)
    def process(self, cnp.ndarray batch, cnp.ndarray out, RingCore ring=None, int64_t epoch=0,
                int64_t seq=0):
        """Run one batch of TICK_DTYPE records; write the signals into `out` (SIGNAL_DTYPE, at
        least one slot per record of the batch). Returns how many were written. With `ring` (a
        signal ring's core, this process its writer) each signal is also numbered (epoch,
        seq + 1, ...) and published into it as soon as it is made; `self.seq` is then the last
        number used."""
        cdef int64_t n, cap, i, k = 0
        cdef const TickRecord *r
        cdef SignalRecord *o
        cdef bint all_symbols = self.symbol == 0, mine
        if batch.ndim != 1 or batch.itemsize != sizeof(TickRecord) \
                or not cnp.PyArray_IS_C_CONTIGUOUS(batch):
            raise ValueError("batch: expected a 1-D C-contiguous TICK_DTYPE array")
        if out.ndim != 1 or out.itemsize != sizeof(SignalRecord) \
                or not cnp.PyArray_IS_C_CONTIGUOUS(out):
            raise ValueError("out: expected a 1-D C-contiguous SIGNAL_DTYPE array")
        if ring is not None:
            ring._check_open()
            if ring.stride - 8 < <int64_t>sizeof(SignalRecord):
                raise ValueError("ring: not a signal ring (slots too small for a signal record)")
        self.ring, self.epoch, self.seq = ring, epoch, seq
        n = batch.shape[0]
        cap = out.shape[0]
        if cap < n:
            raise ValueError(f"out has {cap} slots for a batch of {n} records")
        r = <const TickRecord *>cnp.PyArray_DATA(batch)
        o = <SignalRecord *>cnp.PyArray_DATA(out)
        with nogil:
            for i in range(n):
                mine = all_symbols or (r[i].symbol == self.symbol and r[i].venue == self.venue)
                if r[i].kind >= CONTROL_MIN:
                    if not (mine or r[i].symbol == 0):
                        continue
                    if r[i].kind == KIND_GAP or r[i].kind == KIND_RESYNC_START:
                        self.gaps += 1
                    elif r[i].kind == KIND_STALE:
                        self.stales += 1
                    else:
                        continue
                    self.suspended = True
                    self._reset()
                elif mine and (r[i].kind == KIND_TRADE or r[i].kind == KIND_AGG_TRADE):
                    k += self._trade(&r[i], &o[k])
        self.ring = None                          # no reference kept past the call
        return k
