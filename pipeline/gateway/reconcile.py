"""Restart: rebuild state from the journal, then reconcile it with the exchange before the first
new order.

`rebuild(records, execution)` replays the journal: orders and their last states (the
idempotency table), fills (the dedup set, positions), the trading state, and each strategy's
highest (epoch, seq) into the risk kernel's duplicate filter (the one judge of duplicates). It returns the last trading state (HALTED persists across restarts).

`reconcile(execution, symbols)` then asks the venue:
  1. every order we think is open (NEW, ACK, PARTIALLY_FILLED, UNKNOWN), by origClientOrderId:
     its status now (a NEW order that was being written when we died is UNKNOWN until this
     answers; "does not exist" keeps it UNKNOWN for the normal resolution back-off); when the
     venue executed more than we know, its trades (myTrades?orderId=, after the status set the
     venue order id, so they are recognised as ours);
  2. recent trades per symbol (myTrades): fills we missed while down, deduplicated by trade id;
     trades of orders that are not ours are reported;
  3. all open orders: any the exchange knows and we do not is reported (journal + log + status);
  4. balances (GET /api/v3/account), recorded in the report.
The risk engine's positions and open orders are set from the result.
"""
from __future__ import annotations

import logging
from typing import Any, Iterable

from pipeline.gateway.execution import fnum as _fnum
from pipeline.gateway.orders import TERMINAL, Order, OrderState
from pipeline.gateway.positions import Fill
from pipeline.gateway.rest import Outcome
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


def reconcile(ex, symbols: list[str], recent_trades: int = 100) -> dict[str, Any]:
    report: dict[str, Any] = {"checked": 0, "resolved": 0, "still_unknown": 0, "new_fills": 0,
                              "unknown_exchange_orders": [], "balances": None, "errors": []}
    # 1. our open orders
    for o in list(ex.table.open_orders()):
        report["checked"] += 1
        before = o.state
        r = ex.rest.signed("GET", "/api/v3/order", {"symbol": o.symbol, "origClientOrderId": o.cid})
        ex.journal.write("query", cid=o.cid, why="reconcile", **r.summary())
        if r.outcome is Outcome.OK and isinstance(r.data, dict):
            known = o.filled
            ex.apply_status(o, r.data, "reconcile")     # sets the venue order id first
            if _fnum(r.data.get("executedQty")) > known + 1e-12:
                n = ex.fetch_trades(o.symbol, order_id=o.order_id)
                if n > 0:
                    report["new_fills"] += n
            if o.state is not before:
                report["resolved"] += 1
            continue
        if o.state is not OrderState.UNKNOWN:
            # it was being written when we stopped, or the venue lost it: find out, never resend
            ex.set_state(o, OrderState.UNKNOWN, f"reconcile: {r.outcome.value} {r.code} {r.msg}")
        o.next_poll_mono = 0
        report["still_unknown"] += 1
    # 2. recent trades
    for sym in symbols:
        n = ex.fetch_trades(sym, limit=recent_trades)
        if n < 0:
            report["errors"].append(f"myTrades {sym} failed")
        else:
            report["new_fills"] += n
    # 3. open orders on the exchange
    r = ex.rest.signed("GET", "/api/v3/openOrders", {})
    if r.outcome is Outcome.OK and isinstance(r.data, list):
        for item in r.data:
            if not isinstance(item, dict):
                continue
            cid = str(item.get("clientOrderId", ""))
            if cid in ex.table:
                continue
            entry = {"symbol": item.get("symbol"), "orderId": item.get("orderId"),
                     "clientOrderId": cid, "side": item.get("side"), "price": item.get("price"),
                     "origQty": item.get("origQty"), "status": item.get("status")}
            report["unknown_exchange_orders"].append(entry)
            ex.foreign[(str(item.get("symbol")), int(item.get("orderId", -1)))] = entry
            log.warning("reconcile: the exchange has an open order we do not know: %s", entry)
    else:
        report["errors"].append(f"openOrders: {r.outcome.value} {r.code} {r.msg}")
    # 4. balances
    r = ex.rest.signed("GET", "/api/v3/account", {})
    if r.outcome is Outcome.OK and isinstance(r.data, dict):
        report["balances"] = {b["asset"]: {"free": b.get("free"), "locked": b.get("locked")}
                              for b in r.data.get("balances", ()) if isinstance(b, dict)
                              and "asset" in b}
    else:
        report["errors"].append(f"account: {r.outcome.value} {r.code} {r.msg}")
    sync_risk(ex)
    report["positions"] = {s: p.qty for s, p in ex.book.positions.items()}
    report["open_orders"] = [o.cid for o in ex.table.open_orders()]
    ex.journal.write("reconcile", **report)
    return report


__all__ = ["rebuild", "reconcile", "sync_risk"]
