"""OKX v5 spot trading: what the venue's order API looks like (shared by the gateway and the
simulator, so both speak the same wire).

REST (https://www.okx.com, demo trading: the same host with the header `x-simulated-trading: 1`):

    POST /api/v5/trade/order               {"instId","tdMode":"cash","clOrdId","side","ordType",
                                            "sz","px"(limit),"tgtCcy":"base_ccy"(market)}
    POST /api/v5/trade/cancel-order        {"instId","clOrdId"|"ordId"}
    POST /api/v5/trade/amend-order         {"instId","clOrdId"|"ordId","newSz"?,"newPx"?}
    POST /api/v5/trade/cancel-batch-orders [{"instId","clOrdId"|"ordId"}, ...] (<= 20)
    GET  /api/v5/trade/order?instId=&clOrdId=    one order (51603: does not exist)
    GET  /api/v5/trade/orders-pending?instType=SPOT   open orders
    GET  /api/v5/trade/fills?instType=SPOT[&instId=][&ordId=]   recent fills
    GET  /api/v5/account/balance           balances
    GET  /api/v5/public/time               {"ts": ms}

Signed requests carry OK-ACCESS-KEY, OK-ACCESS-SIGN, OK-ACCESS-TIMESTAMP (ISO 8601 UTC with
milliseconds, "2020-12-08T09:08:57.715Z") and OK-ACCESS-PASSPHRASE;
sign = base64(HMAC-SHA256(secret, timestamp + METHOD + requestPath(+ "?" query) + body)).
Every answer is {"code": "0" | error, "msg", "data": [...]}; per-order results carry sCode/sMsg
("code": "1" when every order of the request failed, "2" when some did).

Private WebSocket /ws/v5/private: {"op":"login","args":[{"apiKey","passphrase","timestamp"
(Unix seconds),"sign": base64(HMAC(secret, timestamp + "GET" + "/users/self/verify"))}]}, then
{"op":"subscribe","args":[{"channel":"orders","instType":"SPOT"}]}: a push per order change
(state live / partially_filled / filled / canceled; a fill carries tradeId, fillSz, fillPx,
fillFee, fillFeeCcy). Orders over the socket: {"id","op":"order"|"cancel-order"|"amend-order",
"args":[...]} answered {"id","op","code","msg","data":[{..., "sCode","sMsg"}]}.

Client order ids: OKX allows 1-32 alphanumerics; ours ("pl<strategy hex>.<epoch hex>.<seq hex>",
pipeline/gateway/orders.py) becomes "<strategy hex>x<epoch hex>x<seq hex>" on the wire (hex has
no "x", so the mapping is one-to-one and at most 4 + 1 + 16 + 1 + 10 = 32 characters).
"""
from __future__ import annotations

import datetime as _dt

ORDER_PATH = "/api/v5/trade/order"
CANCEL_PATH = "/api/v5/trade/cancel-order"
AMEND_PATH = "/api/v5/trade/amend-order"
CANCEL_BATCH_PATH = "/api/v5/trade/cancel-batch-orders"
PENDING_PATH = "/api/v5/trade/orders-pending"
FILLS_PATH = "/api/v5/trade/fills"
BALANCE_PATH = "/api/v5/account/balance"
TIME_PATH = "/api/v5/public/time"
PRIVATE_WS_PATH = "/ws/v5/private"
LOGIN_PATH = "/users/self/verify"          # the login signature's request path
MAX_BATCH = 20                             # orders per batch request

# OKX's published per-endpoint limits (requests per 2 s; User ID for trading endpoints):
# place / cancel / amend 60, batch cancel 300 orders, order query 60, pending 60, fills 60,
# balance 10, public time 10 (per IP).
RATE_LIMITS: dict[str, tuple[int, float]] = {
    ORDER_PATH + " POST": (60, 2.0), CANCEL_PATH: (60, 2.0), AMEND_PATH: (60, 2.0),
    CANCEL_BATCH_PATH: (300, 2.0), ORDER_PATH + " GET": (60, 2.0), PENDING_PATH: (60, 2.0),
    FILLS_PATH: (60, 2.0), BALANCE_PATH: (10, 2.0), TIME_PATH: (10, 2.0),
}

# our side / order type / time in force (pipeline/records.py) → OKX
SIDE = {1: "buy", -1: "sell"}
SIDE_OF = {"buy": 1, "sell": -1}
ORD_TYPE = {(1, 1): "limit", (1, 2): "ioc", (1, 3): "fok", (2, 0): "market", (3, 0): "post_only"}

# OKX order state → the gateway's order state names (pipeline/gateway/orders.py OrderState)
STATE = {"live": "ACK", "partially_filled": "PARTIALLY_FILLED", "filled": "FILLED",
         "canceled": "CANCELED", "mmp_canceled": "CANCELED"}

