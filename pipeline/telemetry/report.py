"""The run summary as a trader reads it: the market, PnL with its currency (never "-0.00"), the
final position, fees, fills (and why the venue reports each twice), orders by state, hop
latency. `trading_summary` builds the summary's "trading" section; `summary_lines` renders a
whole summary as text (scripts/launch.py prints it)."""
from __future__ import annotations

from pathlib import Path

from pipeline.registry import DEFAULT, UnknownSymbol
from pipeline.records import Venue
from pipeline.telemetry.market import PriceTap, fee_value, trading_record


def instrument(cfg, symbol: str, registry=None):
    """The instrument of one of the gateway's symbols (None if unknown): from `registry` (the
    run's instrument cache, pipeline/instruments.py), else the offline registry."""
    reg = DEFAULT if registry is None else registry
    try:
        return reg.instrument(reg.id(Venue[cfg.gateway.venue], symbol))
    except (UnknownSymbol, KeyError):
        return None


def pnl_currency(cfg, registry=None) -> str:
    """The quote currency of the gateway's symbols (PnL is counted in it), "" if they differ or
    are unknown to the registry."""
    quotes = set()
    for sym in cfg.gateway.symbols:
        inst = instrument(cfg, sym, registry)
        if inst is None:
            return ""
        quotes.add(inst.quote)
    return quotes.pop() if len(quotes) == 1 else ""


def money(v: float, currency: str = "", places: int = 2) -> str:
    v = round(float(v), places) + 0.0                  # + 0.0: never "-0.00"
    return f"{v:,.{places}f} {currency}".rstrip()


def trading_summary(cfg, gateway_report: dict, tap: PriceTap | None, since_ns: int,
                    registry=None) -> dict:
    """Per symbol: market move, final position, PnL, fees; the run's fills and how they were
    reported. `gateway_report` is the gateway's final status (its <run_dir>/<role>.summary.json);
    `cfg` the gateway's view of the config; `registry` the run's instruments."""
    currency = pnl_currency(cfg, registry)
    from pipeline.gateway.assembly import state_paths
    journal = state_paths(cfg.gateway)["journal"]
    rec = trading_record(journal, since_ns)
    prices = tap.arrays() if tap is not None else {}
    refs = gateway_report.get("refs") or {}
    symbols = {}
    fees_total = 0.0
    for sym in sorted(set(cfg.gateway.symbols) | set(gateway_report.get("positions") or {})):
        inst = instrument(cfg, sym, registry)
        base, quote = (inst.base, inst.quote) if inst else ("", currency)
        p = (gateway_report.get("positions") or {}).get(sym, {})
        fills = [f for f in rec.fills if f["symbol"] == sym]
        fee = sum(fee_value(f, base, quote) for f in fills)
        fees_total += fee
        d = {"base": base, "quote": quote, "position": float(p.get("qty", 0.0)),
             "avg_price": float(p.get("avg_price", 0.0)), "mark": float(refs.get(sym, 0.0)),
             "realized": float(p.get("realized", 0.0)),
             "unrealized": float(p.get("unrealized", 0.0)),
             "fees": fee, "fees_by_asset": p.get("fees") or {},
             "fills": len(fills), "bought": sum(f["qty"] for f in fills if f["side"] > 0),
             "sold": sum(f["qty"] for f in fills if f["side"] < 0),
             "orders": sum(1 for o in rec.orders if o["symbol"] == sym)}
        if sym in prices and len(prices[sym][1]):
            px = prices[sym][1]
            d["market"] = {"first": float(px[0]), "last": float(px[-1]),
                           "low": float(px.min()), "high": float(px.max())}
        symbols[sym] = d
    pnl = float(gateway_report.get("pnl", 0.0))
    by_source: dict[str, int] = {}
    for f in rec.fills:
        by_source[f.get("source") or "?"] = by_source.get(f.get("source") or "?", 0) + 1
    return {"currency": currency, "pnl": pnl, "fees": fees_total, "pnl_after_fees": pnl - fees_total,
            "symbols": symbols,
            "fills": {"count": int(gateway_report.get("fills", len(rec.fills))),
                      "reported_twice": int(gateway_report.get("fills_reported_twice", 0)),
                      "first_report": by_source}}


_SOURCES = {"response": "order reply", "stream": "user-data stream", "query": "order query"}


