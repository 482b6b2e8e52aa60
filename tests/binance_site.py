"""A loopback HTTP server laid out like Binance's public data site (data/spot/daily/...), with
real .zip archives and .CHECKSUM files made here, HTTP Range support, and a request log; shared by
the download, backtest and export tests."""
from __future__ import annotations

import hashlib
import io
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# trades: id, price, qty, quote_qty, time, is_buyer_maker, is_best_match
TRADES_HEADER = "id,price,qty,quote_qty,time,is_buyer_maker,is_best_match"
AGG_HEADER = ("agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,"
              "is_buyer_maker,is_best_match")


def trade_rows(n: int, t0_ms: int, start_id: int = 1000, micro: bool = False, agg: bool = False
               ) -> list[tuple]:
    """n trades, one every 250 ms from t0_ms, alternating maker side, prices moving."""
    rows = []
    for i in range(n):
        price = round(60000 + 5 * ((i * 37) % 23) - 2.5 * (i % 7), 2)
        qty = round(0.001 * (1 + i % 9), 8)
        t = t0_ms + 250 * i
        t = t * 1000 + (i % 1000) if micro else t
        maker = "True" if i % 3 == 0 else "False"
        if agg:
            rows.append((start_id + i, f"{price:.8f}", f"{qty:.8f}", 5000 + 2 * i, 5001 + 2 * i,
                         t, maker, "True"))
        else:
            rows.append((start_id + i, f"{price:.8f}", f"{qty:.8f}", f"{price * qty:.8f}", t,
                         maker, "True"))
    return rows


def csv_text(rows, header: str | None = None) -> str:
    lines = ([header] if header else []) + [",".join(str(c) for c in r) for r in rows]
    return "\n".join(lines) + "\n"


def zip_bytes(csv_name: str, text: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(csv_name, text)
    return buf.getvalue()


def put_archive(root: Path, rel_zip: str, text: str, checksum_of: bytes | None = None) -> bytes:
    """Write `root/data/<rel_zip>` (one CSV of the same stem) and its .CHECKSUM (of the zip, or
    of `checksum_of` to make a mismatch). Returns the zip's bytes."""
    p = root / "data" / rel_zip
    p.parent.mkdir(parents=True, exist_ok=True)
    data = zip_bytes(p.name[:-4] + ".csv", text)
    p.write_bytes(data)
    sha = hashlib.sha256(checksum_of if checksum_of is not None else data).hexdigest()
    Path(str(p) + ".CHECKSUM").write_text(f"{sha}  {p.name}\n")
    return data


class Site:
    """Serves `root` on 127.0.0.1:<free port>. `log` holds (path, Range header or None, status)
    per request; `truncate_once` maps a path to a byte count: the first GET of it sends only that
    many bytes of the body (Content-Length says the whole), then drops the connection."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.log: list[tuple[str, str | None, int]] = []
        self.truncate_once: dict[str, int] = {}
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                path = self.path.split("?")[0]
                f = (site.root / path.lstrip("/")).resolve()
                rng = self.headers.get("Range")
                if not str(f).startswith(str(site.root.resolve())) or not f.is_file():
                    site.log.append((path, rng, 404))
                    body = b"<Error><Code>NoSuchKey</Code></Error>"
                    self.send_response(404)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                data = f.read_bytes()
                start, status = 0, 200
                if rng and rng.startswith("bytes=") and rng.endswith("-"):
                    start = int(rng[6:-1])
                    if start >= len(data):
                        site.log.append((path, rng, 416))
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status = 206
                body = data[start:]
                site.log.append((path, rng, status))
                self.send_response(status)
                if status == 206:
                    self.send_header("Content-Range",
                                     f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                cut = site.truncate_once.pop(path, None)
                if cut is not None:
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def gets(self, suffix: str) -> list[tuple[str, str | None, int]]:
        return [e for e in self.log if e[0].endswith(suffix)]
