"""`pipeline`: the one command line of the pipeline (installed with the package).

    pipeline run --config FILE [--duration S] [--summary-json PATH] [--plots DIR]
    pipeline demo [--seconds 20]                 what `make demo` does
    pipeline status --config FILE [--json]       the live state of a running pipeline
    pipeline kill|reduce|reset --config FILE     the gateway's kill switch, REDUCING, reset
    pipeline backtest|record|replay|download|export|tune|profile|preflight ...

Every command has --help. Commands that already have their own program delegate to it with the
arguments as given (run, preflight → scripts/launch.py; backtest → scripts/backtest.py; record
→ scripts/record.py; tune → scripts/tune_affinity.py; profile → scripts/profile_latency.py;
kill/reduce/reset → python -m pipeline.gateway's; download/export → pipeline.data.*), so the
scripts and this command never disagree.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "scripts"

# name → (one-line help, how it runs)
DELEGATED: dict[str, tuple[str, str]] = {
    "run": ("run the pipeline from a config (scripts/launch.py)", "script:launch"),
    "preflight": ("report the box, placement and instruments, then exit (launch --preflight)",
                  "script:launch:--preflight"),
    "backtest": ("backtest a strategy on a recording or a Binance CSV/.zip (scripts/backtest.py)",
                 "script:backtest"),
    "record": ("record a live or simulated market-data session (scripts/record.py)",
               "script:record"),
    "tune": ("measure placements of the roles on the cores, write the best into the config "
             "(scripts/tune_affinity.py)", "script:tune_affinity"),
    "profile": ("profile latency hop by hop, pinned vs unpinned (scripts/profile_latency.py)",
                "script:profile_latency"),
    "download": ("download Binance public market data (pipeline.data.download)",
                 "module:pipeline.data.download"),
    "export": ("export recordings and downloads as Parquet (pipeline.data.export)",
               "module:pipeline.data.export"),
}
GATEWAY = {
    "kill": "kill switch: the running gateway goes HALTED and cancels every open order (SIGUSR1 "
            "and the kill file); HALTED persists across restarts until `pipeline reset`",
    "reduce": "the running gateway goes REDUCING: only risk-reducing orders (journalled)",
    "reset": "leave HALTED or REDUCING: removes the kill file and journals ACTIVE; only while "
             "the gateway is stopped (`pipeline status` then shows the next start ACTIVE)",
}
OWN = {
    "demo": "the whole pipeline on the embedded simulator, then its summary (make demo)",
    "status": "the live state of a running pipeline: launcher, roles, gateway",
    "replay": "run a raw recording through the collector's parsers into tick records (.npy)",
}


class CliError(Exception):
    """A clear message for the operator; exit status 2."""


def _load_script(name: str):
    path = SCRIPTS / f"{name}.py"
    if not path.is_file():
        raise CliError(f"this command runs {path}, which is not here: the `pipeline` command "
                       f"needs the checkout it was installed from (pip install -e .)")
    spec = importlib.util.spec_from_file_location(f"pipeline_script_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _target(cmd: str) -> Callable[[list[str]], int]:
    how = DELEGATED[cmd][1]
    kind, _, rest = how.partition(":")
    if kind == "script":
        name, _, extra = rest.partition(":")
        main = _load_script(name).main
        return lambda argv: main([*argv, extra] if extra else argv)
    if kind == "module":
        try:
            mod = importlib.import_module(rest)
        except ModuleNotFoundError as exc:
            if exc.name and rest.startswith(exc.name):
                raise CliError(f"`pipeline {cmd}` is not available in this version: its module "
                               f"{rest} is not installed") from None
            raise
        return mod.main
    raise ValueError(how)


def gateway_command(args: argparse.Namespace) -> int:
    from pipeline.gateway.__main__ import main as gw_main
    return gw_main([args.command, "--config", args.config,
                    *(["--role", args.role] if getattr(args, "role", None) else [])])


def _run_delegated(cmd: str, argv: list[str]) -> int:
    fn = _target(cmd)
    old = sys.argv[0]
    sys.argv[0] = f"pipeline {cmd}"          # argparse's prog in the delegate's usage and help
    try:
        rc = fn(argv)
    finally:
        sys.argv[0] = old
    return int(rc or 0)


# ------------------------------------------------------------------------------------- demo
def write_sim_keys(path: Path) -> Path:
    """The simulator's documented HMAC test keys (a public Binance test vector) and its OKX
    accounts' passphrase in a 0600 file, as the gateway reads credentials: only from the
    environment or such a file."""
    from pipeline.config import SIM_TEST_API_KEY, SIM_TEST_PASSPHRASE, SIM_TEST_SECRET
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"api_key={SIM_TEST_API_KEY}\napi_secret={SIM_TEST_SECRET}\n"
                    f"api_passphrase={SIM_TEST_PASSPHRASE}\n")
    return path


def demo(args: argparse.Namespace) -> int:
    """What `make demo` does: the simulator's documented test keys in the config's 0600
    credentials file, a fresh gateway state and run directory (the simulator starts empty every
    run, so does the gateway's state), the demo config for --seconds, summary and plots."""
    from pipeline import config as cfgmod
    out = Path(args.out)
    config = args.config or str(REPO / "configs" / "demo.toml")
    try:
        cfg = cfgmod.load(config)
    except cfgmod.ConfigError as exc:
        raise CliError(str(exc)) from None
    gateways = [cfg.for_role(n).gateway for n, r in cfg.roles.items() if r.kind == "gateway"]
    for g in gateways or [cfg.gateway]:     # each venue's gateway (configs/two-venues.toml)
        if not g.credentials_file:
            raise CliError(f"{config}: the demo needs [gateway].credentials_file (the "
                           "simulator's test keys are written there)")
        write_sim_keys(Path(g.credentials_file))
        shutil.rmtree(g.state_dir, ignore_errors=True)
    shutil.rmtree(cfg.launcher.run_dir, ignore_errors=True)
    return _run_delegated("run", ["--config", config, "--duration", str(args.seconds),
                                  "--summary-json", str(out / "summary.json"), "--plots", str(out)])


# ------------------------------------------------------------------------------------- status
def _age(mono_ns: int) -> str:
    if mono_ns <= 0:
        return "never"
    return f"{(time.perf_counter_ns() - mono_ns) / 1e9:.1f} s ago"


def collect_status(cfg, config_path: str) -> dict:
    """The launcher's run (live when its launcher runs) and the gateway's status, each saying
    whether it is live or what a stopped one left."""
    from pipeline.launcher import runfile
    out: dict = {"config": config_path}
    run_dir = Path(cfg.launcher.run_dir)
    info = runfile.read(run_dir)
    if info is None:
        out["launcher"] = {"running": False, "run_dir": str(run_dir),
                           "note": f"no launcher has run here ({run_dir / runfile.NAME} absent)"}
    elif not runfile.launcher_alive(info):
        out["launcher"] = {"running": False, "run_dir": str(run_dir), "pid": info.get("pid"),
                           "stop_reason": info.get("stop_reason", ""),
                           "ended": info.get("written"), "logs": info.get("log_dir"),
                           "roles": info.get("roles", {}),
                           "note": "stopped: this is what the last run left"}
    else:
        out["launcher"] = _live_launcher(info)
    if "gateway" in {r.kind for r in cfg.roles.values()} or not cfg.roles:
        out["gateway"] = _gateway_status(cfg)
    return out


def _live_launcher(info: dict) -> dict:
    from pipeline.records import RoleState, TradingState
    from pipeline.telemetry.status import COUNTERS, StatusBlock
    d = {"running": True, "pid": info["pid"], "logs": info.get("log_dir"), "roles": {}}
    try:
        block = StatusBlock.attach(info["status_segment"])
    except (FileNotFoundError, RuntimeError, OSError, KeyError) as exc:
        d["note"] = f"status block unavailable: {exc}"
        d["roles"] = info.get("roles", {})
        return d
    try:
        if int(block.header[0]["owner_pid"]) != int(info["pid"]):
            d["note"] = "the status block belongs to another process"
        snap = block.snapshot()
    finally:
        block.close()
    for name, r in info.get("roles", {}).items():
        s = snap[int(r["slot"])]
        row = {"kind": r["kind"], "pid": int(s["pid"]) or r.get("pid"),
               "state": RoleState(int(s["state"])).name,
               "heartbeat": _age(int(s["heartbeat_mono"]))}
        row.update({k: int(s[k]) for k in COUNTERS if int(s[k])})
        if r["kind"] == "gateway":
            row["trading"] = TradingState(int(s["trading_state"])).name
            row["pnl"] = float(s["pnl"])
            row["open_orders"] = int(s["open_orders"])
        d["roles"][name] = row
    return d


def _gateway_status(cfg) -> dict:
    from pipeline.gateway.process import gateway_running, state_paths
    from pipeline.gateway.statusfile import stopped_view
    paths = state_paths(cfg.gateway)
    pid = gateway_running(cfg.gateway)
    if not pid:
        return stopped_view(cfg.gateway, cfg.risk.start_state)
    try:
        live = json.loads(paths["status"].read_text())
        age = time.time() - paths["status"].stat().st_mtime
    except (OSError, ValueError) as exc:
        return {"running": True, "pid": pid, "note": f"status file unreadable: {exc}"}
    return {"running": True, "pid": pid, "status_age_s": round(age, 2), "status": live}


def _print_status(s: dict) -> None:
    la = s["launcher"]
    if la["running"]:
        print(f"launcher: RUNNING (pid {la['pid']}), logs in {la.get('logs')}")
        for name, r in la["roles"].items():
            extra = " ".join(f"{k} {v}" for k, v in r.items()
                             if k not in ("kind", "pid", "state", "heartbeat"))
            print(f"  {name:<12} {r.get('kind', ''):<10} pid {r.get('pid')}  "
                  f"{r.get('state', '?'):<9} heartbeat {r.get('heartbeat', '?')}  {extra}")
        if la.get("note"):
            print(f"  note: {la['note']}")
    else:
        print(f"launcher: NOT RUNNING ({la.get('note')})"
              + (f"; last stop: {la['stop_reason']}" if la.get("stop_reason") else "")
              + (f"; logs in {la['logs']}" if la.get("logs") else ""))
    g = s.get("gateway")
    if g is None:
        return
    if g["running"]:
        st = g.get("status", {})
        print(f"gateway: RUNNING (pid {g['pid']}), trading {st.get('trading', '?')}"
              f"{' (' + st['halt_reason'] + ')' if st.get('halt_reason') else ''}, phase "
              f"{st.get('phase', '?')}, status written {g.get('status_age_s', '?')} s ago")
        if st:
            print(f"  orders {st.get('orders', {})}  fills {st.get('fills', 0)}  "
                  f"pnl {st.get('pnl', 0.0):,.4f}  open {len(st.get('open_orders', []))}  "
                  f"rejects {st.get('rejects', {})}")
    else:
        last = g.get("last_status") or {}
        print(f"gateway: NOT RUNNING (state dir {g['state_dir']}); next start: "
              f"{g['trading_at_next_start']} ({g['why']})")
        if last:
            when = time.strftime("%Y-%m-%d %H:%M:%S",
                                 time.localtime(g["last_status_written"] or 0))
            print(f"  last status (stale, written {when} by pid {last.get('pid')}): phase "
                  f"{last.get('phase')}, trading then {last.get('trading')}, orders "
                  f"{last.get('orders', {})}, fills {last.get('fills', 0)}")


def status(args: argparse.Namespace) -> int:
    from pipeline import config as cfgmod
    try:
        cfg = cfgmod.load(args.config, role=getattr(args, "role", None))
    except cfgmod.ConfigError as exc:
        raise CliError(str(exc)) from None
    s = collect_status(cfg, args.config)
    if args.json:
        print(json.dumps(s, indent=1, default=str))
    else:
        _print_status(s)
    running = s["launcher"]["running"] or (s.get("gateway") or {}).get("running", False)
    return 0 if running else 1


# ------------------------------------------------------------------------------------- replay
def replay(args: argparse.Namespace) -> int:
    import numpy as np

    from pipeline import config as cfgmod
    from pipeline.collector.collector import make_adapter
    from pipeline.collector.recorder import read_raw, replay as run_replay
    from pipeline import instruments as instr
    from pipeline.records import Venue
    try:
        cfg = cfgmod.load(args.config).collector if args.config else cfgmod.CollectorConfig()
    except cfgmod.ConfigError as exc:
        raise CliError(str(exc)) from None
    from dataclasses import replace as dc_replace
    if args.symbols:
        cfg = dc_replace(cfg, symbols=[s.strip().upper() for s in args.symbols.split(",")
                                       if s.strip()])
    if args.venue_id:
        cfg = dc_replace(cfg, venue_id=args.venue_id)
    missing = [f for f in args.files if not Path(f).is_file()]
    if missing:
        raise CliError(f"no such recording: {', '.join(missing)}")
    # the ids the recording's records carry: its instruments.json (scripts/record.py writes it
    # beside the raw files), else what a fresh run would number
    cache = Path(args.instruments) if args.instruments else \
        Path(args.files[0]).resolve().parent / instr.CACHE_NAME
    want = {instr.collector_source(cfg): {s.upper() for s in cfg.symbols}}
    if cache.is_file():
        try:
            registry, _ = instr.read_cache(cache)
        except instr.InstrumentError as exc:
            raise CliError(str(exc)) from None
    elif args.instruments:
        raise CliError(f"--instruments {cache}: no such file")
    else:
        registry = instr.fresh(want)
        print(f"no {cache}: instrument ids numbered afresh from the config's symbols",
              file=sys.stderr)
    try:
        adapter = make_adapter(cfg, registry)
    except KeyError as exc:
        raise CliError(f"{exc}: not in {cache}") from None
    depth = [registry.id(Venue[cfg.venue_id], s) for s in cfg.symbols] \
        if any(c.startswith("depth") for c in cfg.channels) else []
    recs = run_replay(read_raw(args.files), adapter, depth_symbols=depth, backend=cfg.backend)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, recs)
    print(f"replayed {len(args.files)} file(s) → {len(recs):,} records → {out}")
    return 0