def summary_lines(s: dict) -> list[str]:
    """The run summary as the launcher prints it at the end."""
    t = s["totals"]
    out = [f"run: {s['seconds']:.1f} s, stopped by {s['stop_reason']}"
           f"{' (gateway HALTED)' if s['halted'] else ''}"]
    tr = s.get("trading")
    states = ", ".join(f"{k} {v}" for k, v in sorted((t.get("orders_by_state") or {}).items()))
    out.append(f"ticks {t['ticks']:,} | signals {t['signals']:,} | orders {t['orders']:,}"
               + (f" ({states})" if states else "") + f" | rejects {t['rejects']:,}")
    several = s.get("trading_by_gateway") or {}
    if len(several) > 1:                 # several venues: each gateway's own section
        for name, g in several.items():
            halted = " (HALTED)" if name in (s.get("halted_gateways") or ()) else ""
            out.append(f"gateway {name}{halted}:")
            out += ["  " + line for line in _trading_lines(g)]
    elif tr:
        out += _trading_lines(tr)
    else:
        out.append(f"fills {t['fills']:,} | PnL {money(t['pnl'])}")
    if s.get("hops"):
        out.append(f"{'hop':<22}{'count':>9}" + "".join(f"{h:>11}" for h in
                                                       ("p50", "p90", "p99", "p99.9", "max")))
        for hop, h in s["hops"].items():
            out.append(f"{hop:<22}{h['count']:>9,}" + "".join(
                f"{h[k] / 1000:>9.1f}us" for k in ("p50", "p90", "p99", "p999", "max")))
    for name, r in s["roles"].items():
        if r["problem"] or (r["exit_code"] not in (0, None)):
            out.append(f"role {name}: exit {r['exit_code']} {r['problem']}")
    if s.get("logs"):
        out.append(f"logs: {s['logs']}/<role>.log (a role's own stdout/stderr, if any: <role>.out)")
    if s.get("alerts"):
        a = s["alerts"]
        out.append(f"alerts: {a['sent']} sent, {a['failed']} failed, {a['dropped']} dropped")
    return out



def _trading_lines(tr: dict) -> list[str]:
    """One gateway's trading section as text: market, position, PnL and fees, fills."""
    out: list[str] = []
    cur = tr["currency"]
    for sym, d in tr["symbols"].items():
        m = d.get("market")
        if m:
            chg = (m["last"] / m["first"] - 1) * 100 if m["first"] else 0.0
            out.append(f"market {sym}: {m['first']:,.2f} → {m['last']:,.2f} {d['quote']} "
                       f"({chg:+.2f} %), low {m['low']:,.2f}, high {m['high']:,.2f}")
        pos = d["position"]
        if abs(pos) < 1e-12:
            where = "flat"
        else:
            where = (f"{'long' if pos > 0 else 'short'} {abs(pos):g} {d['base']} @ "
                     f"{d['avg_price']:,.2f} (marked at {d['mark']:,.2f}: unrealized "
                     f"{money(d['unrealized'], d['quote'])})")
        out.append(f"position {sym} at the end: {where}; bought {d['bought']:g}, sold "
                   f"{d['sold']:g} {d['base']} in {d['fills']} fills of {d['orders']} orders")
    fees = "; ".join(f"{_amount(amt)} {asset}" for d in tr["symbols"].values()
                     for asset, amt in d["fees_by_asset"].items() if amt)
    out.append(f"PnL {money(tr['pnl'], cur)} (realized + unrealized, before fees) | fees "
               f"{money(tr['fees'], cur)}" + (f" ({fees})" if fees else "")
               + f" | after fees {money(tr['pnl_after_fees'], cur)}")
    f = tr["fills"]
    src = ", ".join(f"{n} first from the {_SOURCES.get(k, k)}"
                    for k, n in sorted(f["first_report"].items()))
    out.append(f"fills {f['count']:,}: the venue reports every fill twice, in the reply to "
               f"the order and on the user-data stream; the gateway applies the first report "
               f"and recognises the second by its trade id ({f['reported_twice']:,} second "
               f"reports ignored{'; ' + src if src else ''})")
    return out

def _amount(v: float) -> str:
    """An asset amount without exponent or trailing zeros: 0.000016, 0.990607."""
    return f"{v:.8f}".rstrip("0").rstrip(".") or "0"
