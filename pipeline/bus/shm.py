"""Shared-memory segments with explicit ownership (used by the tick ring and the status block).

- Attaching never registers a segment with the process's resource tracker (gh-82300 before
  Python 3.13; `track=False` from 3.13), so a process that merely attaches cannot unlink it.
- Creating reserves every page (posix_fallocate) after checking /dev/shm's free space, so a full
  /dev/shm fails at creation with SegmentSpaceError instead of SIGBUS mid-session.
"""
from __future__ import annotations

import errno
import os
import sys
from multiprocessing import resource_tracker, shared_memory

import psutil

SHM_DIR = "/dev/shm"


class SegmentSpaceError(RuntimeError):
    """/dev/shm has no room for a segment."""


def segment_path(name: str) -> str:
    return os.path.join(SHM_DIR, name)


def open_segment(name: str, create: bool, size: int = 0) -> shared_memory.SharedMemory:
    """Open or create a segment that no resource tracker will unlink behind our back."""
    if sys.version_info >= (3, 13):
        return shared_memory.SharedMemory(name, create=create, size=size, track=False)
    shm = shared_memory.SharedMemory(name, create=create, size=size)
    # gh-82300: before 3.13 every SharedMemory registers with the process's resource tracker,
    # which unlinks it when that process exits, even for a mere attach. Ownership is explicit here.
    resource_tracker.unregister(shm._name, "shared_memory")  # noqa: SLF001
    return shm


def unlink_segment(shm: shared_memory.SharedMemory) -> None:
    """Unlink a segment opened by open_segment. Before 3.13, SharedMemory.unlink() also
    unregisters the name from the resource tracker, which complains about a name it does not hold:
    register it again first so the pair balances."""
    if sys.version_info < (3, 13):
        resource_tracker.register(shm._name, "shared_memory")  # noqa: SLF001
    shm.unlink()


def unlink(name: str) -> bool:
    """Remove segment `name` if it exists. Returns whether it existed."""
    try:
        shm = open_segment(name, create=False)
    except FileNotFoundError:
        return False
    shm.close()
    try:
        unlink_segment(shm)
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


def reserve(shm: shared_memory.SharedMemory, size: int) -> None:
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
