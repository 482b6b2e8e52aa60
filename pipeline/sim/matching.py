"""The matching engine: orders against the book the tape implies.

- MARKET orders walk the opposite side of the tape's book level by level (partial fills across
  levels; `quoteOrderQty` spends / receives a quote amount). What the book cannot fill expires.
- LIMIT orders first take what crosses (GTC / IOC / FOK), then GTC remainders rest. A resting BUY
  fills when the tape trades below its price, a SELL when the tape trades above it (the tape
  "trades through" it), at the order's own price, up to the tape trade's size.
- LIMIT_MAKER is rejected if it would take.
- The simulator has no market impact: own fills do not remove liquidity from the tape's book.
- Self-trade prevention (`selfTradePreventionMode`, default NONE), as Binance: an order that
  reaches one of the same account's resting orders on the other side (within its limit, after
  the tape's better levels) under EXPIRE_TAKER expires there (EXPIRED_IN_MATCH; what it took
  before stands, nothing rests); EXPIRE_MAKER expires each of our resting orders within its
  limit and the taker goes on; EXPIRE_BOTH expires the taker and the first resting order it
  met. The expired orders carry preventedMatchId / preventedQuantity, their executionReport
  x=TRADE_PREVENTION. NONE keeps the simulator's model (takers fill against the tape's book).

History is bounded (accounts.Retention): placing an order retires final orders past the
account's retention; a query of a retired order answers -2013 as for any unknown order.

Every state change emits `executionReport`, every balance change `outboundAccountPosition`, to the
account's user-data listeners. All amounts are int units of 1e-8.
"""
from __future__ import annotations

import bisect
import logging
import time
from typing import Callable, Iterable

from pipeline.sim import errors
from pipeline.sim.accounts import Account, Order, Trade
from pipeline.sim.book import Book
from pipeline.sim.errors import ApiError, err
from pipeline.sim.instruments import DecimalError, E8, fmt8, mul8, parse8

log = logging.getLogger(__name__)

