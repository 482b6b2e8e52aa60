"""Placements of roles onto cores, for scripts/tune_affinity.py.

A placement gives every role one core and a wait strategy. Rules: a spinning role (busy_spin)
gets a core no other role uses; when there are fewer cores than roles, roles share cores and wait
with `blocking` (futex: no CPU while idle). Placements equal up to renaming identical cores are
enumerated once.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

# Roles whose wait strategy matters (they read the ring or the signal socket in a loop).
WAITING_KINDS = ("strategy",)


@dataclass(frozen=True)
class Placement:
    cores: dict[str, int | None]   # role → core (None = not pinned)
    waits: dict[str, str]          # role → wait strategy (roles in WAITING_KINDS only)

    def describe(self) -> str:
        parts = []
        for role in sorted(self.cores):
            w = self.waits.get(role)
            c = self.cores[role]
            parts.append(f"{role}@{'any' if c is None else c}" + (f"({w})" if w else ""))
        return " ".join(parts)


def enumerate_placements(roles: dict[str, str], cores: list[int], limit: int = 0) -> list[Placement]:
    """All valid placements of `roles` (name → kind) onto `cores`, canonical up to relabelling of
    cores, spinning variants first where a waiting role can have a core to itself."""
    names = sorted(roles)
    seen = set()
    out: list[Placement] = []
    for assign in itertools.product(cores, repeat=len(names)):
        # canonical form: relabel cores by first use
        relabel: dict[int, int] = {}
        canon = tuple(relabel.setdefault(c, len(relabel)) for c in assign)
        if canon in seen:
            continue
        seen.add(canon)
        mapping = dict(zip(names, assign))
        waiting = [n for n in names if roles[n] in WAITING_KINDS]
        for spin_choice in itertools.product((False, True), repeat=len(waiting)):
            waits = {}
            ok = True
            for n, spin in zip(waiting, spin_choice):
                if spin:
                    alone = all(mapping[o] != mapping[n] for o in names if o != n)
                    if not alone:
                        ok = False
                        break
                waits[n] = "busy_spin" if spin else "blocking"
            if ok:
                out.append(Placement(mapping, waits))
    out.sort(key=lambda p: (-sum(w == "busy_spin" for w in p.waits.values()),
                            -len(set(p.cores.values()))))
    return out[:limit] if limit else out


def _cores(c: int | None) -> str:
    return "[]" if c is None else f"[{c}]"


def unpinned(roles: dict[str, str], wait: str = "blocking") -> Placement:
    """The baseline: nothing pinned, every waiting role blocking."""
    return Placement({n: None for n in roles}, {n: wait for n, k in roles.items()
                                                 if k in WAITING_KINDS})


def apply_to_toml(text: str, placement: Placement) -> str:
    """Rewrite `cores = [...]` and `wait = "..."` inside each [roles.<name>] table of a TOML
    document, keeping everything else (comments included) as it is."""
    lines = text.splitlines(keepends=True)
    out = []
    current = None
    seen: dict[str, set] = {}

    def flush_missing(role):
        if role is None or role not in placement.cores:
            return
        missing = []
        if "cores" not in seen.get(role, set()):
            missing.append(f"cores = {_cores(placement.cores[role])}\n")
        if role in placement.waits and "wait" not in seen.get(role, set()):
            missing.append(f'wait = "{placement.waits[role]}"\n')
        out.extend(missing)

    for line in lines:
        m = re.match(r"\s*\[(.+?)\]\s*(#.*)?$", line)
        if m:
            flush_missing(current)
            name = m.group(1).strip()
            current = name[len("roles."):] if name.startswith("roles.") else None
            out.append(line)
            continue
        if current in placement.cores:
            km = re.match(r"(\s*)(cores|wait)\s*=", line)
            if km:
                key = km.group(2)
                seen.setdefault(current, set()).add(key)
                if key == "cores":
                    line = f"{km.group(1)}cores = {_cores(placement.cores[current])}\n"
                elif current in placement.waits:
                    line = f'{km.group(1)}wait = "{placement.waits[current]}"\n'
        out.append(line)
    flush_missing(current)
    return "".join(out)


def set_keys(text: str, values: dict[tuple[str, str], str]) -> str:
    """Set `key = value` (value already TOML-encoded) inside table [section] for each
    (section, key); adds the key at the end of the table, or the table at the end, if missing."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    current = None
    done: set[tuple[str, str]] = set()

    def add_missing(section):
        for (sec, key), v in values.items():
            if sec == section and (sec, key) not in done:
                out.append(f"{key} = {v}\n")
                done.add((sec, key))

    for line in lines:
        m = re.match(r"\s*\[([^\[\]]+)\]\s*(#.*)?$", line)
        if m or re.match(r"\s*\[\[", line):
            add_missing(current)
            current = m.group(1).strip() if m else None
            out.append(line)
            continue
        km = re.match(r"(\s*)([A-Za-z0-9_]+)\s*=", line)
        if km and (current, km.group(2)) in values:
            line = f"{km.group(1)}{km.group(2)} = {values[(current, km.group(2))]}\n"
            done.add((current, km.group(2)))
        out.append(line)
    add_missing(current)
    for (sec, key), v in values.items():
        if (sec, key) not in done:
            out.append(f"\n[{sec}]\n{key} = {v}\n")
            done.add((sec, key))
    return "".join(out)
