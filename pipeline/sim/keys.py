"""The simulator's test keys for a config that trades on the embedded simulator.

The demo config names `[gateway] credentials_file = "demo-out/sim-keys"`; the Makefile's
`demo-out/sim-keys` target writes it. Tools that run such a config (scripts/profile_latency.py,
scripts/tune_affinity.py) call `ensure_test_keys` so they work in a fresh clone too. Only
Binance's documented HMAC test key pair (a public test vector, config.SIM_TEST_API_KEY /
SIM_TEST_SECRET) is ever written, only when the config's simulator accepts exactly that pair,
its gateway trades on venue SIM against a loopback address, and the file is missing. Real keys are
never written by anything.
"""
from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from pipeline import config as cfgmod

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def uses_test_keys(cfg: cfgmod.PipelineConfig) -> bool:
    """The config runs the embedded simulator, its gateway trades on it (venue SIM on loopback),
    and the simulator holds an account with the documented test key pair."""
    kinds = {s.kind for s in cfg.roles.values()}
    if "sim" not in kinds or "gateway" not in kinds or cfg.gateway.venue != "SIM":
        return False
    if urlparse(cfg.gateway.rest_url).hostname not in _LOOPBACK:
        return False
    return any(a.api_key == cfgmod.SIM_TEST_API_KEY and a.secret == cfgmod.SIM_TEST_SECRET
               for a in cfg.sim.accounts)


def ensure_test_keys(cfg: cfgmod.PipelineConfig) -> Path | None:
    """Write the simulator's test keys to the config's credentials_file (0600, as
    `make demo-out/sim-keys` does) when it is missing and `uses_test_keys(cfg)`. Returns the path
    written, or None when nothing was written (no file named, it exists, or not a sim config)."""
    name = cfg.gateway.credentials_file
    if not name or Path(name).exists() or not uses_test_keys(cfg):
        return None
    path = Path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = f"api_key={cfgmod.SIM_TEST_API_KEY}\napi_secret={cfgmod.SIM_TEST_SECRET}\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(body)
    os.chmod(path, 0o600)      # whatever the umask
    return path