# ------------------------------------------------------------------------------------- parser
def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="pipeline", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    for name, (text, _) in DELEGATED.items():
        sub.add_parser(name, help=text, add_help=False)
    for name, text in GATEWAY.items():
        p = sub.add_parser(name, help=text.split(":")[0].split(" (")[0], description=text)
        p.add_argument("--config", required=True, help="the pipeline TOML ([gateway] section)")
        p.add_argument("--role", default=None, help="a run of several venues: the gateway role "
                       "whose [roles.<name>.config] to act on (e.g. gateway_okx)")
        p.set_defaults(fn=gateway_command)
    p = sub.add_parser("demo", help=OWN["demo"], description=demo.__doc__)
    p.add_argument("--seconds", type=float, default=float(os.environ.get("DEMO_SECONDS", 20)),
                   help="how long to run (default 20, or $DEMO_SECONDS)")
    p.add_argument("--out", default="demo-out", help="where summary.json and the plots go "
                   "(default demo-out; the keys, gateway state and run directory are where the "
                   "config says: demo-out/ in configs/demo.toml)")
    p.add_argument("--config", help="default: configs/demo.toml of this checkout")
    p.set_defaults(fn=demo)
    p = sub.add_parser("status", help=OWN["status"], description=(
        "The live state of a running pipeline: the launcher's roles from its status block "
        "(state, heartbeat age, counters) and the gateway's status.json. When nothing runs it "
        "says so and shows what the stopped run left (stale), and the trading state the "
        "gateway's next start will have (after `pipeline reset`: ACTIVE). Exit 0 when "
        "something runs, 1 when everything is stopped."))
    p.add_argument("--config", required=True, help="the pipeline TOML the run was started with")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--role", default=None, help="a run of several venues: whose gateway's "
                   "status.json to show (a gateway role's name, e.g. gateway_okx)")
    p.set_defaults(fn=status)
    p = sub.add_parser("replay", help=OWN["replay"], description=(
        "Run raw recordings (`<recv_ts_ns> <raw>` lines, .gz or plain, as `pipeline record` "
        "writes them) through the collector's own decoder and book sync, and save the tick "
        "records as .npy (what the backtester loads)."))
    p.add_argument("files", nargs="+", help="raw recording files, in order")
    p.add_argument("--out", required=True, help="the .npy file to write")
    p.add_argument("--config", help="pipeline TOML ([collector]: venue, venue_id, symbols)")
    p.add_argument("--symbols", help="comma-separated, overrides [collector].symbols")
    p.add_argument("--instruments", metavar="PATH",
                   help="the recording's instruments.json (default: beside the first file)")
    p.add_argument("--venue-id", choices=("BINANCE", "OKX", "SIM"),
                   help="overrides [collector].venue_id: the venue whose instrument ids the "
                        "recording's snapshot lines use (a `record --sim` recording: SIM)")
    p.set_defaults(fn=replay)
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in DELEGATED:
            return _run_delegated(argv[0], argv[1:])
        args = parser().parse_args(argv)
        if not getattr(args, "fn", None):
            parser().print_help()
            return 2
        return args.fn(args)
    except CliError as exc:
        print(f"pipeline: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
