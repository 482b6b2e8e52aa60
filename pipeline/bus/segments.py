"""Find and reclaim the pipeline's shared-memory segments, whatever their name.

Every segment the pipeline creates (tick and signal rings, the launcher's status block) starts
with a magic word, the creating (owning) pid and its creation time, so any segment in /dev/shm is
recognised as ours from its first bytes and its owner checked for life (a pid reused by a later
process does not count as the owner). Each also carries a `tag`: the creator's PIPELINE_SHM_TAG
environment variable (0 when unset). Children inherit it, so every segment that a test session,
a soak run or a benchmark caused to exist, through any role it started, can be attributed to it
(the suite's leak check in tests/conftest.py uses this) without guessing names.

Who removes what after a crash:
- the owner unlinks its segment when it closes (ring.Ring.close, status.StatusBlock.close);
- a create over a segment of a dead owner replaces it (ring.Ring.create, StatusBlock.create);
- a launcher start reclaims its config's segments left by dead runs: `<run_id>-<pid>-status`
  blocks, the tick ring, the gateway's signal ring (pipeline/launcher/supervisor.py);
- anything else: `python -m pipeline.bus.segments --reclaim [--prefix P]` removes every segment of
  ours whose owner is dead (never one whose owner lives); without --reclaim it lists them.
"""
from __future__ import annotations

import argparse
import logging
import os
import struct
import sys
from dataclasses import asdict, dataclass
from typing import Callable, Iterator

from pipeline.bus import shm
from pipeline.records import RING_HEADER_DTYPE, RING_MAGIC, STATUS_HEADER_DTYPE, STATUS_MAGIC

log = logging.getLogger(__name__)

ENV_TAG = "PIPELINE_SHM_TAG"

# magic -> (kind, header dtype): where owner_pid, epoch_ns and tag sit in each header
_KINDS = {RING_MAGIC: ("ring", RING_HEADER_DTYPE), STATUS_MAGIC: ("status", STATUS_HEADER_DTYPE)}
_READ = max(RING_HEADER_DTYPE.itemsize, STATUS_HEADER_DTYPE.itemsize)


def creator_tag() -> int:
    """This process's PIPELINE_SHM_TAG as a signed 64-bit int (0 if unset or not a number)."""
    raw = os.environ.get(ENV_TAG, "")
    if not raw:
        return 0
    try:
        v = int(raw, 0)
    except ValueError:
        log.warning("%s=%r is not an integer; segments are created untagged", ENV_TAG, raw)
        return 0
    return ((v + (1 << 63)) % (1 << 64)) - (1 << 63)      # wrap into int64


@dataclass(frozen=True)
class SegmentInfo:
    name: str
    kind: str              # "ring" or "status"
    size: int
    owner_pid: int
    epoch_ns: int
    tag: int
    owner_alive: bool


def _field(head: bytes, dtype, name: str) -> int:
    return struct.unpack_from("<q", head, dtype.fields[name][1])[0]


def read_info(name: str) -> SegmentInfo | None:
    """The header facts of /dev/shm/<name> if it is one of our segments (None otherwise, or if it
    is gone or not ours to read). Reads with pread: nothing is mapped, nothing is written."""
    path = shm.segment_path(name)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if st.st_uid != os.getuid() or not (st.st_mode & 0o170000 == 0o100000):
            return None
        head = os.pread(fd, _READ, 0)
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(head) < 8:
        return None
    kind = _KINDS.get(struct.unpack_from("<Q", head, 0)[0])
    if kind is None or len(head) < kind[1].itemsize:
        return None
    label, dtype = kind
    pid, epoch = _field(head, dtype, "owner_pid"), _field(head, dtype, "epoch_ns")
    return SegmentInfo(name=name, kind=label, size=st.st_size, owner_pid=pid, epoch_ns=epoch,
                       tag=_field(head, dtype, "tag"), owner_alive=shm.pid_alive(pid, epoch))


def scan(prefix: str = "") -> Iterator[SegmentInfo]:
    """Every segment of ours in /dev/shm (optionally only names starting with `prefix`)."""
    try:
        names = sorted(os.listdir(shm.SHM_DIR))
    except OSError:
        return
    for n in names:
        if n.startswith(prefix):
            info = read_info(n)
            if info is not None:
                yield info


def reclaim(select: Callable[[SegmentInfo], bool] = lambda i: True, prefix: str = "",
            why: str = "") -> list[SegmentInfo]:
    """Unlink every segment of ours whose owner is dead and that `select` accepts; returns them.
    A segment whose owner lives is never touched."""
    removed = []
    for info in scan(prefix):
        if info.owner_alive or not select(info):
            continue
        again = read_info(info.name)         # re-check: a new owner may have just replaced it
        if again is None or again.owner_alive or again.epoch_ns != info.epoch_ns:
            continue
        if shm.unlink(info.name):
            removed.append(info)
            log.warning("removed stale segment %s (%s, owner pid %d dead)%s", info.name,
                        info.kind, info.owner_pid, f": {why}" if why else "")
    return removed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m pipeline.bus.segments",
        description="List the pipeline's shared-memory segments in /dev/shm (rings and status "
                    "blocks, recognised by their header) with their owner, or remove those whose "
                    "owner process is dead. A segment with a live owner is never removed.")
    ap.add_argument("--prefix", default="", help="only segment names starting with this")
    ap.add_argument("--reclaim", action="store_true",
                    help="unlink every listed segment whose owner is dead")
    ap.add_argument("--json", action="store_true", help="one JSON object per segment")
    args = ap.parse_args(argv)
    infos = list(scan(args.prefix))
    removed = {i.name for i in reclaim(prefix=args.prefix)} if args.reclaim else set()
    for i in infos:
        if args.json:
            import json
            print(json.dumps({**asdict(i), "removed": i.name in removed}))
        else:
            state = "alive" if i.owner_alive else ("dead, removed" if i.name in removed
                                                   else "dead")
            print(f"{i.name}  {i.kind}  {i.size:,} B  owner {i.owner_pid} ({state})  "
                  f"tag {i.tag}")
    if not infos and not args.json:
        print(f"no pipeline segments in {shm.SHM_DIR}" +
              (f" starting with {args.prefix!r}" if args.prefix else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
