"""python -m pipeline.sim --config FILE [--host 127.0.0.1] [--port 0] [--ready-file PATH]

Runs the exchange simulator until SIGTERM / SIGINT. When it listens, it logs and (with
--ready-file) atomically writes {"port", "rest_url", "ws_url"} as JSON.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path

from aiohttp import web

from pipeline.config import ConfigError, SimConfig, load

log = logging.getLogger("pipeline.sim")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m pipeline.sim",
                                 description="Binance-compatible exchange simulator on loopback.")
    ap.add_argument("--config", type=Path, help="pipeline TOML file; its [sim] section is used "
                    "(defaults without one)")
    ap.add_argument("--host", help="interface to bind (default: [sim].host = 127.0.0.1)")
    ap.add_argument("--port", type=int, help="port (default: [sim].port; 0 = ephemeral)")
    ap.add_argument("--allow-remote", action="store_true",
                    help="allow a non-loopback --host (off by default)")
    ap.add_argument("--ready-file", type=Path, help="write {port, rest_url, ws_url} here when listening")
    ap.add_argument("--log-level", default=None, help="override [logging].level (default INFO)")
    return ap.parse_args(argv)


def write_ready(path: Path, info: dict) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(info))
    os.replace(tmp, path)


async def serve(cfg: SimConfig, ready_file: Path | None) -> None:
    from pipeline.sim.server import Simulator

    sim = Simulator(cfg)
    runner = web.AppRunner(sim.app(), handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, cfg.host, cfg.port, backlog=512, reuse_address=True)
    await site.start()
    port = runner.addresses[0][1]
    host = "127.0.0.1" if cfg.host in ("127.0.0.1", "localhost") else cfg.host
    info = {"port": port, "rest_url": f"http://{host}:{port}", "ws_url": f"ws://{host}:{port}",
            "pid": os.getpid()}
    if ready_file is not None:
        write_ready(ready_file, info)
    log.info("simulator listening: %s", json.dumps(info))
    run_dir = os.environ.get("PIPELINE_RUN_DIR")
    if run_dir:                              # under the launcher: others may read where we are
        write_ready(Path(run_dir) / "sim.ready.json", info)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    from pipeline.telemetry.role import RoleTelemetry
    tel = RoleTelemetry("sim")
    tel.running()

    async def heartbeats() -> None:
        while True:
            tel.beat()
            await asyncio.sleep(0.2)

    hb = asyncio.create_task(heartbeats())
    await stop.wait()
    log.info("simulator: stop requested, shutting down")
    hb.cancel()
    await runner.cleanup()
    tel.close()
    log.info("simulator: stopped")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from pipeline import logs
    try:
        full = load(args.config) if args.config else None
    except ConfigError as exc:
        logs.setup_role("sim", level=args.log_level)
        log.error("%s", exc)
        return 2
    logs.setup_role("sim", full, level=args.log_level)
    try:
        cfg = full.sim if full is not None else SimConfig()
        over = {}
        if args.host is not None:
            over["host"] = args.host
        if args.port is not None:
            over["port"] = args.port
        if args.allow_remote:
            over["allow_remote"] = True
        if over:
            cfg = replace(cfg, **over)
    except (ConfigError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    try:
        asyncio.run(serve(cfg, args.ready_file))
    except OSError as exc:
        log.error("cannot serve: %s", exc)
        return 1
    except (FileNotFoundError, KeyError, ValueError) as exc:   # ValueError: relay.RelayError
        log.error("%s", exc)
        return 2
    return 0


if __name__ == "__main__":
    from pipeline.telemetry.role import exit_role
    exit_role(main)     # a late SIGTERM (the launcher's stop) cannot kill finalisation
