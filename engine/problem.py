"""The optimisation problem: its data (`ProblemData`), its solution and `solve_problem`. The problem is
assembled directly in conic form and handed to Clarabel (`engine.conic`, the fast path), with the same
model built once per shape in cvxpy (`engine.fallback`, DPP Parameters) as the fallback and the reference.

Units: every amount is a fraction of the portfolio value V (after the cash change, before costs).
Holdings are an (n assets x m accounts) matrix, so money stays inside its account and the asset
weights are a structural row sum (no dense aggregation parameter: the KKT system stays sparse).

Variables: B (n, m) buys, S (n, m) sells (holdings after X = X0 + B - S is an expression), w (n) = X 1
  asset weights, T (n, m) tax epigraph, tot total value after costs, relief (m) withdrawal not raised,
  factor exposures, residuals of the squared terms, slacks. T >= each piece of the pair's convex tax curve;
  a loss curve's T may be negative (the tax its losses save).
Hard constraints: X = X0 + B - S, B, S >= 0, B <= buy_max, S <= sell_max <= X0 (so X >= 0; keep-these, buy-only,
  unpriced and not-on-menu give 0), per-account cash after = cash0 - 1'((1+c) * B) + 1'((1-c) * S)
  + relief >= 0, cash after <= cash_max.
Soft constraints (penalised slack, reported by the caller when a limit ends up unmet):
  volatility |[L w; d * w]| <= vol_cap * tot + slack (factor-form risk, annualised), and the same cap on the
  plain 3-year sample estimate |R w| <= vol_cap * tot + slack (R'R = sample covariance; the one slack is the
  larger excess, so a plan that reports no volatility relaxation meets the cap on both estimates);
  look-through base y = B w (11 sectors, 3 sizes, 4 asset classes: few dense rows), then
  sector caps and financials/small-cap minimums on y, single-name caps N w <= cap * tot, each + slack;
  sum(B) <= buy_budget + slack, sum(S) <= sell_budget + slack (turnover = max(buys, sells); a pair's weight
  in these sums is 0 for a tax-free swap into bonds inside a tax-deferred account, `turnover_buy/sell`).
Objective (annual units; one-off costs are spread over the horizon by the caller):
  te_weight * (tracking-error variance to the target, factor form: |L (w - t)|^2 + |d * (w - t)|^2)
  + exposure_weight * |E y - e tot|^2 (asset-class mix, look-through sector/size mix vs the target's)
  + weight_weight * |w - t|^2        (a small pull toward the target's own funds)
  (the per-asset terms share one residual: |sqrt(te_weight d^2 + weight_weight) * (w - t)|^2)
  + cash_drag * (cash after)        (expected return given up by holding cash)
  + trade_cost . (B + S) + sum(T)   (costs, small-trade l1 penalty, taxes on realised gains)
  + holding_drag . X                 (yearly tax on income held in taxable accounts: asset location)
  + penalties . slacks

Two forms of this one model:
- `CompiledProblem` (cvxpy, DPP): every (asset, account) pair gets B, S and T and P tax rows, shapes are
  padded to buckets so that portfolios of similar size share one compiled problem. Simple and checked
  by cvxpy, but on typical portfolios ~1,360 rows x ~575 columns in Clarabel's form (most of them tax
  rows and bounds of pairs that cannot trade or realise a gain) plus cvxpy's per-solve data update.
- `conic_form` (the fast path, `solve_problem`): the same problem written straight into Clarabel's
  form with only what can be non-zero (~380 rows x ~240 columns, no padding, no cvxpy in the loop).
  It is exactly equivalent, see `conic_form` for the reductions and why each keeps the optimum.
`solve_problem` falls back to `CompiledProblem` (Clarabel, then SCS) when Clarabel does not certify the
compact form.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from engine.conic import Layout, conic_form
from engine.errors import OptimizationError
from engine.solve import SolveReport, solve_conic

if TYPE_CHECKING:
    from engine.fallback import ProblemCache
    from engine.risk import SampleRisk

_LADDER = (4, 8, 12, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512)
_ACCOUNT_LADDER = (1, 2, 3, 4, 6, 8, 12, 16)
SAMPLE_TOLERANCE = 1e-7  # fractions of value: the sample cone is added when the first solve misses it by more


def bucket(size: int, ladder: tuple[int, ...] = _LADDER) -> int:
    """The padded size for `size` (a ladder of roughly 15-30% steps)."""
    for step in ladder:
        if size <= step:
            return step
    return int(np.ceil(size / 128.0) * 128)


@dataclass(frozen=True)
class Shape:
    """Padded dimensions: assets n, accounts m, factors k, base rows Q, base limit rows Rb, single-name
    rows L, exposure-gap rows E, tax pieces P (0: no taxable holding), a tax budget row or not."""

    n: int
    m: int
    k: int
    Q: int
    Rb: int
    L: int
    E: int
    P: int
    budget: bool = False


@dataclass
class ProblemData:
    """Numeric inputs of one solve (unpadded). n assets, m accounts, k factors, R limit rows, E rows."""

    loadings: np.ndarray  # (k, n) factor loadings, annualised
    specific: np.ndarray  # (n,) specific volatility, annualised
    target: np.ndarray  # (n,) target weights
    te_weight: float
    base: np.ndarray  # (Q, n) look-through base rows; y = base @ w (fractions of value)
    gap_matrix: np.ndarray  # (E, Q) exposure-gap rows: gap_matrix @ y - gap_rhs * tot (0 on target)
    gap_rhs: np.ndarray  # (E,)
    exposure_weight: float
    weight_weight: float
    cash_drag: float
    x0: np.ndarray  # (n, m) holdings before
    buy_max: np.ndarray  # (n, m)
    sell_max: np.ndarray  # (n, m)
    cost_rate: np.ndarray  # (n, m) transaction cost per unit traded (paid from the account's cash)
    cash0: np.ndarray  # (m,) cash before, after the cash change (< 0: a withdrawal still to raise)
    relief_max: np.ndarray  # (m,) withdrawal that may be left unraised (penalised)
    cash_max: np.ndarray  # (m,) upper bound on cash after
    trade_cost: np.ndarray  # (n, m) objective weight per unit traded
    holding_drag: np.ndarray  # (n, m) yearly tax drag per unit held (asset location)
    tax_slopes: np.ndarray  # (P, n, m)
    tax_intercepts: np.ndarray  # (P, n, m)
    vol_cap: float
    base_limit_matrix: np.ndarray  # (Rb, Q): base_limit_matrix @ y <= base_limit_rhs * tot
    base_limit_rhs: np.ndarray  # (Rb,)
    base_limit_penalty: np.ndarray  # (Rb,)
    name_matrix: np.ndarray  # (L, n): name_matrix @ w <= name_rhs * tot
    name_rhs: np.ndarray  # (L,)
    name_penalty: np.ndarray  # (L,)
    buy_budget: float  # bound on sum(B): turnover limit + cash added or already idle
    sell_budget: float  # bound on sum(S): turnover limit + withdrawal
    vol_penalty: float
    turnover_penalty: float
    relief_penalty: float
    # (r, n) exact factor of the plain sample covariance: |R w| <= vol_cap tot + vol_slack (r = 0: no second cone)
    sample_loadings: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    # (n, m) weight of each pair's buys / sales in the turnover sums (None: 1 everywhere; 0: a tax-free swap into
    # bonds inside a tax-deferred account, engine.location)
    turnover_buy: np.ndarray | None = None
    turnover_sell: np.ndarray | None = None

    def turnover_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """(buy, sell) weights (n, m) of the turnover sums."""
        ones = np.ones(self.x0.shape)
        buy = ones if self.turnover_buy is None else np.asarray(self.turnover_buy, dtype=float)
        sell = ones if self.turnover_sell is None else np.asarray(self.turnover_sell, dtype=float)
        return buy, sell

    # hard bound on the solver's net tax, sum(T) <= tax_budget, in the objective's units (fraction of V per
    # year of the horizon, like the tax slopes); None = no bound
    tax_budget: float | None = None

    def shape(self, n_factors: int) -> Shape:
        n, m = self.x0.shape
        return Shape(
            n=bucket(n),
            m=bucket(m, _ACCOUNT_LADDER),
            k=n_factors,
            Q=self.base.shape[0],
            Rb=self.base_limit_matrix.shape[0],
            L=bucket(self.name_matrix.shape[0]) if self.name_matrix.shape[0] else 0,
            E=self.gap_matrix.shape[0],
            P=self.tax_slopes.shape[0] if np.any(self.tax_slopes) or np.any(self.tax_intercepts) else 0,
            budget=self.tax_budget is not None,
        )

    def dense_limits(self) -> tuple[np.ndarray, np.ndarray]:
        """Every limit row on w: (matrix (Rb + L, n), rhs (Rb + L,)), rows read matrix @ w <= rhs * tot."""
        matrix = np.vstack([self.base_limit_matrix @ self.base, self.name_matrix])
        return matrix, np.concatenate([self.base_limit_rhs, self.name_rhs])

    def dense_gaps(self) -> tuple[np.ndarray, np.ndarray]:
        """Exposure-gap rows on w: (matrix (E, n), rhs (E,))."""
        return self.gap_matrix @ self.base, self.gap_rhs


@dataclass(frozen=True)
class Solution:
    """A certified solution (unpadded), fractions of V."""

    x: np.ndarray  # (n, m)
    buys: np.ndarray  # (n, m)
    sells: np.ndarray  # (n, m)
    w: np.ndarray  # (n,)
    cash: np.ndarray  # (m,)
    total: float
    limit_slack: np.ndarray  # (Rb + L,) base limit rows, then single-name rows
    vol_slack: float
    turnover_slack: float
    relief: np.ndarray  # (m,)
    objective: float
    report: SolveReport



def solve_problem(
    data: ProblemData, cache: ProblemCache | None = None, *, settings: dict[str, object] | None = None
) -> Solution:
    """Solve `data`'s problem: the compact conic form with Clarabel (`settings`: engine.solve.CONIC_SETTINGS
    unless given), else (no "Solved") the cvxpy form (`CompiledProblem` from `cache`, Clarabel then SCS).
    Raises `OptimizationError` if nothing certifies."""
    start = time.perf_counter()
    conic, layout = conic_form(data)
    try:
        found = solve_conic(conic, settings=settings)
    except OptimizationError as exc:
        failed = str(exc)
    else:
        report = replace(found.report, total_ms=(time.perf_counter() - start) * 1e3)
        return conic_solution(data, layout, found.x, found.objective, report)
    from engine.fallback import CompiledProblem  # cvxpy loads only when the compact form fails

    shape = data.shape(data.loadings.shape[0])
    problem = cache.problem(shape) if cache is not None else CompiledProblem(shape)
    try:
        solution = problem.solve(data)
    except OptimizationError as exc:
        raise OptimizationError(f"{exc} after {failed} on the compact form") from exc
    report = solution.report
    return replace(solution, report=replace(report, attempts=(f"{failed} (compact form)", *report.attempts)))


def conic_solution(
    data: ProblemData, layout: Layout, x: np.ndarray, objective: float, report: SolveReport
) -> Solution:
    """The `Solution` of a solved compact form (pairs and accounts put back in their (n, m) places)."""
    n, m = layout.n, layout.m
    buys = np.zeros((n, m))
    sells = np.zeros((n, m))
    buys[layout.buy_pairs] = layout.part(x, "b")
    sells[layout.sell_pairs] = layout.part(x, "s")
    relief = np.zeros(m)
    relief[layout.relief_accounts] = layout.part(x, "relief")
    cash = (data.cash0 - ((1.0 + data.cost_rate) * buys).sum(axis=0) + ((1.0 - data.cost_rate) * sells).sum(axis=0)
            + relief)
    return Solution(
        x=np.clip(np.clip(data.x0, 0.0, None) + buys - sells, 0.0, None),
        buys=np.clip(buys, 0.0, None),
        sells=np.clip(sells, 0.0, None),
        w=layout.part(x, "w").copy(),
        cash=cash,
        total=float(layout.part(x, "tot")[0]),
        limit_slack=np.concatenate([layout.part(x, "base_slack"), layout.part(x, "name_slack")]),
        vol_slack=float(layout.part(x, "vol_slack")[0]),
        turnover_slack=float(layout.part(x, "turnover_slack")[0]),
        relief=relief,
        objective=objective,
        report=report,
    )


def solve_on_both_estimates(data: ProblemData, sample: SampleRisk, cache: ProblemCache | None = None,
                            ratio: float = 1.0) -> Solution:
    """Solve `data` with its volatility cap held on the risk model and on the plain sample estimate `sample`,
    mostly in one solve of the model's size.

    First solved on the model alone with the cap divided by `ratio` (the sample's volatility over the model's at a
    reference portfolio, a little above it: a margin calibrated per plan, applied when > 1). If that solution meets
    the cap on the sample too (|R w| <= vol_cap tot + vol_slack), it stands: it meets every constraint of the
    problem with both cones, erring on the safe side by the margin where the lowered cap bound. Otherwise it is
    solved again with both cones at the cap itself (R = `sample.factor`, the slack shared: a relaxation is the
    larger excess of the two estimates), the exact answer."""
    first = replace(data, vol_cap=data.vol_cap / ratio) if ratio > 1.0 else data
    solution = solve_problem(first, cache)
    if not len(sample.tickers):
        return solution
    if sample.volatility(solution.w) <= data.vol_cap * solution.total + solution.vol_slack + SAMPLE_TOLERANCE:
        return solution
    return solve_problem(replace(data, sample_loadings=sample.factor), cache)
