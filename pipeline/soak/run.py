"""One chaos soak: the demo pipeline (its launcher and roles) against a simulator that outlives it.

    prepare      a private config derived from the pipeline config (the demo's by default): no
                 embedded simulator role, a free port, the soak's own run directory, gateway state,
                 segment names (prefix soak-<pid>) and test keys (0600)
    simulator    `python -m pipeline.sim` in its own process, started once for the whole soak
    launcher     `scripts/launch.py` in its own session; when a role death ends it (a gateway or
                 strategy kill HALTs for good, as it must), the soak starts it again, as systemd
                 would: the gateway rebuilds its state from its journal and the venue
    chaos        every few seconds (seeded): SIGKILL or SIGSTOP a role, or inject a 429 burst,
                 5xx replies, dropped connections, late replies or a depth gap at the simulator
    sampling     every role's RSS; a reader of the tick ring verifying every record (TickVerifier)
    the end      SIGTERM (orders cancelled on shutdown), then the checks of checks.py, the leak and
                 orphan scans, and the report with the JSON keys of issue #17's soak benchmark
"""
from __future__ import annotations

import json
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import requests
import tomlkit

from pipeline import config as cfgmod
from pipeline.gateway import binjournal
from pipeline.soak import checks

log = logging.getLogger("pipeline.soak")
ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable

# chaos actions and their weights: role deaths a restart policy heals (the collector), short stops
# under the heartbeat limit, venue faults, and the rare kill that ends a launcher run
ACTIONS = {
    "kill_collector": 3, "stop_collector": 2, "stop_strategy": 2, "stop_gateway": 2,
    "force_429": 2, "http_5xx": 2, "drop_md": 2, "delay": 1, "skip_depth": 2,
    "kill_gateway": 1, "kill_strategy": 1,
}
FAULT_OF = {"force_429": ("force_429", lambda r: {"count": r.randint(1, 3)}),
            "http_5xx": ("http_5xx", lambda r: {"count": 1}),
            "drop_md": ("drop", lambda r: {"target": "md"}),
            "delay": ("delay", lambda r: {"ms": r.choice([300, 800]), "count": 2}),
            "skip_depth": ("skip_depth", lambda r: {"count": 1})}


