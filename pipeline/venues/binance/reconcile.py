"""Restart reconciliation with Binance spot (after pipeline/gateway/reconcile.py rebuilt our state
from the journal), before the first new order:

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
from typing import Any

from pipeline.gateway.execution import fnum as _fnum
from pipeline.gateway.orders import OrderState
from pipeline.gateway.reconcile import sync_risk
from pipeline.gateway.rest import Outcome

log = logging.getLogger("pipeline.gateway.reconcile")


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


__all__ = ["reconcile"]
