"""Accounts (per API key), orders, own trades, and the rate limiters.

Balances are int units of 1e-8 per asset, split free / locked. An account's listeners (WebSocket
API sessions subscribed to its user-data stream) receive every event the matching engine emits.

History is bounded, as a venue's is (`Retention`; [sim] order_history, order_history_s,
trade_history): open orders are always kept; final orders (FILLED, CANCELED, EXPIRED,
EXPIRED_IN_MATCH) beyond the newest `order_history` of the account, or final for longer than
`order_history_s` (looked at every quarter of it), are dropped (`Account.retire`, run as
orders are placed): a query of one then
answers -2013 "Order does not exist." and a cancel -2011, as Binance answers for an order it no
longer keeps (it archives CANCELED/EXPIRED orders without fills after 90 days; the simulator
keeps less, whatever the status). Own trades keep the newest `trade_history` (myTrades and OKX
fills return the most recent ones anyway). `orders_pruned` / `trades_pruned` count what went.
"""
from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import time
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import unquote

from pipeline.config import SimAccountConfig
from pipeline.sim import errors
from pipeline.sim.instruments import fmt8, parse8


@dataclass(slots=True)
class Order:
    symbol: str
    order_id: int
    client_id: str
    side: str                 # BUY / SELL
    type: str                 # LIMIT / MARKET / LIMIT_MAKER
    tif: str                  # GTC / IOC / FOK
    price: int                # 0 for MARKET
    qty: int                  # origQty (0 until known for quoteOrderQty market orders)
    quote_qty: int            # origQuoteOrderQty
    time_ms: int
    status: str = "NEW"
    executed: int = 0
    cum_quote: int = 0
    update_ms: int = 0
    working_ms: int = -1
    locked: int = 0           # still locked for this order (quote for BUY, base for SELL)
    cancel_client_id: str = ""
    stp_mode: str = "NONE"    # selfTradePreventionMode (matching.py: STP)
    prevented_qty: int = 0    # expired by self-trade prevention (EXPIRED_IN_MATCH)
    prevented_match_id: int = -1

    def stp_fields(self) -> dict:
        """selfTradePreventionMode and, for an order STP expired, preventedMatchId and
        preventedQuantity (Binance shows them only then)."""
        out: dict = {"selfTradePreventionMode": self.stp_mode}
        if self.prevented_match_id >= 0:
            out["preventedMatchId"] = self.prevented_match_id
            out["preventedQuantity"] = fmt8(self.prevented_qty)
        return out

    @property
    def is_open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")

    def details(self) -> dict:
        """GET /api/v3/order and openOrders item."""
        return {
            "symbol": self.symbol, "orderId": self.order_id, "orderListId": -1,
            "clientOrderId": self.client_id, "price": fmt8(self.price), "origQty": fmt8(self.qty),
            "executedQty": fmt8(self.executed), "cummulativeQuoteQty": fmt8(self.cum_quote),
            "status": self.status, "timeInForce": self.tif, "type": self.type, "side": self.side,
            "stopPrice": "0.00000000", "icebergQty": "0.00000000", "time": self.time_ms,
            "updateTime": self.update_ms or self.time_ms, "isWorking": self.working_ms >= 0,
            "workingTime": self.working_ms, "origQuoteOrderQty": fmt8(self.quote_qty),
            **self.stp_fields(),
        }

    def canceled(self, now_ms: int) -> dict:
        """DELETE /api/v3/order body."""
        return {
            "symbol": self.symbol, "origClientOrderId": self.client_id, "orderId": self.order_id,
            "orderListId": -1, "clientOrderId": self.cancel_client_id or self.client_id,
            "transactTime": now_ms, "price": fmt8(self.price), "origQty": fmt8(self.qty),
            "executedQty": fmt8(self.executed), "origQuoteOrderQty": fmt8(self.quote_qty),
            "cummulativeQuoteQty": fmt8(self.cum_quote), "status": self.status,
            "timeInForce": self.tif, "type": self.type, "side": self.side,
            **self.stp_fields(),
        }

    def result(self, now_ms: int, resp_type: str, fills: list[dict]) -> dict:
        """POST /api/v3/order body for ACK / RESULT / FULL."""
        out = {"symbol": self.symbol, "orderId": self.order_id, "orderListId": -1,
               "clientOrderId": self.client_id, "transactTime": now_ms}
        if resp_type == "ACK":
            return out
        out.update({
            "price": fmt8(self.price), "origQty": fmt8(self.qty), "executedQty": fmt8(self.executed),
            "origQuoteOrderQty": fmt8(self.quote_qty), "cummulativeQuoteQty": fmt8(self.cum_quote),
            "status": self.status, "timeInForce": self.tif, "type": self.type, "side": self.side,
            "workingTime": self.working_ms if self.working_ms >= 0 else now_ms,
            **self.stp_fields(),
        })
        if resp_type == "FULL":
            out["fills"] = fills
        return out


