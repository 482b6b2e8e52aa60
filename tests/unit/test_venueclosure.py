"""The run's shared record of a venue host's closure (pipeline/venueclosure.py): real files."""
from __future__ import annotations

import os

from pipeline.venueclosure import SharedClosure, closure_path


def test_a_closure_recorded_by_one_process_is_seen_by_another_and_never_shortened(tmp_path):
    now = [1000.0]
    a = SharedClosure("api.example:443", tmp_path, clock=lambda: now[0])
    b = SharedClosure("api.example:443", tmp_path, clock=lambda: now[0])
    assert b.wait_s() == 0.0 and b.until() == (0.0, 0)
    a.record(429, 1010.0)
    assert b.until() == (1010.0, 429) and b.wait_s() == 10.0
    b.record(429, 1005.0)                       # an earlier end does not shorten it
    assert a.until() == (1010.0, 429)
    b.record(418, 1120.0)                       # a ban extends it
    assert a.until() == (1120.0, 418)
    now[0] = 1121.0
    assert a.wait_s() == 0.0
    assert oct(os.stat(closure_path(tmp_path, "api.example:443")).st_mode & 0o777) == "0o600"
    assert closure_path(tmp_path, "api.example:443").name == "venue-closed-api.example_443.json"


def test_no_run_directory_shares_nothing_and_a_bad_record_is_ignored(tmp_path, monkeypatch,
                                                                     caplog):
    monkeypatch.delenv("PIPELINE_RUN_DIR", raising=False)
    alone = SharedClosure("h:1")
    alone.record(429, 1e12)
    assert alone.path is None and alone.until() == (0.0, 0)
    closure_path(tmp_path, "h:1").write_text("{not json")
    assert SharedClosure("h:1", tmp_path).until() == (0.0, 0)
    assert "unreadable venue closure record" in caplog.text
    closure_path(tmp_path, "h:1").write_text('{"host": "other:1", "until_wall_s": 1e12, "status": 418}')
    assert SharedClosure("h:1", tmp_path).until() == (0.0, 0)
