"""The gateway loop when it spins on a core of its own (busy_spin): it waits in short slices and
runs the signal path dry after each one, as the last thing before it spins again, while the
housekeeping (replies, user stream, audits, status, journal sync) keeps its own, slower period.
A blocking gateway keeps one wait, dry run and housekeeping per turn."""
from __future__ import annotations

from tests.unit.test_gateway_defects import _gateway, make_ex


def _run(tmp_path, ring_wait: str, idle_turns: int, signals: int = 0) -> tuple[list, list]:
    gw = _gateway(tmp_path, make_ex(tmp_path))
    gw._next = {"status": 0, "kill": 1 << 62, "audit": 0}
    gw.cfg.poll_ms, gw.cfg.warm_ms, gw.cfg.spin_warm_ms = 60_000, 60_000.0, 0.05
    calls: list[str] = []
    waits: list[float] = []
    raws = [b"x"] * signals
    turns = {"n": 0}

    class Intake:
        def wait(self, ms):
            waits.append(ms)
            turns["n"] += 1
            if turns["n"] > idle_turns + signals:
                gw.stop_requested = True
                return False
            calls.append("wait")
            return turns["n"] > idle_turns       # the signals come after the idle turns

        def recv_raw(self):
            return raws.pop(0) if raws and calls[-1] == "wait" else None

    Intake.ring_wait = ring_wait
    gw.intake = Intake()
    gw.sign_signal = lambda raw: (raw,)
    gw.finish_signal = lambda one: calls.append("finish")
    gw._housekeeping = lambda: calls.append("house")
    gw._warm = lambda: calls.append("warm")
    gw.shutdown = lambda: 0
    assert gw.run() == 0
    return calls, waits


def test_a_spinning_gateway_runs_the_path_dry_after_every_slice_and_housekeeps_on_its_period(
        tmp_path):
    calls, waits = _run(tmp_path, "busy_spin", idle_turns=20)
    assert set(waits) == {0.05}                          # short slices, not poll_ms
    assert calls.count("warm") == 21 and calls.count("house") == 1   # one housekeeping period
    assert calls[:3] == ["wait", "house", "warm"]        # the dry run last before the spin
    assert all(a == "wait" and b == "warm" for a, b in zip(calls[3::2], calls[4::2]))


def test_a_spinning_gateway_housekeeps_after_a_batch_then_runs_the_path_dry(tmp_path):
    calls, _ = _run(tmp_path, "busy_spin", idle_turns=2, signals=1)
    i = calls.index("finish")
    assert calls[i + 1:i + 3] == ["house", "warm"]       # replies pumped at once, then warm


def test_a_blocking_gateway_keeps_one_wait_dry_run_and_housekeeping_per_turn(tmp_path):
    calls, waits = _run(tmp_path, "blocking", idle_turns=5)
    assert set(waits) == {60_000.0}
    assert calls.count("house") == calls.count("warm") >= 5
