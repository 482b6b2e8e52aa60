"""The launcher's instrument checks: which venues a run asks, what the config's own simulator
will list, and the preflight's view of each venue's instruments.

A run whose venue is the config's [roles.*] kind = "sim" cannot ask that venue before the
simulator is started, but it knows what the simulator will list ([sim].symbols, spelled each venue's
way), so an unlisted symbol is an error before anything starts; the real listing is loaded once the
simulator is up. Any other venue is asked before the first role starts.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from pipeline import instruments as I

ROLE_KINDS = ("collector", "gateway", "strategy")


def run_kinds(cfg) -> list[str]:
    """The role kinds of this run that need instruments."""
    kinds = {r.kind for r in cfg.roles.values()}
    return [k for k in ROLE_KINDS if k in kinds]


def wanted(cfg) -> I.Wanted:
    """What every role of the run needs, each from its own view (a run of several venues: one
    collector and one gateway per venue, PipelineConfig.for_role)."""
    want: I.Wanted = {}
    for name, r in cfg.roles.items():
        if r.kind in ROLE_KINDS:
            for src, syms in I.wanted(cfg.for_role(name), [r.kind]).items():
                want.setdefault(src, set()).update(syms)
    return want


def has_sim(cfg) -> bool:
    return any(r.kind == "sim" for r in cfg.roles.values())


def served_by_sim(cfg, src: I.Source) -> bool:
    """Does this source's REST URL point at the config's own simulator (its port on loopback)?"""
    if not has_sim(cfg) or not cfg.sim.port:
        return False
    u = urlsplit(src.rest_url)
    return u.port == cfg.sim.port and u.hostname in ("127.0.0.1", "localhost", cfg.sim.host)


def sim_listing(cfg, listing: str) -> set[str]:
    """What the config's simulator will list, spelled the way `listing` spells it. A relaying
    simulator lists what its upstream lists of [sim].symbols (it checks them at its start; the
    preflight asks the upstream)."""
    from pipeline.sim.instruments import SPECS
    if cfg.sim.tape == "relay":
        return {s.upper() for s in cfg.sim.symbols} if listing == "binance" else set()
    out = set()
    for s in cfg.sim.symbols:
        spec = SPECS.get(s.upper())
        if spec is None:
            continue                     # the simulator refuses to start; its own error says why
        out.add(f"{spec.base}-{spec.quote}" if listing == "okx" else spec.symbol)
    return out


def check_sim_symbols(cfg, source: str) -> None:
    """An InstrumentError for a symbol the config's simulator will not list (no network)."""
    for src, syms in wanted(cfg).items():
        if not served_by_sim(cfg, src):
            continue
        listed = sim_listing(cfg, src.listing)
        missing = sorted(syms - listed)
        if missing:
            raise I.InstrumentError(
                f"{source}: {', '.join(f'{src.venue}:{s}' for s in missing)}: not listed by the "
                f"venue (the simulator at {src.rest_url} lists {', '.join(sorted(listed)) or 'nothing'}; "
                f"add it to [sim].symbols)")


def check_tradable(cfg, source: str) -> list[str]:
    """A gateway symbol without [risk.symbols] limits cannot be traded: an InstrumentError before
    anything starts (the gateway would exit at start). Returns warnings: a strategy instance whose
    instrument no gateway of the run trades (its signals would all be rejected)."""
    traded: set[tuple[str, str]] = set()
    for name, r in cfg.roles.items():
        if r.kind != "gateway":
            continue
        view = cfg.for_role(name)
        g = view.gateway
        for sym in g.symbols:
            try:
                view.risk.limits_for(g.venue, sym)
            except KeyError as exc:
                raise I.InstrumentError(f"{source}: [gateway].symbols"
                                        f"{'' if view is cfg else f' of role {name}'}: "
                                        f"{exc.args[0]}") from None
        traded |= {(g.venue.upper(), s.upper()) for s in g.symbols}
    if not traded:
        return []
    warnings = []
    for name, r in cfg.roles.items():
        if r.kind != "strategy":
            continue
        for inst in cfg.for_role(name).strategy.instances:
            if (inst.venue.upper(), inst.symbol.upper()) not in traded:
                warnings.append(f"strategy {inst.id} trades {inst.venue.upper()}:"
                                f"{inst.symbol.upper()}, which [gateway].symbols does not name: "
                                "the gateway will reject its signals")
    return warnings


def preflight_lines(cfg, timeout_s: float = 5.0) -> list[str]:
    """The instruments of every venue the run asks (the simulator's from its config). Raises
    InstrumentError for a symbol a venue does not list or a venue that cannot be asked."""
    lines = []
    for src, syms in sorted(wanted(cfg).items(), key=lambda kv: kv[0].venue):
        if served_by_sim(cfg, src) and cfg.sim.tape == "relay" and src.listing == "binance":
            # paper trading: the relay lists its upstream's instruments; ask the upstream
            up = I.Source(src.venue, src.listing, cfg.sim.upstream_rest_url)
            lines.append(f"  instruments            {src.venue}: relayed by the config's simulator "
                         f"from {up.rest_url} (paper trading)")
            src = up
        elif served_by_sim(cfg, src):
            lines.append(f"  instruments            {src.venue}: {', '.join(sorted(syms))} "
                         f"(the config's simulator lists them)")
            continue
        try:
            insts, missing, warnings = I.fetch(src, syms, timeout_s)
        except I.ListingError as exc:
            raise I.InstrumentError(f"cannot load the instruments of {src.describe()}: "
                                    f"{exc}") from None
        if missing:
            raise I.InstrumentError(f"{', '.join(f'{src.venue}:{s}' for s in missing)}: not "
                                    f"listed by the venue at {src.rest_url}")
        for i in insts:
            lines.append(f"  instrument             {i.key}: tick {i.tick or '-'}, step "
                         f"{i.step or '-'}, qty {i.min_qty or '-'}..{i.max_qty or '-'}, min "
                         f"notional {i.min_notional or '-'} {i.quote} ({i.status or '?'})")
        lines += [f"  WARNING: {w}" for w in warnings]
    return lines
