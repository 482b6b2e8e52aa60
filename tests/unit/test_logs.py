"""pipeline/logs.py: one setup per role — file in the log dir, rotation at the configured size,
JSON lines, the gateway's redaction on the new handlers, strict [logging] config."""
from __future__ import annotations

import json
import logging

import pytest

from pipeline import config, logs


@pytest.fixture
def role_log(tmp_path, monkeypatch):
    monkeypatch.delenv(logs.ENV_LOG_DIR, raising=False)
    made = []

    def setup(toml: str = "", role: str = "tester"):
        cfg = config.loads(f'[logging]\ndir = "{tmp_path}"\n{toml}')
        path = logs.setup(role, cfg)
        made.append(path)
        return path

    yield setup
    logs.teardown()
    root = logging.getLogger()
    for f in list(root.filters):           # install_log_redaction's, if a test added one
        root.removeFilter(f)


def test_a_role_logs_info_to_its_file_in_the_log_dir(role_log, tmp_path):
    path = role_log()
    assert path == tmp_path / "tester.log"
    logging.getLogger("pipeline.x").info("hello %s", "operator")
    logging.getLogger("pipeline.x").debug("not at INFO")
    logs.flush()
    text = path.read_text()
    assert "INFO pipeline.x: hello operator" in text and "not at INFO" not in text


def test_the_log_rotates_at_max_bytes_keeping_backup_count_files(role_log, tmp_path):
    path = role_log("max_bytes = 4096\nbackup_count = 2\n")
    for i in range(400):
        logs.event_log("TICK", n=i, pad="x" * 40)
    logs.flush()
    files = sorted(tmp_path.glob("tester.log*"))
    assert [f.name for f in files] == ["tester.log", "tester.log.1", "tester.log.2"]
    assert all(f.stat().st_size <= 4096 for f in files)
    assert "TICK n=399 " in path.read_text()          # the newest line is in the current file


def test_json_lines_carry_the_event_fields_at_the_top_level(role_log):
    path = role_log('format = "json"\n')
    logs.order_log("REJECTED", "pl1.a.2f", by="gateway", reason="MAX_QTY", symbol="BTCUSDT")
    logs.event_log("HALTED", logging.ERROR, frm="ACTIVE", why="kill switch")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("pipeline.y").exception("failed")
    logs.flush()
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    rej, halt, exc = recs
    assert rej["event"] == "REJECTED" and rej["cid"] == "pl1.a.2f"
    assert (rej["strategy"], rej["epoch"], rej["seq"]) == (1, 10, 47)
    assert rej["reason"] == "MAX_QTY" and rej["level"] == "INFO" and rej["role"] == "tester"
    assert rej["msg"].startswith("order REJECTED cid=pl1.a.2f strategy=1 epoch=10 seq=47")
    assert halt["event"] == "HALTED" and halt["level"] == "ERROR" and halt["why"] == "kill switch"
    assert "ValueError: boom" in exc["exc"]


def test_the_gateways_redaction_filter_covers_the_new_handlers(role_log):
    from pipeline.gateway.secrets import Redactor, install_log_redaction
    path = role_log()
    secret = "S3cretS3cretS3cretS3cret"
    install_log_redaction(Redactor("APIKEYAPIKEYAPIKEY", secret))
    logging.getLogger("pipeline.gateway.rest").warning("request failed: secret=%s", secret)
    logs.flush()
    text = path.read_text()
    assert secret not in text and "<redacted>" in text


def test_logging_config_is_strict():
    with pytest.raises(config.ConfigError, match="logging.levl"):
        config.loads('[logging]\nlevl = "INFO"\n')
    with pytest.raises(config.ConfigError, match="format"):
        config.loads('[logging]\nformat = "xml"\n')
    with pytest.raises(config.ConfigError, match="max_bytes"):
        config.loads('[logging]\nmax_bytes = 10\n')


def test_the_log_writer_sleeps_on_events_not_a_poll():
    """An idle writer never wakes (no 0.1 s poll taking the GIL from a hot loop); the first
    record of a batch wakes it once, a WARNING writes at once."""
    import logging
    import threading
    import time

    from pipeline.logs import _Deferred

    got, seen = [], threading.Event()

    class Target(logging.Handler):
        def emit(self, record):
            got.append(record.getMessage())
            seen.set()

    w = _Deferred([Target()], interval_s=1.0)     # one batch for both records below
    try:
        time.sleep(0.4)                      # a 0.1 s poll would have woken it ~4 times
        assert w.wakeups == 0
        rec = logging.LogRecord("t", logging.INFO, __file__, 1, "order %s", ("a",), None)
        w.emit(rec)
        w.emit(logging.LogRecord("t", logging.INFO, __file__, 1, "order b", None, None))
        assert seen.wait(5) and w.wakeups == 1
        deadline = time.monotonic() + 5
        while len(got) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert got == ["order a", "order b"]
        seen.clear()
        w.emit(logging.LogRecord("t", logging.WARNING, __file__, 1, "late", None, None))
        assert seen.wait(5) and got[-1] == "late"
    finally:
        w.close()
