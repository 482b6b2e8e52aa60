"""Backtest inputs: record files (.npy of TICK_DTYPE), numpy record arrays, Binance trades /
aggTrades CSV, and Binance public-data `.zip` archives (data.binance.vision, as
pipeline/data/download.py fetches them: the CSV inside is read in memory); and the checks that
run before any work.

Everything becomes a `Market`: contiguous float64 prices, int64 ns timestamps and a reset flag
per trade (1 = a GAP / STALE / RESYNC_START record came just before it, so strategies restart
their windows there — outages are data in backtests too).

CSV layouts understood (header or not; Binance public data has none before 2025):
  trades      id,price,qty,quote_qty,time,is_buyer_maker,is_best_match            (7 columns)
  aggTrades   agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,
              is_buyer_maker,is_best_match                                        (8 columns)
  with a header, columns are found by name (price; qty|quantity; time|transact_time|
  trade_time_ms|timestamp; id|trade_id|agg_trade_id; is_buyer_maker), which also covers the
  recorded WebSocket trades in tests/data/ticks. Times in ms, µs or ns (by magnitude): Binance's
  spot files switched from ms to µs on 2025-01-01, and some files since carry a header.
"""
from __future__ import annotations

import math
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.records import TICK_DTYPE, Kind, Side

TRADE_KINDS = (int(Kind.TRADE), int(Kind.AGG_TRADE))
QUOTE_KINDS = (int(Kind.BID), int(Kind.ASK))
RESET_KINDS = (int(Kind.GAP), int(Kind.STALE), int(Kind.RESYNC_START))


class DataError(ValueError):
    """Input the backtester cannot use; the message names the source and the problem."""


@dataclass
class Market:
    price: np.ndarray               # float64, C-contiguous
    ts: np.ndarray                  # int64 ns, non-decreasing
    reset: np.ndarray               # uint8 per trade, or empty (no resets)
    source: str = "<array>"
    info: dict = field(default_factory=dict)
    # per trade: (ask - bid) / (ask + bid) of the latest quotes before it (empty: no quotes)
    half_spread: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))

    def __len__(self) -> int:
        return int(self.price.shape[0])

    @property
    def nbytes(self) -> int:
        return int(self.price.nbytes + self.ts.nbytes + self.reset.nbytes)


# ----------------------------------------------------------------------------- validation


def validate(price: np.ndarray, ts: np.ndarray, source: str) -> None:
    """Empty input, NaN / non-positive prices, unsorted timestamps → DataError naming the first
    bad row."""
    n = len(price)
    if n == 0:
        raise DataError(f"{source}: no trades (empty input, or no trade records for the "
                        f"instrument)")
    if len(ts) != n:
        raise DataError(f"{source}: {len(ts)} timestamps for {n} prices")
    ok = np.isfinite(price)
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise DataError(f"{source}: price at row {i} is {price[i]} "
                        f"(NaN/inf prices are not allowed)")
    if not (price > 0).all():
        i = int(np.flatnonzero(price <= 0)[0])
        raise DataError(f"{source}: price at row {i} is {price[i]} (prices must be > 0)")
    if n > 1:
        back = ts[1:] < ts[:-1]
        if back.any():
            i = int(np.flatnonzero(back)[0]) + 1
            raise DataError(f"{source}: timestamps are not sorted: row {i} ({int(ts[i])}) is "
                            f"before row {i - 1} ({int(ts[i - 1])})")


def market_from_arrays(price, ts, reset=None, source: str = "<array>") -> Market:
    price = np.ascontiguousarray(price, dtype=np.float64)
    ts = np.ascontiguousarray(ts, dtype=np.int64)
    validate(price, ts, source)
    r = np.empty(0, np.uint8) if reset is None else np.ascontiguousarray(reset, dtype=np.uint8)
    if len(r) not in (0, len(price)):
        raise DataError(f"{source}: reset has {len(r)} flags for {len(price)} prices")
    return Market(price, ts, r, source)


