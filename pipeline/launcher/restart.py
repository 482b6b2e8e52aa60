"""A role's restart policy (roles.<name>.restart = "on-failure", [roles.<name>.restart_policy]):
when to restart it after a failure, and when to give up. Pure bookkeeping over a monotonic clock
(seconds) so it is tested without processes; pipeline/launcher/supervisor.py acts on it.

- The n-th consecutive failure waits backoff_s * 2**(n-1), at most backoff_max_s.
- At most max_per_hour restarts in any sliding hour: one more failure gives up (the launcher then
  HALTs for good and stops, as for a role without a restart policy).
- A role counts as recovered once it is ready and fresh again (supervisor.Launcher.fresh); that
  resets the backoff (not the hourly cap). Not fresh within fresh_within_s is another failure.
"""
from __future__ import annotations

from collections import deque

from pipeline.config import RestartPolicy

HOUR_S = 3600.0


class RestartTracker:
    def __init__(self, policy: RestartPolicy):
        self.policy = policy
        self.restarts: deque[float] = deque()     # when each restart was decided, last hour
        self.consecutive = 0
        self.total = 0

    def in_last_hour(self, now: float) -> int:
        while self.restarts and now - self.restarts[0] >= HOUR_S:
            self.restarts.popleft()
        return len(self.restarts)

    def on_failure(self, now: float) -> float | None:
        """A failure at `now`: the delay before the restart, or None if the hourly cap is
        reached (give up)."""
        if self.in_last_hour(now) >= self.policy.max_per_hour:
            return None
        self.restarts.append(now)
        self.consecutive += 1
        self.total += 1
        p = self.policy
        return min(p.backoff_max_s, p.backoff_s * 2.0 ** (self.consecutive - 1))

    def on_recovered(self) -> None:
        self.consecutive = 0
