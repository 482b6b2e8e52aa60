"""deploy/pipeline.service: it starts a config that exists, hands the gateway its credentials the
way the gateway reads them, creates its state directory, and passes `systemd-analyze verify`."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import config
from pipeline.launcher import supervisor

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "deploy/pipeline.service"


def directives() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if line and not line.startswith(("#", "[")):
            k, _, v = line.partition("=")
            out.setdefault(k.strip(), []).append(v.strip())
    return out


def test_unit_starts_an_existing_config_with_the_gateways_credentials(tmp_path, monkeypatch):
    d = directives()
    argv = d["ExecStart"][0].split()
    cfg_path = Path(argv[argv.index("--config") + 1].replace("/opt/pipeline", str(REPO)))
    assert cfg_path.is_file() and cfg_path.name == "binance-live.toml"
    cfg = config.load(cfg_path)
    assert d["StateDirectory"] == ["pipeline"] and d["WorkingDirectory"] == ["/var/lib/pipeline"]
    assert not Path(cfg.gateway.state_dir).is_absolute()        # lands in the state directory
    # credentials: an EnvironmentFile with the variables the gateway reads (credentials_file "")
    assert cfg.gateway.credentials_file == "" and d["EnvironmentFile"]
    env_file = tmp_path / "binance-live.env"
    env_file.write_text(f"{cfg.gateway.api_key_env}=k\n{cfg.gateway.api_secret_env}=s\n")
    for line in env_file.read_text().splitlines():               # what systemd exports
        k, _, v = line.partition("=")
        monkeypatch.setenv(k, v)
    supervisor.Launcher(cfg, str(cfg_path))                      # its credential check passes
    monkeypatch.delenv(cfg.gateway.api_secret_env)
    with pytest.raises(supervisor.LaunchError, match=cfg.gateway.api_secret_env):
        supervisor.Launcher(cfg, str(cfg_path))


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze not installed (apt-get install systemd)")
def test_unit_passes_systemd_analyze_verify(tmp_path):
    """With the checkout's paths in place of /opt/pipeline (verify checks the executable)."""
    text = UNIT.read_text().replace("/opt/pipeline/.venv/bin/python", sys.executable)
    unit = tmp_path / "pipeline.service"
    unit.write_text(text.replace("/opt/pipeline", str(REPO)))
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr
