"""The rounding repair (engine.rounding.Repairer.repair) against its reference descent (tests/rounding_reference.py,
the algorithm as written with `steps` / `single_scores` / `pair_scores`), by properties: the fast repair never
ends worse than the reference ((violation, score) within 1e-9), its trades stay tradable (no short sales, buys
only on the menu, sales only where allowed), the (violation, score) it reports is the reference's score of the
trades it returns, and every single-step and pair score it computes agrees with the reference's within 1e-9.

Cases come from real engine runs on the bundled market (the repairer's inputs are captured), across profiles,
deposits and withdrawals, two accounts holding the same fund, fractional shares, buy-only, tight turnover and
large minimum trade sizes, so that single steps, pairs of steps, cash shortfalls and every limit are met.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import engine
from engine import descent, rounding
from engine.market import MarketSnapshot
from engine.sample_data import load_bundled_market
from engine.types import AccountCash, Options, Position, RebalanceRequest
from tests.rounding_reference import ReferenceRepairer

TOLERANCE = 1e-9

HOLDINGS = {"AAPL": 120, "MSFT": 60, "NVDA": 150, "QQQ": 40, "JPM": 30, "XOM": 25, "BND": 10, "SPY": 20}
MENU = ["SPY", "RSP", "IWM", "XLF", "XLE", "XLU", "XLV", "BND", "VXUS", "GLD", "IEF", "VWO"]
OPTIONS = [
    {"profile": "conservative", "cash_change": -4000.0},
    {"profile": "aggressive", "cash_change": 3000.0},
    {"profile": "moderate", "cash_change": 0.0, "min_trade_usd": 500.0},
    {"profile": "moderate", "cash_change": 2500.0, "fractional": True},
    {"profile": "conservative", "cash_change": -9000.0, "fractional": True, "min_trade_usd": 5.0},
    {"profile": "aggressive", "cash_change": 20000.0, "buy_only": True},
    {"profile": "moderate", "cash_change": 0.0, "max_turnover": 0.05},
    {"profile": "conservative", "cash_change": 1000.0, "keep": frozenset({"NVDA"})},
]


@pytest.fixture(scope="module")
def market():
    return load_bundled_market(years=3)


_SNAPSHOTS: dict[int, MarketSnapshot] = {}


def _snapshot(market) -> MarketSnapshot:
    """One snapshot per market object of this module (the engine keeps none)."""
    found = _SNAPSHOTS.get(id(market))
    if found is None or found.market is not market:
        found = _SNAPSHOTS[id(market)] = MarketSnapshot.of(market)
    return found


def _request(market, options: dict) -> RebalanceRequest:
    last = market.prices.ffill().iloc[-1]
    positions = []
    for i, (ticker, shares) in enumerate(HOLDINGS.items()):
        taxable = i % 2 == 0
        positions.append(Position(ticker, "Taxable" if taxable else "Roth", "taxable" if taxable else "roth_ira",
                                  float(shares), float(last[ticker]), cost_basis=5000.0))
    # the same funds in both accounts
    positions.append(Position("SPY", "Roth", "roth_ira", 15.0, float(last["SPY"]), cost_basis=3000.0))
    positions.append(Position("BND", "Taxable", "taxable", 40.0, float(last["BND"]), cost_basis=3000.0))
    cash = [AccountCash("Taxable", "taxable", 2500.0), AccountCash("Roth", "roth_ira", 300.0)]
    return RebalanceRequest(positions, cash, MENU, market, Options(**options), engine.load_views())


def _captured(market, monkeypatch, options: dict) -> list[tuple]:
    return _captured_request(_request(market, options), monkeypatch)


def _captured_request(request: RebalanceRequest, monkeypatch) -> list[tuple]:
    """Every (repairer, q, relief, q_cont, max_steps) the engine hands to `Repairer.repair` for `request`."""
    seen: list[tuple] = []
    original = rounding.Repairer.repair

    def spy(self, q, relief, q_cont, max_steps, **kwargs):
        seen.append((self, q.copy(), relief.copy(), q_cont.copy(), max_steps))
        return original(self, q, relief, q_cont, max_steps, **kwargs)

    monkeypatch.setattr(rounding.Repairer, "repair", spy)
    engine.rebalance(request, snapshot=_snapshot(request.market))
    monkeypatch.undo()
    assert seen
    return seen


def _assert_tradable(repairer, q) -> None:
    book = repairer.book
    assert np.all(q >= -book.shares0 - 1e-9)  # never sells more than held
    assert np.all(book.can_buy | (q <= 0)) and np.all(book.can_sell | (q >= 0))


def _assert_no_worse(repairer, start, relief, q_cont, steps) -> list:
    """The fast repair ends no worse than the reference descent ((violation, score) within TOLERANCE), its
    trades are tradable, and the (violation, score) it reports is the reference's score of its trades.
    Returns the fast trace of (violation, score) after every move."""
    reference = ReferenceRepairer.of(repairer)
    fast_trace: list = []
    reference_trace: list = []
    q_fast, _ = repairer.repair(start, relief, q_cont, steps, trace=fast_trace)
    _q_reference, _ = reference.repair_reference(start, relief, q_cont, steps, trace=reference_trace)
    book = repairer.book
    if np.all(book.can_buy | (start <= 0)) and np.all(book.can_sell | (start >= 0)):
        _assert_tradable(repairer, q_fast)
    fast_end = reference.state_score(q_fast, relief, q_cont)
    np.testing.assert_allclose(fast_end, fast_trace[-1], rtol=TOLERANCE, atol=TOLERANCE)
    reference_end = reference_trace[-1]
    assert fast_end[0] <= reference_end[0] + TOLERANCE
    if fast_end[0] >= reference_end[0] - TOLERANCE:  # as good on the limits: no worse on the whole score
        assert fast_end[1] <= reference_end[1] + TOLERANCE * max(1.0, abs(reference_end[1]))
    assert all(b[0] <= a[0] + TOLERANCE for a, b in itertools.pairwise(fast_trace))  # descent
    return fast_trace


@pytest.mark.parametrize("options", OPTIONS, ids=[str(i) for i in range(len(OPTIONS))])
def test_the_repair_ends_no_worse_than_the_reference(market, monkeypatch, options):
    for repairer, q, relief, q_cont, max_steps in _captured(market, monkeypatch, options):
        fast_trace = _assert_no_worse(repairer, q, relief, q_cont, max_steps)
        reference = ReferenceRepairer.of(repairer).state_score(q, relief, q_cont)
        np.testing.assert_allclose(fast_trace[0], reference, rtol=TOLERANCE, atol=TOLERANCE)


def test_a_perturbed_start_needs_pairs_and_ends_no_worse(market, monkeypatch):
    """Start from rounded trades knocked off in many slots at once (shortfalls, broken limits), with few steps
    allowed too: long descents through single steps and pairs, cut off mid-way."""
    rng = np.random.default_rng(11)
    (repairer, q, relief, q_cont, max_steps), *_ = _captured(market, monkeypatch, OPTIONS[0])
    pairs_seen = 0
    original = descent.Descent.best_pair

    def count(self, *args):
        nonlocal pairs_seen
        pairs_seen += 1
        return original(self, *args)

    monkeypatch.setattr(descent.Descent, "best_pair", count)
    for trial in range(6):
        start = q.copy()
        slots = rng.choice(len(q), size=min(len(q), 6), replace=False)
        start[slots] += rng.integers(-3, 4, size=len(slots)).astype(float)
        start = np.maximum(start, -repairer.book.shares0)
        start = np.where(repairer.book.can_buy | (start <= 0), start, 0.0)
        start = np.where(repairer.book.can_sell | (start >= 0), start, 0.0)
        _assert_no_worse(repairer, start, relief, q_cont, max_steps if trial % 2 == 0 else 3 + trial)
    assert pairs_seen > 0


def test_the_state_score_agrees_with_the_reference_no_op_step(market, monkeypatch):
    for options in OPTIONS[:4]:
        for repairer, q, relief, q_cont, _ in _captured(market, monkeypatch, options):
            fast = descent.Descent(repairer, q.copy(), relief, q_cont)
            reference = ReferenceRepairer.of(repairer).state_score(q, relief, q_cont)
            np.testing.assert_allclose(fast.current(), reference, rtol=TOLERANCE, atol=TOLERANCE)


def _pct_as_written(x: float, other: float | None = None) -> str:
    """engine.explain.pct before it was memoised and rounded numpy floats itself."""
    decimals = 0 if abs(x) >= 0.0995 else 1
    if other is not None and abs(x - other) > 1e-9:
        while decimals < 3 and round(x * 100, decimals) == round(other * 100, decimals):
            decimals += 1
    return f"{x * 100:.{decimals}f}%"


def test_percentages_read_as_before_for_numpy_and_python_floats():
    from engine.explain import pct

    rng = np.random.default_rng(5)
    values = np.concatenate([rng.random(3000) * 10.0 ** rng.integers(-5, 1, 3000),
                             np.arange(0, 0.1, 0.00005) + 0.000025, [0.02675, 0.0995, 0.1, 0.12345, 0.0]])
    for v in values:
        for x in (np.float64(v), float(v)):
            for other in (None, np.float64(v * 1.0001), float(v) + 0.00001, float(v)):
                assert pct(x, other) == _pct_as_written(x, other)


@pytest.mark.parametrize(("holdings", "menu"), [
    ({"BND": 300, "IEF": 120}, ["BND", "IEF", "GLD"]),  # no equity at all
    ({"BND": 400, "SPY": 1, "XLF": 1}, ["BND", "IEF", "SPY", "XLF"]),  # equity a step can remove entirely
])
def test_little_or_no_equity_ends_no_worse_too(market, monkeypatch, holdings, menu):
    last = market.prices.ffill().iloc[-1]
    positions = [Position(t, "Taxable", "taxable", float(s), float(last[t]), cost_basis=1000.0)
                 for t, s in holdings.items()]
    request = RebalanceRequest(positions, [AccountCash("Taxable", "taxable", 500.0)], menu, market,
                               Options(profile="conservative", cash_change=-3000.0), engine.load_views())
    seen = _captured_request(request, monkeypatch)
    rng = np.random.default_rng(3)
    for repairer, q, relief, q_cont, max_steps in seen:
        for start in (q, np.maximum(q + rng.integers(-2, 3, len(q)), -repairer.book.shares0)):
            _assert_no_worse(repairer, start, relief, q_cont, max_steps)


@pytest.mark.parametrize("edit", ["no equity", "one small equity holding", "tiny single-name cap"])
def test_edge_states_end_no_worse_too(market, monkeypatch, edit):
    """Inputs edited so that no asset (or one small holding) counts as equity, which masks the sector and minimum
    terms per state and puts many sectors over their caps at once, or so that every single name is over its cap:
    many rows in the sector and single-name sums."""
    import dataclasses

    (repairer, q, relief, q_cont, max_steps), *_ = _captured(market, monkeypatch, OPTIONS[0])
    book, exp, limits = repairer.book, repairer.exp, repairer.limits
    if edit == "tiny single-name cap":
        limits = dataclasses.replace(limits, max_single_stock=0.005)
    else:
        equity = np.zeros_like(exp.equity)
        if edit == "one small equity holding":
            held = np.nonzero(book.shares0 > 0)[0]
            slot = held[np.argmin((book.shares0 * book.prices)[held])]
            equity[book.asset_of[slot]] = 1.0
        exp = dataclasses.replace(exp, equity=equity)
    edited = rounding.Repairer(book, repairer.risk, exp, limits, repairer.allow, fractional=repairer.fractional,
                               min_trade_usd=repairer.min_trade, cash_drag=repairer.cash_drag)
    rng = np.random.default_rng(17)
    for trial in range(4):
        start = np.maximum(q + rng.integers(-2, 3, len(q)), -book.shares0) if trial else q
        _assert_no_worse(edited, start, relief, q_cont, max_steps)


@pytest.mark.parametrize("options", OPTIONS[:5], ids=[str(i) for i in range(5)])
def test_every_single_step_score_agrees_with_the_reference(market, monkeypatch, options):
    """Not only the moves taken: all single-step scores, with and without the cash weight, at every state of
    a walk through arbitrary steps, within 1e-9 (relative)."""
    rng = np.random.default_rng(23)
    for captured, q, relief, q_cont, _ in _captured(market, monkeypatch, options):
        repairer = ReferenceRepairer.of(captured)
        fast = descent.Descent(captured, q.copy(), relief, q_cont)
        for _ in range(12):
            cols = fast.ok.nonzero()[0]
            if not len(cols):
                break
            violations, scores, no_cash = fast.singles(cols)
            state = repairer._state(fast.q, relief, q_cont)
            steps = repairer.steps(fast.q, q_cont)
            np.testing.assert_array_equal(steps.slot, fast.col_slot[cols])
            reference = repairer.single_scores(state, steps)
            close = {"rtol": TOLERANCE, "atol": 1e-15}
            np.testing.assert_allclose(violations, reference[0], **close)
            np.testing.assert_allclose(scores, reference[1], **close)
            np.testing.assert_allclose(no_cash, repairer.single_scores(state, steps, cash_weight=0.0)[1], **close)
            fast.take(int(cols[rng.integers(len(cols))]))
            fast.refresh()


@pytest.mark.parametrize("options", OPTIONS[:5], ids=[str(i) for i in range(5)])
def test_every_pair_score_agrees_with_the_reference(market, monkeypatch, options):
    """All pairs of a pool (not only those the screen lets through), both orientations, at several states,
    within 1e-9 (relative)."""
    rng = np.random.default_rng(29)
    for captured, q, relief, q_cont, _ in _captured(market, monkeypatch, options):
        repairer = ReferenceRepairer.of(captured)
        fast = descent.Descent(captured, q.copy(), relief, q_cont)
        for _ in range(4):
            cols = fast.ok.nonzero()[0]
            if len(cols) < 2:
                break
            pick = np.sort(rng.choice(len(cols), size=min(len(cols), 30), replace=False))
            state = repairer._state(fast.q, relief, q_cont)
            reference = repairer.pair_scores(state, repairer.steps(fast.q, q_cont).take(pick))
            slot = fast.col_slot[cols[pick]]
            ii, jj = np.nonzero(slot[:, None] != slot[None, :])
            violations, scores = fast.pair_scores(fast._pool(cols[pick]), ii, jj)
            np.testing.assert_allclose(violations, reference[0][ii, jj], rtol=TOLERANCE, atol=1e-15)
            np.testing.assert_allclose(scores, reference[1][ii, jj], rtol=TOLERANCE, atol=1e-15)
            fast.take(int(cols[rng.integers(len(cols))]))
            fast.refresh()