def _rss_kinds(pid: int) -> tuple[int, int]:
    """(anonymous, file-backed) resident bytes of a process (/proc/<pid>/status)."""
    got = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("RssAnon:", "RssFile:")):
                got[line[:7]] = int(line.split()[1]) * 1024
    return got.get("RssAnon", 0), got.get("RssFile", 0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Soak:
    config: Path
    out: Path
    minutes: float
    seed: int
    rss_warmup_s: float = 60.0
    interval_s: tuple[float, float] = (2.0, 6.0)
    prefix: str = field(default_factory=lambda: f"soak-{os.getpid()}")
    faults: dict[str, int] = field(default_factory=dict)
    launcher_runs: int = 0
    manual_resets: int = 0
    launch_failures: int = 0
    events: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ setup
    def prepare(self) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        base = f"http://127.0.0.1:{self.port}"
        doc = tomlkit.parse(self.config.read_text())
        roles = doc.get("roles", {})
        for name in [n for n, r in roles.items() if r.get("kind") == "sim"]:
            del roles[name]
        doc["ring"]["name"] = f"{self.prefix}-ticks"
        la = doc["launcher"]
        la["run_id"], la["run_dir"], la["duration"] = self.prefix, str(self.out / "run"), 0.0
        la["status_interval"] = 0.0
        doc["sim"]["port"] = self.port
        col = doc["collector"]
        col["ws_url"], col["rest_url"] = f"ws://127.0.0.1:{self.port}", base
        gw = doc["gateway"]
        gw["rest_url"], gw["ws_api_url"] = base, f"ws://127.0.0.1:{self.port}/ws-api/v3"
        gw["state_dir"] = str(self.out / "gateway-state")
        gw["credentials_file"] = str(self.out / "sim-keys")
        doc["strategy"]["channel"] = gw["channel"] = f"{self.prefix}-signals"
        path = self.out / "soak.toml"
        path.write_text(tomlkit.dumps(doc))
        self.cfg = cfgmod.load(path)
        keyfile = Path(gw["credentials_file"])
        if not keyfile.exists():
            fd = os.open(keyfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(f"api_key={cfgmod.SIM_TEST_API_KEY}\napi_secret={cfgmod.SIM_TEST_SECRET}\n")
        self.path = path
        return path

    def start_sim(self) -> None:
        ready = self.out / "sim.ready.json"
        ready.unlink(missing_ok=True)
        self.sim_log = open(self.out / "sim.log", "ab")
        self.sim = subprocess.Popen([PY, "-m", "pipeline.sim", "--config", str(self.path),
                                     "--ready-file", str(ready), "--log-level", "WARNING"],
                                    cwd=ROOT, stdout=self.sim_log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        deadline = time.monotonic() + 30
        while not ready.exists():
            if self.sim.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the simulator did not start (see {self.out / 'sim.log'})")
            time.sleep(0.05)
        self.sim_url = f"http://127.0.0.1:{self.port}"
        self.start_balances = self.balances()

    def sim_state(self) -> dict:
        r = requests.get(f"{self.sim_url}/_sim/state", timeout=10)
        r.raise_for_status()
        return r.json()

    def account(self) -> dict:
        accts = self.sim_state()["accounts"]
        return accts[cfgmod.SIM_TEST_API_KEY]

    def balances(self) -> dict[str, float]:
        b = self.account()["balances"]
        return {a: float(v["free"]) + float(v["locked"]) for a, v in b.items()}

    def start_launcher(self, patience_s: float = 200.0) -> None:
        """Start the launcher and wait for its roles; a start that fails (the venue refusing us
        for a while, e.g. a 418 ban) is retried every 5 s for `patience_s`, as systemd would."""
        give_up = time.monotonic() + patience_s
        while True:
            why = self._launch_once()
            if why is None:
                self.verifier_restart.set()
                return
            self.launch_failures += 1
            self.events.append(f"{time.monotonic() - self.t0:7.1f} s  launcher run "
                               f"{self.launcher_runs} failed to start: {why}")
            if time.monotonic() > give_up:
                raise RuntimeError(f"the launcher did not start for {patience_s:g} s: {why}")
            time.sleep(5.0)

    def _launch_once(self) -> str | None:
        self.launcher_runs += 1
        n = self.launcher_runs
        self.run_dir = self.out / "run"
        (self.run_dir / "launcher.json").unlink(missing_ok=True)
        out = self.out / f"launcher-{n}.out"
        with open(out, "ab") as f:
            self.launcher = subprocess.Popen(
                [PY, str(ROOT / "scripts" / "launch.py"), "--config", str(self.path),
                 "--summary-json", str(self.out / f"summary-{n}.json")],
                cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 90
        noted = 0.0
        while True:
            roles = self.roles()
            if roles and all(roles.values()) and self._gateway_running():
                return None
            # the venue closed to the run (a 429's Retry-After, a 418 ban): the gateway waits it
            # out while it starts, heartbeating, and so do we (then 90 s more, as for any start)
            closed_s, status = self._venue_closed()
            if closed_s > 0:
                deadline = max(deadline, time.monotonic() + closed_s + 90)
                if time.time() + closed_s > noted + 1.0:
                    noted = time.time() + closed_s
                    self.events.append(f"{time.monotonic() - self.t0:7.1f} s  launcher run {n}: "
                                       f"the venue is closed to the run (HTTP {status}) for "
                                       f"{closed_s:.0f} s; the start waits")
            if self.launcher.poll() is not None:
                lines = [ln for ln in out.read_text(errors="replace").splitlines()
                         if ln.startswith("stopping (")]
                return lines[-1] if lines else f"launcher exit {self.launcher.returncode}"
            if time.monotonic() > deadline:
                self._kill_launcher()
                return "roles not started within 90 s (after any venue closure)"
            time.sleep(0.1)

    def _venue_closed(self) -> tuple[float, int]:
        """(seconds, HTTP status) the venue is still closed to the run: the run's shared record
        (pipeline/venueclosure.py) or the gateway's own (it outlives a gateway process)."""
        from pipeline.venueclosure import SharedClosure
        host = f"127.0.0.1:{self.port}"
        until, status = SharedClosure(host, self.run_dir).until()
        try:
            rec = json.loads((self.out / "gateway-state" / "host-closed.json").read_text())
            if rec.get("host") == host and float(rec["until_wall_s"]) > until:
                until, status = float(rec["until_wall_s"]), int(rec["status"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return max(0.0, until - time.time()), status

    def _gateway_running(self) -> bool:
        try:
            st = json.loads((self.out / "gateway-state" / "status.json").read_text())
        except (OSError, ValueError):
            return False
        return st.get("phase") == "RUNNING" and st.get("pid") == self.roles().get("gateway")

    def _kill_launcher(self) -> None:
        try:
            os.killpg(self.launcher.pid, signal.SIGKILL)
        except OSError:
            pass
        self.launcher.wait(timeout=10)

    def roles(self) -> dict[str, int | None]:
        """Role name -> pid of the running launcher (launcher.json), {} before it exists."""
        try:
            rf = json.loads((self.run_dir / "launcher.json").read_text())
        except (OSError, ValueError):
            return {}
        if rf.get("pid") != self.launcher.pid or rf.get("stopped"):
            return {}
        return {name: r.get("pid") for name, r in rf.get("roles", {}).items()}

    # ------------------------------------------------------------------ chaos
    def act(self, rng: random.Random, action: str) -> None:
        if action in FAULT_OF:
            name, params = FAULT_OF[action]
            p = params(rng)
            r = requests.post(f"{self.sim_url}/_sim/fault", json={"fault": name, **p}, timeout=10)
            r.raise_for_status()
            self._did(action, f"{name} {p}")
            return
        verb, role = action.split("_", 1)
        pid = self.roles().get(role)
        if not pid:
            return
        if verb == "kill":
            os.kill(pid, signal.SIGKILL)
            self._did(action, f"pid {pid}")
            if role in ("gateway", "strategy"):
                self._relaunch(f"{role} killed")
            return
        pause = rng.uniform(1.0, 3.0) if role == "collector" else rng.uniform(0.3, 1.5)
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(pause)
        finally:
            os.kill(pid, signal.SIGCONT)
        self._did(action, f"pid {pid} for {pause:.1f} s")

    def _did(self, action: str, what: str) -> None:
        self.faults[action] = self.faults.get(action, 0) + 1
        self.events.append(f"{time.monotonic() - self.t0:7.1f} s  {action}: {what}")

    def _relaunch(self, why: str) -> None:
        """A role death HALTs for good and the launcher stops: wait for it, start it again."""
        try:
            self.launcher.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.events.append(f"launcher did not stop after: {why}; killing its session")
            self._kill_launcher()
        # a strategy or gateway death HALTs for good: the operator's reset, as after any such
        # death (counted apart from the deaths the restart policy heals on its own)
        r = subprocess.run([PY, "-m", "pipeline.gateway", "--config", str(self.path), "reset"],
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"gateway reset failed: {r.stderr.strip()[-500:]}")
        self.manual_resets += 1
        self.events.append(f"{time.monotonic() - self.t0:7.1f} s  launcher ended "
                           f"(rc {self.launcher.returncode}) after {why}: reset, started again")
        self.start_launcher()

    # ------------------------------------------------------------------ sampling
    def _sampler(self, stop: threading.Event) -> None:
        while not stop.wait(2.0):
            pids = {pid: name for name, pid in self.roles().items() if pid}
            pids[self.sim.pid] = "sim"
            pids[self.launcher.pid] = "launcher"
            for pid, name in pids.items():
                try:
                    p = psutil.Process(pid)
                    rss = p.memory_info().rss
                    age = time.time() - p.create_time()
                    kinds = _rss_kinds(pid)
                except (psutil.Error, OSError):
                    continue
                self.rss_names[pid] = name
                self.rss.setdefault(pid, []).append((age, rss))
                self.rss_kinds.setdefault(pid, []).append((age, *kinds))

    def _verify(self, stop: threading.Event) -> None:
        from pipeline.bus.ring import TickRing
        reader = ring = None
        while not stop.is_set():
            if self.verifier_restart.is_set():
                self.verifier_restart.clear()
                if ring is not None:
                    ring.close()
                reader = ring = None
                try:
                    ring = TickRing.attach(self.cfg.ring.name, timeout=5.0)
                    reader = ring.reader(wait="sleeping", max_batch=4096, start="next")
                    self.verifier.restart()
                except Exception as exc:  # noqa: BLE001 - reported; the soak goes on
                    self.events.append(f"tick verifier could not attach: {exc}")
            if reader is None:
                time.sleep(0.1)
                continue
            batch = reader.poll()
            if len(batch):
                self.verifier.check(batch, time.time_ns())
            else:
                time.sleep(0.005)
        if ring is not None:
            ring.close()

    # ------------------------------------------------------------------ the run
    def run(self) -> dict:
        self.prepare()
        self.t0 = time.monotonic()
        t0_ns = time.time_ns()
        self.rss: dict[int, list[tuple[float, int]]] = {}
        self.rss_names: dict[int, str] = {}
        self.rss_kinds: dict[int, list[tuple[float, int, int]]] = {}
        self.verifier_restart = threading.Event()
        stop = threading.Event()
        threads = []
        self.launcher = None
        try:
            self.start_sim()
            self.start_launcher()
            ids = self._symbol_ids()
            self.verifier = checks.TickVerifier(venue=self._venue_id(), symbols=frozenset(ids),
                                                t0_ns=t0_ns)
            threads = [threading.Thread(target=f, args=(stop,), daemon=True)
                       for f in (self._sampler, self._verify)]
            for t in threads:
                t.start()
            rng = random.Random(self.seed)
            end = self.t0 + self.minutes * 60.0
            names, weights = list(ACTIONS), list(ACTIONS.values())
            while True:
                wait = rng.uniform(*self.interval_s)
                if time.monotonic() + wait >= end - 3.0:
                    break
                time.sleep(wait)
                if self.launcher.poll() is not None:
                    self._relaunch(f"an unexpected end (rc {self.launcher.returncode})")
                    continue
                self.act(rng, rng.choices(names, weights)[0])
            time.sleep(max(0.0, end - time.monotonic()))
            stopped_cleanly = self._stop_launcher()
            stop.set()
            for t in threads:
                t.join(timeout=10)
            return self.report(stopped_cleanly)
        finally:
            stop.set()
            self._cleanup()

    def _venue_id(self) -> int:
        from pipeline.records import Venue
        return int(Venue[self.cfg.collector.venue_id])

    def _instruments(self) -> list[dict]:
        return json.loads((self.run_dir / "instruments.json").read_text())["instruments"]

    def _symbol_ids(self) -> set[int]:
        venue = self.cfg.collector.venue_id
        return {int(i["id"]) for i in self._instruments() if i["venue"] == venue}

    def _stop_launcher(self) -> bool:
        if self.launcher.poll() is not None:
            return False
        self.launcher.send_signal(signal.SIGTERM)
        try:
            self.launcher.wait(timeout=self.cfg.launcher.shutdown_timeout + 30)
            return True
        except subprocess.TimeoutExpired:
            return False

    def _cleanup(self) -> None:
        for p in (self.launcher, getattr(self, "sim", None)):
            if p is not None and p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                    p.wait(timeout=30)
                except (OSError, subprocess.TimeoutExpired):
                    try:
                        os.killpg(p.pid, signal.SIGKILL)
                    except OSError:
                        pass
        # whatever a failed soak leaves in /dev/shm goes (a clean one leaves nothing: counted)
        for name in os.listdir("/dev/shm"):
            if name.startswith(self.prefix):
                try:
                    os.unlink(f"/dev/shm/{name}")
                except OSError:
                    pass

    # ------------------------------------------------------------------ the end
    def report(self, stopped_cleanly: bool) -> dict:
        acct = self.account()
        venue_orders = acct.get("orders", [])
        base_of = {i["symbol"]: i["base"] for i in self._instruments()
                   if i["venue"] == self.cfg.gateway.venue and i["symbol"] in self.cfg.gateway.symbols}
        stats: dict[str, int] = {}
        records = list(self._journal(stats))
        view = checks.JournalView.of(records, base_of)
        refused: dict[str, int] = {}
        for r in records:
            if r.get("k") == "signal" and r.get("decision") == "reject":
                refused[r.get("reason", "?")] = refused.get(r.get("reason", "?"), 0) + 1
        status = json.loads((self.out / "gateway-state" / "status.json").read_text())
        local_open = [o.get("cid") or o.get("client_id", "") for o in status.get("open_orders", [])]
        end = self.balances()
        delta = {s: end.get(b, 0.0) - self.start_balances.get(b, 0.0) for s, b in base_of.items()}
        untraced = checks.trace_orders(venue_orders, view)
        mismatch = checks.compare_orders(venue_orders, view, acct.get("open_orders", []), local_open)
        mismatch += checks.compare_positions(delta, view)
        self.sim.send_signal(signal.SIGTERM)
        try:
            self.sim.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        time.sleep(0.2)
        leaked = sorted(n for n in os.listdir("/dev/shm") if n.startswith(self.prefix))
        orphans = self._orphans()
        growth = checks.rss_growth_pct(self.rss, self.rss_warmup_s)
        summaries = [json.loads(p.read_text()) for p in sorted(self.out.glob("summary-*.json"))]
        healed = sum(int(s.get("roles", {}).get("collector", {}).get("restarts", 0))
                     for s in summaries)
        by_role, worst = {}, {}
        for pid, g in growth.items():
            name = self.rss_names.get(pid, "?")
            if g > by_role.get(name, float("-inf")):
                by_role[name], worst[name] = g, pid
        # the process behind each role's figure: heap (anonymous) vs mapped files (a journal's
        # written pages stay resident), from its first sample after the warm-up to its last
        mb = 1 << 20
        rss_detail = {}
        for name, pid in sorted(worst.items()):
            after = [k for k in self.rss_kinds.get(pid, []) if k[0] >= self.rss_warmup_s]
            if len(after) >= 2:
                (a0, an0, f0), (a1, an1, f1) = after[0], after[-1]
                rss_detail[name] = {"pid": pid, "from_age_s": round(a0), "to_age_s": round(a1),
                                    "anon_mb": [round(an0 / mb, 1), round(an1 / mb, 1)],
                                    "file_mb": [round(f0 / mb, 1), round(f1 / mb, 1)]}
        res = {
            "minutes": self.minutes,
            "seed": self.seed,
            "faults_injected": sum(self.faults.values()),
            "faults": dict(sorted(self.faults.items())),
            "launcher_runs": self.launcher_runs,
            "manual_resets": self.manual_resets,
            "launch_failures": self.launch_failures,
            "signals_refused": refused,
            "stopped_cleanly": stopped_cleanly,
            "venue_orders": len(venue_orders),
            "journal_fills": view.fills,
            "orders_mismatched": len(mismatch),
            "mismatches": mismatch[:20],
            "untraced_venue_orders": len(untraced),
            "untraced": untraced[:20],
            "leaked_segments": len(leaked),
            "leaked": leaked,
            "orphans": len(orphans),
            "orphan_cmdlines": orphans[:10],
            "max_rss_growth_pct": round(max(growth.values()), 2) if growth else None,
            "rss_growth_pct_by_role": {k: round(v, 2) for k, v in sorted(by_role.items())},
            "rss_detail_by_role": rss_detail,
            "torn_reads": self.verifier.torn,
            "torn_examples": self.verifier.examples,
            "ticks_verified": self.verifier.received,
            "journal_torn_records": stats.get("torn", 0),
            "recovered_without_manual_reset": healed,
        }
        return {"results": res, "events": self.events}

    def _journal(self, stats: dict):
        state = self.out / "gateway-state"
        for p in sorted(state.glob("journal*")):
            if p.is_file() and not p.name.endswith(".lock"):
                yield from binjournal.read_any(p, stats)

    def _orphans(self) -> list[str]:
        out = []
        needle = str(self.path)
        for p in psutil.process_iter(["pid", "cmdline"]):
            try:
                cmd = " ".join(p.info["cmdline"] or [])
            except psutil.Error:
                continue
            if needle in cmd and p.pid != os.getpid():
                out.append(f"{p.pid}: {cmd[:160]}")
        return out
