"""A run of several venues, as the launcher sees it: each role's own view of the config.

A role may carry its own sections ([roles.<name>.config.collector], .gateway, .ring, .risk, ...:
PipelineConfig.for_role), so one file runs a Binance and an OKX collector, each writing its own
tick ring, a gateway per venue, each with its own signal channel, state directory and
credentials, and a strategy that reads every ring ([strategy].rings) and sends each instance's
signals to its venue's gateway ([strategy].channels). A config without any role sections has one
view, the file itself: everything here then says what the single-venue launcher always did.

The launcher asks this module what to create (every tick ring a role reads), what to check (each
gateway's credentials) and what to clean up (each gateway's signal and order-event rings and
channel sockets); it tells the strategy role which status-block slot is which channel's gateway
($PIPELINE_GATEWAY_SLOTS), so a strategy sees one venue's gateway go HALTED while the others trade.
"""
from __future__ import annotations

from pipeline.config import PipelineConfig

ENV_GATEWAY_SLOTS = "PIPELINE_GATEWAY_SLOTS"    # "channel=slot,channel=slot" for strategy roles
RING_KINDS = ("collector", "strategy", "gateway", "recorder")   # roles that read or write a ring


def of_kind(cfg: PipelineConfig, kind: str) -> list[tuple[str, PipelineConfig]]:
    """(role name, its view) of every role of `kind`, in the file's order."""
    return [(n, cfg.for_role(n)) for n, r in cfg.roles.items() if r.kind == kind]


def rings(cfg: PipelineConfig) -> dict[str, int]:
    """Every tick ring of the run → its capacity: the file's [ring] first, then each role's own.
    A ring a strategy names in [strategy].rings must be one a role of the run has as its [ring]
    (a collector writes it); anything else is a ValueError naming it."""
    out = {cfg.ring.name: cfg.ring.capacity}
    for name, r in cfg.roles.items():
        if r.kind in RING_KINDS:
            v = cfg.for_role(name).ring
            if out.setdefault(v.name, v.capacity) != v.capacity:
                raise ValueError(f"ring {v.name!r}: two capacities ({out[v.name]} and "
                                 f"{v.capacity}, role {name})")
    for name, view in of_kind(cfg, "strategy"):
        for ring in view.strategy.rings:
            if ring not in out:
                raise ValueError(f"role {name}: [strategy].rings names {ring!r}, which no role "
                                 f"of the run writes (the rings: {', '.join(out)})")
    return out


def gateway_channels(cfg: PipelineConfig) -> list[str]:
    return list(dict.fromkeys(v.gateway.channel for _, v in of_kind(cfg, "gateway")))


def ring_venues(cfg: PipelineConfig) -> dict[str, set[int]]:
    """Each tick ring a collector of the run writes → the venue ids its records carry
    ([collector].venue_id of that collector's view): a strategy reading several rings judges a
    quiet ring's staleness for those venues' instances only (pipeline/strategy/venues.py)."""
    from pipeline.records import Venue
    out: dict[str, set[int]] = {}
    for _, view in of_kind(cfg, "collector"):
        out.setdefault(view.ring.name, set()).add(int(Venue[view.collector.venue_id]))
    return out


def secret_envs(view: PipelineConfig) -> set[str]:
    """The environment variables that hold one gateway's secrets."""
    g = view.gateway
    return {g.api_key_env, g.api_secret_env, g.api_passphrase_env} - {""}


def gateway_slots(cfg: PipelineConfig, slots: dict[str, int]) -> str:
    """$PIPELINE_GATEWAY_SLOTS: each gateway's signal channel and its status-block slot."""
    return ",".join(f"{v.gateway.channel}={slots[n]}" for n, v in of_kind(cfg, "gateway"))


def parse_gateway_slots(text: str) -> dict[str, int]:
    """The inverse of gateway_slots; a malformed entry is a ValueError naming it."""
    out = {}
    for part in filter(None, text.split(",")):
        channel, sep, slot = part.partition("=")
        if not sep or not channel or not slot.isdigit():
            raise ValueError(f"${ENV_GATEWAY_SLOTS}: {part!r} is not channel=slot")
        out[channel] = int(slot)
    return out


def check(cfg: PipelineConfig, source: str) -> None:
    """A run of several gateways: distinct channels and state directories (two gateways on one
    would take each other's signals or journal), and gateways of different venues that read their
    keys from the environment read them from different variables (else both would get one
    venue's key); a ValueError naming both roles."""
    seen: dict[tuple[str, str], str] = {}
    env_key: dict[str, tuple[str, str]] = {}       # api_key_env → (role, venue)
    for name, view in of_kind(cfg, "gateway"):
        for what in ("channel", "state_dir"):
            key = (what, getattr(view.gateway, what))
            if key in seen:
                raise ValueError(f"{source}: roles {seen[key]} and {name} have the same "
                                 f"[gateway].{what} {key[1]!r}: give each gateway its own")
            seen[key] = name
        g = view.gateway
        if not g.credentials_file:
            other = env_key.setdefault(g.api_key_env, (name, g.venue.upper()))
            if other[1] != g.venue.upper():
                raise ValueError(
                    f"{source}: roles {other[0]} ({other[1]}) and {name} ({g.venue.upper()}) "
                    f"both read their API key from ${g.api_key_env}: give each venue's gateway "
                    f"its own credentials_file or its own api_key_env / api_secret_env names")
    rings(cfg)
