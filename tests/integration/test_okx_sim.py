"""The simulator's OKX endpoint against our OKX parsers and book, over a real WebSocket to a real
simulator process: subscribe acks and errors, ping/pong, books with seqId/prevSeqId from the same
tape, gap and seqId-reset faults resolved through REST snapshots, checksums 0 or real."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest
import requests
import websocket

from pipeline.records import Kind
from registry_fixture import DEFAULT
from pipeline.sim.testing import start_sim
from pipeline.venues.okx import market as okx
from pipeline.venues.okx.book import OkxBookSync

pytestmark = pytest.mark.timeout(60)
SYMS = okx.symbols_from_registry(DEFAULT)
INST = "BTC-USDT"


@pytest.fixture(scope="module")
def sim_proc(tmp_path_factory):
    s = start_sim(tmp_path_factory.mktemp("okxsim"), rate=3000, paused=False,
                  symbols=["BTCUSDT", "ETHUSDT"])
    yield s
    s.stop()


@pytest.fixture
def sim(sim_proc):
    """The module's simulator, tape running, OKX switches at their defaults."""
    sim_proc.tape(action="resume")
    sim_proc.fault("okx_set", checksum=False, snapshot_push=True)
    yield sim_proc
    assert sim_proc.alive()


class Client:
    """A plain websocket-client OKX consumer feeding our parsers and one OkxBookSync."""

    def __init__(self, sim, channels=("books",), inst=INST):
        self.sim = sim
        self.ws = websocket.create_connection(sim.ws_url + okx.WS_PUBLIC_PATH, timeout=5)
        self.ws.send(okx.op_messages("subscribe", okx.subscribe_args([inst], channels))[0])
        self.sync = OkxBookSync(SYMS[inst])
        self.records: list[np.ndarray] = []
        self.trades: list[np.ndarray] = []
        self.events: list[okx.Event] = []
        self.inst = inst

    def pump(self, seconds: float, until=None) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.ws.settimeout(max(0.01, min(0.2, end - time.monotonic())))
            try:
                raw = self.ws.recv()
            except websocket.WebSocketTimeoutException:
                raw = None
            if raw:
                self.handle(raw)
            if self.sync.need_snapshot:
                self.fetch_snapshot()
            if until is not None and until():
                return

    def handle(self, raw: str) -> None:
        if raw == "pong":
            self.events.append(okx.parse_event(raw))
            return
        obj = json.loads(raw)
        if okx.classify(obj) is not okx.MsgType.DATA:
            self.events.append(okx.parse_event(obj))
            return
        out = okx.route_data(obj, SYMS, time.time_ns())
        if isinstance(out, list):
            for m in out:
                self.records.append(self.sync.on_message(m))
        else:
            self.trades.append(out)

    def fetch_snapshot(self) -> None:
        r = requests.get(okx.books_snapshot_url(self.sim.rest_url, self.inst), timeout=5)
        snap = okx.parse_rest_books(r.json(), SYMS[self.inst], time.time_ns())
        self.records.append(self.sync.on_snapshot(snap))

    def kinds(self) -> list[int]:
        return [int(k) for r in self.records for k in r["kind"]]

    def close(self) -> None:
        self.ws.close()


def rest_book(sim, inst=INST):
    d = requests.get(okx.books_snapshot_url(sim.rest_url, inst), timeout=5).json()["data"][0]
    return (d["seqId"], {float(p): s for p, s, *_ in d["bids"]},
            {float(p): s for p, s, *_ in d["asks"]})


def settle(c: Client, sim) -> None:
    """Pause the tape, drain, and check our book equals the venue's at the same seqId."""
    sim.tape(action="pause")
    c.pump(0.5)
    seq, bids, asks = rest_book(sim)
    c.pump(0.3)
    assert c.sync.live and c.sync.last_seq == seq
    assert {p: v[1] for p, v in c.sync.book.bids.items()} == bids
    assert {p: v[1] for p, v in c.sync.book.asks.items()} == asks


