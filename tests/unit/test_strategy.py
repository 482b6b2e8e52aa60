"""Strategy base and SMA live behaviour: typed params from config (strict), hooks, GAP / STALE /
RESYNC_START suspend and restart the windows, other instruments and kinds are ignored, long/flat
vs long/short order quantities, signal stamps."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline import config
from pipeline.clock import TestClock
from pipeline.records import TICK_DTYPE, Kind, Venue
from registry_fixture import DEFAULT as REG
from pipeline.strategy import STRATEGIES
from pipeline.strategy.base import Strategy
from pipeline.strategy.process import build_strategies
from pipeline.strategy.sma import SmaCrossover, SmaParams

SYM = REG.id(Venue.SIM, "BTCUSDT")


def recs(prices, kind=Kind.TRADE, symbol=SYM, start_seq=0):
    r = np.zeros(len(prices), TICK_DTYPE)
    r["seq"] = np.arange(start_seq, start_seq + len(prices))
    r["kind"] = kind
    r["venue"] = Venue.SIM
    r["symbol"] = symbol
    r["price"] = prices
    r["mono_ts"] = 1000 + r["seq"]
    return r


def ctl(kind, symbol=0, seq=0):
    r = recs([0.0], kind=kind, symbol=symbol, start_seq=seq)
    r["venue"] = 0 if symbol == 0 else Venue.SIM
    return r


def sma(**kw):
    clock = TestClock(mono_ns=5_000)
    s = SmaCrossover(SmaParams(1, 2, 1.0), venue=int(Venue.SIM), symbol=SYM, qty=0.5,
                     ttl_ns=777, clock=clock, **kw)
    s.start()
    return s


def test_params_from_config_are_typed_and_strict(tmp_path):
    cfg = config.loads('[[strategy.instances]]\nid = 3\nsymbol = "ETHUSDT"\n'
                       'params = { fast = 5, slow = 9, price_increment = 0.5 }\n')
    (s,) = build_strategies(cfg, REG)
    assert isinstance(s, SmaCrossover) and s.params == SmaParams(5, 9, 0.5)
    assert s.symbol == REG.id(Venue.SIM, "ETHUSDT") and s.strategy_id == 3
    bad = [('params = { fast = 5, slow = 9, fats = 1 }', "unknown key.*fats"),
           ('params = { fast = "5", slow = 9 }', "fast.*must be an integer"),
           ('params = { fast = 9, slow = 5 }', "fast=9 >= slow=5"),
           ('venue = "NOPE"', "unknown venue 'NOPE'")]
    for line, msg in bad:
        cfg = config.loads(f"[[strategy.instances]]\n{line}\n", source="x.toml")
        with pytest.raises(config.ConfigError, match=msg):
            build_strategies(cfg, REG, source="x.toml")
    with pytest.raises(KeyError, match="unknown instrument"):
        build_strategies(config.loads('[[strategy.instances]]\nsymbol = "DOGEUSDT"\n'), REG)
    assert STRATEGIES["sma"] is SmaCrossover


def test_signals_carry_trigger_and_stamps_long_flat():
    s = sma()
    out = s.on_ticks(recs([10, 9, 10, 12, 11, 13]))
    # trend: j1 down (adopted silently), j2 up → BUY, j4 down → SELL (to flat), j5 up → BUY
    assert [(x.trigger_seq, x.side, x.qty) for x in out] == [(2, 1, 0.5), (4, -1, 0.5),
                                                             (5, 1, 0.5)]
    x = out[0]
    assert (x.trigger_mono, x.created_mono, x.ttl_ns, x.strategy_id, x.symbol, x.venue) == \
        (1002, 5_000, 777, 0, SYM, int(Venue.SIM))
    assert np.isnan(x.price) and x.order_type == 2 and (x.epoch, x.seq) == (0, 0)


def test_long_short_reverses_with_double_quantity():
    s = sma(allow_short=True)
    out = s.on_ticks(recs([10, 9, 10, 12, 11, 13]))
    assert [(x.side, x.qty) for x in out] == [(1, 0.5), (-1, 1.0), (1, 1.0)]


def test_other_instruments_and_kinds_are_ignored():
    s = sma()
    batch = np.concatenate([recs([10, 9]), recs([50, 1, 50], symbol=SYM + 1),
                            recs([100, 1], kind=Kind.BID), ctl(Kind.HEARTBEAT),
                            ctl(Kind.RESYNC_DONE), recs([10])])
    assert [x.side for x in s.on_ticks(batch)] == [1]
    assert s.gaps == 0 and not s.suspended


@pytest.mark.parametrize("kind", [Kind.GAP, Kind.STALE, Kind.RESYNC_START])
def test_gap_suspends_and_restarts_windows(kind):
    s = sma()
    assert s.on_ticks(recs([10, 9])) == []                 # trend down adopted
    assert s.on_ticks(ctl(kind)) == [] and s.suspended
    # the first fresh trade only refills the window: no signal from it, even though 20 > 9
    assert s.on_ticks(recs([20], start_seq=10)) == [] and not s.suspended
    out = s.on_ticks(recs([21], start_seq=11))             # window full again: up → BUY
    assert [(x.trigger_seq, x.side) for x in out] == [(11, 1)]
    assert (s.gaps, s.stales) == ((0, 1) if kind == Kind.STALE else (1, 0))


def test_gap_for_another_instrument_is_ignored():
    s = sma()
    s.on_ticks(recs([10, 9]))
    s.on_ticks(ctl(Kind.GAP, symbol=SYM + 1))
    assert not s.suspended and s.gaps == 0
    assert [x.side for x in s.on_ticks(recs([20]))] == [1]


def test_hooks_run_once_and_nan_prices_never_signal():
    calls = []

    class Hooked(Strategy):
        def on_start(self):
            calls.append("start")

        def on_stop(self):
            calls.append("stop")

        def on_trades(self, trades):
            calls.append(len(trades))
            return []

    h = Hooked(symbol=SYM, venue=int(Venue.SIM))
    h.start()
    h.start()
    h.on_ticks(recs([1, 2, 3]))
    h.on_ticks(recs([]))
    h.stop()
    h.stop()
    assert calls == ["start", 3, "stop"]
    s = sma()
    assert s.on_ticks(recs([10, 9, np.nan, np.inf])) == [] and s.bad_prices == 2
    with pytest.raises(TypeError, match="needs SmaParams"):
        SmaCrossover(object())


def test_strategy_config_checks():
    for text, msg in [('[strategy]\nchannel = "ipc://@x"\n', "plain name"),
                      ('[strategy]\nlinger_ms = 5000\n', "linger_ms"),
                      ('[[strategy.instances]]\nid = 1\n[[strategy.instances]]\nid = 1\n',
                       "unique"),
                      ('[[strategy.instances]]\nqty = 0\n', "qty"),
                      ('[backtest]\nfee_taker_bps = -1\n', "fee_taker_bps")]:
        with pytest.raises(config.ConfigError, match=msg):
            config.loads(text)


class _Recorder(SmaCrossover):
    """SMA that also logs every hook call, to compare the two dispatch passes."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.calls: list = []

    def on_trades(self, trades):
        self.calls.append(("trades", trades["seq"].tolist()))
        return super().on_trades(trades)

    def on_gap(self, rec):
        self.calls.append(("gap", int(rec["seq"])))
        super().on_gap(rec)

    def on_stale(self, rec):
        self.calls.append(("stale", int(rec["seq"])))
        super().on_stale(rec)


