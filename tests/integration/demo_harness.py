"""The demo config for tests: configs/demo.toml with a test's own port, segments, channel and
directories (used by test_demo.py and test_ops.py)."""
from __future__ import annotations

import json
import re
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAUNCH = [sys.executable, str(REPO / "scripts" / "launch.py")]
SIM_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
SIM_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def demo_config(tmp_path: Path, shm_name: str, extra: str = "", **launcher) -> Path:
    """configs/demo.toml with this test's own port, segments, channel and directories; `launcher`
    replaces top-level `key = value` lines (e.g. duration="0"), `extra` is appended TOML."""
    text = (REPO / "configs" / "demo.toml").read_text()
    port = free_port()
    text = text.replace("18765", str(port))
    text = text.replace('"pipeline-demo-ticks"', f'"{shm_name}"')
    text = text.replace('"pipeline-demo"', f'"{shm_name}-run"')
    text = text.replace('"pipeline-demo-signals"', f'"{shm_name}-signals"')
    text = text.replace('"demo-out/run"', f'"{tmp_path / "run"}"')
    text = text.replace('"demo-out/gateway-state"', f'"{tmp_path / "gw"}"')
    text = text.replace('"demo-out/sim-keys"', f'"{tmp_path / "keys"}"')
    for k, v in launcher.items():
        text = re.sub(rf"(?m)^{k} = .*$", f"{k} = {v}", text)
    keys = tmp_path / "keys"
    keys.write_text(f"api_key={SIM_KEY}\napi_secret={SIM_SECRET}\n")
    keys.chmod(0o600)
    cfg = tmp_path / "demo.toml"
    cfg.write_text(text + "\n" + extra)
    return cfg


class Hooks:
    """A loopback HTTP server that records every POST (path, JSON body)."""

    def __init__(self):
        self.posts: list[tuple[str, dict]] = []
        self.cond = threading.Condition()
        hooks = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with hooks.cond:
                    hooks.posts.append((self.path, body))
                    hooks.cond.notify_all()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ok": true}')

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, pred, timeout: float) -> list:
        with self.cond:
            self.cond.wait_for(lambda: [p for p in self.posts if pred(p)], timeout)
            return [p for p in self.posts if pred(p)]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hooks():
    h = Hooks()
    yield h
    h.close()
