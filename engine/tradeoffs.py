"""The tax trade-off table: what other yearly tax budgets would buy (pure, no Django).

Only when the budget binds (the solver's net tax sits on the budget row: the plan would realise more
without it), the continuous problem is solved once more, with no limit, at a looser tolerance
(`TRADEOFF_SETTINGS`: the rows are read to a tenth of a point). The row for twice the budget (for a budget
of 0: the default 1%) is not solved: it is the mix of the plan's solution and the no-limit one whose net
tax is that budget (feasible, as every constraint is convex; an optimum there is at least as good by the
objective), left out when the no-limit run stays within it. One extra solve only: the 10,000-portfolio
recompute has no room for more (a budget-0 row would cost another).
Each row gives the estimated netted tax, the volatility after and the limits met of the solver's
(continuous) portfolio, so that rows differ by the budget only, not by rounding; the plan's own row
(`current`) gives the plan's own tax (after rounding, within the budget). The same runs say, for a limit
the budget kept from being met, what a larger budget would bring it to (`budget_cause`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from engine.explain import Cause, pct, usd
from engine.exposures import GICS_SECTORS
from engine.limits import Breach, Metrics, breaches, measure
from engine.prepare import Prepared
from engine.problem import ProblemData, Solution, solve_problem
from engine.shape import expanded, reduced_problem
from engine.solve import CONIC_SETTINGS
from engine.tax import plan_tax, realise
from engine.taxplan import budget_usd
from engine.types import Options, TradeOff

if TYPE_CHECKING:
    from engine.fallback import ProblemCache

DEFAULT_BUDGET = 0.01
# Clarabel for the trade-off runs: the production settings at tolerances of 1e-6 (not 1e-8)
TRADEOFF_SETTINGS: dict[str, object] = {**CONIC_SETTINGS, "tol_gap_abs": 1e-6, "tol_gap_rel": 1e-6, "tol_feas": 1e-6,
                                        "tol_ktratio": 1e-5}


@dataclass(frozen=True)
class BudgetRun:
    """The solver's portfolio under one yearly tax budget (fraction of value; None = no limit)."""

    budget: float | None
    est_taxes: float  # USD, netted
    metrics: Metrics
    breaches: list[Breach]


def solver_tax(data: ProblemData, sells: np.ndarray) -> float:
    """The solver's net tax sum(T) of sells (n, m) at its optimum (objective units)."""
    if data.tax_slopes.size == 0:
        return 0.0
    return float((data.tax_slopes * sells + data.tax_intercepts).max(axis=0).sum())


def budget_binds(data: ProblemData, solution: Solution) -> bool:
    if data.tax_budget is None or not data.tax_slopes.size:
        return False
    return solver_tax(data, solution.sells) >= data.tax_budget - max(1e-7, 1e-4 * abs(data.tax_budget))


def limits_total(prep: Prepared) -> int:
    """Volatility cap, sector caps, Financials and small-cap minimums, single-name caps, turnover."""
    return 1 + len(GICS_SECTORS) + 2 + len(prep.exposures.names) + 1


def budget_runs(prep: Prepared, options: Options, data: ProblemData, solution: Solution,
                cache: ProblemCache | None) -> list[BudgetRun]:
    """The runs of the other budgets when the plan's budget binds, else [] (module docstring)."""
    if options.tax_budget is None or data.tax_budget is None or not budget_binds(data, solution):
        return []
    unlimited = _solve(replace(data, tax_budget=None), cache)
    runs = [run_of(prep, None, unlimited)]
    larger = 2 * float(options.tax_budget) if options.tax_budget > 0 else DEFAULT_BUDGET
    bound = _bound(prep, options, larger)
    t_plan, t_free = solver_tax(data, solution.sells), solver_tax(data, unlimited.sells)
    if bound is not None and t_free > bound + 1e-9 and t_free > t_plan + 1e-12:
        theta = min(1.0, max(0.0, (bound - t_plan) / (t_free - t_plan)))
        runs.insert(0, run_of(prep, larger, _mix(solution, unlimited, theta)))
    return runs


