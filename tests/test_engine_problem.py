"""Known answers for the optimisation problem (engine.problem), two-asset cases, through both forms (the
compact conic form solved by `solve_problem` and the cvxpy `CompiledProblem`), and the two forms against
each other on random and real problems."""

from __future__ import annotations

import numpy as np
import pytest

from engine.conic import conic_form
from engine.errors import OptimizationError
from engine.fallback import CompiledProblem, ProblemCache
from engine.limits import BASE_ROWS
from engine.problem import ProblemData, bucket, solve_problem
from engine.risk import SampleRisk, risk_model_from_covariance
from engine.sample_data import load_bundled_market
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
    """The production path (compact conic form, Clarabel directly)."""
    return solve_problem(data)


def solve_cvxpy(data: ProblemData):
    """The cvxpy form (the fallback), loadings rows as given."""
    return CompiledProblem(data.shape(n_factors=data.loadings.shape[0])).solve(data)


@pytest.fixture(params=["compact", "cvxpy"], name="solve_with")
def _solve_with(request):
    return solve if request.param == "compact" else solve_cvxpy


def test_it_finds_the_two_asset_minimum_variance_mix(solve_with):
    # fully invested (cash_max 0), minimise variance: w_A = var_B / (var_A + var_B) when uncorrelated
    data = two_asset_data(vols=(0.2, 0.1), cash_max=0.0)
    solution = solve_with(data)
    np.testing.assert_allclose(solution.w, [0.01 / 0.05, 0.04 / 0.05], atol=1e-6)
    assert solution.cash[0] == pytest.approx(0.0, abs=1e-7)


def test_it_finds_the_minimum_variance_mix_of_correlated_assets(solve_with):
    vols, corr = (0.3, 0.15), 0.4
    data = two_asset_data(vols=vols, corr=corr, cash_max=0.0)
    c = corr * vols[0] * vols[1]
    expected_a = (vols[1] ** 2 - c) / (vols[0] ** 2 + vols[1] ** 2 - 2 * c)
    np.testing.assert_allclose(solve_with(data).w, [expected_a, 1 - expected_a], atol=1e-6)


def test_a_binding_volatility_cap_halves_a_position(solve_with):
    # target: everything in A (vol 30%); cap 15% with cash available -> exactly half in A
    data = two_asset_data(vols=(0.3, 0.1), target=(1.0, 0.0), vol_cap=0.15)
    solution = solve_with(data)
    assert solution.w[0] == pytest.approx(0.5, abs=1e-5)
    assert solution.w[1] == pytest.approx(0.0, abs=1e-3)  # flat to second order: solver tolerance
    vol = np.sqrt((0.3 * solution.w[0]) ** 2 + (0.1 * solution.w[1]) ** 2)
    assert vol <= 0.15 * solution.total + 1e-7
    assert solution.vol_slack == pytest.approx(0.0, abs=1e-7)


def test_a_binding_single_name_cap_holds_exactly(solve_with):
    data = two_asset_data(vols=(0.2, 0.2), target=(0.9, 0.1), name_cap=0.08)
    solution = solve_with(data)
    assert solution.w[0] == pytest.approx(0.08, abs=1e-6)
    assert solution.limit_slack[-1] == pytest.approx(0.0, abs=1e-7)


def test_conflicting_limits_are_relaxed_with_slack_not_a_failure(solve_with):
    # the target needs 60% in A but buys are capped at 20% of value: the turnover slack takes the rest
    # only if it is worth its penalty; with a cap of 10% on A the name slack stays 0 and turnover binds
    data = two_asset_data(vols=(0.2, 0.1), target=(0.6, 0.4), buy_budget=0.2, name_cap=0.1)
    solution = solve_with(data)
    assert solution.report.status == "optimal"
    assert solution.w.sum() == pytest.approx(0.2 + solution.turnover_slack, abs=1e-6)
    assert solution.w[0] <= 0.1 + 1e-6


