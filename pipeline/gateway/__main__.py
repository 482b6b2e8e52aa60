"""`python -m pipeline.gateway --config FILE` runs the execution gateway.

Commands (default: run):
    run     start the gateway (binds the signal channel, reconciles, trades until SIGTERM)
    kill    the kill switch: create the kill file and SIGUSR1 the running gateway → HALTED and
            every open order cancelled within 1 s; HALTED persists across restarts. A file of
            several gateway roles (several venues) without --role: every gateway of it
    reduce  SIGUSR2 the running gateway → REDUCING (only risk-reducing orders; journalled, so it
            persists across restarts too)
    reset   leave HALTED or REDUCING (only while the gateway is stopped): remove the kill file and
            journal an operator reset; the next start is ACTIVE
    status  print the gateway's status as JSON: the running gateway's status.json ("running":
            true), or for a stopped one {"running": false, "trading_at_next_start", "why",
            "last_status" (stale: as it stopped)}; exit 1 when stopped
    journal export the journal (<state_dir>/journal.bin or journal.jsonl, per journal_format) as
            JSON lines for people: one object per record, `k` its kind (--out FILE, default
            stdout; --file PATH reads another journal file)
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from pipeline.hotloop import import_numpy_quietly

import_numpy_quietly()          # before anything else imports numpy: its threads keep off SIGTERM

from pipeline.config import ConfigError, load  # noqa: E402


def _args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m pipeline.gateway", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", nargs="?", default="run", choices=("run", "kill", "reduce", "reset",
                                                                  "status", "journal"))
    ap.add_argument("--config", required=True, help="the pipeline TOML file ([gateway] section)")
    ap.add_argument("--role", default=None,
                    help="the gateway role of a run of several venues whose [roles.<name>.config] "
                         "this gateway is (kill/reduce/reset/status of that venue's gateway; "
                         "default $PIPELINE_ROLE, else the file's [gateway])")
    ap.add_argument("--ready-file", default=None, help="run: write this JSON file once trading")
    ap.add_argument("--log-level", default=None,
                    help="run: override [logging].level (default INFO)")
    ap.add_argument("--out", default=None, help="journal: write the JSON lines here (default stdout)")
    ap.add_argument("--file", default=None, help="journal: export this journal file instead")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = _args(argv)
    from pipeline import logs
    log = logging.getLogger("pipeline.gateway")
    if a.command != "run":            # an operator's command: its messages go to the console
        logging.basicConfig(level=(a.log_level or "INFO").upper(), stream=sys.stderr,
                            format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = load(a.config, role=a.role)
    except ConfigError as exc:
        if a.command == "run":
            logs.setup_role("gateway", level=a.log_level)
        log.error("%s", exc)
        return 2
    if a.command == "run":
        logs.setup_role("gateway", cfg, level=a.log_level)
    elif a.command in ("kill", "reduce", "reset"):
        try:                          # the operator's action also goes where the gateway logs
            logs.setup("gateway", cfg, directory=logs.launcher_log_dir(cfg))
        except OSError as exc:
            log.warning("not logging to %s: %s", logs.launcher_log_dir(cfg), exc)
    from pipeline.gateway.process import gateway_running, state_paths
    paths = state_paths(cfg.gateway)
    if a.command == "kill":
        # the run-wide kill switch: without --role, every gateway role of the file
        many = [n for n, r in cfg.roles.items() if r.kind == "gateway"]
        everyone = a.role is None and not os.environ.get("PIPELINE_ROLE") and len(many) > 1
        views = [(n, cfg.for_role(n)) for n in many] if everyone else [("", cfg)]
        for name, view in views:
            paths = state_paths(view.gateway)
            paths["dir"].mkdir(parents=True, exist_ok=True, mode=0o700)
            paths["kill"].touch()
            pid = gateway_running(view.gateway)
            who = f"gateway {name}" if name else "gateway"
            if pid > 0:
                os.kill(pid, signal.SIGUSR1)
                log.warning("kill switch: SIGUSR1 sent to %s pid %d; kill file %s", who, pid,
                            paths["kill"])
            else:
                log.warning("kill switch: no %s running; kill file %s makes the next start "
                            "HALTED", who, paths["kill"])
        return 0
    if a.command == "reduce":
        pid = gateway_running(cfg.gateway)
        if pid <= 0:
            log.error("reduce: no gateway running on state dir %s", paths["dir"])
            return 1
        os.kill(pid, signal.SIGUSR2)
        log.warning("reduce: SIGUSR2 sent to gateway pid %d (trading → REDUCING)", pid)
        return 0
    if a.command == "reset":
        pid = gateway_running(cfg.gateway)
        if pid:
            log.error("reset: the gateway (pid %d) is running; stop it first", pid)
            return 1
        paths["kill"].unlink(missing_ok=True)
        from pipeline.gateway.binjournal import open_journal
        j = open_journal(cfg.gateway, paths["journal"], fsync="always")
        j.write("trading", state="ACTIVE", frm="HALTED/REDUCING", why="operator reset")
        try:
            j.flush()                 # close() is best effort; the reset must be on disk
        finally:
            j.close()
        log.warning("reset by operator (pid %d): kill file removed, trading state ACTIVE "
                    "journalled", os.getpid())
        return 0
    if a.command == "journal":
        from pipeline.gateway.binjournal import export
        src = a.file or paths["journal"]
        if not os.path.exists(src):
            log.error("no journal at %s", src)
            return 1
        if a.out:
            with open(a.out, "wb") as f:
                n = export(src, f)
        else:
            n = export(src, sys.stdout.buffer)
            sys.stdout.flush()
        log.info("journal %s: %d records exported", src, n)
        return 0
    if a.command == "status":
        import json

        from pipeline.gateway.statusfile import stopped_view
        pid = gateway_running(cfg.gateway)
        if pid:
            try:
                live = json.loads(paths["status"].read_text())
            except (FileNotFoundError, ValueError) as exc:
                log.error("gateway pid %d is running but its status file %s is unreadable: %s",
                          pid, paths["status"], exc)
                return 1
            sys.stdout.write(json.dumps({"running": True, **live}, indent=1) + "\n")
            return 0
        view = stopped_view(cfg.gateway, cfg.risk.start_state)
        sys.stdout.write(json.dumps(view, indent=1, default=str) + "\n")
        log.warning("the gateway is not running (state dir %s): last_status is what it wrote "
                    "when it stopped; its next start will be %s (%s)", paths["dir"],
                    view["trading_at_next_start"], view["why"])
        return 1
    from pipeline.gateway.intake import IntakeBindError
    from pipeline.gateway.process import GatewayError, run_gateway
    from pipeline.gateway.secrets import CredentialError
    try:
        return run_gateway(cfg, ready_file=a.ready_file)
    except (GatewayError, IntakeBindError, CredentialError) as exc:
        log.error("gateway cannot start: %s", exc)
        return 3
    except Exception:  # noqa: BLE001 - log (redacted) and exit non-zero
        log.exception("gateway failed")
        return 1


if __name__ == "__main__":
    from pipeline.telemetry.role import exit_role
    exit_role(main)     # a late SIGTERM (the launcher's stop) cannot kill finalisation
