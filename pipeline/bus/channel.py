"""Where a signal channel lives and how its ends prove who they are (pipeline.bus.signals).

Place. A channel's sockets are filesystem `ipc://` sockets in a private directory:

    <base>/<channel>/sig     data     (strategy PUSH → gateway PULL)
    <base>/<channel>/ctl     control  (strategy DEALER ↔ gateway ROUTER, the READY handshake)
    <base>/<channel>/lock    held (flock) by the gateway that owns the channel
    <base>/<channel>/token   the channel token, only for a gateway started without one

`<base>` is $PIPELINE_IPC_DIR, else /tmp/pipeline-<uid>. Both `<base>` and `<base>/<channel>` are
created mode 0700 and checked on every use (a directory, not a symlink, owned by this uid, no
group/other bits): another uid can neither connect to the sockets nor plant its own in their place
(and a directory that fails the check is refused with ChannelSecurityError, never "fixed").
A bind on a filesystem socket silently replaces an existing one, so the gateway takes the lock
first: a second gateway on the channel fails with ChannelBusy instead of stealing it.

Proof. Each end is checked twice, both on the receiving (gateway) side:
- the peer's uid: the kernel's SO_PEERCRED credentials of the connecting process, which ZeroMQ
  hands to the gateway's ZAP handler as the address "<host>:<uid>:<gid>:<pid>" of every new ipc
  connection (signals.ZapGuard); a different uid is refused before any frame is delivered;
- the channel token: a per-run random secret. The connection carries it as its ZMQ PLAIN password
  (so a connection without it delivers nothing, not even one frame), and the HELLO carries it again
  (so READY is only ever answered to a holder).

The token reaches both ends by inheritance: the launcher makes one per run (`new_token`) and puts
it in $PIPELINE_SIGNAL_TOKEN of the gateway and strategy roles only. A gateway started on its own
without it makes a token and writes it to `<base>/<channel>/token` (0600, removed at close), which
a strategy started on its own then reads. The token is never logged, never in a repr, a status
file or shared memory.
"""
from __future__ import annotations

import errno
import fcntl
import hmac
import os
import secrets
import stat
from pathlib import Path

ENV_TOKEN = "PIPELINE_SIGNAL_TOKEN"
ENV_DIR = "PIPELINE_IPC_DIR"
TOKEN_BYTES = 32                  # random bytes; the token is their hex (64 characters)
MAX_TOKEN_LEN = 128               # fits a ZMQ PLAIN password (255) and the HELLO frame
MIN_TOKEN_LEN = 32
_SUN_PATH_MAX = 107               # sockaddr_un.sun_path minus the terminating NUL


class ChannelSecurityError(RuntimeError):
    """A channel directory or token file is not private to this user (or not usable)."""


class ChannelBusy(RuntimeError):
    """Another live gateway holds the channel."""


def check_name(name: str) -> str:
    if (not name or "/" in name or name.startswith("@") or "://" in name or ":" in name
            or name in (".", "..") or "\0" in name):
        raise ValueError(f"signal channel name must be a plain name (no '/', '@', ':', scheme), "
                         f"got {name!r}")
    return name


def base_dir() -> Path:
    raw = os.environ.get(ENV_DIR, "")
    return Path(raw) if raw else Path(f"/tmp/pipeline-{os.getuid()}")


def private_dir(path: Path, create: bool = True) -> Path:
    """`path` as a directory private to this uid (created 0700 if absent and `create`). Raises
    ChannelSecurityError if it is a symlink, not a directory, owned by another uid or open to
    group/others; FileNotFoundError if absent and not `create`."""
    if create:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise ChannelSecurityError(f"{path} is not a directory (a symlink or a file): refusing "
                                   f"to put signal sockets there")
    if st.st_uid != os.getuid():
        raise ChannelSecurityError(f"{path} is owned by uid {st.st_uid}, not this user "
                                   f"({os.getuid()}): refusing to use it for signal sockets")
    if st.st_mode & 0o077:
        raise ChannelSecurityError(f"{path} has mode {stat.S_IMODE(st.st_mode):o}: other users "
                                   f"could reach the signal sockets; chmod 700 it (or remove it)")
    return path


def channel_dir(name: str, create: bool = True) -> Path:
    base = base_dir()
    if create:
        base.parent.mkdir(parents=True, exist_ok=True)
    private_dir(base, create)
    return private_dir(base / check_name(name), create)