@dataclass(slots=True)
class Trade:
    symbol: str
    id: int
    order_id: int
    price: int
    qty: int
    quote: int
    commission: int
    commission_asset: str
    time_ms: int
    is_buyer: bool
    is_maker: bool

    def json(self) -> dict:
        return {"symbol": self.symbol, "id": self.id, "orderId": self.order_id, "orderListId": -1,
                "price": fmt8(self.price), "qty": fmt8(self.qty), "quoteQty": fmt8(self.quote),
                "commission": fmt8(self.commission), "commissionAsset": self.commission_asset,
                "time": self.time_ms, "isBuyer": self.is_buyer, "isMaker": self.is_maker,
                "isBestMatch": True}


Listener = Callable[[dict], None]


@dataclass(frozen=True)
class Retention:
    """How much history an account keeps (see the module docstring); 0 = no limit of that kind."""
    orders: int = 10_000          # final orders kept (the newest), per account
    order_age_ms: int = 0         # a final order older than this (since its last update) goes
    trades: int = 20_000          # own trades kept (the newest), per account

    @classmethod
    def of(cls, cfg) -> "Retention":
        """The [sim] keys order_history, order_history_s, trade_history."""
        return cls(int(cfg.order_history), int(cfg.order_history_s * 1000), int(cfg.trade_history))