def _random_batch(rng, n, start):
    kinds = rng.choice([Kind.TRADE, Kind.AGG_TRADE, Kind.BID, Kind.BOOK_ASK, Kind.GAP,
                        Kind.STALE, Kind.RESYNC_START, Kind.RESYNC_DONE, Kind.HEARTBEAT],
                       size=n, p=[.4, .1, .1, .1, .06, .06, .06, .06, .06])
    r = recs(rng.integers(90, 110, size=n).astype(float), start_seq=start)
    r["kind"] = kinds
    r["symbol"] = rng.choice([SYM, SYM, SYM, SYM + 1, 0], size=n)
    r["venue"] = np.where(r["symbol"] == 0, 0, Venue.SIM)
    return r


class _MarketRecorder(Strategy):
    """Wants every market family; logs each hook call with the seqs it got."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.calls: list = []

    def on_trades(self, trades):
        self.calls.append(("trades", trades["seq"].tolist()))

    def on_quotes(self, quotes):
        self.calls.append(("quotes", quotes["seq"].tolist()))

    def on_book(self, levels):
        self.calls.append(("book", levels["seq"].tolist()))


@pytest.mark.parametrize("symbol", [SYM, 0])
def test_whole_batch_of_own_market_records_takes_the_same_hooks_in_both_passes(monkeypatch,
                                                                              symbol):
    """A batch of only this instrument's market records goes on whole (no per-record
    selection): the hooks, their order and their records are the vectorized pass's; a record of
    another instrument or a control record in the batch still takes the per-record pass."""
    from pipeline.strategy import base
    rng = np.random.default_rng(5)
    batches, seq = [], 0
    market = [Kind.TRADE, Kind.AGG_TRADE, Kind.BID, Kind.ASK, Kind.BOOK_BID, Kind.BOOK_ASK,
              Kind.BOOK_CLEAR]
    for i in range(300):
        n = int(rng.integers(1, base.SMALL_BATCH + 1))
        b = recs(rng.integers(90, 110, size=n).astype(float), start_seq=seq)
        b["kind"] = rng.choice(market, size=n, p=[.3, .1, .2, .2, .1, .05, .05])
        if i % 7 == 3:
            b["symbol"][-1] = SYM + 1                 # one record of another instrument
        batches.append(b)
        seq += n

    def run(small_batch: int):
        monkeypatch.setattr(base, "SMALL_BATCH", small_batch)
        s = _MarketRecorder(venue=int(Venue.SIM), symbol=symbol)
        s.start()
        for b in batches:
            s.on_ticks(b)
        return s.calls

    small, vector = run(base.SMALL_BATCH), run(0)
    assert small == vector
    assert {c[0] for c in small} == {"trades", "quotes", "book"}
    assert any(len(c[1]) > 3 for c in small)


@pytest.mark.parametrize("symbol", [SYM, 0])
def test_small_batch_pass_equals_the_vectorized_pass(monkeypatch, symbol):
    """Batches up to SMALL_BATCH go through plain-Python lists; the result (signals, hook calls
    and their order) must be exactly the vectorized pass's."""
    from pipeline.strategy import base
    rng = np.random.default_rng(11)
    batches, seq = [], 0
    for _ in range(300):
        n = int(rng.integers(1, base.SMALL_BATCH + 1))
        batches.append(_random_batch(rng, n, seq))
        seq += n

    def run(small_batch: int):
        monkeypatch.setattr(base, "SMALL_BATCH", small_batch)
        s = _Recorder(SmaParams(2, 5, 1.0), venue=int(Venue.SIM), symbol=symbol, qty=1.0,
                      clock=TestClock(mono_ns=1), allow_short=True)
        s.start()
        sigs = [x for b in batches for x in s.on_ticks(b)]
        return [(x.trigger_seq, x.side) for x in sigs], s.calls, s.gaps, s.stales

    small, vector = run(base.SMALL_BATCH), run(0)
    assert small == vector
    assert small[0] and small[2] and small[3]          # signals, gaps and stales all happened


