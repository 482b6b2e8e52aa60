# cython: language_level=3
"""An order's HTTP/1.1 request, formatted in a preallocated buffer and written with one send().

`RequestWriter(method, path, host, headers)` keeps the constant part of the request
(`POST /api/v3/order HTTP/1.1`, `Host`, the given headers, `Content-Length: `) in a buffer made
once; `send(fd, body)` appends the body's length, the blank line and the body, stamps
CLOCK_MONOTONIC and calls send(fd, ..., MSG_NOSIGNAL) once, all without the GIL's help or any
allocation. It returns the bytes written: all of them, or fewer when the socket's send buffer is
full (the fd is non-blocking under a Python timeout): then the caller writes the rest
(`tail(sent)`). The rules are documented in the pure-Python twin, pipeline/gateway/wirefmt_py.py.
"""
from libc.errno cimport errno, EINTR, EAGAIN
from libc.stdint cimport int64_t
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC

cdef extern from "<sys/socket.h>" nogil:
    ssize_t send(int fd, const void *buf, size_t n, int flags)
    int MSG_NOSIGNAL

DEF TAIL_MAX = 24          # "<= 20 digits>\r\n\r\n"


cdef inline int64_t _mono() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec


cdef class RequestWriter:
    def __cinit__(self):
        self.buf = NULL

    def __init__(self, bytes method, bytes path, bytes host, list headers,
                 Py_ssize_t capacity=8192):
        from pipeline.gateway.wirefmt_py import prefix
        cdef bytes head = prefix(method, path, host, headers)
        if capacity < len(head) + TAIL_MAX + 1:
            raise ValueError(f"capacity {capacity} too small for the {len(head)}-byte header")
        self.buf = <char *>malloc(capacity)
        if self.buf == NULL:
            raise MemoryError()
        self.cap = capacity
        memcpy(self.buf, <const char *>head, len(head))
        self.head_len = len(head)
        self.length = 0
        self.stamp = 0
        self.sent = 0

    def __dealloc__(self):
        if self.buf != NULL:
            free(self.buf)

    def __repr__(self):
        return f"<RequestWriter {self.head_len}-byte header, headers redacted>"

    def __reduce__(self):
        raise TypeError("RequestWriter holds credentials and cannot be pickled")

    @property
    def capacity(self):
        return self.cap

    cdef Py_ssize_t format_c(self, const char *body, Py_ssize_t n) noexcept nogil:
        cdef char digits[20]
        cdef int nd = 0
        cdef Py_ssize_t v = n
        cdef Py_ssize_t p = self.head_len
        cdef int i
        if n < 0 or self.head_len + TAIL_MAX + n > self.cap:
            return -1
        if v == 0:
            digits[0] = 48
            nd = 1
        while v > 0:
            digits[nd] = <char>(48 + v % 10)
            v = v // 10
            nd += 1
        for i in range(nd - 1, -1, -1):
            self.buf[p] = digits[i]
            p += 1
        self.buf[p] = 13
        self.buf[p + 1] = 10
        self.buf[p + 2] = 13
        self.buf[p + 3] = 10
        p += 4
        memcpy(self.buf + p, body, n)
        self.length = p + n
        return self.length

    cdef Py_ssize_t send_c(self, int fd, const char *body, Py_ssize_t n) noexcept nogil:
        cdef Py_ssize_t r
        if self.format_c(body, n) < 0:
            return -7            # E2BIG
        self.stamp = _mono()
        while True:
            r = send(fd, self.buf, self.length, MSG_NOSIGNAL)
            if r >= 0:
                self.sent = r
                return r
            if errno == EAGAIN:      # (EWOULDBLOCK is EAGAIN on Linux)
                self.sent = 0        # the send buffer is full: the caller writes it all
                return 0
            if errno != EINTR:
                self.sent = 0
                return -errno

    def format(self, const unsigned char[::1] body):
        """The whole request for `body`, as bytes (tests, the dry run)."""
        cdef Py_ssize_t n = body.shape[0]
        cdef const char *p = <const char *>&body[0] if n else <const char *>""
        if self.format_c(p, n) < 0:
            raise ValueError(f"request of {n} body bytes does not fit {self.cap} bytes")
        return self.buf[:self.length]

    def send(self, int fd, const unsigned char[::1] body):
        """Format and send once; the bytes written (see the module). OSError on a socket error
        (some bytes may be out), ValueError if the request does not fit the buffer."""
        cdef Py_ssize_t n = body.shape[0]
        cdef const char *p = <const char *>&body[0] if n else <const char *>""
        cdef Py_ssize_t r
        # the GIL is kept: send() on a non-blocking socket takes microseconds, and giving the
        # GIL away here would let another thread hold it for a switch interval before we go on
        r = self.send_c(fd, p, n)
        if r == -7 and self.format_c(p, n) < 0:
            raise ValueError(f"request of {n} body bytes does not fit {self.cap} bytes")
        if r < 0:
            import os
            raise OSError(-r, os.strerror(-r))
        return r

    def tail(self, Py_ssize_t offset):
        """The last request's bytes from `offset` (what a short send left to write)."""
        if offset < 0 or offset > self.length:
            raise ValueError("offset outside the last request")
        return self.buf[offset:self.length]