# error codes (OKX "Error Code" tables)
OK = "0"
ALL_FAILED = "1"
PARTIAL = "2"
SERVICE_UNAVAILABLE = "50001"     # 503: the request may or may not have been processed
REQUEST_TIMEOUT = "50004"         # "API endpoint request timeout (does not mean that the request
                                  # was successful or failed, please check the request result)"
SYSTEM_BUSY = "50013"
RATE_LIMITED = "50011"            # 429: "Rate limit reached"
TIMESTAMP_EXPIRED = "50102"       # "Timestamp request expired"
KEY_EMPTY = "50103"
PASSPHRASE_EMPTY = "50104"
PASSPHRASE_WRONG = "50105"
SIGN_EMPTY = "50106"
TIMESTAMP_EMPTY = "50107"
INVALID_KEY = "50111"
INVALID_TIMESTAMP = "50112"
INVALID_SIGN = "50113"
PARAM_ERROR = "51000"
NO_INSTRUMENT = "51001"
INSUFFICIENT = "51008"
DUPLICATE_CLORDID = "51016"
CANCEL_FAILED = "51400"           # filled, canceled or does not exist
AMEND_FAILED = "51503"
NO_ORDER = "51603"                # "Order does not exist"
WOULD_TAKE = "51026"              # post_only would take (the simulator's wording)
UNKNOWN_CODES = frozenset({SERVICE_UNAVAILABLE, REQUEST_TIMEOUT, SYSTEM_BUSY})

MESSAGES = {
    SERVICE_UNAVAILABLE: "Service temporarily unavailable. Please try again later",
    REQUEST_TIMEOUT: "API endpoint request timeout",
    RATE_LIMITED: "Too Many Requests",
    TIMESTAMP_EXPIRED: "Timestamp request expired",
    KEY_EMPTY: "OK-ACCESS-KEY header is required",
    PASSPHRASE_EMPTY: "OK-ACCESS-PASSPHRASE header is required",
    PASSPHRASE_WRONG: "OK-ACCESS-PASSPHRASE incorrect",
    SIGN_EMPTY: "OK-ACCESS-SIGN header is required",
    TIMESTAMP_EMPTY: "OK-ACCESS-TIMESTAMP header is required",
    INVALID_KEY: "Invalid OK-ACCESS-KEY",
    INVALID_TIMESTAMP: "Invalid OK-ACCESS-TIMESTAMP",
    INVALID_SIGN: "Invalid Sign",
    PARAM_ERROR: "Parameter {0} error",
    NO_INSTRUMENT: "Instrument ID does not exist",
    INSUFFICIENT: "Order failed. Insufficient balance",
    DUPLICATE_CLORDID: "Duplicated clOrdId",
    CANCEL_FAILED: "Order cancellation failed as the order has been filled, canceled or does "
                   "not exist",
    AMEND_FAILED: "Order modification failed as the order has been filled, canceled or does "
                  "not exist",
    NO_ORDER: "Order does not exist",
    WOULD_TAKE: "Order failed. The post_only order would take liquidity",
}


def wire_cid(cid: str) -> str:
    """Our client order id → OKX clOrdId ("pl1.a.2f" → "1xax2f")."""
    if not cid.startswith("pl"):
        raise ValueError(f"not one of our client order ids: {cid!r}")
    return cid[2:].replace(".", "x")


def our_cid(cl_ord_id: str) -> str:
    """OKX clOrdId → our client order id, or "" when it is not one of ours."""
    parts = cl_ord_id.split("x")
    if len(parts) != 3 or not all(p and all(c in "0123456789abcdef" for c in p) for p in parts):
        return ""
    return "pl" + ".".join(parts)


def iso_ms(ms: int) -> str:
    """OK-ACCESS-TIMESTAMP of a Unix time in ms: "2020-12-08T09:08:57.715Z" (24 characters)."""
    t = _dt.datetime.fromtimestamp(ms // 1000, tz=_dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + ".%03dZ" % (ms % 1000)


def parse_iso_ms(text: str) -> int:
    """ISO 8601 "...T..:..:..(.mmm)Z" → Unix ms (ValueError if it is not one)."""
    if not text.endswith("Z"):
        raise ValueError("timestamp must end with Z")
    t = _dt.datetime.fromisoformat(text[:-1]).replace(tzinfo=_dt.timezone.utc)
    return int(round(t.timestamp() * 1000))


def prehash(timestamp: str, method: str, path: str, body: str | bytes = b"") -> bytes:
    """The signed string: timestamp + METHOD + requestPath + body (as pipeline.gateway.sign_py)."""
    b = body.encode() if isinstance(body, str) else bytes(body)
    return timestamp.encode() + method.upper().encode() + path.encode() + b


__all__ = ["wire_cid", "our_cid", "iso_ms", "parse_iso_ms", "prehash", "STATE", "SIDE", "SIDE_OF",
           "ORD_TYPE", "RATE_LIMITS", "UNKNOWN_CODES", "MESSAGES"]
