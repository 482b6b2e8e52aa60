"""Shared-memory segments with explicit ownership (used by the tick ring and the status block).

- A segment is a POSIX shared-memory object (/dev/shm/<name>), the very object
  multiprocessing.shared_memory.SharedMemory(name) opens: either side can attach to the other's.
- No resource tracker is involved. Before Python 3.13 SharedMemory registers every segment it
  opens, even a mere attach, with the process's resource tracker, which unlinks it when that
  process exits (gh-82300); unregistering afterwards races with trackers shared across processes
  and leaves "leaked shared_memory" warnings. On 3.13+ SharedMemory(track=False) is the fix; here
  one code path does the same on every version: shm_open (os.open on /dev/shm) and mmap.
  Ownership is explicit: the creator unlinks.
- Creating reserves every page (posix_fallocate) after checking /dev/shm's free space, so a full
  /dev/shm fails at creation with SegmentSpaceError instead of SIGBUS mid-session.
"""
from __future__ import annotations

import errno
import mmap
import os

import psutil

SHM_DIR = "/dev/shm"


class SegmentSpaceError(RuntimeError):
    """/dev/shm has no room for a segment."""


def segment_path(name: str) -> str:
    return os.path.join(SHM_DIR, name)


class Segment:
    """A mapped POSIX shared-memory object: `.name`, `.size`, `.buf` (a memoryview), `close()`."""

    def __init__(self, name: str, fd: int, size: int):
        self.name = name
        self._fd = fd
        self.size = size
        self._mmap = mmap.mmap(fd, size) if size else None
        self.buf = memoryview(self._mmap) if size else memoryview(b"")

    def close(self) -> None:
        """Unmap and close. Raises BufferError while a view of .buf is still exported."""
        if self.buf is not None:
            self.buf.release()
            self.buf = None
        if self._mmap is not None:
            self._mmap.close()
            self._mmap = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def unlink(self) -> None:
        os.unlink(segment_path(self.name))

    def __repr__(self) -> str:
        return f"Segment({self.name!r}, size={self.size})"


def _check_name(name: str) -> None:
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"bad shared-memory segment name {name!r}")


def open_segment(name: str, create: bool, size: int = 0) -> Segment:
    """Open (create=False) or exclusively create (create=True, FileExistsError if present) the
    segment /dev/shm/<name>, mode 0600."""
    _check_name(name)
    path = segment_path(name)
    if create:
        if size <= 0:
            raise ValueError("a new segment needs a size > 0")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.fchmod(fd, 0o600)              # exactly owner read/write, whatever the umask
            os.ftruncate(fd, size)
        except OSError:
            os.close(fd)
            os.unlink(path)
            raise
    else:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        size = os.fstat(fd).st_size
    try:
        return Segment(name, fd, size)
    except Exception:
        os.close(fd)
        raise


def unlink_segment(seg: Segment) -> None:
    """Remove a segment's name (the mapping stays valid for whoever still has it)."""
    seg.unlink()


def unlink(name: str) -> bool:
    """Remove segment `name` if it exists. Returns whether it existed."""
    _check_name(name)
    try:
        os.unlink(segment_path(name))
    except FileNotFoundError:
        return False
    return True


def check_free_space(name: str, size: int) -> None:
    st = os.statvfs(SHM_DIR)
    free = st.f_bavail * st.f_frsize
    if size > free:
        raise SegmentSpaceError(
            f"segment {name!r} needs {size:,} bytes but {SHM_DIR} has {free:,} free; "
            f"use less or enlarge {SHM_DIR} (mount -o remount,size=...)")


def reserve(shm: Segment, size: int) -> None:
    """Reserve every page of a new segment; on failure unlink it and raise SegmentSpaceError."""
    try:
        os.posix_fallocate(shm._fd, 0, size)  # noqa: SLF001
    except OSError as exc:
        shm.close()
        unlink_segment(shm)
        if exc.errno in (errno.ENOSPC, errno.ENOMEM, errno.EFBIG):
            raise SegmentSpaceError(
                f"segment {shm.name!r}: cannot reserve {size:,} bytes in {SHM_DIR}: "
                f"{os.strerror(exc.errno)}") from None
        raise


def pid_alive(pid: int, since_ns: int) -> bool:
    """Is `pid` a live process that existed at `since_ns` (CLOCK_REALTIME)? A pid reused by a
    process started later does not count."""
    if pid <= 0:
        return False
    try:
        p = psutil.Process(pid)
        if p.status() == psutil.STATUS_ZOMBIE:
            return False
        return p.create_time() <= since_ns / 1e9 + 1.0
    except psutil.Error:
        return False
