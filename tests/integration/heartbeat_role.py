"""A generic command role for launcher tests: heartbeats through the status block, counts, and
exits 0 on SIGTERM. (The launcher's own behaviour is under test, not a pipeline role's.)"""
import signal
import sys
import time

from pipeline.records import RoleState
from pipeline.telemetry.status import RoleStatus

stop = False


def _term(*_):
    global stop
    stop = True


signal.signal(signal.SIGTERM, _term)
status = RoleStatus.from_env()
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