def _bound(prep: Prepared, options: Options, budget: float) -> float | None:
    """The solver's bound (objective units) for a yearly budget (fraction of value)."""
    usd_budget = budget_usd(replace(options, tax_budget=budget), prep.value)
    return None if usd_budget is None else usd_budget / prep.value / prep.costs.horizon_years


def _solve(data: ProblemData, cache: ProblemCache | None) -> Solution:
    """`data` solved on the assets that may trade (engine.shape.reduced_problem: the same optimum, a smaller
    problem once the plan's pairs are kept to few funds and orders)."""
    small, live = reduced_problem(data, data.buy_max > 0, data.sell_max > 0)
    return expanded(solve_problem(small, cache, settings=TRADEOFF_SETTINGS), data, live)


def _mix(a: Solution, b: Solution, theta: float) -> Solution:
    """(1 - theta) a + theta b: feasible for every hard constraint (they are convex)."""
    keep = 1.0 - theta
    return replace(a, x=keep * a.x + theta * b.x, w=keep * a.w + theta * b.w, buys=keep * a.buys + theta * b.buys,
                   sells=keep * a.sells + theta * b.sells, total=keep * a.total + theta * b.total)


def run_of(prep: Prepared, budget: float | None, solution: Solution) -> BudgetRun:
    V = prep.value
    q = solution.x[prep.slot_asset, prep.slot_account] * V / prep.prices - prep.shares0
    sold = [realise(prep.lots[j], float(-q[j]), prep.costs) for j in np.flatnonzero(q < -1e-9) if prep.lots[j]]
    turnover = max(0.0, float(solution.buys.sum()) * V - prep.cash_in(), float(solution.sells.sum()) * V
                   - prep.cash_out()) / V
    metrics = measure(solution.w / max(solution.total, 1e-12), prep.risk, prep.exposures, turnover)
    return BudgetRun(budget, plan_tax(sold, prep.costs), metrics, breaches(metrics, prep.limits, prep.exposures))


def tradeoff_rows(prep: Prepared, options: Options, runs: list[BudgetRun], est_taxes: float,
                  cont: Metrics) -> list[TradeOff]:
    """The table: the other budgets' runs and the plan's own row, by budget (no limit last). Every row's
    volatility and limits are the solver's, before rounding (cont: the plan's), so the rows compare budgets,
    not rounding; the plan's row gives the plan's own tax (est_taxes, USD)."""
    if not runs:
        return []
    total = limits_total(prep)
    current = BudgetRun(options.tax_budget, est_taxes, cont, breaches(cont, prep.limits, prep.exposures))
    rows = [TradeOff(r.budget, round(r.est_taxes, 2), r.metrics.volatility, total - len(r.breaches), total,
                     current=r is current) for r in [*runs, current]]
    return sorted(rows, key=lambda row: (row.budget is None, row.budget or 0.0, not row.current))


def budget_cause(breach: Breach, cont: Metrics, prep: Prepared, options: Options,
                 runs: list[BudgetRun]) -> Cause | None:
    """Why (and what a larger budget would do) when the tax budget kept `breach` from being met: the solver
    could not meet it and a larger budget's run comes closer. None otherwise."""
    if not runs or options.tax_budget is None:
        return None
    if breach.limit not in {b.limit for b in breaches(cont, prep.limits, prep.exposures)}:
        return None  # the solver met it: rounding broke it, not the budget
    larger = [r for r in runs if r.budget is None or r.budget > options.tax_budget]
    for run in larger:
        found = next((b for b in run.breaches if b.limit == breach.limit), None)
        if found is None or abs(found.achieved - found.requested) < abs(breach.achieved - breach.requested) - 1e-4:
            budget = usd(budget_usd(options, prep.value) or 0.0)
            why = f"the tax budget of {pct(options.tax_budget)} of value ({budget} this year) was reached"
            label = "no tax limit" if run.budget is None else f"a tax budget of {pct(run.budget)}"
            gets = "would meet it" if found is None else f"would bring it to {pct(found.achieved, breach.requested)}"
            return Cause(why, f"{label} (est. tax {usd(run.est_taxes)}) {gets}")
    return None
