"""What the run traded, for the summary and the plots: the market's trade prices (a tap on the
tick ring the launcher owns) and the gateway's orders and fills (its journal).

`PriceTap` is one more reader of the tick ring, in the launcher (never in a role): it polls
without waiting every time the launcher's loop turns (50 times a second) and keeps the last
trade price per symbol per `bucket_ms`, so an hour-long run costs a few hundred kB.
`trading_record` reads the journal's orders and fills of this run (the gateway journals each
fill once, whichever report of it came first).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.records import Kind

log = logging.getLogger(__name__)


class PriceTap:
    def __init__(self, ring, symbols: dict[int, str], bucket_ms: int = 100):
        self.reader = ring.reader(wait="sleeping", max_batch=1 << 16, start="next")
        self.symbols = symbols                     # instrument id → symbol name
        self.bucket_ns = bucket_ms * 1_000_000
        self.series: dict[str, tuple[list[int], list[float]]] = {}
        self.lost = 0

    def poll(self) -> None:
        batch = self.reader.poll()
        if not len(batch):
            return
        self.lost = self.reader.lost
        trades = batch[batch["kind"] == int(Kind.TRADE)]
        for sid in np.unique(trades["symbol"]):
            name = self.symbols.get(int(sid))
            if name is None:
                continue
            t = trades[trades["symbol"] == sid]
            b = t["local_ts"] // self.bucket_ns
            last = np.r_[b[1:] != b[:-1], True]          # the last trade of each bucket
            ts, px = self.series.setdefault(name, ([], []))
            if ts and b[0] == ts[-1] // self.bucket_ns:   # same bucket as the previous batch's
                ts.pop()
                px.pop()
            ts.extend(int(x) for x in t["local_ts"][last])
            px.extend(float(x) for x in t["price"][last])

    def arrays(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """symbol → (realtime ns, price)."""
        return {s: (np.array(ts, dtype=np.int64), np.array(px)) for s, (ts, px) in
                self.series.items() if ts}


@dataclass
class TradingRecord:
    """Orders and fills of one run, from the gateway's journal (times: CLOCK_REALTIME ns)."""

    orders: list[dict] = field(default_factory=list)   # t, symbol, side (+1/-1), qty, price|None
    fills: list[dict] = field(default_factory=list)    # t, symbol, side, qty, price, commission, commission_asset, source


def trading_record(journal: Path, since_ns: int = 0) -> TradingRecord:
    """The orders and fills journalled at or after `since_ns` (this run's), from either journal
    format (binary journal.bin or journal.jsonl)."""
    from pipeline.gateway import binjournal
    rec = TradingRecord()
    records = binjournal.read(journal) if binjournal.is_binary(journal) else _json_lines(journal)
    for r in records:
        if r.get("k") not in ("order", "fill") or int(r.get("t", 0)) < since_ns:
            continue
        if r["k"] == "order":
            rec.orders.append({k: r.get(k) for k in ("t", "symbol", "side", "qty", "price")})
        else:
            rec.fills.append({k: r.get(k) for k in ("t", "symbol", "side", "qty", "price",
                                                    "commission", "commission_asset",
                                                    "source")})
    return rec


def _json_lines(journal: Path):
    try:
        f = journal.open("rb")
    except OSError:
        return
    with f:
        for line in f:
            if b'"k":"order"' not in line and b'"k":"fill"' not in line:
                continue
            try:
                yield json.loads(line)
            except ValueError:
                continue                               # a torn last line: the journal's business


def fee_value(fill: dict, base: str, quote: str) -> float:
    """A fill's commission in the quote currency (a base-asset fee at the fill's price)."""
    c = float(fill.get("commission") or 0.0)
    asset = fill.get("commission_asset") or ""
    if asset == quote:
        return c
    if asset == base:
        return c * float(fill["price"])
    return 0.0                                         # a third asset (BNB): not valued here


def pnl_path(fills: list[dict], ts: np.ndarray, px: np.ndarray, base: str, quote: str
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Position, PnL before fees and PnL after fees at each price sample (mark to market)."""
    pos = np.zeros(len(ts))
    cash = np.zeros(len(ts))
    fees = np.zeros(len(ts))
    for f in sorted(fills, key=lambda f: f["t"]):
        i = np.searchsorted(ts, int(f["t"]))
        q = int(f["side"]) * float(f["qty"])
        pos[i:] += q
        cash[i:] -= q * float(f["price"])
        fees[i:] += fee_value(f, base, quote)
    gross = cash + pos * px
    return pos, gross, gross - fees
