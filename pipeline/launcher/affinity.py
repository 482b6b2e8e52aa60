"""Placements of roles onto cores, for scripts/tune_affinity.py.

A placement gives every role one core and a wait strategy. Rules: a spinning role (busy_spin)
gets a core no other role uses; when there are fewer cores than roles, roles share cores and wait
with `blocking` (futex: no CPU while idle). Placements equal up to renaming identical cores are
enumerated once.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import tomlkit

# Roles whose wait strategy matters (they wait on a ring in a loop: the strategy on the tick ring,
# the gateway on the signal ring).
WAITING_KINDS = ("strategy", "gateway")


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


def unpinned(roles: dict[str, str], wait: str = "blocking") -> Placement:
    """The baseline: nothing pinned, every waiting role blocking."""
    return Placement({n: None for n in roles}, {n: wait for n, k in roles.items()
                                                 if k in WAITING_KINDS})


def apply_to_toml(text: str, placement: Placement) -> str:
    """Set `cores` and `wait` in each [roles.<name>] table of a TOML document, keeping everything
    else (comments included) as it is."""
    doc = tomlkit.parse(text)
    roles = doc.get("roles", {})
    for name, core in placement.cores.items():
        if name not in roles:
            continue
        roles[name]["cores"] = [] if core is None else [core]
        if name in placement.waits:
            roles[name]["wait"] = placement.waits[name]
    return tomlkit.dumps(doc)


def set_keys(text: str, values: dict[tuple[str, str], object]) -> str:
    """Set `key = value` inside table [section] for each (section, key), creating the table if
    it is missing; comments and everything else stay."""
    doc = tomlkit.parse(text)
    for (section, key), value in values.items():
        table = doc
        for part in section.split("."):
            if part not in table:
                table[part] = tomlkit.table()
            table = table[part]
        table[key] = value
    return tomlkit.dumps(doc)