def test_subscribe_acks_errors_and_ping(sim):
    ws = websocket.create_connection(sim.ws_url + okx.WS_PUBLIC_PATH, timeout=5)
    try:
        ws.send(json.dumps({"id": "7", "op": "subscribe", "args": [
            {"channel": "trades", "instId": INST}, {"channel": "bbo-tbt", "instId": INST},
            {"channel": "trades", "instId": "NOPE-USDT"}]}))
        evs = [okx.parse_event(json.loads(ws.recv())) for _ in range(3)]
        assert [e.type for e in evs].count(okx.MsgType.SUBSCRIBE) == 2
        (err,) = [e for e in evs if e.type is okx.MsgType.ERROR]
        assert err.code == "60018" and err.id == "7"
        ws.send(json.dumps({"op": "login", "args": []}))
        ws.send("ping")
        got = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "pong" not in got:
            got.append(ws.recv())
        assert "pong" in got
        errs = [okx.parse_event(json.loads(g)) for g in got if g.startswith('{"event"')
                or g.startswith('{"id"')]
        assert any(e.type is okx.MsgType.ERROR and e.code == "60019" for e in errs)
    finally:
        ws.close()


def test_trades_bbo_and_books_from_the_same_tape(sim):
    c = Client(sim, channels=("trades", "bbo-tbt", "books"))
    try:
        c.pump(1.0)
        assert c.trades, "no trades"
        recs = np.concatenate(c.trades)
        kinds = set(recs["kind"])
        assert Kind.TRADE in kinds and (Kind.BID in kinds or Kind.ASK in kinds)
        assert c.sync.live and c.sync.stats.updates > 5 and c.sync.stats.resyncs == 0
        assert c.sync.stats.checksum_failures == 0 and c.sync.stats.checksums_verified == 0
        assert Kind.GAP not in c.kinds()
        settle(c, sim)
    finally:
        c.close()


def test_seq_gap_resyncs_to_a_correct_book(sim):
    c = Client(sim)
    try:
        c.pump(1.0, until=lambda: c.sync.live and c.sync.stats.updates > 3)
        assert sim.fault("okx_gap", instId=INST, count=2)["ok"]
        c.pump(3.0, until=lambda: c.kinds().count(Kind.RESYNC_DONE) >= 2)
        k = c.kinds()
        gap = k.index(Kind.GAP)
        assert k[gap + 1] == Kind.RESYNC_START and Kind.RESYNC_DONE in k[gap:]
        assert c.sync.stats.gaps >= 1
        settle(c, sim)
    finally:
        c.close()


def test_seq_reset_resyncs_without_crash(sim):
    c = Client(sim)
    try:
        c.pump(1.0, until=lambda: c.sync.live and c.sync.stats.updates > 3)
        before = c.sync.last_seq
        sim.fault("okx_seq_reset", instId=INST)
        c.pump(3.0, until=lambda: c.kinds().count(Kind.RESYNC_DONE) >= 2)
        assert c.sync.stats.seq_resets == 1 and c.sync.last_seq < before
        c.pump(0.5)
        settle(c, sim)
    finally:
        c.close()


def test_checksums_verify_when_sent(sim):
    sim.fault("okx_set", checksum=True)
    c = Client(sim)
    try:
        c.pump(1.0)
        assert c.sync.stats.checksums_verified > 5 and c.sync.stats.checksum_failures == 0
        assert c.sync.stats.resyncs == 0
    finally:
        c.close()


def test_rest_snapshot_when_no_snapshot_is_pushed(sim):
    sim.fault("okx_set", snapshot_push=False)
    c = Client(sim)
    try:
        c.pump(3.0, until=lambda: c.sync.live)
        assert c.sync.live and Kind.GAP not in c.kinds()
        c.pump(0.5)
        settle(c, sim)
    finally:
        c.close()