def test_a_cap_below_what_a_hard_constraint_forces_is_relaxed(solve_with):
    # A is held (x0 = 0.5) and may not be sold; a 10% cap on A cannot hold: slack = 0.4
    data = two_asset_data(vols=(0.2, 0.1), name_cap=0.1, cash=0.5)
    data.x0 = np.array([[0.5], [0.0]])
    solution = solve_with(data)
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


# ---------------------------------------------------------------- the compact form against the cvxpy form


def random_data(seed: int, *, n: int = 9, m: int = 2, k: int = 3, names: int = 2) -> ProblemData:
    """A random problem with every feature: taxes (incl. a held-but-unsellable pair with a positive
    intercept and a sellable pair without gains), withdrawals with relief, costs, drags, limits, names."""
    rng = np.random.default_rng(seed)
    data = two_asset_data()
    data.loadings = rng.normal(0.0, 0.1, (k, n))
    data.specific = np.where(rng.random(n) < 0.2, 0.0, rng.uniform(0.05, 0.3, n))
    data.target = rng.dirichlet(np.ones(n)) * 0.95
    data.te_weight, data.weight_weight, data.exposure_weight, data.cash_drag = 1.0, 0.05, 0.5, 0.02
    base = np.zeros((BASE_ROWS, n))
    base[rng.integers(0, 11, n), np.arange(n)] = rng.uniform(0.3, 1.0, n)
    base[14] = rng.uniform(0.0, 1.0, n)  # equity share
    data.base = base
    data.gap_matrix = rng.normal(0.0, 1.0, (17, BASE_ROWS)) * (rng.random((17, BASE_ROWS)) < 0.15)
    data.gap_rhs = rng.uniform(-0.2, 0.2, 17)
    held = rng.random((n, m)) < 0.5
    data.x0 = np.where(held, rng.uniform(0.01, 0.1, (n, m)), 0.0)
    menu = rng.random(n) < 0.7
    data.buy_max = np.where(menu[:, None], 2.0, 0.0) * np.ones((1, m))
    data.buy_max[0, 0] = 0.05  # a binding-looking buy cap (kept: it can bind)
    sellable = held & (rng.random((n, m)) < 0.8)
    data.sell_max = np.where(sellable, data.x0, 0.0)
    data.cost_rate = rng.uniform(0.0, 0.003, (n, m))
    data.cash0 = rng.uniform(-0.05, 0.1, m)
    data.relief_max = np.clip(-data.cash0, 0.0, None)
    data.cash_max = np.array([0.01] + [2.0] * (m - 1))  # the first account's cap can bind
    data.trade_cost = data.cost_rate / 3 + 1e-4
    data.holding_drag = rng.uniform(0.0, 0.01, (n, m)) * (rng.random((n, m)) < 0.5)
    slopes = np.sort(rng.uniform(0.0, 0.3, (4, n, m)), axis=0) * (rng.random((1, n, m)) < 0.5)
    widths = rng.uniform(0.0, 0.05, (4, n, m))
    starts = np.concatenate([np.zeros((1, n, m)), np.cumsum(widths, axis=0)[:-1]])
    taxes = np.concatenate([np.zeros((1, n, m)), np.cumsum(slopes[:-1] * widths[:-1], axis=0)])
    intercepts = taxes - slopes * starts
    slopes[3], intercepts[3] = 0.0, 0.0  # an unused piece
    unsellable_held = np.argwhere(held & ~sellable)
    if len(unsellable_held):
        i, j = unsellable_held[0]
        intercepts[1, i, j] = 0.002  # a constant tax (not a real tax curve; exercises the offset)
    data.tax_slopes, data.tax_intercepts = slopes, intercepts
    data.vol_cap = 0.12
    data.base_limit_matrix = rng.normal(0.0, 1.0, (13, BASE_ROWS)) * (rng.random((13, BASE_ROWS)) < 0.1)
    data.base_limit_rhs = rng.uniform(0.0, 0.3, 13)
    data.base_limit_penalty = np.full(13, 5.0)
    data.name_matrix = rng.uniform(0.0, 1.0, (names, n)) * (rng.random((names, n)) < 0.5)
    data.name_rhs = np.full(names, 0.08)
    data.name_penalty = np.full(names, 10.0)
    data.buy_budget, data.sell_budget = 0.3, 0.25
    return data


