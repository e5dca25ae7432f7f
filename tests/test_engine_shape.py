"""Plans a person can execute (engine.shape): few funds and orders, one account per fund, the no-trade band,
new cash spread. Properties over seeded random portfolios, plus the band's three cases."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import engine
from engine.errors import DataError
from engine.limits import breaches, measure
from engine.market import MarketSnapshot
from engine.menu import default_menu
from engine.pipeline import problem_data
from engine.prepare import prepare
from engine.problem import solve_problem
from engine.roles import BOND_ROLES, fund_roles
from engine.sample_data import load_bundled_market
from engine.shape import (
    CASH,
    FULL,
    HOLD,
    MAX_ORDERS,
    TOUCH,
    expanded,
    plan_mode,
    reduced_problem,
    reduced_sample,
    resolve,
    shape_plan,
)
from engine.types import AccountCash, Options, Position, RebalanceRequest, RebalanceResult
from tests.test_engine_rebalance import check_invariants

TECH = ["AAPL", "MSFT", "NVDA", "GOOGL", "AMZN", "META", "AVGO", "TSLA"]
ACCOUNTS = [("Taxable", "taxable"), ("Roth IRA", "roth_ira"), ("IRA", "traditional_ira")]


@pytest.fixture(scope="module")
def market():
    return load_bundled_market(years=3)


@pytest.fixture(scope="module")
def snap(market):
    return MarketSnapshot.of(market)


@pytest.fixture(scope="module")
def last(market):
    return market.prices.ffill().iloc[-1]


@pytest.fixture(scope="module")
def menu(market):
    return default_menu(market.securities, market.etf_sectors)


@pytest.fixture(scope="module")
def roles(market):
    return fund_roles(market.securities, market.etf_sectors)


def _random_request(market, last, menu, seed: int) -> RebalanceRequest:
    """A tech-heavy portfolio of 5 to 30 holdings in one to three accounts, maybe with cash added."""
    rng = np.random.default_rng(seed)
    stocks = [t for t, s in market.securities.items() if s.kind == "stock" and np.isfinite(last.get(t, np.nan))]
    accounts = ACCOUNTS[: int(rng.integers(1, 4))]
    tickers = list(rng.choice(TECH, size=int(rng.integers(2, 6)), replace=False))
    tickers += [t for t in rng.choice(stocks, size=int(rng.integers(3, 25)), replace=False) if t not in tickers]
    positions = []
    for t in tickers:
        account, kind = accounts[int(rng.integers(len(accounts)))]
        value = float(rng.lognormal(np.log(15_000), 1.0))
        shares = max(1.0, round(value / float(last[t])))
        positions.append(Position(t, account, kind, shares, float(last[t]),
                                  cost_basis=float(rng.uniform(0.2, 1.5)) * shares * float(last[t])))
    cash = [AccountCash(a, k, float(rng.uniform(0, 8_000))) for a, k in accounts]
    options = Options(profile=str(rng.choice(["conservative", "moderate", "aggressive"])),
                      cash_change=float(rng.choice([0.0, 0.0, 5_000.0, 20_000.0])))
    return RebalanceRequest(positions, cash, menu, market, options, engine.load_views())


def _bond_or_cash(role: str) -> bool:
    return role in BOND_ROLES or role.startswith("cash:")


def _funds_in_several_accounts(result: RebalanceResult) -> int:
    accounts: dict[str, set[str]] = {}
    for t in result.trades:
        if t.action == "buy":
            accounts.setdefault(t.ticker, set()).add(t.account)
    return sum(len(a) > 1 for a in accounts.values())


@pytest.mark.parametrize("seed", range(12))
def test_it_keeps_random_plans_executable(market, last, menu, snap, roles, seed):
    req = _random_request(market, last, menu, seed)
    result = engine.rebalance(req, snapshot=snap)
    check_invariants(req, result)  # trades reconcile, cash >= 0, no shorts

    bought = {t.ticker for t in result.trades if t.action == "buy"}
    assert len(bought) <= 6
    assert sum(_bond_or_cash(roles.get(t, "")) for t in bought) <= 2
    assert _funds_in_several_accounts(result) <= 1
    floor = max(req.options.min_trade_usd, req.options.min_trade_fraction * result.value)
    assert all(t.amount >= floor - 0.01 for t in result.trades), [(t.ticker, t.amount) for t in result.trades]
    if len(result.trades) > MAX_ORDERS:
        assert any("more than 12 orders" in n for n in result.notes), "only where the limits need more orders"
    if req.options.cash_change > 0 and result.trades:
        assert len(bought) >= 2, "new cash lands in at least two funds"


@pytest.mark.parametrize("max_funds", [1, 3, None])
def test_it_honours_max_funds(market, last, menu, snap, max_funds):
    req = _random_request(market, last, menu, 3)
    req = replace(req, options=replace(req.options, max_funds=max_funds))
    result = engine.rebalance(req, snapshot=snap)
    check_invariants(req, result)
    assert len({t.ticker for t in result.trades if t.action == "buy"}) <= (max_funds or MAX_ORDERS)


def test_it_refuses_a_fund_cap_below_one(market, last, menu, snap):
    req = _random_request(market, last, menu, 0)
    with pytest.raises(DataError):
        engine.rebalance(replace(req, options=replace(req.options, max_funds=0)), snapshot=snap)


def plain(problem, sample):
    """A solver on the risk model alone (the plain-sample cone is engine.problem's, tested there)."""
    return solve_problem(problem)


@pytest.mark.parametrize("seed", range(6))
def test_the_restricted_plan_meets_the_limits_as_well_or_says_so(market, last, menu, snap, seed):
    """Against the unrestricted plan: a limit met less well (by more than half a point) is a relaxation."""
    req = _random_request(market, last, menu, seed)
    prep = prepare(req, snap)
    first = solve_problem(problem_data(prep))
    before = {b.limit: b.achieved for b in breaches(measure(first.w / first.total, prep.risk, prep.exposures),
                                                    prep.limits, prep.exposures) if b.limit != "max_turnover"}
    result = engine.rebalance(req, snapshot=snap)
    shaped = shape_plan(req, prep, problem_data(prep), plain)
    after = measure(shaped.solution.w / shaped.solution.total, prep.risk, prep.exposures)
    relaxed = {r.limit for r in result.relaxations}
    for b in breaches(after, prep.limits, prep.exposures):
        worse = abs(b.achieved - before.get(b.limit, b.requested)) > 0.005
        if worse and b.limit != "max_turnover":
            assert b.limit in relaxed, f"{b.limit} met less well and not reported"


@pytest.mark.parametrize("seed", range(4))
def test_the_re_solve_on_the_assets_that_trade_is_the_restricted_problem(market, last, menu, snap, seed):
    """`resolve` (assets that cannot trade summed into one) gives the same plan as the full restricted problem."""
    req = _random_request(market, last, menu, seed)
    prep = prepare(req, snap)
    data = problem_data(prep)
    first = solve_problem(data)
    buy_open = first.buys >= np.sort(first.buys.ravel())[-4]  # the four largest buys
    sell_open = first.sells > 1e-3
    full = solve_problem(replace(data, buy_max=np.where(buy_open, data.buy_max, 0.0),
                                 sell_max=np.where(sell_open, data.sell_max, 0.0)))
    small = resolve(data, buy_open, sell_open, plain, prep.risk_sample)
    np.testing.assert_allclose(small.buys, full.buys, atol=2e-4)
    np.testing.assert_allclose(small.sells, full.sells, atol=2e-4)
    np.testing.assert_allclose(small.w, full.w, atol=2e-4)
    assert small.total == pytest.approx(full.total, abs=2e-4)


@pytest.mark.parametrize("seed", range(3))
def test_the_reduced_sample_measures_what_the_full_one_does(market, last, menu, snap, seed):
    """The plain sample on the re-solve's assets gives every plan of the reduced problem its full volatility."""
    req = _random_request(market, last, menu, seed)
    prep = prepare(req, snap)
    data = problem_data(prep)
    first = solve_problem(data)
    buy_open, sell_open = first.buys >= np.sort(first.buys.ravel())[-3], first.sells > 1e-3
    small, live = reduced_problem(data, buy_open, sell_open)
    reduced = reduced_sample(prep.risk_sample, data, live)
    plan = expanded(solve_problem(small), data, live)
    w_small = np.concatenate([plan.w[live], [np.clip(data.x0, 0.0, None)[~live].sum()], [0.0]])
    assert reduced.volatility(w_small) == pytest.approx(prep.risk_sample.volatility(plan.w), rel=1e-9, abs=1e-12)


# ---------------------------------------------------------------- the band


def _on_target(market, last, menu, snap, value=200_000.0, **options) -> RebalanceRequest:
    """A portfolio holding the moderate target's own funds at their weights, in an IRA."""
    views = engine.load_views()
    probe = prepare(RebalanceRequest([Position("VTI", "IRA", "traditional_ira", 1.0, float(last["VTI"]))], [], menu,
                                     market, Options(), views), snap)
    positions = [Position(t, "IRA", "traditional_ira", round(w * value / float(last[t]), 3), float(last[t]))
                 for t, w in probe.target.weights.items()]
    cash = [AccountCash("IRA", "traditional_ira", probe.target.cash * value)]
    return RebalanceRequest(positions, cash, menu, market, Options(fractional=True, **options), views)


def test_a_portfolio_within_its_bands_has_nothing_to_do(market, last, menu, snap):
    req = _on_target(market, last, menu, snap)
    assert plan_mode(prepare(req, snap))[0] == HOLD
    result = engine.rebalance(req, snapshot=snap)
    assert result.trades == []
    assert result.notes[0].startswith("Nothing to do")
    assert result.summary.startswith("Nothing to do")


def test_new_cash_within_the_bands_is_only_placed(market, last, menu, snap, roles):
    req = _on_target(market, last, menu, snap, cash_change=10_000.0)
    assert plan_mode(prepare(req, snap))[0] == CASH
    result = engine.rebalance(req, snapshot=snap)
    check_invariants(req, result)
    assert all(t.action == "buy" for t in result.trades)
    bought = {t.ticker for t in result.trades}
    assert 2 <= len(bought) <= 3
    assert any(not _bond_or_cash(roles[t]) for t in bought)
    assert "puts cash to work" in result.notes[0]


@pytest.mark.parametrize("account", [("401k", "401k"), ("Brokerage", "taxable")])
def test_a_diversified_portfolio_gets_a_small_step(market, last, menu, snap, account):
    value = 300_000.0
    positions = [Position(t, *account, round(w * value / float(last[t])), float(last[t]), cost_basis=0.8 * w * value)
                 for t, w in {"VTI": 0.55, "VXUS": 0.15, "BND": 0.26}.items()]
    cash = [AccountCash(*account, 0.04 * value)]
    req = RebalanceRequest(positions, cash, menu, market, Options(), engine.load_views())
    assert plan_mode(prepare(req, snap))[0] == TOUCH
    result = engine.rebalance(req, snapshot=snap)
    check_invariants(req, result)
    assert len(result.trades) <= 3
    assert sum(t.amount for t in result.trades) / 2 <= 0.10 * result.value + 1.0
    assert result.notes[0].startswith("Every limit is met")


def test_new_cash_in_buy_only_mode_lands_in_two_funds(market, last, menu, snap):
    positions = [Position(t, "Brokerage", "taxable", round(20_000 / float(last[t])), float(last[t]), cost_basis=5_000.0)
                 for t in ("AAPL", "MSFT", "NVDA", "QQQ")]
    req = RebalanceRequest(positions, [AccountCash("Brokerage", "taxable", 0.0)], menu, market,
                           Options(buy_only=True, cash_change=10_000.0), engine.load_views())
    assert plan_mode(prepare(req, snap))[0] == FULL
    result = engine.rebalance(req, snapshot=snap)
    check_invariants(req, result)
    assert len({t.ticker for t in result.trades if t.action == "buy"}) >= 2
