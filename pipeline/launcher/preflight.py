"""Preflight: what this box is and whether it is tuned for low latency.

Reads /sys and /proc (and psutil): cores and SMT siblings, isolated and nohz_full CPUs, frequency
governor, transparent huge pages, free /dev/shm, clock source, irqbalance. Returns facts and
warnings; `validate_placement` turns impossible configs into errors before anything starts.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import psutil

SYS_CPU = Path("/sys/devices/system/cpu")


def _read(path: str | Path) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def parse_cpu_list(text: str | None) -> list[int]:
    """'0-3,8,10-11' → [0, 1, 2, 3, 8, 10, 11]."""
    out: list[int] = []
    if not text:
        return out
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            a, b = part.split("-", 1)
            out.extend(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    return out


@dataclass
class Topology:
    online: list[int]
    usable: list[int]                       # our affinity mask
    siblings: dict[int, list[int]]          # cpu → SMT siblings (incl. itself)
    numa: dict[int, list[int]]              # node → cpus
    isolated: list[int]
    nohz_full: list[int]

    def physical_cores(self) -> list[list[int]]:
        seen, cores = set(), []
        for c in self.online:
            group = tuple(sorted(self.siblings.get(c, [c])))
            if group not in seen:
                seen.add(group)
                cores.append(list(group))
        return cores


def topology() -> Topology:
    online = parse_cpu_list(_read(SYS_CPU / "online")) or list(range(os.cpu_count() or 1))
    siblings = {}
    for c in online:
        sib = parse_cpu_list(_read(SYS_CPU / f"cpu{c}" / "topology" / "thread_siblings_list"))
        siblings[c] = sib or [c]
    numa: dict[int, list[int]] = {}
    for node in sorted(Path("/sys/devices/system/node").glob("node[0-9]*")):
        numa[int(node.name[4:])] = parse_cpu_list(_read(node / "cpulist"))
    if not numa:
        numa = {0: online}
    return Topology(online=online, usable=sorted(os.sched_getaffinity(0)), siblings=siblings,
                    numa=numa, isolated=parse_cpu_list(_read(SYS_CPU / "isolated")),
                    nohz_full=parse_cpu_list(_read(SYS_CPU / "nohz_full")))


@dataclass
class Report:
    facts: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"  {k:<22} {v}" for k, v in self.facts.items()]
        out += [f"  WARNING: {w}" for w in self.warnings]
        return out


def report() -> Report:
    r = Report()
    t = topology()
    r.facts["cpus online"] = ",".join(map(str, t.online))
    r.facts["cpus usable"] = ",".join(map(str, t.usable))
    r.facts["physical cores"] = " ".join("[" + ",".join(map(str, g)) + "]" for g in t.physical_cores())
    r.facts["numa nodes"] = len(t.numa)
    r.facts["isolated cpus"] = ",".join(map(str, t.isolated)) or "none"
    r.facts["nohz_full cpus"] = ",".join(map(str, t.nohz_full)) or "none"
    if not t.isolated:
        r.warnings.append("no isolated CPUs (isolcpus=): pinned roles still share cores with the "
                          "kernel and other processes")
    if any(len(g) > 1 for g in t.physical_cores()):
        r.warnings.append("SMT is on: keep a spinning role's sibling idle, or disable SMT")
    govs = {_read(SYS_CPU / f"cpu{c}" / "cpufreq" / "scaling_governor") for c in t.online}
    govs.discard(None)
    r.facts["cpufreq governor"] = ",".join(sorted(govs)) if govs else "n/a (no cpufreq: VM?)"
    if govs and govs != {"performance"}:
        r.warnings.append(f"frequency governor is {','.join(sorted(govs))}: set 'performance' "
                          "to avoid frequency ramps")
    thp = _read("/sys/kernel/mm/transparent_hugepage/enabled") or "n/a"
    r.facts["transparent hugepages"] = thp
    if "[always]" in thp:
        r.warnings.append("THP is 'always': khugepaged compaction can stall; 'madvise' is safer")
    st = os.statvfs("/dev/shm")
    free = st.f_bavail * st.f_frsize
    r.facts["/dev/shm free"] = f"{free / 2**20:,.0f} MiB"
    if free < 256 * 2**20:
        r.warnings.append("/dev/shm has under 256 MiB free")
    cs = _read(SYS_CPU / "../clocksource/clocksource0/current_clocksource") or "n/a"
    r.facts["clock source"] = cs
    if cs not in ("tsc", "n/a"):
        r.warnings.append(f"clock source is {cs}: timestamps cost more than with tsc")
    irqb = any(p.info["name"] == "irqbalance" for p in psutil.process_iter(["name"]))
    r.facts["irqbalance"] = "running" if irqb else "not running"
    if irqb and t.isolated:
        r.warnings.append("irqbalance is running: it may move interrupts onto isolated CPUs")
    return r


SPINNING = ("busy_spin", "yielding")


def validate_placement(roles: dict, source: str = "config") -> list[str]:
    """Errors for placements that cannot work (a core that does not exist or is not ours) and
    warnings (returned) for ones that work badly (a spinning role sharing its core)."""
    usable = set(os.sched_getaffinity(0))
    warnings = []
    for name, spec in roles.items():
        bad = [c for c in spec.cores if c not in usable]
        if bad:
            raise ValueError(f"{source}: roles.{name}.cores: CPU {bad[0]} does not exist or is not "
                             f"usable here (usable: {sorted(usable)})")
    for name, spec in roles.items():
        if spec.wait in SPINNING and spec.cores and spec.kind in ("strategy", "gateway"):
            sharing = [o for o, s in roles.items() if o != name and set(s.cores) & set(spec.cores)]
            if sharing:
                warnings.append(f"roles.{name} spins ({spec.wait}) on cores {spec.cores} shared "
                                f"with {', '.join(sharing)}: they will starve each other")
    return warnings
