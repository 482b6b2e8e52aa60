"""Binance error codes and messages, as the simulator sends them (errors.md wording)."""
from __future__ import annotations


class ApiError(Exception):
    """A request the venue rejects: `{"code": code, "msg": msg}` with an HTTP status."""

    def __init__(self, code: int, msg: str, status: int = 400,
                 headers: dict[str, str] | None = None, data: dict | None = None) -> None:
        super().__init__(f"{code} {msg}")
        self.code = code
        self.msg = msg
        self.status = status
        self.headers = headers or {}
        self.data = data            # cancelReplace failures: both halves' results

    def body(self) -> dict:
        if self.data is not None:
            return {"code": self.code, "msg": self.msg, "data": self.data}
        return {"code": self.code, "msg": self.msg}


def mandatory(name: str) -> ApiError:
    return ApiError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def not_required(name: str) -> ApiError:
    return ApiError(-1106, f"Parameter '{name}' sent when not required.")


def bad_value(name: str) -> ApiError:
    return ApiError(-1100, f"Illegal characters found in parameter '{name}'; legal range is "
                           "'^([0-9]{1,20})(\\.[0-9]{1,20})?$'.")


def filter_failure(name: str) -> ApiError:
    return ApiError(-1013, f"Filter failure: {name}")


INVALID_SYMBOL = (-1121, "Invalid symbol.")
BAD_SIGNATURE = (-1022, "Signature for this request is not valid.")
OUTSIDE_RECV_WINDOW = (-1021, "Timestamp for this request is outside of the recvWindow.")
AHEAD_OF_SERVER = (-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
BAD_API_KEY = (-2015, "Invalid API-key, IP, or permissions for action.")
API_KEY_FORMAT = (-2014, "API-key format invalid.")
INSUFFICIENT_BALANCE = (-2010, "Account has insufficient balance for requested action.")
WOULD_TAKE = (-2010, "Order would immediately match and take.")
DUPLICATE_ORDER = (-2010, "Duplicate order sent.")
UNKNOWN_ORDER_CANCEL = (-2011, "Unknown order sent.")
CANCEL_REPLACE_PARTIAL = (-2021, "Order cancel-replace partially failed.")
CANCEL_REPLACE_FAILED = (-2022, "Order cancel-replace failed.")
NO_SUCH_ORDER = (-2013, "Order does not exist.")
CANCEL_NEEDS_ID = (-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
INVALID_SIDE = (-1117, "Invalid side.")
INVALID_TYPE = (-1116, "Invalid orderType.")
INVALID_TIF = (-1115, "Invalid timeInForce.")
INVALID_RESP_TYPE = (-1177, "Invalid newOrderRespType.")
RECV_WINDOW_TOO_BIG = (-1131, "recvWindow must be less than 60000")
UNSUPPORTED_TYPE = (-1014, "Unsupported order combination.")
UNKNOWN_5XX = (-1007, "Timeout waiting for response from backend server. Send status unknown; "
                      "execution status unknown.")
TOO_MANY_PARAMS = (-1101, "Too many parameters; expected '%s' and received '%s'.")
DUPLICATE_PARAM = (-1101, "Duplicate values for parameter '%s'.")
NOT_FOUND_PATH = (-1000, "An unknown error occurred while processing the request.")


def err(pair: tuple[int, str], status: int = 400) -> ApiError:
    return ApiError(pair[0], pair[1], status)


def weight_exceeded(limit: int, retry_after: int) -> ApiError:
    return ApiError(-1003, f"Too much request weight used; current limit is {limit} request weight "
                           "per 1 MINUTE. Please use WebSocket Streams for live updates to avoid "
                           "polling the API.", 429, {"Retry-After": str(retry_after)})


def banned(until_ms: int, retry_after: int) -> ApiError:
    return ApiError(-1003, f"Way too much request weight used; IP banned until {until_ms}. Please "
                           "use WebSocket Streams for live updates to avoid bans.", 418,
                    {"Retry-After": str(retry_after)})


def too_many_orders(limit: int, interval: str, retry_after: int) -> ApiError:
    return ApiError(-1015, f"Too many new orders; current limit is {limit} orders per {interval}.",
                    429, {"Retry-After": str(retry_after)})