def assert_same_optimum(data: ProblemData) -> None:
    """Same optimal value, the same (unique) weights, and the compact solution feasible in the cvxpy form."""
    compact, reference = solve(data), solve_cvxpy(data)
    assert compact.report.status == reference.report.status == "optimal"
    assert compact.objective == pytest.approx(reference.objective, rel=1e-6, abs=1e-8)
    np.testing.assert_allclose(compact.w, reference.w, atol=1e-4)  # strictly convex in w (weight_weight > 0)
    assert compact.total == pytest.approx(reference.total, abs=1e-6)
    tol = 1e-7
    assert (compact.buys <= np.clip(data.buy_max, 0.0, None) + tol).all()
    assert (compact.sells <= np.clip(data.sell_max, 0.0, None) + tol).all()
    assert (compact.cash >= -tol).all() and (compact.cash <= data.cash_max + tol).all()
    assert (compact.relief <= data.relief_max + tol).all()
    np.testing.assert_allclose(compact.w, (np.clip(data.x0, 0.0, None) + compact.buys - compact.sells).sum(axis=1),
                               atol=tol)
    assert compact.total == pytest.approx(compact.w.sum() + compact.cash.sum(), abs=tol)
    # the objective value recomputed from the solution (the tax epigraph at its minimum, max of pieces: a (0, 0)
    # piece floors it at 0, a loss curve has none and may be negative)
    tax = (data.tax_slopes * compact.sells + data.tax_intercepts).max(axis=0).sum()
    if data.tax_budget is not None:
        assert tax <= data.tax_budget + 1e-7
    te = np.sqrt(data.te_weight)
    scale = np.sqrt(data.te_weight * data.specific**2 + data.weight_weight)
    gap = np.sqrt(data.exposure_weight) * (data.gap_matrix @ (data.base @ compact.w) - data.gap_rhs * compact.total)
    limits = np.clip(data.base_limit_matrix @ data.base @ compact.w - data.base_limit_rhs * compact.total, 0, None)
    names = np.clip(data.name_matrix @ compact.w - data.name_rhs * compact.total, 0, None)
    vol = np.hypot(np.linalg.norm(data.loadings @ compact.w), np.linalg.norm(data.specific * compact.w))
    if data.sample_loadings.size:  # one slack for both cones: the larger excess
        vol = max(vol, float(np.linalg.norm(data.sample_loadings @ compact.w)))
    buy_weight, sell_weight = data.turnover_weights()
    value = (
        np.sum((te * data.loadings @ (compact.w - data.target)) ** 2) + np.sum((scale * (compact.w - data.target)) ** 2)
        + gap @ gap + data.cash_drag * compact.cash.sum() + np.sum(data.trade_cost * (compact.buys + compact.sells))
        + np.sum(data.holding_drag * (compact.buys - compact.sells)) + tax + data.base_limit_penalty @ limits
        + data.name_penalty @ names + data.vol_penalty * max(0.0, vol - data.vol_cap * compact.total)
        + data.turnover_penalty * max(0.0, (buy_weight * compact.buys).sum() - data.buy_budget,
                                      (sell_weight * compact.sells).sum() - data.sell_budget)
        + data.relief_penalty * compact.relief.sum()
    )
    assert compact.objective == pytest.approx(value, rel=1e-6, abs=1e-7)


@pytest.mark.parametrize("seed", range(8))
def test_the_compact_form_has_the_optimum_of_the_cvxpy_form(seed):
    assert_same_optimum(random_data(seed, m=1 + seed % 3, names=seed % 3))


