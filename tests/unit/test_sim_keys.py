"""Tools that run the demo config write the simulator's public test keys themselves (0600), and
never write keys for a config that does not trade on the embedded simulator's test account."""
import stat
from pathlib import Path

from pipeline import config as cfgmod
from pipeline.gateway.secrets import load_credentials
from pipeline.sim.keys import ensure_test_keys, uses_test_keys

REPO = Path(__file__).resolve().parents[2]


def demo_text(tmp_path):
    return (REPO / "configs" / "demo.toml").read_text().replace(
        '"demo-out/sim-keys"', f'"{tmp_path / "out" / "sim-keys"}"')


def test_demo_config_gets_its_keys_file_0600(tmp_path):
    cfg = cfgmod.loads(demo_text(tmp_path), source="demo")
    path = ensure_test_keys(cfg)
    assert path == tmp_path / "out" / "sim-keys"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    creds = load_credentials(key_env="NO_SUCH_KEY_ENV", secret_env="NO_SUCH_SECRET_ENV",
                             file=str(path), environ={})
    assert creds.api_key.reveal() == cfgmod.SIM_TEST_API_KEY
    assert creds.api_secret.reveal() == cfgmod.SIM_TEST_SECRET
    assert ensure_test_keys(cfg) is None            # present: left alone


def test_an_existing_file_is_not_overwritten(tmp_path):
    cfg = cfgmod.loads(demo_text(tmp_path), source="demo")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "sim-keys").write_text("api_key=mine\napi_secret=mine\n")
    assert ensure_test_keys(cfg) is None
    assert (tmp_path / "out" / "sim-keys").read_text().startswith("api_key=mine")


def test_no_keys_for_a_real_venue_or_a_remote_url_or_other_accounts(tmp_path):
    base = demo_text(tmp_path)
    variants = [
        base.replace('venue = "SIM"\nsymbols = ["BTCUSDT"]\nchannel',
                     'venue = "BINANCE"\nsymbols = ["BTCUSDT"]\nchannel'),
        base.replace('rest_url = "http://127.0.0.1:18765"', 'rest_url = "https://api.binance.com"'),
        base.replace(f'api_key = "{cfgmod.SIM_TEST_API_KEY}"', 'api_key = "someoneelse"'),
    ]
    for text in variants:
        assert text != base
        cfg = cfgmod.loads(text, source="variant")
        assert not uses_test_keys(cfg)
        assert ensure_test_keys(cfg) is None
    assert not (tmp_path / "out").exists()
