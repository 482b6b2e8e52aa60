"""A generic command role for launcher tests: heartbeats through the status block, counts, and
exits 0 on SIGTERM. (The launcher's own behaviour is under test, not a pipeline role's.)
--silent-start S: no heartbeat for S seconds first; --starting S: STARTING (heartbeating) for S
seconds before RUNNING."""
import signal
import sys
import time

from pipeline.records import RoleState
from pipeline.telemetry.status import RoleStatus

stop = False


def _term(*_):
    global stop
    stop = True


def _arg(name: str) -> float:
    return float(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else 0.0


signal.signal(signal.SIGTERM, _term)
status = RoleStatus.from_env()
time.sleep(_arg("--silent-start"))           # no heartbeat at all this long
status.set_state(RoleState.STARTING)
end = time.monotonic() + _arg("--starting")  # STARTING, heartbeating, this long
while time.monotonic() < end and not stop:
    status.heartbeat()
    time.sleep(0.05)
status.set_state(RoleState.RUNNING)
n = 0
while not stop:
    n += 1
    status.set(ticks=n)
    if "--stuck" not in sys.argv:
        status.heartbeat()
    time.sleep(0.01)
status.set_state(RoleState.STOPPED)
status.close()
sys.exit(0)
