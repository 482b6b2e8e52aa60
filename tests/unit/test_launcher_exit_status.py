"""The launcher's exit status from its summary (pipeline/launcher/reporting.exit_status)."""
from pipeline.launcher.reporting import exit_status


def test_a_run_that_ended_as_asked_with_every_role_well_exits_0():
    for why in ("duration", "SIGINT", "SIGTERM"):
        assert exit_status({"stop_reason": why, "failed_roles": []}) == 0


def test_a_run_stopped_by_a_failure_exits_1():
    assert exit_status({"stop_reason": "role b exited with code 1", "failed_roles": ["b"]}) == 1
    assert exit_status({"stop_reason": "launch error: x", "failed_roles": []}) == 1


def test_a_run_that_ended_as_asked_after_a_role_failed_for_good_exits_3():
    assert exit_status({"stop_reason": "SIGTERM", "failed_roles": ["collector_okx"]}) == 3
    assert exit_status({"stop_reason": "duration", "failed_roles": ["a", "b"]}) == 3
