"""The example strategies in the event backtester: the momentum example decides exactly what a
plain per-trade loop of its rule decides; the quoting example rests post-only quotes, fills as
maker, replaces as the book moves and never holds more than its inventory limit; sweeps over a
plug-in's params give each cell's single run, on worker processes and (if installed) on Ray."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.backtest import runner, synth
from pipeline.backtest.events import EventEngine
from pipeline.config import BacktestConfig
from pipeline.records import Venue
from pipeline.registry import DEFAULT as REG
from pipeline.strategy import loader

REPO = Path(__file__).resolve().parents[2]
SYM = REG.id(Venue.SIM, "BTCUSDT")
MOM = "examples/strategies/momentum.py:Momentum"


def example(kind):
    return loader.resolve(kind, REPO)


@pytest.mark.parametrize("batch", [7, 65536])
def test_momentum_decides_what_the_plain_loop_decides(batch):
    Momentum = example(MOM)
    loop = __import__(Momentum.__module__).python_loop
    recs = synth.trades(60_000, seed=9)
    st = Momentum(Momentum.Params(lookback=50, threshold_bps=5.0), venue=int(Venue.SIM),
                  symbol=SYM, qty=0.1)
    model = BacktestConfig(sizing="fixed", fixed_qty=0.1, initial_capital=1e7, latency_ms=1.0,
                           max_batch=batch)
    run = EventEngine(recs, [st], model).run()
    want, pos = [], 0
    for i, d in loop(recs, 50, 5.0):
        tgt = 1 if d > 0 else 0                         # long/flat
        if tgt != pos:
            want.append((i, tgt - pos))
            pos = tgt
    assert len(want) > 20
    triggers = run.fills["index"] - 1                   # 1 ms per trade, 1 ms latency
    assert list(zip(triggers.tolist(), np.sign(run.fills["qty"]).astype(int).tolist())) == want


def test_quoting_rests_post_only_quotes_and_respects_its_inventory_limit():
    Quoter = example("examples/strategies/quoting.py:Quoter")
    l2 = synth.l2_session(30_000, seed=3)
    st = Quoter(Quoter.Params(size=0.01, max_inventory=0.03, tick=0.01), venue=int(Venue.SIM),
                symbol=SYM)
    run = EventEngine(l2, [st], BacktestConfig(fee_maker_bps=0.0, latency_ms=1.0,
                                               initial_capital=1e6, sizing="fixed")).run()
    f = run.fills
    assert len(f) > 20 and f["maker"].all()             # every fill is a resting quote
    assert st.requotes > 20                             # cancel/replace as the book moved
    pos = np.cumsum(f["qty"])
    assert pos.max() <= 0.03 + 1e-9 and pos.min() >= -1e-9      # inventory within 0..limit
    assert run.stats["cash"] > 0
    assert st.net_qty == pytest.approx(pos[-1])          # position from fills
    assert set(run.rejects) <= {"POST_ONLY_WOULD_TAKE", "UNKNOWN_ORDER"}


@pytest.mark.parametrize("params", [{}, {"offset_ticks": 1, "requote_ticks": 2,
                                     "min_requote_ms": 3.0}], ids=["default", "offset"])
def test_quoter_one_pass_on_market_decides_what_the_per_family_split_decides(params):
    """Its on_market (one pass over a batch) against the base's split into runs of one family
    (on_quotes per run of best bid / ask): the same orders, fills, events, bit for bit."""
    from pipeline.strategy.base import Strategy
    Quoter = example("examples/strategies/quoting.py:Quoter")

    class Split(Quoter):
        on_market = Strategy.on_market

    l2 = synth.l2_session(40_000, seed=11)
    runs = []
    for cls in (Quoter, Split):
        st = cls(Quoter.Params(size=0.01, max_inventory=0.03, tick=0.01, **params),
                 venue=int(Venue.SIM), symbol=SYM)
        run = EventEngine(l2, [st], BacktestConfig(fee_maker_bps=0.0, latency_ms=1.0,
                                                   initial_capital=1e6, sizing="fixed")).run()
        runs.append((st, run))
    (a, ra), (b, rb) = runs
    assert len(ra.fills) > 50 and a.requotes > 50
    assert ra.fills.tobytes() == rb.fills.tobytes()
    assert ra.events == rb.events and ra.rejects == rb.rejects and ra.stats == rb.stats
    assert (a.seq, a.requotes, a.net_qty) == (b.seq, b.requotes, b.net_qty)


def test_sweep_cells_equal_single_runs_on_worker_processes():
    recs = synth.trades(20_000, seed=2)
    model = BacktestConfig(latency_ms=1.0, sizing="fixed", fixed_qty=0.1, initial_capital=1e6)
    grid = {"lookback": [20, 50], "threshold_bps": [3.0, 6.0]}
    res = runner.sweep_strategy(recs, MOM, grid, model, base_dir=REPO, processes=2)
    assert res.workers == 2 and len(res.rows) == 4
    for row in res.rows:
        one, _ = runner.run_strategy(recs, MOM, {"lookback": row["lookback"],
                                                 "threshold_bps": row["threshold_bps"]},
                                     model, base_dir=REPO)
        assert row["final_equity"] == one.metrics["final_equity"]
        assert row["fills"] == one.metrics["fills"]
    with pytest.raises(Exception, match="lookbak"):
        runner.sweep_strategy(recs, MOM, {"lookbak": [1]}, model, base_dir=REPO, processes=1)


def test_sweep_on_a_local_ray_instance():
    import ray                  # in the test extra: a missing Ray fails here, never skips
    recs = synth.trades(5_000, seed=2)
    model = BacktestConfig(latency_ms=1.0, sizing="fixed", fixed_qty=0.1, initial_capital=1e6)
    try:
        res = runner.sweep_strategy(recs, MOM, {"lookback": [20, 40]}, model, base_dir=REPO,
                                    ray_address="local")
    finally:
        ray.shutdown()
    assert res.backend == "ray" and len(res.rows) == 2
    one, _ = runner.run_strategy(recs, MOM, {"lookback": 20}, model, base_dir=REPO)
    assert res.rows[0]["final_equity"] == one.metrics["final_equity"]


def test_momentum_small_batch_loop_makes_the_vectorised_orders(monkeypatch):
    """Batches up to SMALL trades take the plain loop (the live path), longer ones numpy: over
    random batch sizes with bad prices and gaps in between, the same orders as all-vectorised."""
    from pipeline.records import Kind
    Momentum = example(MOM)
    mod = __import__(Momentum.__module__)
    recs = synth.trades(30_000, seed=4)
    rng = np.random.default_rng(4)
    bad = rng.choice(len(recs), 60, replace=False)
    recs["price"][bad[:30]] = np.nan
    recs["price"][bad[30:]] = -1.0
    recs["kind"][rng.choice(len(recs), 8, replace=False)] = int(Kind.GAP)
    cuts = np.cumsum(rng.integers(1, 90, 2000))
    cuts = cuts[cuts < len(recs)].tolist()

    def run(small):
        monkeypatch.setattr(mod, "SMALL", small)
        st = Momentum(Momentum.Params(lookback=30, threshold_bps=3.0), venue=int(Venue.SIM),
                      symbol=SYM, qty=0.1, allow_short=True)
        st.epoch = 1
        out = []
        for b in np.split(recs, cuts):
            out += [(s.trigger_seq, s.side, s.qty) for s in st.on_ticks(b)]
        return out, st.bad_prices, list(st.win)

    loop, vec = run(mod.SMALL), run(0)
    assert loop == vec
    assert len(loop[0]) > 50 and loop[1] == 60


def test_quoter_backs_off_after_a_pacing_refusal_but_requotes_a_would_take_at_once():
    """A quote refused for pacing (RATE_BUDGET, HALTED, ...) holds its side for backoff_ms: the
    quoter re-quoting every refusal at once tripped the gateway's runaway guard live. A post-only
    quote refused because the book moved is re-quoted with the next quotes, as before."""
    from pipeline.clock import TestClock
    from pipeline.records import Kind
    from pipeline.strategy.orders import EventKind, OrderEvent
    Quoter = example("examples/strategies/quoting.py:Quoter")
    clock = TestClock(mono_ns=10**9)
    q = Quoter(Quoter.Params(size=0.01, max_inventory=0.05, tick=0.01, backoff_ms=250.0),
               venue=int(Venue.SIM), symbol=SYM, clock=clock)
    q.epoch = 1
    book = synth.l2_session(40, seed=1)
    quotes = book[np.isin(book["kind"], [int(Kind.BID), int(Kind.ASK)])]

    def new_orders(i):
        return [s for s in q.on_ticks(quotes[2 * i:2 * i + 2]) if hasattr(s, "order_type")]

    first = new_orders(0)
    assert len(first) == 1 and first[0].side == 1           # a bid (no inventory to offer)
    q.order_event(OrderEvent(int(EventKind.REJECTED), first[0].seq, clock.mono_ns(), side=1,
                             reason="RATE_BUDGET"))
    assert new_orders(1) == [] and q.backoffs == 1           # held
    clock.advance(200_000_000)
    assert new_orders(2) == []
    clock.advance(60_000_000)                                # 260 ms after the refusal
    again = new_orders(3)
    assert len(again) == 1 and again[0].side == 1
    q.order_event(OrderEvent(int(EventKind.REJECTED), again[0].seq, clock.mono_ns(), side=1,
                             reason="POST_ONLY_WOULD_TAKE"))
    assert len(new_orders(4)) == 1 and q.backoffs == 1       # at once: not a pacing refusal


def test_quoter_replaces_a_side_at_most_once_per_min_requote_ms():
    from pipeline.clock import TestClock
    from pipeline.records import TICK_DTYPE, Kind
    from pipeline.strategy.orders import EventKind, OrderEvent, Replace
    Quoter = example("examples/strategies/quoting.py:Quoter")
    clock = TestClock(mono_ns=10**9)
    q = Quoter(Quoter.Params(size=0.01, max_inventory=0.05, tick=0.01, min_requote_ms=100.0),
               venue=int(Venue.SIM), symbol=SYM, clock=clock)
    q.epoch = 1
    replaces = []
    for i in range(40):                        # the best bid moves a tick every 10 ms
        b = np.zeros(2, TICK_DTYPE)
        b["kind"] = [int(Kind.BID), int(Kind.ASK)]
        b["venue"], b["symbol"], b["seq"] = int(Venue.SIM), SYM, [2 * i, 2 * i + 1]
        b["price"] = [100.0 + 0.01 * i, 100.05 + 0.01 * i]
        b["mono_ts"] = clock.mono_ns()
        for it in q.on_ticks(b):
            if isinstance(it, Replace):
                replaces.append(clock.mono_ns())
                it = it.new
            q.order_event(OrderEvent(int(EventKind.ACCEPTED), it.seq, clock.mono_ns(), side=1))
        clock.advance(10_000_000)
    assert len(replaces) == 4                  # 390 ms of moves: at 0+10, 110, 210, 310 ms
    assert all(b - a >= 100_000_000 for a, b in zip(replaces, replaces[1:]))