def market_from_records(recs: np.ndarray, symbol: int | None = None, venue: int | None = None,
                        source: str = "<records>") -> Market:
    """Trades of one instrument from TICK_DTYPE records (control records become resets)."""
    if recs.dtype != TICK_DTYPE:
        raise DataError(f"{source}: expected TICK_DTYPE records, got dtype {recs.dtype}")
    kind = recs["kind"]
    trades = np.isin(kind, TRADE_KINDS)
    if symbol is not None:
        trades &= recs["symbol"] == symbol
    if venue is not None:
        trades &= recs["venue"] == venue
    idx = np.flatnonzero(trades)
    if len(idx):
        pairs = np.unique(recs["venue"][idx].astype(np.int64) << 32 | recs["symbol"][idx])
        if len(pairs) > 1:
            names = ", ".join(f"venue {int(p) >> 32} symbol {int(p) & 0xFFFFFFFF}"
                              for p in pairs[:5])
            raise DataError(f"{source}: trades of {len(pairs)} instruments ({names}...); "
                            f"choose one with symbol= / --symbol")
    sel = recs[idx]
    exch = sel["exch_ts"]
    ts = exch if len(sel) and (exch != 0).all() else sel["local_ts"]
    reset = np.zeros(len(idx), np.uint8)
    ctl = np.flatnonzero(np.isin(kind, RESET_KINDS))
    if len(ctl) and len(idx):
        if symbol is not None:
            s = recs["symbol"][ctl]
            ctl = ctl[(s == 0) | (s == symbol)]
        nxt = np.searchsorted(idx, ctl, side="right")
        nxt = nxt[nxt < len(idx)]
        reset[nxt] = 1
    m = market_from_arrays(sel["price"], ts, reset if reset.any() else None, source)
    m.info = {"records": int(len(recs)), "trades": int(len(idx)), "resets": int(reset.sum())}
    if len(idx):
        hs, unquoted = _half_spread(recs, idx)
        if hs is not None:
            m.half_spread = hs
            m.info["trades_before_first_quote"] = unquoted
    return m


def _half_spread(recs: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray | None, int]:
    """Per trade at record index idx[i]: (ask - bid) / (ask + bid) of the latest BID and ASK of
    the trades' instrument before it; 0 where either is missing or the book is crossed."""
    sym, ven = recs["symbol"][idx[0]], recs["venue"][idx[0]]
    same = (recs["symbol"] == sym) & (recs["venue"] == ven)
    bids = np.flatnonzero(same & (recs["kind"] == int(Kind.BID)))
    asks = np.flatnonzero(same & (recs["kind"] == int(Kind.ASK)))
    if len(bids) == 0 or len(asks) == 0:
        return None, len(idx)
    lb = np.searchsorted(bids, idx, side="right") - 1
    la = np.searchsorted(asks, idx, side="right") - 1
    ok = (lb >= 0) & (la >= 0)
    bid = recs["price"][bids[np.maximum(lb, 0)]]
    ask = recs["price"][asks[np.maximum(la, 0)]]
    ok &= (bid > 0) & (ask > bid) & np.isfinite(bid) & np.isfinite(ask)
    hs = np.zeros(len(idx), np.float64)
    hs[ok] = (ask[ok] - bid[ok]) / (ask[ok] + bid[ok])
    return hs, int((~((lb >= 0) & (la >= 0))).sum())


# ----------------------------------------------------------------------------- files

_PRICE = ("price",)
_QTY = ("qty", "quantity")
_TIME = ("time", "transact_time", "trade_time_ms", "timestamp", "trade_time")
_ID = ("id", "trade_id", "agg_trade_id", "a")
_MAKER = ("is_buyer_maker",)


def _find(header: list[str], names: tuple[str, ...], what: str, path: str) -> int:
    for i, h in enumerate(header):
        if h in names:
            return i
    raise DataError(f"{path}: CSV header has no {what} column (looked for {', '.join(names)}; "
                    f"header: {','.join(header)})")


def _to_ns(t: np.ndarray) -> np.ndarray:
    """Binance times in ms (13 digits), µs (16) or ns (19) → ns."""
    if len(t) == 0:
        return t
    m = int(np.abs(t).max())
    if m < 10**14:
        return t * 1_000_000
    if m < 10**17:
        return t * 1_000
    return t


def read_csv(path: str | Path) -> np.ndarray:
    """A Binance trades / aggTrades CSV as TICK_DTYPE records (TRADE / AGG_TRADE)."""
    path = str(path)
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        first = f.readline().strip()
        second = f.readline().strip()
    return _parse_csv(path, path, first, second)


def read_zip(path: str | Path) -> np.ndarray:
    """A Binance public-data archive (data.binance.vision `.zip`: one CSV inside) as TICK_DTYPE
    records, read in memory without unpacking to disk."""
    path = str(path)
    try:
        with zipfile.ZipFile(path) as z:
            members = [m for m in z.infolist() if m.filename.lower().endswith(".csv")]
            if len(members) != 1:
                raise DataError(f"{path}: expected one .csv inside, found "
                                f"{[m.filename for m in z.infolist()] or 'nothing'}")
            text = z.read(members[0]).decode("utf-8", errors="replace")
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{path}: not a readable zip archive: {exc}") from None
    lines = text.splitlines()
    first = lines[0].strip() if lines else ""
    second = lines[1].strip() if len(lines) > 1 else ""
    return _parse_csv(lines, f"{path}:{members[0].filename}", first, second)


