"""Keeping the gateway's signal path warm between rare signals.

On a box whose caches go cold between signals (measured here: a signal 200 ms after the last one
decodes 4-5x slower than one 1 ms after, even on a spinning core), the loop runs the path dry
every warm_ms when idle, calling the functions the hot path calls: the ring receive, the order
path through the hot path's own Admission.sign_signal (dry=True: its stamps, clock and the
compiled send's arguments, Execution.send_args, then OrderPath.probe: the same risk check, the
venue's rate limits included, and encode + sign as process(), nothing committed or counted),
decode, the client id, with the JSON-lines journal its line formatted, and
the order request formatted (pipeline.gateway.wire). Nothing is sent, journalled or counted.
"""
from __future__ import annotations

import time

from pipeline.bus.signals import Signal, encode
from pipeline.gateway.orders import client_id_of

# The strategy id of the dry-run signal; never sent, never journalled.
WARM_STRATEGY_ID = 0xFFFF


def warm_signal(gw, now: int) -> bytes:
    """A valid MARKET buy of the smallest size for the gateway's first configured symbol."""
    sid = min(gw.ex.rules)
    r = gw.ex.rules[sid]
    qty = max(r.min_qty_units, r.step_units) / 10 ** r.qty_decimals
    return encode(Signal(epoch=1, seq=1, trigger_seq=0, trigger_mono=now, created_mono=now,
                         ttl_ns=1_000_000_000, qty=qty, strategy_id=WARM_STRATEGY_ID,
                         symbol=sid, venue=r.venue, side=1, order_type=2, tif=0))


def run_dry(gw) -> None:
    """One dry run of the signal path of Gateway `gw` (counted in gw.warm_runs only)."""
    gw.intake.rx.warm()
    now = time.perf_counter_ns()
    raw = warm_signal(gw, now)
    # the hot path's own Python (Admission.sign_signal: stamps, clock, the send's arguments),
    # then the kernel's probe: the same code objects and data as a real signal, not look-alikes
    # (a dry run of other Python 20 us before leaves the real path nearly as cold as none)
    body = gw.sign_signal(raw, dry=True)
    sig = gw.intake.signals.decode(raw)
    cid = client_id_of(sig)
    if cid in gw.ex.table or gw.risk.state == 2:
        pass                      # the same reads as the real path; no branch taken matters
    # the bookkeeping after the signed stamp: a journal line formatted (not written) and the
    # order request formatted by http.client onto a connection that writes nothing
    if not getattr(gw.journal, "writes_orders", False):   # the binary journal: compiled record
        gw.journal.render("signal", decision="accept", cid=cid, strategy=sig.strategy_id,
                          epoch=sig.epoch, seq=sig.seq, symbol=sig.symbol, side=sig.side,
                          qty=sig.qty, trigger_mono=sig.trigger_mono,
                          created_mono=sig.created_mono, recv_mono=now)
    if gw.ex.wire is not None and body is not None:
        gw.ex.wire.warm(body)
    gw.warm_runs += 1
