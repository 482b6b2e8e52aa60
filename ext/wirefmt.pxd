# Table of contents of ext/wirefmt.pyx — an order's HTTP/1.1 request formatted into a preallocated
# buffer and written with send() on a connection held open (plain TCP). Pure-Python twin:
# pipeline/gateway/wirefmt_py.py (same class, same bytes); tests/parity/test_wirefmt_parity.py.
from libc.stdint cimport int64_t

cdef class RequestWriter:
    cdef char *buf                 # request line + constant headers + "Content-Length: " + ...
    cdef Py_ssize_t cap
    cdef Py_ssize_t head_len       # bytes of the constant prefix (up to "Content-Length: ")
    cdef readonly Py_ssize_t length    # bytes of the last formatted request
    cdef readonly int64_t stamp        # CLOCK_MONOTONIC ns right before the last send()
    cdef readonly Py_ssize_t sent      # bytes the last send() wrote (< length: the rest is the caller's)

    # format `body` after the prefix; the request's length, or -1 if it does not fit the buffer
    cdef Py_ssize_t format_c(self, const char *body, Py_ssize_t n) noexcept nogil
    # format and send(fd, MSG_NOSIGNAL) once; bytes sent (0.. length), or -errno
    cdef Py_ssize_t send_c(self, int fd, const char *body, Py_ssize_t n) noexcept nogil
