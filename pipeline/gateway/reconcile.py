"""Restart: rebuild state from the journal, before the venue's reconciliation and the first new
order.

`rebuild(records, execution)` replays the journal: orders and their last states (the
idempotency table), fills (the dedup set, positions), the trading state, and each strategy's
highest (epoch, seq) into the risk kernel's duplicate filter (the one judge of duplicates), and
the records of kinds the venue's execution writes itself (its `journal_kinds`) to its `replay`.
It returns the last trading state (HALTED persists across restarts).

The venue adapter's `reconcile(execution, symbols)` (pipeline/venues/<venue>/reconcile.py) then
asks the venue for our open orders, recent trades, open orders we do not know and balances;
`sync_risk` sets the risk engine's positions and open orders from the result.
"""
from __future__ import annotations

import logging
from typing import Any, Iterable

from pipeline.gateway.orders import TERMINAL, Order, OrderState
from pipeline.gateway.positions import Fill
from pipeline.gateway.risk import sync_own_quotes

log = logging.getLogger(__name__)


def rebuild(records: Iterable[dict], ex, marks=None) -> dict[str, Any]:
    """Replay journal records into `ex` (an Execution); the strategies' (epoch, seq) marks go to
    `marks` (default: ex.risk, the risk kernel). Returns {"trading", "records", ...}."""
    intake = ex.risk if marks is None else marks
    trading = None
    n = 0
    marks = 0
    for rec in records:
        n += 1
        k = rec.get("k")
        try:
            if k == "order":
                if rec["cid"] in ex.table:
                    continue
                sid = ex._symbol_id(rec["symbol"]) or int(rec.get("symbol_id", 0))
                price = rec.get("price")
                ex.table.add(Order(cid=rec["cid"], symbol=rec["symbol"], symbol_id=sid,
                                   side=int(rec["side"]), order_type=int(rec["order_type"]),
                                   tif=int(rec["tif"]), qty=float(rec["qty"]),
                                   price=float("nan") if price is None else float(price)))
                if intake is not None and "strategy" in rec:
                    intake.restore_mark(int(rec["strategy"]), int(rec["epoch"]), int(rec["seq"]))
                    marks += 1
            elif k == "request":
                o = ex.table.get(rec.get("cid", ""))
                if o is not None:
                    o.attempts = int(rec.get("attempt", o.attempts))
                    if "ts_ms" in rec:              # the binary journal's request record
                        o.ts_ms = int(rec["ts_ms"])
                    body = str(rec.get("body", ""))
                    for part in body.split("&"):
                        if part.startswith("timestamp="):
                            o.ts_ms = int(part[10:])
            elif k == "state":
                o = ex.table.get(rec.get("cid", ""))
                if o is not None:
                    o.state = OrderState(rec["to"])
                    oid = int(rec.get("order_id", -1))
                    ex.table.set_order_id(o, oid)
                    if o.state in TERMINAL:
                        o.released = True
            elif k == "fill":
                f = Fill(rec["symbol"], int(rec["trade_id"]), rec.get("cid", ""),
                         int(rec.get("order_id", -1)), int(rec["side"]), float(rec["qty"]),
                         float(rec["price"]), float(rec.get("commission", 0.0)),
                         str(rec.get("commission_asset", "")), str(rec.get("source", "")))
                if ex.book.apply(f):
                    o = ex.table.get(f.cid)
                    if o is not None:
                        o.filled += f.qty
                        o.notional += f.qty * f.price
            elif k == "foreign_fill":
                # reported once, but never in the book's dedup set: if the trade turns out to be
                # ours (its order's venue id was not known then), its fill must still apply
                key = (rec["symbol"], int(rec["trade_id"]))
                if key not in ex.book.seen:
                    ex.foreign_seen.add(key)
            elif k == "foreign_order":
                ex.foreign[(rec["symbol"], int(rec["order_id"]))] = {
                    "symbol": rec["symbol"], "orderId": int(rec["order_id"]),
                    "clientOrderId": rec.get("cid", ""), "status": rec.get("status")}
            elif k == "signal" and intake is not None and rec.get("strategy") is not None:
                intake.restore_mark(int(rec["strategy"]), int(rec["epoch"]), int(rec["seq"]))
                marks += 1
            elif k == "trading":
                trading = rec.get("state")
            elif k in ex.journal_kinds:           # a venue's own records (OKX: its amends)
                ex.replay(rec)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            ex.count("journal_bad_records")
            log.warning("journal record %d (%s) not understood: %s", n, k, exc)
    ex.book.duplicates = 0
    sync_risk(ex)
    return {"trading": trading, "records": n, "orders": len(ex.table),
            "open": len(ex.table.open_orders()), "fills": len(ex.book.seen), "marks": marks}


def sync_risk(ex) -> None:
    """Set the risk engine's positions and open orders from our orders and fills."""
    opens: dict[int, list[float]] = {}
    for o in ex.table.open_orders():
        b = opens.setdefault(o.symbol_id, [0.0, 0.0])
        b[0 if o.side == 1 else 1] += o.remaining
    for sid, rules in ex.rules.items():
        pos = ex.book.positions.get(rules.name)
        try:
            ex.risk.set_position(sid, pos.qty if pos else 0.0)
            b, s = opens.get(sid, (0.0, 0.0))
            ex.risk.set_open_orders(sid, b, s)
            if getattr(ex.risk, "self_trade", False):
                sync_own_quotes(ex.risk, ex.table.open_orders(), sid)
        except ValueError as exc:
            log.warning("risk sync %s: %s", rules.name, exc)


__all__ = ["rebuild", "sync_risk"]