def paths(name: str) -> dict[str, Path]:
    """The channel's files (nothing created, nothing checked but the name and path length)."""
    d = base_dir() / check_name(name)
    out = {k: d / k for k in ("sig", "ctl", "lock", "token")}
    for k in ("sig", "ctl"):
        if len(os.fsencode(str(out[k]))) > _SUN_PATH_MAX:
            raise ValueError(f"signal socket path {out[k]} is longer than {_SUN_PATH_MAX} bytes "
                             f"(the kernel's limit): use a shorter channel name or {ENV_DIR}")
    return out


def endpoints(name: str) -> tuple[str, str]:
    """(data, control) ipc:// endpoints of a channel."""
    p = paths(name)
    return f"ipc://{p['sig']}", f"ipc://{p['ctl']}"


# ----------------------------------------------------------------------------- token


def new_token() -> str:
    return secrets.token_hex(TOKEN_BYTES)


def check_token(token: str | bytes) -> bytes:
    tok = token.encode() if isinstance(token, str) else bytes(token)
    if not MIN_TOKEN_LEN <= len(tok) <= MAX_TOKEN_LEN or not tok.isascii() or b"\0" in tok:
        raise ChannelSecurityError(f"the signal channel token must be {MIN_TOKEN_LEN}.."
                                   f"{MAX_TOKEN_LEN} ASCII characters (got {len(tok)} bytes)")
    return tok


def env_token() -> bytes | None:
    raw = os.environ.get(ENV_TOKEN, "")
    return check_token(raw) if raw else None


def tokens_equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def read_token_file(name: str) -> bytes | None:
    """The token a standalone gateway wrote for this channel, or None if there is none yet.
    Refused (ChannelSecurityError) if the file is not ours or readable by others."""
    try:
        d = channel_dir(name, create=False)
    except FileNotFoundError:
        return None
    try:
        fd = os.open(d / "token", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        st = os.fstat(fd)
        if st.st_uid != os.getuid() or st.st_mode & 0o077:
            raise ChannelSecurityError(f"{d / 'token'} is not private to this user "
                                       f"(uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):o})")
        raw = os.read(fd, MAX_TOKEN_LEN + 1).strip()
    finally:
        os.close(fd)
    return check_token(raw) if raw else None


def write_token_file(name: str, token: bytes) -> Path:
    """Write the channel's token file (0600, replacing a stale one). The caller holds the lock."""
    p = channel_dir(name) / "token"
    tmp = p.with_name(f"token.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, token)
    finally:
        os.close(fd)
    os.replace(tmp, p)
    return p


# ----------------------------------------------------------------------------- the owner's lock


class ChannelLock:
    """The gateway's exclusive hold on a channel (flock on <dir>/lock, released at close or by the
    kernel when the process dies, so a killed gateway never blocks the next one)."""

    def __init__(self, name: str):
        self.name = name
        self.dir = channel_dir(name)
        path = self.dir / "lock"
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            except FileNotFoundError:   # a sender's empty directory was just removed: again
                self.dir = channel_dir(name)
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise ChannelBusy(f"signal channel {name!r} ({self.dir}) is held by another "
                                      f"gateway") from None
                raise
            try:                        # the file we locked must still be the one at the path
                same = os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self.fd = fd
                return
            os.close(fd)                # a closing owner unlinked it meanwhile: lock the new one

    def release(self, remove: tuple[str, ...] = ("sig", "ctl", "token")) -> None:
        """Remove the channel's files (sockets, token), then the lock and the directory."""
        if self.fd < 0:
            return
        for k in remove:
            try:
                os.unlink(self.dir / k)
            except FileNotFoundError:
                pass
        try:
            os.unlink(self.dir / "lock")
        except FileNotFoundError:
            pass
        os.close(self.fd)
        self.fd = -1
        try:
            os.rmdir(self.dir)
        except OSError:
            pass                        # not empty (a stray file): left as it is


def remove_stale(name: str) -> bool:
    """Remove a channel's directory left by a gateway that died (its lock is free); never a live
    gateway's. Returns whether one was removed."""
    try:
        channel_dir(name, create=False)
    except (FileNotFoundError, ChannelSecurityError):
        return False
    try:
        lock = ChannelLock(name)
    except ChannelBusy:
        return False
    lock.release()
    return True
