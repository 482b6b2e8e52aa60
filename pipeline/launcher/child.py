"""Placement wrapper the launcher execs for every role (no preexec_fn: the launcher may have
threads, e.g. the Prometheus server, and code between fork and exec must not touch locks).

    python -m pipeline.launcher.child '<placement json>' -- argv...

Asks the kernel for SIGTERM when the launcher dies (PR_SET_PDEATHSIG, kept across exec), pins the
process to its cores, applies nice and SCHED_FIFO (with a clear message when not permitted), then
execs argv, which inherits all of it.
"""
import ctypes
import json
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def main() -> None:
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        sys.exit("usage: python -m pipeline.launcher.child '<placement json>' -- argv...")
    spec = json.loads(sys.argv[1])
    argv = sys.argv[3:]
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != spec["launcher_pid"]:      # the launcher died before prctl took effect
        sys.exit(1)
    if spec.get("cores"):
        os.sched_setaffinity(0, spec["cores"])
    if spec.get("nice"):
        try:
            os.nice(spec["nice"])
        except PermissionError:
            sys.stderr.write(f"launcher: nice {spec['nice']} not permitted (needs CAP_SYS_NICE); "
                             "running at normal priority\n")
    if spec.get("fifo_priority"):
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(spec["fifo_priority"]))
        except PermissionError:
            sys.stderr.write("launcher: SCHED_FIFO not permitted (needs CAP_SYS_NICE or "
                             "RLIMIT_RTPRIO); running SCHED_OTHER\n")
    sys.stderr.flush()
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main()
