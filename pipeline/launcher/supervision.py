"""The launcher's supervision: restart and halt bookkeeping (a mixin of supervisor.Launcher).

Any role that dies or stops heartbeating → the gateways are told to HALT (SIGUSR1 and the status
block's halt word) at once → orderly shutdown, unless the role's restart policy says otherwise
(pipeline/launcher/restart.py): a restartable role is restarted with backoff while the gateways
are HALTED through the halt word only, and that HALT clears itself once every such role is back
and fresh ([launcher] clear_halt_on_recovery). The module docstring of supervisor.py has the
whole story.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import TYPE_CHECKING

from pipeline.records import RoleState

if TYPE_CHECKING:
    from pipeline.launcher.supervisor import Role


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    """Signal a role's whole process group (the role leads its own group), so anything the role
    started goes too. A group that is already gone is fine."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class Supervision:
    """Restart / halt bookkeeping of the launcher's roles (uses Launcher's fields)."""

    def request_stop(self, reason: str) -> None:
        if not self.stop_reason:
            self.stop_reason = reason

    def halt_gateway(self, why: str, final: bool = True) -> None:
        """HALT the gateway: the status block's halt word, and for a final HALT also SIGUSR1 (the
        kill switch, which never clears itself). A HALT for a restartable role's death (final
        False) is the word alone; clear_halt() lifts it."""
        if self.halted_at is not None and (self.halt_final or not final):
            return
        self.halted_at = self.halted_at or time.monotonic()
        self.halt_final = self.halt_final or final
        self.status.request_halt()
        if final:
            for r in self.roles.values():
                if r.spec.kind == "gateway" and r.alive:
                    os.kill(r.proc.pid, signal.SIGUSR1)
        self._event("halt", why=why, final=final)

    def clear_halt(self) -> None:
        """Lift a HALT that was only for restartable roles, once all of them are back and fresh."""
        if self.halted_at is None or self.halt_final:
            return
        self.status.clear_halt()
        self.halted_at = None
        self.halts_cleared += 1
        self._event("halt-cleared", why="every restarted role is back and fresh")

    def fresh(self, r: Role, now_ns: int) -> bool:
        """Back and fresh: running, heartbeating, and for a collector, publishing new ticks."""
        s = self.status.slots[r.slot]
        hb = int(s["heartbeat_mono"])
        if not r.alive or int(s["state"]) != RoleState.RUNNING or not hb:
            return False
        if now_ns - hb > r.spec.heartbeat_timeout * 1e9:
            return False
        return r.spec.kind != "collector" or int(s["ticks"]) > r.ticks_at_start

    def _problem(self, r: Role, now_ns: int) -> str:
        code = r.proc.poll()
        if code is not None and not self.stop_reason:
            if r.spec.kind == "command" and code == 0:
                r.exit_reason = "finished"
                return ""
            return f"exited with code {code}" if code >= 0 else f"killed by signal {-code}"
        if code is None:
            hb = int(self.status.slots[r.slot]["heartbeat_mono"])
            if hb and (now_ns - hb) > r.spec.heartbeat_timeout * 1e9:
                return f"stuck: no heartbeat for {(now_ns - hb) / 1e9:.1f} s"
            if r.recovering and time.monotonic() - r.started_at > \
                    r.spec.restart_policy.fresh_within_s:
                return (f"not fresh within {r.spec.restart_policy.fresh_within_s:g} s "
                        "of its restart")
        return ""

    def check_roles(self) -> None:
        now_ns = time.perf_counter_ns()
        now = time.monotonic()
        for r in self.roles.values():
            if r.restart_at is not None:
                if now >= r.restart_at and not self.stop_reason:
                    r.restart_at = None
                    r.restarts += 1
                    self.start_role(r)
                    r.recovering = True
                continue
            if r.proc is None or r.given_up:
                continue
            problem = self._problem(r, now_ns)
            if not problem:
                if r.recovering and self.fresh(r, now_ns):
                    r.recovering = False
                    r.tracker.on_recovered()
                    self._event("role-recovered", role=r.name, restarts=r.restarts,
                                after_s=round(now - r.started_at, 3))
                continue
            r.exit_reason = problem
            self._event("role-failed", role=r.name, problem=problem)
            delay = r.tracker.on_failure(now) if r.tracker is not None else None
            if delay is not None and not self.stop_reason:
                _signal_group(r.proc, signal.SIGKILL)
                if r.proc.poll() is None:
                    r.proc.wait(5)
                r.restart_at = now + delay
                r.recovering = True
                self._event("restart-scheduled", role=r.name, in_s=delay,
                            this_hour=r.tracker.in_last_hour(now))
                if self.cfg.launcher.halt_on_role_death:
                    self.halt_gateway(f"{r.name} {problem} (restarting)", final=False)
                continue
            if r.tracker is not None and not self.stop_reason:
                problem += (f" (restart cap reached: {r.spec.restart_policy.max_per_hour} "
                            "an hour)")
            if self.cfg.launcher.halt_on_role_death:
                self.halt_gateway(f"{r.name} {problem}")
                self.request_stop(f"role {r.name} {problem}")
            r.given_up = True              # reported once; not looked at again
        if (self.halted_at is not None and not self.halt_final
                and self.cfg.launcher.clear_halt_on_recovery
                and not any(r.recovering for r in self.roles.values())):
            self.clear_halt()