def ed25519_public(text: str):
    """An Ed25519 public key from SPKI PEM or base64 (32 raw bytes or SPKI DER)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import (load_der_public_key,
                                                              load_pem_public_key)
    t = text.strip()
    try:
        if t.startswith("-----BEGIN"):
            k = load_pem_public_key(t.encode())
        else:
            raw = base64.b64decode(t, validate=True)
            k = (Ed25519PublicKey.from_public_bytes(raw) if len(raw) == 32
                 else load_der_public_key(raw))
    except ValueError as exc:
        raise ValueError(f"ed25519_public_key: not an Ed25519 public key: {exc}") from None
    if not isinstance(k, Ed25519PublicKey):
        raise ValueError("ed25519_public_key: not an Ed25519 public key")
    return k

class Account:
    def __init__(self, cfg: SimAccountConfig, uid: int,
                 retention: Retention | None = None) -> None:
        self.api_key = cfg.api_key
        self.uid = uid
        self._secret = cfg.secret.encode()
        self._passphrase = cfg.passphrase.encode()
        self._ed25519 = ed25519_public(cfg.ed25519_public_key) if cfg.ed25519_public_key else None
        self.free: dict[str, int] = {a.upper(): parse8(v) for a, v in cfg.balances.items()}
        self.locked: dict[str, int] = {a: 0 for a in self.free}
        self.orders: dict[int, Order] = {}
        self.by_client_id: dict[str, Order] = {}
        self.trades: collections.deque[Trade] = collections.deque()   # oldest first
        self.trades_of: dict[int, list[Trade]] = {}    # order id -> its trades (still kept)
        self.listeners: dict[int, Listener] = {}
        self.update_ms = 0
        self.order_times: list[float] = []   # monotonic stamps of recent new orders
        self.retention = retention or Retention()
        self.orders_pruned = 0
        self.trades_pruned = 0
        self._sweep_at = self._sweep_len(0)  # len(orders) that makes `retire` look
        self._sweep_ms = 0                   # ... or this time (the age limit)

    def __repr__(self) -> str:
        return f"Account(api_key={self.api_key[:6]}..., uid={self.uid})"

    # ------------------------------------------------------------ signing

    @property
    def ed25519(self) -> bool:
        return self._ed25519 is not None

    def signature_ok(self, payload: bytes, signature: str) -> bool:
        """HMAC-SHA256(secret, payload) as lowercase hex, compared in constant time; for an
        Ed25519 key, base64 Ed25519 over the payload (percent-encoded in a query string)."""
        if not signature:
            return False
        if self._ed25519 is not None:
            from cryptography.exceptions import InvalidSignature
            try:
                sig = base64.b64decode(unquote(signature), validate=True)
                self._ed25519.verify(sig, payload)
            except (ValueError, InvalidSignature):
                return False
            return True
        want = hmac.new(self._secret, payload, hashlib.sha256).hexdigest()
        return hmac.compare_digest(want, signature.lower())

    def okx_sign_ok(self, prehash: bytes, sign: str) -> bool:
        """OKX: base64(HMAC-SHA256(secret, prehash)), compared in constant time."""
        if not sign or self._ed25519 is not None:
            return False
        want = base64.b64encode(hmac.new(self._secret, prehash, hashlib.sha256).digest())
        return hmac.compare_digest(want, sign.encode("ascii", "replace"))

    def passphrase_ok(self, passphrase: str) -> bool:
        return hmac.compare_digest(self._passphrase, passphrase.encode("utf-8", "replace"))

    # ------------------------------------------------------------ balances

    def lock(self, asset: str, amount: int) -> None:
        if self.free.get(asset, 0) < amount:
            raise errors.err(errors.INSUFFICIENT_BALANCE)
        self.free[asset] = self.free.get(asset, 0) - amount
        self.locked[asset] = self.locked.get(asset, 0) + amount

    def unlock(self, asset: str, amount: int) -> None:
        self.locked[asset] = self.locked.get(asset, 0) - amount
        self.free[asset] = self.free.get(asset, 0) + amount

    def credit(self, asset: str, amount: int) -> None:
        self.free[asset] = self.free.get(asset, 0) + amount
        self.locked.setdefault(asset, 0)

    def debit_free(self, asset: str, amount: int) -> None:
        self.free[asset] = self.free.get(asset, 0) - amount

    def debit_locked(self, asset: str, amount: int) -> None:
        self.locked[asset] = self.locked.get(asset, 0) - amount

    def balance_json(self, asset: str) -> dict:
        return {"asset": asset, "free": fmt8(self.free.get(asset, 0)),
                "locked": fmt8(self.locked.get(asset, 0))}

    # ------------------------------------------------------------ history (bounded)

    def add_trade(self, t: Trade) -> None:
        """One own trade; the oldest goes once `retention.trades` are kept."""
        self.trades.append(t)
        self.trades_of.setdefault(t.order_id, []).append(t)
        cap = self.retention.trades
        while cap and len(self.trades) > cap:
            old = self.trades.popleft()
            mine = self.trades_of.get(old.order_id)
            if mine:
                mine.pop(0)                  # an order's trades are in time order too
                if not mine:
                    del self.trades_of[old.order_id]
            self.trades_pruned += 1

    def _sweep_len(self, kept: int) -> int:
        cap = self.retention.orders
        return kept + max(64, cap // 8) if cap else 1 << 62

    def retire(self, now_ms: int) -> list[Order]:
        """Drop final orders past the retention (the count beyond the newest
        `retention.orders`, or final for longer than `retention.order_age_ms`); returns them.
        Looks only every cap/8 new orders (or a quarter of the age limit): amortized O(1)."""
        r = self.retention
        if len(self.orders) < self._sweep_at and not (r.order_age_ms and now_ms >= self._sweep_ms):
            return []
        finals = [o for o in self.orders.values() if not o.is_open]    # oldest first (by id)
        drop = finals[:len(finals) - r.orders] if r.orders and len(finals) > r.orders else []
        if r.order_age_ms:
            old = now_ms - r.order_age_ms
            drop += [o for o in finals[len(drop):] if (o.update_ms or o.time_ms) < old]
            self._sweep_ms = now_ms + max(1000, r.order_age_ms // 4)
        for o in drop:
            del self.orders[o.order_id]
            if self.by_client_id.get(o.client_id) is o:
                del self.by_client_id[o.client_id]
        self.orders_pruned += len(drop)
        self._sweep_at = self._sweep_len(len(self.orders))
        return drop

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        return [o for o in self.orders.values() if o.is_open and (symbol is None or o.symbol == symbol)]

    def account_json(self, now_ms: int, commission_rate: float) -> dict:
        bps = int(round(commission_rate * 10_000))
        rate = f"{commission_rate:.8f}"
        return {
            "makerCommission": bps, "takerCommission": bps, "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {"maker": rate, "taker": rate, "buyer": "0.00000000",
                                "seller": "0.00000000"},
            "canTrade": True, "canWithdraw": False, "canDeposit": False, "brokered": False,
            "requireSelfTradePrevention": False, "preventSor": False,
            "updateTime": self.update_ms or now_ms, "accountType": "SPOT",
            "balances": [self.balance_json(a) for a in sorted(self.free)],
            "permissions": ["SPOT"], "uid": self.uid,
        }

    def emit(self, event: dict) -> None:
        for fn in list(self.listeners.values()):
            fn(event)


class WindowCounter:
    """A fixed-window counter (Binance windows are aligned to the interval, e.g. the minute)."""

    __slots__ = ("interval_s", "window", "count")

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.window = -1
        self.count = 0

    def add(self, n: int, now: float) -> int:
        w = int(now // self.interval_s)
        if w != self.window:
            self.window = w
            self.count = 0
        self.count += n
        return self.count

    def peek(self, now: float) -> int:
        return self.count if int(now // self.interval_s) == self.window else 0

    def retry_after(self, now: float) -> int:
        """Whole seconds until the current window ends (at least 1)."""
        return max(1, int((self.window + 1) * self.interval_s - now + 0.999))


@dataclass
class IpState:
    weight: WindowCounter = field(default_factory=lambda: WindowCounter(60.0))
    limited_until: float = 0.0    # after a 429: requests before this time earn a ban
    banned_until: float = 0.0


class RateLimiter:
    """REQUEST_WEIGHT per IP per minute with 429 → 418 escalation; ORDERS per account."""

    def __init__(self, weight_1m: int, orders_10s: int, orders_1d: int, ban_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.weight_1m = weight_1m
        self.orders_10s = orders_10s
        self.orders_1d = orders_1d
        self.ban_s = ban_s
        self.clock = clock
        self.ips: dict[str, IpState] = {}
        self.orders: dict[str, tuple[WindowCounter, WindowCounter]] = {}

    def check_ip(self, ip: str, weight: int) -> int:
        """Count a request's weight; raise 418 / 429 as Binance does. Returns the used weight."""
        now = self.clock()
        st = self.ips.get(ip)
        if st is None:
            st = self.ips[ip] = IpState()
        if now < st.banned_until:
            raise errors.banned(int(st.banned_until * 1000), max(1, int(st.banned_until - now + 0.999)))
        if now < st.limited_until:        # kept going after a 429: ban
            st.banned_until = now + self.ban_s
            raise errors.banned(int(st.banned_until * 1000), max(1, int(self.ban_s)))
        used = st.weight.add(weight, now)
        if used > self.weight_1m:
            retry = st.weight.retry_after(now)
            st.limited_until = now + retry
            raise errors.weight_exceeded(self.weight_1m, retry)
        return used

    def force_429(self, ip: str) -> errors.ApiError:
        now = self.clock()
        st = self.ips.setdefault(ip, IpState())
        st.limited_until = now + 10
        return errors.weight_exceeded(self.weight_1m, 10)

    def force_418(self, ip: str, seconds: float) -> errors.ApiError:
        now = self.clock()
        st = self.ips.setdefault(ip, IpState())
        st.banned_until = now + seconds
        return errors.banned(int(st.banned_until * 1000), max(1, int(seconds)))

    def used_weight(self, ip: str) -> int:
        st = self.ips.get(ip)
        return st.weight.peek(self.clock()) if st else 0

    def check_order(self, api_key: str) -> tuple[int, int]:
        """Count a new order for the account; -1015 / 429 past the limit. Returns (10s, 1d)."""
        now = self.clock()
        c = self.orders.get(api_key)
        if c is None:
            c = self.orders[api_key] = (WindowCounter(10.0), WindowCounter(86400.0))
        n10 = c[0].add(1, now)
        n1d = c[1].add(1, now)
        if n10 > self.orders_10s:
            raise errors.too_many_orders(self.orders_10s, "10 SECOND", c[0].retry_after(now))
        if n1d > self.orders_1d:
            raise errors.too_many_orders(self.orders_1d, "1 DAY", c[1].retry_after(now))
        return n10, n1d

    def order_counts(self, api_key: str) -> tuple[int, int]:
        c = self.orders.get(api_key)
        now = self.clock()
        return (c[0].peek(now), c[1].peek(now)) if c else (0, 0)
