"""Known answers for the compiled optimisation problem (engine.problem), two-asset cases."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import OptimizationError
from engine.limits import BASE_ROWS
from engine.problem import CompiledProblem, ProblemCache, ProblemData, bucket
from engine.risk import risk_model_from_covariance
from engine.solve import solve_certified

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def two_asset_data(
    *,
    vols: tuple[float, float] = (0.2, 0.1),
    corr: float = 0.0,
    target: tuple[float, float] = (0.0, 0.0),
    cash: float = 1.0,
    cash_max: float = 2.0,
    vol_cap: float = 10.0,
    name_cap: float | None = None,
    buy_budget: float = 10.0,
) -> ProblemData:
    """One account holding only cash (fractions of value); two assets; no costs, taxes or limits."""
    cov = np.array([[vols[0] ** 2, corr * vols[0] * vols[1]], [corr * vols[0] * vols[1], vols[1] ** 2]])
    risk = risk_model_from_covariance(["A", "B"], cov)
    names = np.array([[1.0, 0.0]]) if name_cap is not None else np.zeros((0, 2))
    return ProblemData(
        loadings=risk.loadings,
        specific=risk.specific,
        target=np.array(target),
        te_weight=1.0,
        base=np.zeros((BASE_ROWS, 2)),
        gap_matrix=np.zeros((17, BASE_ROWS)),
        gap_rhs=np.zeros(17),
        exposure_weight=0.0,
        weight_weight=0.0,
        cash_drag=0.0,
        x0=np.zeros((2, 1)),
        buy_max=np.full((2, 1), 2.0),
        sell_max=np.zeros((2, 1)),
        cost_rate=np.zeros((2, 1)),
        cash0=np.array([cash]),
        relief_max=np.zeros(1),
        cash_max=np.array([cash_max]),
        trade_cost=np.zeros((2, 1)),
        holding_drag=np.zeros((2, 1)),
        tax_slopes=np.zeros((4, 2, 1)),
        tax_intercepts=np.zeros((4, 2, 1)),
        vol_cap=vol_cap,
        base_limit_matrix=np.zeros((13, BASE_ROWS)),
        base_limit_rhs=np.zeros(13),
        base_limit_penalty=np.ones(13),
        name_matrix=names,
        name_rhs=np.full(len(names), name_cap or 0.0),
        name_penalty=np.full(len(names), 10.0),
        buy_budget=buy_budget,
        sell_budget=10.0,
        vol_penalty=20.0,
        turnover_penalty=40.0,
        relief_penalty=200.0,
    )


def solve(data: ProblemData):
    return CompiledProblem(data.shape(n_factors=2)).solve(data)


def test_it_finds_the_two_asset_minimum_variance_mix():
    # fully invested (cash_max 0), minimise variance: w_A = var_B / (var_A + var_B) when uncorrelated
    data = two_asset_data(vols=(0.2, 0.1), cash_max=0.0)
    solution = solve(data)
    np.testing.assert_allclose(solution.w, [0.01 / 0.05, 0.04 / 0.05], atol=1e-6)
    assert solution.cash[0] == pytest.approx(0.0, abs=1e-7)


def test_it_finds_the_minimum_variance_mix_of_correlated_assets():
    vols, corr = (0.3, 0.15), 0.4
    data = two_asset_data(vols=vols, corr=corr, cash_max=0.0)
    c = corr * vols[0] * vols[1]
    expected_a = (vols[1] ** 2 - c) / (vols[0] ** 2 + vols[1] ** 2 - 2 * c)
    np.testing.assert_allclose(solve(data).w, [expected_a, 1 - expected_a], atol=1e-6)


def test_a_binding_volatility_cap_halves_a_position():
    # target: everything in A (vol 30%); cap 15% with cash available -> exactly half in A
    data = two_asset_data(vols=(0.3, 0.1), target=(1.0, 0.0), vol_cap=0.15)
    solution = solve(data)
    assert solution.w[0] == pytest.approx(0.5, abs=1e-5)
    assert solution.w[1] == pytest.approx(0.0, abs=1e-3)  # flat to second order: solver tolerance
    vol = np.sqrt((0.3 * solution.w[0]) ** 2 + (0.1 * solution.w[1]) ** 2)
    assert vol <= 0.15 * solution.total + 1e-7
    assert solution.vol_slack == pytest.approx(0.0, abs=1e-7)


def test_a_binding_single_name_cap_holds_exactly():
    data = two_asset_data(vols=(0.2, 0.2), target=(0.9, 0.1), name_cap=0.08)
    solution = solve(data)
    assert solution.w[0] == pytest.approx(0.08, abs=1e-6)
    assert solution.limit_slack[-1] == pytest.approx(0.0, abs=1e-7)


def test_conflicting_limits_are_relaxed_with_slack_not_a_failure():
    # the target needs 60% in A but buys are capped at 20% of value: the turnover slack takes the rest
    # only if it is worth its penalty; with a cap of 10% on A the name slack stays 0 and turnover binds
    data = two_asset_data(vols=(0.2, 0.1), target=(0.6, 0.4), buy_budget=0.2, name_cap=0.1)
    solution = solve(data)
    assert solution.report.status == "optimal"
    assert solution.w.sum() == pytest.approx(0.2 + solution.turnover_slack, abs=1e-6)
    assert solution.w[0] <= 0.1 + 1e-6


def test_a_cap_below_what_a_hard_constraint_forces_is_relaxed():
    # A is held (x0 = 0.5) and may not be sold; a 10% cap on A cannot hold: slack = 0.4
    data = two_asset_data(vols=(0.2, 0.1), name_cap=0.1, cash=0.5)
    data.x0 = np.array([[0.5], [0.0]])
    solution = solve(data)
    assert solution.limit_slack[-1] == pytest.approx(0.4, abs=1e-5)
    assert solution.w[0] == pytest.approx(0.5, abs=1e-7)


def test_the_cache_compiles_once_per_shape_and_reuses_it():
    cache = ProblemCache()
    first = two_asset_data(cash_max=0.0)
    second = two_asset_data(vols=(0.1, 0.3), cash_max=0.0)
    shape = first.shape(2)
    a = cache.problem(shape).solve(first)
    b = cache.problem(second.shape(2)).solve(second)
    assert cache.compiles == 1
    assert a.w[0] < 0.5 < b.w[0]


def test_buckets_pad_sizes_so_similar_portfolios_share_a_problem():
    assert bucket(53) == bucket(56) == 56
    assert bucket(57) == 64
    assert bucket(1, (1, 2, 3)) == 1


def test_the_solve_helper_raises_a_typed_error_when_nothing_certifies():
    import cvxpy as cp

    x = cp.Variable()
    infeasible = cp.Problem(cp.Minimize(x), [x >= 1, x <= 0])
    with pytest.raises(OptimizationError, match="no solver certified"):
        solve_certified(infeasible)
