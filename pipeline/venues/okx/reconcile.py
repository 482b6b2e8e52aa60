"""Restart on OKX: reconcile the journal's state with the venue before the first new order (the
OKX twin of pipeline/gateway/reconcile.py's `reconcile`; the journal rebuild is shared).

  1. every order we think is open (NEW, ACK, PARTIALLY_FILLED, UNKNOWN), by clOrdId: its state
     now, and its fills when the venue filled more than we know; 51603 / no answer → UNKNOWN (the
     normal resolution back-off takes it from there; nothing is resent);
  2. recent fills per instrument (GET /api/v5/trade/fills): fills missed while down;
  3. orders-pending: open orders the venue has and we do not know are reported;
  4. balances (GET /api/v5/account/balance), recorded in the report.
The risk engine's positions and open orders are set from the result.
"""
from __future__ import annotations

import logging
from typing import Any

from pipeline.gateway.orders import OrderState
from pipeline.gateway.reconcile import sync_risk
from pipeline.gateway.rest import Outcome
from pipeline.venues.okx import orders as ox

log = logging.getLogger(__name__)


def reconcile(ex, symbols: list[str], recent_trades: int = 100) -> dict[str, Any]:
    report: dict[str, Any] = {"checked": 0, "resolved": 0, "still_unknown": 0, "new_fills": 0,
                              "unknown_exchange_orders": [], "balances": None, "errors": []}
    for cid in [c for c in ex.amends.wire if (ex.table.get(c) is None
                                              or not ex.table.get(c).is_open)]:
        ex.amends.drop(cid)                   # amend links of orders final in the journal
    for o in list(ex.table.open_orders()):
        report["checked"] += 1
        before = o.state
        r = ex.query(o, "reconcile")
        if r.outcome is Outcome.OK and r.data and isinstance(r.data[0], dict):
            known = o.filled
            ex.apply_status(o, r.data[0], "reconcile")
            if o.filled > known + 1e-12:
                report["new_fills"] += 1
            if o.state is not before:
                report["resolved"] += 1
            continue
        if o.state is not OrderState.UNKNOWN:
            ex.set_state(o, OrderState.UNKNOWN, f"reconcile: {r.outcome.value} {r.code} {r.msg}")
        o.next_poll_mono = 0
        report["still_unknown"] += 1
    for sym in symbols:
        n = ex.fetch_trades(sym, limit=min(100, recent_trades))
        if n < 0:
            report["errors"].append(f"fills {sym} failed")
        else:
            report["new_fills"] += n
    r = ex.rest.get(ox.PENDING_PATH, {"instType": "SPOT"})
    if r.outcome is Outcome.OK and isinstance(r.data, list):
        for item in r.data:
            if not isinstance(item, dict):
                continue
            cid = ex.amends.cid_of(str(item.get("clOrdId") or ""))
            if cid and cid in ex.table:
                continue
            entry = {"symbol": item.get("instId"), "orderId": item.get("ordId"),
                     "clientOrderId": item.get("clOrdId"), "side": item.get("side"),
                     "price": item.get("px"), "origQty": item.get("sz"),
                     "status": item.get("state")}
            report["unknown_exchange_orders"].append(entry)
            try:
                ex.foreign[(str(item.get("instId")), int(item.get("ordId") or -1))] = entry
            except ValueError:
                pass
            log.warning("reconcile: the exchange has an open order we do not know: %s", entry)
    else:
        report["errors"].append(f"orders-pending: {r.outcome.value} {r.code} {r.msg}")
    r = ex.rest.get(ox.BALANCE_PATH, {})
    if r.outcome is Outcome.OK and isinstance(r.data, list) and r.data:
        report["balances"] = {d["ccy"]: {"free": d.get("availBal"), "locked": d.get("frozenBal")}
                              for d in r.data[0].get("details", ()) if isinstance(d, dict)
                              and "ccy" in d}
    else:
        report["errors"].append(f"balance: {r.outcome.value} {r.code} {r.msg}")
    sync_risk(ex)
    report["positions"] = {s: p.qty for s, p in ex.book.positions.items()}
    report["open_orders"] = [o.cid for o in ex.table.open_orders()]
    ex.journal.write("reconcile", **report)
    return report


__all__ = ["reconcile"]
