"""A loopback WebSocket server that serves pre-framed bytes: the benchmark's socket source and a
minimal scriptable peer for collector tests. Real sockets, real RFC 6455 handshake; the frames are
built ahead of time so the server costs one sendall per chunk.

Each accepted connection gets the blob `repeat` times, then (unless `hold`) a close frame. Client
frames (pongs, close) are read and counted in a background thread of the server process.
Run it in its own process (`start_server`) so it does not share the client's GIL.
"""
from __future__ import annotations

import base64
import hashlib
import multiprocessing as mp
import socket
import threading
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def handshake(conn: socket.socket) -> bytes:
    """Answer the client's opening handshake; returns the request path."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            raise ConnectionError("client went away during the handshake")
        data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    path = head[0].split(b" ")[1]
    key = b""
    for line in head[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"sec-websocket-key":
            key = v.strip()
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
    return path


def _drain(conn: socket.socket, stats: dict) -> None:
    try:
        while True:
            d = conn.recv(65536)
            if not d:
                return
            stats["client_bytes"] = stats.get("client_bytes", 0) + len(d)
    except OSError:
        return


def serve(listener: socket.socket, blob: bytes, repeat: int, hold: float, chunk: int,
          max_conns: int) -> None:
    for _ in range(max_conns):
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        try:
            handshake(conn)
            stats: dict = {}
            threading.Thread(target=_drain, args=(conn, stats), daemon=True).start()
            mv = memoryview(blob)
            for _ in range(repeat):
                for i in range(0, len(blob), chunk):
                    conn.sendall(mv[i:i + chunk])
            if hold:
                time.sleep(hold)
            conn.sendall(b"\x88\x02\x03\xe8")          # close 1000
            time.sleep(0.05)
        except OSError:
            pass
        finally:
            conn.close()


def _main(q, blob: bytes, repeat: int, hold: float, chunk: int, max_conns: int) -> None:
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(8)
    q.put(ls.getsockname()[1])
    serve(ls, blob, repeat, hold, chunk, max_conns)


def start_server(blob: bytes, repeat: int = 1, hold: float = 0.0, chunk: int = 1 << 16,
                 max_conns: int = 1):
    """Start a server process; returns (process, port). The process exits after max_conns."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_main, args=(q, blob, repeat, hold, chunk, max_conns), daemon=True)
    p.start()
    return p, q.get(timeout=20)