def _parse_csv(src, path: str, first: str, second: str) -> np.ndarray:
    """`src`: a file path or a list of lines (what np.loadtxt reads); `path` names it."""
    if not first:
        raise DataError(f"{path}: empty file")
    cells = [c.strip().lower() for c in first.split(",")]
    try:
        float(cells[0])
        header = None
    except ValueError:
        header = cells
    if header is not None:
        ip, iq = _find(header, _PRICE, "price", path), _find(header, _QTY, "quantity", path)
        it, ii = _find(header, _TIME, "time", path), _find(header, _ID, "trade id", path)
        im = _find(header, _MAKER, "is_buyer_maker", path)
        agg = "first_trade_id" in header or "agg_trade_id" in header
        skip = 1
        if not second:
            raise DataError(f"{path}: no trades (header only)")
    elif len(cells) == 7:
        ii, ip, iq, it, im, agg, skip = 0, 1, 2, 4, 5, False, 0
    elif len(cells) == 8:
        ii, ip, iq, it, im, agg, skip = 0, 1, 2, 5, 6, True, 0
    else:
        raise DataError(f"{path}: {len(cells)} columns without a header: expected Binance trades "
                        f"(7 columns) or aggTrades (8 columns)")
    try:
        fl = np.loadtxt(src, delimiter=",", skiprows=skip, usecols=(ip, iq), dtype=np.float64,
                        ndmin=2)
        it_ = np.loadtxt(src, delimiter=",", skiprows=skip, usecols=(ii, it), dtype=np.int64,
                         ndmin=2)
        mk = np.loadtxt(src, delimiter=",", skiprows=skip, usecols=(im,), dtype=str, ndmin=1)
    except ValueError as exc:
        raise DataError(f"{path}: malformed CSV: {exc}") from None
    n = len(fl)
    if n == 0:
        raise DataError(f"{path}: no trades (header only)")
    recs = np.zeros(n, TICK_DTYPE)
    recs["seq"] = np.arange(n)
    recs["kind"] = int(Kind.AGG_TRADE) if agg else int(Kind.TRADE)
    recs["price"] = fl[:, 0]
    recs["qty"] = fl[:, 1]
    recs["id"] = it_[:, 0]
    recs["exch_ts"] = _to_ns(it_[:, 1])
    maker = np.char.lower(np.char.strip(mk.astype(str))) == "true"
    # the buyer was the maker → the seller was the aggressor
    recs["side"] = np.where(maker, int(Side.SELL), int(Side.BUY))
    return recs


def load_records(path: str | Path) -> np.ndarray:
    """A record file (.npy of TICK_DTYPE, memory-mapped) or a Binance CSV, as TICK_DTYPE records."""
    path = str(path)
    if not os.path.exists(path):
        raise DataError(f"{path}: no such file")
    if os.path.getsize(path) == 0:
        raise DataError(f"{path}: empty file")
    if path.endswith(".npy"):
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise DataError(f"{path}: not a numpy record file: {exc}") from None
        if arr.dtype != TICK_DTYPE:
            raise DataError(f"{path}: records have dtype {arr.dtype}, expected TICK_DTYPE "
                            f"(pipeline.records)")
        if arr.ndim != 1:
            raise DataError(f"{path}: expected a 1-D record array, got shape {arr.shape}")
        return arr
    if path.endswith(".csv"):
        return read_csv(path)
    if path.endswith(".zip"):
        return read_zip(path)
    raise DataError(f"{path}: unknown file type (expected .npy record file, Binance .csv or "
                    f"Binance public-data .zip)")


def load_market(path: str | Path, symbol: int | None = None, venue: int | None = None) -> Market:
    recs = load_records(path)
    if len(recs) == 0:
        raise DataError(f"{path}: no records (empty file)")
    return market_from_records(recs, symbol=symbol, venue=venue, source=str(path))


def check_price_range(m: Market, fast: int, slow: int, price_increment: float) -> None:
    """The exact-arithmetic bound (pipeline/strategy/sma.py), checked before any work."""
    from pipeline.strategy.sma import exact_limit
    p0 = round(float(m.price[0]) / price_increment)
    span = max(abs(round(float(m.price.max()) / price_increment) - p0),
               abs(round(float(m.price.min()) / price_increment) - p0))
    if not math.isfinite(span) or span > exact_limit(fast, slow):
        raise DataError(
            f"{m.source}: price range of {span} increments of {price_increment} is too wide for "
            f"exact int64 SMA sums with windows {fast}/{slow}; pass a coarser --price-increment")