ORDER_TYPES = ("LIMIT", "MARKET", "LIMIT_MAKER")
KNOWN_TYPES = ORDER_TYPES + ("STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT")
TIFS = ("GTC", "IOC", "FOK")
STP_MODES = ("NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _dec(params: dict, name: str) -> int | None:
    v = params.get(name)
    if v is None or v == "":
        return None
    try:
        return parse8(str(v))
    except DecimalError:
        raise errors.bad_value(name) from None


class Engine:
    def __init__(self, books: dict[str, Book], accounts: dict[str, Account],
                 commission_rate: float = 0.0, clock_ms: Callable[[], int] = _now_ms) -> None:
        self.books = books
        self.accounts = accounts
        self.rate_ppm = int(round(commission_rate * 1_000_000))
        self.clock_ms = clock_ms
        self.next_order_id = 1
        self.next_trade_id = {s: 900_000_000 + i * 10_000_000 for i, s in enumerate(books)}
        self.next_exec_id = 1
        # resting GTC orders per symbol, best first: BUYs by (-price, seq), SELLs by (price, seq);
        # a tape trade only looks at the front of the book it trades through
        self.resting_buy: dict[str, list[tuple[int, int, Account, Order]]] = {s: [] for s in books}
        self.resting_sell: dict[str, list[tuple[int, int, Account, Order]]] = {s: [] for s in books}
        self._seq = 0
        self.fills = 0
        self.next_prevented_id = 1
        # called with (account, orders) when final orders leave the history (Account.retire):
        # whoever keeps something per order id drops it (the OKX side's order metadata)
        self.on_retire: list[Callable[[Account, list[Order]], None]] = []

    # ------------------------------------------------------------------ place

    def place(self, acct: Account, p: dict) -> tuple[Order, list[dict], str]:
        """Validate and execute a new order. Returns (order, FULL fills, newOrderRespType)."""
        for name in ("symbol", "side", "type"):
            if not p.get(name):
                raise errors.mandatory(name)
        symbol = str(p["symbol"]).upper()
        book = self.books.get(symbol)
        if book is None:
            raise err(errors.INVALID_SYMBOL)
        side = p["side"]
        if side not in ("BUY", "SELL"):
            raise err(errors.INVALID_SIDE)
        otype = p["type"]
        if otype not in KNOWN_TYPES:
            raise err(errors.INVALID_TYPE)
        if otype not in ORDER_TYPES:
            raise err(errors.UNSUPPORTED_TYPE)
        resp_type = p.get("newOrderRespType") or "FULL"
        if resp_type not in ("ACK", "RESULT", "FULL"):
            raise err(errors.INVALID_RESP_TYPE)
        stp = p.get("selfTradePreventionMode") or "NONE"      # the symbols' default
        if stp not in STP_MODES:
            raise ApiError(-1100, "Illegal characters found in parameter "
                                  "'selfTradePreventionMode'; legal range is "
                                  f"'{', '.join(STP_MODES)}'.")
        s = book.spec
        qty = _dec(p, "quantity")
        quote_qty = _dec(p, "quoteOrderQty")
        price = _dec(p, "price")
        tif = p.get("timeInForce")
        if otype == "LIMIT":
            for name, v in (("timeInForce", tif), ("quantity", qty), ("price", price)):
                if v is None:
                    raise errors.mandatory(name)
            if tif not in TIFS:
                raise err(errors.INVALID_TIF)
        elif otype == "LIMIT_MAKER":
            for name, v in (("quantity", qty), ("price", price)):
                if v is None:
                    raise errors.mandatory(name)
            if tif:
                raise errors.not_required("timeInForce")
            tif = "GTC"
        else:  # MARKET
            if qty is None and quote_qty is None:
                raise errors.mandatory("quantity")
            if qty is not None and quote_qty is not None:
                raise errors.not_required("quoteOrderQty")
            if tif:
                raise errors.not_required("timeInForce")
            if price is not None:
                raise errors.not_required("price")
            tif = "GTC"
        # ---- filters (exchangeInfo): PRICE_FILTER, LOT_SIZE, NOTIONAL
        if price is not None:
            if price <= 0 or price < s.min_price or price > s.max_price or price % s.tick:
                raise errors.filter_failure("PRICE_FILTER")
        if qty is not None:
            if qty <= 0 or qty < s.min_qty or qty > s.max_qty or qty % s.step:
                raise errors.filter_failure("LOT_SIZE")
        if quote_qty is not None and quote_qty <= 0:
            raise errors.filter_failure("NOTIONAL")
        ref_price = price if price is not None else (book.last_price or book.best_bid)
        notional = mul8(ref_price, qty) if qty is not None else quote_qty
        if notional is not None and (notional < s.min_notional or notional > s.max_notional):
            raise errors.filter_failure("NOTIONAL")
        cid = p.get("newClientOrderId") or f"sim{self.next_order_id:021d}"
        if cid in acct.by_client_id and acct.by_client_id[cid].is_open:
            raise err(errors.DUPLICATE_ORDER)
        is_buy = side == "BUY"
        best = book.best_ask if is_buy else book.best_bid
        if otype == "LIMIT_MAKER" and best and (best <= price if is_buy else best >= price):
            raise err(errors.WOULD_TAKE)

        # ---- what would fill now (taker), against the tape book
        plan: list[tuple[int, int]] = []
        if otype != "LIMIT_MAKER":
            plan = self._plan(book.walk(not is_buy), is_buy, qty, quote_qty, price, s.step)
        if tif == "FOK" and sum(q for _, q in plan) < (qty or 0):
            plan = []
        # ---- self-trade prevention: does the taker reach one of our own resting orders?
        expire_taker, makers = False, []
        if stp != "NONE" and otype != "LIMIT_MAKER":
            own = [e[3] for e in (self.resting_sell if is_buy else self.resting_buy)[symbol]
                   if e[2] is acct and (price is None or (e[3].price <= price if is_buy
                                                          else e[3].price >= price))]
            if own:
                first = own[0].price
                better = [(px, q) for px, q in plan if (px < first if is_buy else px > first)]
                reached = len(better) < len(plan) or qty is None \
                    or sum(q for _, q in better) < qty
                if reached:
                    if stp in ("EXPIRE_TAKER", "EXPIRE_BOTH"):
                        expire_taker, plan = True, better
                    makers = own if stp == "EXPIRE_MAKER" else own[:1] \
                        if stp == "EXPIRE_BOTH" else []
        # ---- balance check for the whole order
        base, quote = s.base, s.quote
        taker_cost = sum(mul8(px, q) for px, q in plan)
        if is_buy:
            rest_qty = (qty - sum(q for _, q in plan)) \
                if (qty is not None and tif == "GTC" and not expire_taker) else 0
            need = taker_cost + (mul8(price, rest_qty) if price is not None else 0)
            if acct.free.get(quote, 0) < need:
                raise err(errors.INSUFFICIENT_BALANCE)
        else:
            need = qty if qty is not None else sum(q for _, q in plan)
            if acct.free.get(base, 0) < need:
                raise err(errors.INSUFFICIENT_BALANCE)

        now = self.clock_ms()
        oid = self.next_order_id
        self.next_order_id += 1
        planned = sum(q for _, q in plan)
        order = Order(symbol, oid, cid, side, otype, tif, price or 0,
                      qty if qty is not None else planned, quote_qty or 0, now, update_ms=now,
                      stp_mode=stp)
        acct.orders[oid] = order
        acct.by_client_id[cid] = order
        gone = acct.retire(now)                # bounded history (accounts.Retention)
        if gone:
            for fn in self.on_retire:
                fn(acct, gone)
        self._report(acct, order, "NEW", now)
        fills = []
        changed: set[str] = set()
        for px, q in plan:
            fills.append(self._fill(acct, order, px, q, False, now, changed))
        match_id = -1
        for m in makers:                       # EXPIRE_MAKER / EXPIRE_BOTH: our resting ones
            match_id = self._prevent(acct, m, now, changed)
        remaining = order.qty - order.executed
        if expire_taker and remaining > 0:     # EXPIRE_TAKER / EXPIRE_BOTH: it ends here
            self._prevent(acct, order, now, changed, match_id)
        elif remaining > 0 and tif == "GTC" and otype != "MARKET":
            if is_buy:
                order.locked = mul8(order.price, remaining)
                acct.lock(quote, order.locked)
                changed.add(quote)
            else:
                order.locked = remaining
                acct.lock(base, remaining)
                changed.add(base)
            order.working_ms = now
            self._seq += 1
            if is_buy:
                bisect.insort(self.resting_buy[symbol], (-order.price, self._seq, acct, order))
            else:
                bisect.insort(self.resting_sell[symbol], (order.price, self._seq, acct, order))
        elif order.status != "FILLED":
            order.status = "EXPIRED"
            order.update_ms = now
            self._report(acct, order, "EXPIRED", now)
        elif order.working_ms < 0:
            order.working_ms = now
        if changed:
            self._position(acct, changed, now)
        return order, fills, resp_type

    def _prevent(self, acct: Account, order: Order, now: int, changed: set[str],
                 match_id: int = -1) -> int:
        """Expire `order` by self-trade prevention (EXPIRED_IN_MATCH): its rest is prevented,
        its lock released, it leaves the resting orders. Returns its preventedMatchId."""
        s = self.books[order.symbol].spec
        if match_id < 0:
            match_id = self.next_prevented_id
            self.next_prevented_id += 1
        if order.locked:
            asset = s.quote if order.side == "BUY" else s.base
            acct.unlock(asset, order.locked)
            order.locked = 0
            changed.add(asset)
        order.prevented_qty = order.qty - order.executed
        order.prevented_match_id = match_id
        order.status = "EXPIRED_IN_MATCH"
        order.update_ms = now
        lst = (self.resting_buy if order.side == "BUY" else self.resting_sell)[order.symbol]
        lst[:] = [e for e in lst if e[3] is not order]
        self._report(acct, order, "TRADE_PREVENTION", now)
        return match_id

    @staticmethod
    def _plan(levels: Iterable[tuple[int, int]], is_buy: bool, qty: int | None, quote_qty: int | None,
              limit: int | None, step: int) -> list[tuple[int, int]]:
        plan = []
        left_qty = qty
        left_quote = quote_qty
        for px, avail in levels:
            if limit is not None and (px > limit if is_buy else px < limit):
                break
            if left_qty is not None:
                q = min(avail, left_qty)
            else:
                q = min(avail, left_quote * E8 // px)
                q -= q % step
            if q <= 0:
                break
            plan.append((px, q))
            if left_qty is not None:
                left_qty -= q
                if not left_qty:
                    break
            else:
                left_quote -= mul8(px, q)
                if left_quote <= 0:
                    break
        return plan

    def _fill(self, acct: Account, order: Order, px: int, q: int, maker: bool, now: int,
              changed: set[str]) -> dict:
        s = self.books[order.symbol].spec
        quote_amt = mul8(px, q)
        is_buy = order.side == "BUY"
        if is_buy:
            got_asset, got = s.base, q
            if maker:   # locked quote pays; release any price improvement remainder later
                acct.debit_locked(s.quote, quote_amt)
                order.locked -= quote_amt
            else:
                acct.debit_free(s.quote, quote_amt)
            changed.add(s.quote)
        else:
            got_asset, got = s.quote, quote_amt
            if maker:
                acct.debit_locked(s.base, q)
                order.locked -= q
            else:
                acct.debit_free(s.base, q)
            changed.add(s.base)
        commission = got * self.rate_ppm // 1_000_000
        acct.credit(got_asset, got - commission)
        changed.add(got_asset)
        order.executed += q
        order.cum_quote += quote_amt
        order.status = "FILLED" if order.executed >= order.qty and order.qty else "PARTIALLY_FILLED"
        order.update_ms = now
        tid = self.next_trade_id[order.symbol]
        self.next_trade_id[order.symbol] = tid + 1
        acct.add_trade(Trade(order.symbol, tid, order.order_id, px, q, quote_amt, commission,
                             got_asset, now, is_buy, maker))
        acct.update_ms = now
        self.fills += 1
        self._report(acct, order, "TRADE", now, px, q, quote_amt, commission, got_asset, tid, maker)
        return {"price": fmt8(px), "qty": fmt8(q), "commission": fmt8(commission),
                "commissionAsset": got_asset, "tradeId": tid}

    # ------------------------------------------------------------------ tape trades

    def on_tape_trade(self, book: Book, price: int, qty: int, aggressor_is_buy: bool) -> None:
        """Resting orders the tape trades through fill at their own price, best price first then
        time, sharing the tape trade's size."""
        sym = book.symbol
        buys = self.resting_buy.get(sym)
        sells = self.resting_sell.get(sym)
        through_buys = bool(buys) and -buys[0][0] > price
        through_sells = bool(sells) and sells[0][0] < price
        if not (through_buys or through_sells):
            return
        now = self.clock_ms()
        left = qty
        touched: dict[int, tuple[Account, set[str]]] = {}
        for lst, is_buy, go in ((buys, True, through_buys), (sells, False, through_sells)):
            if not go:
                continue
            done = 0
            for key, _, acct, order in lst:
                if left <= 0 or not (price < order.price if is_buy else price > order.price):
                    break
                q = min(order.qty - order.executed, left)
                left -= q
                changed = touched.setdefault(id(acct), (acct, set()))[1]
                self._fill(acct, order, order.price, q, True, now, changed)
                if order.status == "FILLED":
                    done += 1
                    if order.locked:                         # rounding remainder of the lock
                        acct.unlock(book.spec.quote if is_buy else book.spec.base, order.locked)
                        order.locked = 0
            del lst[:done]                                   # filled orders are a prefix
        for acct, changed in touched.values():
            self._position(acct, changed, now)

    # ------------------------------------------------------------------ cancel / query

    def find(self, acct: Account, p: dict) -> Order:
        """The order named by orderId or origClientOrderId (-2013 if absent)."""
        order = self._lookup(acct, p)
        if order is None:
            raise err(errors.NO_SUCH_ORDER)
        return order

    def _lookup(self, acct: Account, p: dict) -> Order | None:
        if not p.get("symbol"):
            raise errors.mandatory("symbol")
        symbol = str(p["symbol"]).upper()
        if symbol not in self.books:
            raise err(errors.INVALID_SYMBOL)
        oid, cid = p.get("orderId"), p.get("origClientOrderId")
        if not oid and not cid:
            raise err(errors.CANCEL_NEEDS_ID)
        order = None
        if oid:
            try:
                order = acct.orders.get(int(oid))
            except (TypeError, ValueError):
                raise errors.bad_value("orderId") from None
        elif cid:
            order = acct.by_client_id.get(str(cid))
        if order is not None and order.symbol != symbol:
            return None
        return order

    def cancel(self, acct: Account, p: dict) -> Order:
        order = self._lookup(acct, p)
        if order is None or not order.is_open:
            raise err(errors.UNKNOWN_ORDER_CANCEL)
        now = self.clock_ms()
        self._cancel(acct, order, now, p.get("newClientOrderId") or "")
        return order

    def cancel_replace(self, acct: Account, p: dict, now_ms: int) -> dict:
        """POST /api/v3/order/cancelReplace: cancel one order, then place a new one on the same
        symbol (Binance's spec: tests/data/binance/spot_api.yaml). STOP_ON_FAILURE: a failed
        cancel means no new order (400 -2022, newOrderResult NOT_ATTEMPTED); ALLOW_FAILURE: the
        new order is tried anyway. Half a success is 409 -2021; both halves failing 400 -2022;
        the failure body carries both halves' results in "data". (Simplification: the new
        order's filters are checked when it is placed, after the cancel.)"""
        mode = p.get("cancelReplaceMode")
        if not mode:
            raise errors.mandatory("cancelReplaceMode")
        if mode not in ("STOP_ON_FAILURE", "ALLOW_FAILURE"):
            raise errors.bad_value("cancelReplaceMode")
        if not p.get("cancelOrderId") and not p.get("cancelOrigClientOrderId"):
            raise errors.mandatory("cancelOrigClientOrderId")
        cp = {"symbol": p.get("symbol"), "orderId": p.get("cancelOrderId"),
              "origClientOrderId": p.get("cancelOrigClientOrderId"),
              "newClientOrderId": p.get("cancelNewClientOrderId")}
        try:
            cancelled = self.cancel(acct, cp)
            c_ok, c_resp = True, cancelled.canceled(now_ms)
        except ApiError as exc:
            c_ok, c_resp = False, exc.body()
        n_ok, n_resp, n_res = False, None, "NOT_ATTEMPTED"
        if c_ok or mode == "ALLOW_FAILURE":
            np_ = {k: v for k, v in p.items() if not k.startswith("cancel")}
            try:
                order, fills, resp_type = self.place(acct, np_)
                n_ok, n_resp, n_res = True, order.result(order.time_ms, resp_type, fills), \
                    "SUCCESS"
            except ApiError as exc:
                n_resp, n_res = exc.body(), "FAILURE"
        result = {"cancelResult": "SUCCESS" if c_ok else "FAILURE", "newOrderResult": n_res,
                  "cancelResponse": c_resp, "newOrderResponse": n_resp}
        if c_ok and n_ok:
            return result
        if c_ok or n_ok:
            raise ApiError(*errors.CANCEL_REPLACE_PARTIAL, status=409, data=result)
        raise ApiError(*errors.CANCEL_REPLACE_FAILED, status=400, data=result)

    def cancel_all(self, acct: Account, symbol: str) -> list[Order]:
        symbol = symbol.upper()
        if symbol not in self.books:
            raise err(errors.INVALID_SYMBOL)
        orders = acct.open_orders(symbol)
        if not orders:
            raise err(errors.UNKNOWN_ORDER_CANCEL)
        now = self.clock_ms()
        for o in orders:
            self._cancel(acct, o, now, "")
        return orders

    def _cancel(self, acct: Account, order: Order, now: int, cancel_cid: str) -> None:
        s = self.books[order.symbol].spec
        asset = s.quote if order.side == "BUY" else s.base
        if order.locked:
            acct.unlock(asset, order.locked)
            order.locked = 0
        order.status = "CANCELED"
        order.update_ms = now
        order.cancel_client_id = cancel_cid or f"simcancel{order.order_id:015d}"
        lst = (self.resting_buy if order.side == "BUY" else self.resting_sell)[order.symbol]
        lst[:] = [e for e in lst if e[3] is not order]
        self._report(acct, order, "CANCELED", now)
        self._position(acct, {asset}, now)

    # ------------------------------------------------------------------ user data

    def _report(self, acct: Account, o: Order, exec_type: str, now: int, last_px: int = 0,
                last_qty: int = 0, last_quote: int = 0, commission: int = 0,
                commission_asset: str | None = None, trade_id: int = -1, maker: bool = False) -> None:
        if not acct.listeners:
            return
        eid = self.next_exec_id
        self.next_exec_id += 1
        ev = {
            "e": "executionReport", "E": now, "s": o.symbol, "c": o.client_id if exec_type != "CANCELED" else o.cancel_client_id,
            "S": o.side, "o": o.type, "f": o.tif, "q": fmt8(o.qty), "p": fmt8(o.price),
            "P": "0.00000000", "F": "0.00000000", "g": -1,
            "C": o.client_id if exec_type == "CANCELED" else "",
            "x": exec_type, "X": o.status, "r": "NONE", "i": o.order_id,
            "l": fmt8(last_qty), "z": fmt8(o.executed), "L": fmt8(last_px),
            "n": fmt8(commission), "N": commission_asset, "T": now, "t": trade_id, "I": eid,
            "w": o.is_open and o.type != "MARKET", "m": maker, "M": False, "O": o.time_ms,
            "Z": fmt8(o.cum_quote), "Y": fmt8(last_quote), "Q": fmt8(o.quote_qty),
            "W": o.working_ms if o.working_ms >= 0 else now, "V": o.stp_mode,
        }
        if o.prevented_match_id >= 0:          # expired by self-trade prevention
            ev.update(v=o.prevented_match_id, A=fmt8(o.prevented_qty), B=fmt8(o.prevented_qty))
        acct.emit(ev)

    def _position(self, acct: Account, assets: set[str], now: int) -> None:
        if not acct.listeners:
            return
        acct.emit({"e": "outboundAccountPosition", "E": now, "u": acct.update_ms or now,
                   "B": [{"a": a, "f": fmt8(acct.free.get(a, 0)), "l": fmt8(acct.locked.get(a, 0))}
                         for a in sorted(assets)]})