def with_sample_cone(data: ProblemData, seed: int) -> ProblemData:
    """`data` with a plain-sample factor R (upper-triangular) riskier than its model, and the IRA-like second
    account's swaps into the first assets left out of turnover."""
    rng = np.random.default_rng(100 + seed)
    n, m = data.x0.shape
    returns = rng.normal(0.0, 0.012, (60, n)) + rng.normal(0.0, 0.01, (60, 1))  # a common factor
    data.sample_loadings = np.linalg.qr((returns - returns.mean(axis=0)) * np.sqrt(252 / 59), mode="r")
    data.vol_cap = 0.08
    buy, sell = np.ones((n, m)), np.ones((n, m))
    if m > 1:
        buy[: n // 3, 1] = 0.0
        sell[:, 1] = 0.0
    data.turnover_buy, data.turnover_sell = buy, sell
    return data


def with_losses(data: ProblemData, seed: int, budget: float | None) -> ProblemData:
    """`data` with loss curves (negative first slopes, no (0, 0) piece) on some sellable pairs and a tax budget."""
    rng = np.random.default_rng(seed)
    data.tax_intercepts[:, data.sell_max <= 0] = 0.0  # no constant tax: a budget of 0 stays feasible
    for i, j in np.argwhere(data.sell_max > 0)[::2]:
        widths = rng.uniform(0.005, 0.03, 2)
        slopes = np.sort(np.array([-rng.uniform(0.02, 0.1), rng.uniform(0.0, 0.2)]))
        intercepts = np.array([0.0, (slopes[0] - slopes[1]) * widths[0]])
        data.tax_slopes[:, i, j] = [slopes[0], slopes[1], slopes[1], slopes[1]]
        data.tax_intercepts[:, i, j] = [intercepts[0], intercepts[1], intercepts[1], intercepts[1]]
    data.tax_budget = budget
    return data


@pytest.mark.parametrize("seed", range(6))
def test_the_compact_form_has_the_optimum_of_the_cvxpy_form_with_the_sample_cone(seed):
    data = with_sample_cone(random_data(seed, m=1 + seed % 3, names=seed % 3), seed)
    assert_same_optimum(data)
    solution = solve(data)
    sample_vol = float(np.linalg.norm(data.sample_loadings @ solution.w))
    assert sample_vol <= data.vol_cap * solution.total + solution.vol_slack + 1e-7


def test_a_binding_sample_estimate_holds_the_cap_where_the_model_alone_would_not(solve_with):
    # the model says A has 10% volatility, the plain sample 30%: the cap of 15% holds on the sample -> half in A
    data = two_asset_data(vols=(0.1, 0.1), target=(1.0, 0.0), vol_cap=0.15)
    data.sample_loadings = np.diag([0.3, 0.1])
    solution = solve_with(data)
    assert solution.w[0] == pytest.approx(0.5, abs=1e-4)
    assert solution.vol_slack == pytest.approx(0.0, abs=1e-7)


def test_the_sample_cone_is_added_only_when_the_first_solve_misses_it():
    from engine.problem import solve_on_both_estimates

    data = two_asset_data(vols=(0.1, 0.1), target=(1.0, 0.0), vol_cap=0.15)
    calm = SampleRisk(("A", "B"), np.diag([0.05, 0.05]) ** 2)  # met by the model's answer: that answer stands
    assert solve_on_both_estimates(data, calm).w == pytest.approx(solve(data).w, abs=1e-9)
    wild = SampleRisk(("A", "B"), np.array([[0.09, 0.01], [0.01, 0.01]]))
    both = solve_on_both_estimates(data, wild)
    assert wild.volatility(both.w) <= 0.15 * both.total + 1e-7
    np.testing.assert_allclose(wild.factor.T @ wild.factor, wild.covariance, atol=1e-9)
    assert both.w[0] == pytest.approx(0.5, abs=1e-3)


@pytest.mark.parametrize("seed", range(6))
def test_the_forms_agree_with_losses_and_the_tax_budget_row(seed):
    budget = [0.0, 0.002, None][seed % 3]
    data = with_losses(random_data(seed, m=1 + seed % 3, names=seed % 3), seed, budget)
    assert (data.tax_slopes < 0).any()
    assert_same_optimum(data)


@pytest.mark.parametrize("seed", range(4))
def test_a_binding_budget_row_caps_the_solver_tax(seed):
    data = with_losses(random_data(seed, m=2), seed, None)
    free = solve(data)
    tax_free = (data.tax_slopes * free.sells + data.tax_intercepts).max(axis=0).sum()
    data.tax_budget = tax_free - 0.002  # may be below 0: losses can pay for it
    capped = solve(data)
    tax_capped = (data.tax_slopes * capped.sells + data.tax_intercepts).max(axis=0).sum()
    assert tax_capped <= data.tax_budget + 1e-7 and capped.objective >= free.objective - 1e-9


def test_the_compact_form_leaves_out_what_cannot_matter():
    data = random_data(3, m=2)
    conic, _ = conic_form(data)
    n = data.x0.shape[0]
    pairs = (data.buy_max > 0).sum() + (data.sell_max > 0).sum()
    live = (data.tax_slopes != 0) | (data.tax_intercepts != 0)
    taxed = (live.any(axis=0) & (data.sell_max > 0)).sum()
    # w, tot, relief, y, slacks, factors, gaps plus only the live B, S and T
    expected = pairs + taxed + n + 1 + (data.relief_max > 0).sum() + 18 + 13 + 2 + 2 + 3 + 17
    assert conic.A.shape[1] == expected
    padded = CompiledProblem(data.shape(3)).problem.get_problem_data("CLARABEL")[0]["A"]
    assert conic.A.shape[0] < padded.shape[0] / 2


def test_unsellable_gains_and_empty_pieces_keep_the_objective():
    data = random_data(5, m=1)
    i, j = np.argwhere(data.x0 > 0)[0]
    data.sell_max[i, j] = 0.0  # held, may not be sold
    data.tax_intercepts[:, i, j] = [0.0, 0.003, -0.001, 0.0]  # a constant 0.003 the solver cannot avoid
    assert conic_form(data)[0].offset > 0.003
    assert_same_optimum(data)


def test_real_problems_match_the_cvxpy_form():
    from engine.market import MarketSnapshot
    from engine.pipeline import problem_data
    from engine.prepare import prepare
    from tests.test_engine_perf_sharing import _request

    market = load_bundled_market(years=3)
    snapshot = MarketSnapshot.of(market)
    for profile, cash in (("conservative", -4000.0), ("aggressive", 3000.0), ("moderate", 0.0)):
        prep = prepare(_request(market, profile, cash), snapshot)
        assert_same_optimum(problem_data(prep))


def test_when_clarabel_does_not_certify_the_compact_form_the_cvxpy_form_is_solved(monkeypatch):
    from engine import problem as module

    def refuse(conic, settings=None):
        raise OptimizationError("CLARABEL: AlmostSolved")

    monkeypatch.setattr(module, "solve_conic", refuse)
    cache = ProblemCache()
    data = random_data(1)
    solution = solve_problem(data, cache)
    assert cache.compiles == 1
    assert solution.report.attempts[0] == "CLARABEL: AlmostSolved (compact form)"
    assert solution.objective == pytest.approx(solve(data).objective, rel=1e-6)


def test_when_nothing_certifies_the_error_names_every_attempt(monkeypatch):
    from engine import problem as module

    def refuse(conic, settings=None):
        raise OptimizationError("CLARABEL: NumericalError")

    def refuse_too(problem):
        raise OptimizationError("no solver certified a solution (SCS: infeasible)")

    monkeypatch.setattr(module, "solve_conic", refuse)
    from engine import fallback

    monkeypatch.setattr(fallback, "solve_certified", refuse_too)
    with pytest.raises(OptimizationError, match=r"SCS: infeasible.*CLARABEL: NumericalError"):
        solve_problem(random_data(2))