class _TradesSeen(Strategy):
    """Keeps every trades array its hook was given."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.got: list = []

    def on_trades(self, trades):
        self.got.append(trades)


def test_own_trades_of_a_live_batch_go_on_as_a_view_unless_split_by_other_records():
    """A live-shaped batch (best bid/ask of two instruments, then this instrument's trades):
    the trades reach on_trades as a slice of the batch, not a fancy-indexed copy; trades
    interleaved with another instrument's records still arrive, exactly, as a copy."""
    s = _TradesSeen(venue=int(Venue.SIM), symbol=SYM)
    s.start()
    b = recs([1.0, 2.0, 3.0, 4.0, 5.0])
    b["kind"][:2] = (Kind.BID, Kind.ASK)
    b["symbol"][1] = SYM + 1
    s.on_ticks(b)
    (got,) = s.got
    assert got["seq"].tolist() == [2, 3, 4] and np.shares_memory(got, b)
    b = recs([1.0, 2.0, 3.0, 4.0], start_seq=10)
    b["symbol"][1] = SYM + 1                      # another instrument's trade in between
    s.on_ticks(b)
    assert s.got[1]["seq"].tolist() == [10, 12, 13] and not np.shares_memory(s.got[1], b)
    s.on_ticks(whole := recs([6.0, 7.0], start_seq=20))
    assert s.got[2] is whole                      # all of it: the batch itself


def test_target_makes_the_signal_the_named_fields_make():
    """target() builds its Signal positionally (no NamedTuple.__new__ frame): every field,
    the version included, is what the keyword construction gives."""
    from pipeline.bus.signals import Signal
    from pipeline.records import SIGNAL_VERSION
    for feedback in (False, True):
        s = SmaCrossover(SmaParams(2, 5, 1.0), strategy_id=3, venue=int(Venue.SIM), symbol=SYM,
                         qty=0.5, ttl_ns=777, clock=TestClock(mono_ns=42))
        s.feedback, s.epoch = feedback, 9
        sig = s.target(1, 17, 1234, 100.0)
        assert type(sig) is Signal
        want = Signal(epoch=9 if feedback else 0, seq=1 if feedback else 0, trigger_seq=17,
                      trigger_mono=1234, created_mono=42, ttl_ns=777, qty=0.5, strategy_id=3,
                      symbol=SYM, venue=int(Venue.SIM), side=1, order_type=2, tif=0)
        assert sig[:7] == want[:7] and sig[8:] == want[8:] and sig.price != sig.price
        assert sig.version == SIGNAL_VERSION and sig.action == 0 and sig.replace_back == 0
