"""`rebalance(request, snapshot=...)`: prepare, build the problem data, solve, round, explain.

Money is USD; inside the optimizer every amount is a fraction of V, the portfolio value after the
cash change (priced holdings + cash in every account + the change). Unpriced holdings are held fixed
and left out of V and of every weight (reported in warnings).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from engine.explain import (
    Cause,
    cause_of,
    idle_cash_warning,
    relaxation_message,
    summary_sentence,
    usd,
    withdrawal_cause,
    withdrawal_message,
)
from engine.exposures import GICS_SECTORS, SIZES, ExposureModel, snapshot_from_model
from engine.fallback import ProblemCache
from engine.limits import (
    BASE_BOND,
    BASE_COMMODITY,
    BASE_EQUITY,
    BASE_ROWS,
    BASE_SIZES,
    PENALTY_TURNOVER,
    PENALTY_VOLATILITY,
    PENALTY_WITHDRAWAL,
    Breach,
    Metrics,
    base_limit_rows,
    breaches,
    exposure_base,
    measure,
    name_limit_rows,
    names_that_can_bind,
)
from engine.location import location_notes
from engine.market import MarketSnapshot
from engine.prepare import Prepared, prepare
from engine.problem import ProblemData, Solution, solve_on_both_estimates
from engine.reasons import Context, trade_reason
from engine.risk import SampleRisk
from engine.rounding import Allowance, Book, Repairer, ensure_cash, initial_round
from engine.shape import annotate, shape_plan
from engine.target import Target
from engine.tax import TAX_PIECES, allocate_taxes, tax_curve
from engine.taxplan import realisations, tax_notes, trim_to_budget
from engine.tradeoffs import BudgetRun, budget_cause, budget_runs, tradeoff_rows
from engine.types import RebalanceRequest, RebalanceResult, Relaxation, Trade

ASSET_CLASS_EMPHASIS = 1.5  # asset-class gaps count this much more than sector/size gaps
CASH_MAX = 2.0  # no upper bound on cash in practice (fractions of V)
BUY_MAX = 2.0
REPAIR_VOL_MARGIN = 0.005  # rounding moves volatility far less than this (annualised)
SAMPLE_RATIO_MARGIN = 0.01  # the sample/model volatility ratio halfway misses the plan's by ~0.005 (mean)


def rebalance(
    request: RebalanceRequest, *, snapshot: MarketSnapshot | None = None, cache: ProblemCache | None = None
) -> RebalanceResult:
    """Suggest trades for `request` (see DESIGN.md "The optimizer").

    snapshot: the `MarketSnapshot` whose `market` is `request.market` (one per market-data version, shared
    by every run); without one, a snapshot of the request's own market is built for this call.
    cache: compiled cvxpy problems for the rare fallback (one `ProblemCache` per process).
    Never raises for conflicting limits: they are relaxed with penalised slack and reported
    (status "relaxed"). Raises `DataError` for unusable inputs and `OptimizationError` only when no
    solver certifies any solution. Sale proceeds are reinvested; cash kept beyond what the person had
    (more than a rounding remainder) gets a warning saying why (`engine.explain.idle_cash_warning`).
    """
    if snapshot is None:
        snapshot = MarketSnapshot.of(request.market)
    elif snapshot.market is not request.market:
        raise ValueError("the request's market is not the snapshot's: build the request from snapshot.market")
    timings: dict[str, float] = {}
    start = time.perf_counter()
    prep = prepare(request, snapshot)
    timings["prepare"] = (time.perf_counter() - start) * 1e3
    data = problem_data(prep)
    mark = time.perf_counter()
    ratio = sample_ratio(prep, data)

    def solve(problem: ProblemData, sample: SampleRisk) -> Solution:
        return solve_on_both_estimates(problem, sample, cache, ratio)

    shaped = shape_plan(request, prep, data, solve)  # the band, the solve, the restricted re-solve
    solution = shaped.solution
    timings["solve"] = (time.perf_counter() - mark) * 1e3
    timings["solver"] = solution.report.solve_ms
    timings["resolves"] = float(shaped.resolves)
    mark = time.perf_counter()
    runs = budget_runs(shaped.prep, request.options, shaped.data, solution, cache)
    timings["tradeoffs"] = (time.perf_counter() - mark) * 1e3
    mark = time.perf_counter()
    result = annotate(finish(request, shaped.prep, solution, timings, runs), shaped)
    timings["finish"] = (time.perf_counter() - mark) * 1e3
    timings["total"] = (time.perf_counter() - start) * 1e3
    return result


def problem_data(prep: Prepared) -> ProblemData:
    """The optimizer's numeric inputs for `prep` (fractions of V, (asset, account) matrices)."""
    V = prep.value
    n, m = len(prep.universe), len(prep.accounts)
    a, k = prep.slot_asset, prep.slot_account

    def matrix(values: np.ndarray) -> np.ndarray:
        out = np.zeros((n, m))
        out[a, k] = values
        return out

    costs = prep.costs
    x0 = prep.shares0 * prep.prices / V
    sellable = np.minimum(prep.sellable, prep.shares0) * prep.prices / V  # lots held back (engine.taxplan)
    slopes = np.zeros((TAX_PIECES, n, m))
    intercepts = np.zeros((TAX_PIECES, n, m))
    for j, slot_lots in enumerate(prep.lots):
        if slot_lots:
            sl, ic = tax_curve(slot_lots, V, TAX_PIECES)
            slopes[:, a[j], k[j]] = sl / costs.horizon_years
            intercepts[:, a[j], k[j]] = ic / costs.horizon_years
    asset_x0 = np.bincount(a, weights=x0, minlength=n)
    asset_buyable = np.zeros(n, dtype=bool)
    asset_buyable[a[prep.can_buy]] = True
    mask = names_that_can_bind(prep.exposures, asset_x0, asset_buyable, prep.limits.max_single_stock)
    _, base_limit_matrix, base_rhs, base_penalty = base_limit_rows(prep.limits)
    _, name_matrix, name_rhs, name_penalty = name_limit_rows(prep.limits, prep.exposures, mask)
    withdrawal = np.clip(-prep.cash_change, 0.0, None)
    gap_matrix, gap_rhs = exposure_gap_rows(prep.exposures, prep.target)
    return ProblemData(
        loadings=prep.risk.loadings,
        specific=prep.risk.specific,
        target=prep.target_vec,
        te_weight=costs.te_aversion,
        base=exposure_base(prep.exposures),
        gap_matrix=gap_matrix,
        gap_rhs=gap_rhs,
        exposure_weight=costs.exposure_aversion,
        weight_weight=costs.weight_aversion,
        cash_drag=costs.cash_drag,
        x0=matrix(x0),
        buy_max=matrix(np.where(prep.can_buy, BUY_MAX, 0.0)),
        sell_max=matrix(np.where(prep.can_sell, sellable, 0.0)),
        cost_rate=matrix(prep.cost_rate),
        cash0=(prep.cash_start + prep.cash_change) / V,
        relief_max=withdrawal / V,
        cash_max=np.full(m, CASH_MAX),
        trade_cost=matrix(prep.cost_rate / costs.horizon_years + costs.small_trade_penalty),
        holding_drag=matrix(prep.holding_drag),
        tax_slopes=slopes,
        tax_intercepts=intercepts,
        vol_cap=prep.limits.vol_cap,
        base_limit_matrix=base_limit_matrix,
        base_limit_rhs=base_rhs,
        base_limit_penalty=base_penalty,
        name_matrix=name_matrix,
        name_rhs=name_rhs,
        name_penalty=name_penalty,
        turnover_buy=matrix(prep.location.buy_counted.astype(float)),
        turnover_sell=matrix(prep.location.sell_counted.astype(float)),
        buy_budget=prep.limits.max_turnover + prep.cash_in() / V,
        sell_budget=prep.limits.max_turnover + prep.cash_out() / V,
        vol_penalty=PENALTY_VOLATILITY,
        turnover_penalty=PENALTY_TURNOVER,
        relief_penalty=PENALTY_WITHDRAWAL,
        tax_budget=None if prep.tax_budget is None else prep.tax_budget / V / costs.horizon_years,
    )


def sample_ratio(prep: Prepared, data: ProblemData) -> float:
    """The plain sample's volatility over the model's halfway between the holdings and the target, plus
    SAMPLE_RATIO_MARGIN: the first solve lowers the cap by it (`engine.problem.solve_on_both_estimates`)."""
    w = (data.x0.sum(axis=1) + data.target) / 2.0
    model = prep.risk.volatility(w)
    return prep.risk_sample.volatility(w) / model + SAMPLE_RATIO_MARGIN if model > 1e-9 else 1.0


def exposure_gap_rows(exposures: ExposureModel, target: Target) -> tuple[np.ndarray, np.ndarray]:
    """Gap rows on the base y (E=17, 18) and rhs (17,): rows @ y - rhs * total = exposure minus target.

    Rows: equity, bond and cash shares of total value (ASSET_CLASS_EMPHASIS times), then the 11 GICS
    sectors and 3 sizes with the target mix scaled by the equity actually held (they measure the mix,
    not the amount, of equity). All in fractions of value.
    """
    sectors = np.array([target.sectors.get(s, 0.0) for s in GICS_SECTORS])
    size = np.array([target.size.get(s, 0.0) for s in SIZES])
    shares = target_asset_class_shares(target, exposures)
    rows = np.zeros((3 + len(GICS_SECTORS) + len(SIZES), BASE_ROWS))
    rows[0, BASE_EQUITY] = ASSET_CLASS_EMPHASIS
    rows[1, BASE_BOND] = ASSET_CLASS_EMPHASIS
    rows[2, [BASE_EQUITY, BASE_BOND, BASE_COMMODITY]] = -ASSET_CLASS_EMPHASIS  # cash = total - the rest
    for i in range(len(GICS_SECTORS)):
        rows[3 + i, i] = 1.0
        rows[3 + i, BASE_EQUITY] = -sectors[i]
    for i in range(len(SIZES)):
        rows[3 + len(GICS_SECTORS) + i, BASE_SIZES.start + i] = 1.0
        rows[3 + len(GICS_SECTORS) + i, BASE_EQUITY] = -size[i]
    rhs = np.zeros(rows.shape[0])
    rhs[:3] = ASSET_CLASS_EMPHASIS * np.array([shares["equity"], shares["bond"], shares["cash"] - 1.0])
    return rows, rhs


def target_asset_class_shares(target: Target, exposures: ExposureModel) -> dict[str, float]:
    """Equity, bond and cash shares of the target (fractions of total value)."""
    index = exposures.index()
    shares = {"equity": 0.0, "bond": 0.0, "commodity": 0.0, "cash": target.cash}
    for ticker, weight in target.weights.items():
        i = index.get(ticker)
        if i is not None:
            for c, name in enumerate(("equity", "bond", "commodity", "cash")):
                shares[name] += weight * float(exposures.asset_class[c, i])
    return shares


# ---------------------------------------------------------------- results


def _book(prep: Prepared) -> Book:
    return Book(
        prices=prep.prices,
        shares0=prep.shares0,
        account_of=prep.slot_account,
        asset_of=prep.slot_asset,
        can_buy=prep.can_buy if prep.buy_open is None else prep.can_buy & prep.buy_open,
        can_sell=prep.can_sell if prep.sell_open is None else prep.can_sell & prep.sell_open,
        cost_rate=prep.cost_rate,
        cash_start=prep.cash_start,
        cash_change=prep.cash_change,
        value=prep.value,
        n_assets=len(prep.universe),
        cash_in=prep.cash_in(),
        cash_out=prep.cash_out(),
        buy_counted=prep.location.buy_counted,
        sell_counted=prep.location.sell_counted,
        sellable=prep.sellable,
    )


def _allowance(prep: Prepared, cont: Metrics) -> Allowance:
    lim = prep.limits
    return Allowance(
        vol=max(0.0, cont.volatility_max - lim.vol_cap),
        sectors=np.clip(cont.sectors - lim.max_sector, 0.0, None),
        financials=max(0.0, lim.min_financials - float(cont.sectors[4])) if cont.equity > 1e-9 else 0.0,
        small=max(0.0, lim.min_small_cap - cont.small) if cont.equity > 1e-9 else 0.0,
        names=np.clip(cont.names - lim.max_single_stock, 0.0, None),
        turnover=max(0.0, cont.turnover - lim.max_turnover),
    )


@dataclass(frozen=True)
class Rounded:
    """Tradable orders (shares per slot) and where they leave the portfolio."""

    q: np.ndarray  # (K,) shares to trade, + buy / - sell
    relief: np.ndarray  # (m,) USD of the withdrawal not raised
    withdrawal: np.ndarray  # (m,) USD asked for
    steps: int  # moves of the rounding repair
    dropped: int  # trades under the minimum size left out
    cont: Metrics  # the solver's (continuous) portfolio
    cash_after: np.ndarray  # (m,) USD
    total_after: float  # USD
    w_before: np.ndarray  # (n,)
    w_after: np.ndarray  # (n,)
    before: Metrics
    after: Metrics


def round_orders(request: RebalanceRequest, prep: Prepared, solution: Solution) -> Rounded:
    """Round the solver's holdings to orders (whole shares unless fractional), repair the limits the rounding
    broke, make sure cash stays >= 0, and measure the portfolio before and after."""
    options = request.options
    book = _book(prep)
    V = prep.value
    q_cont = solution.x[prep.slot_asset, prep.slot_account] * V / prep.prices - prep.shares0
    withdrawal = np.clip(-prep.cash_change, 0.0, None)
    relief = np.minimum(solution.relief * V, withdrawal)
    w_cont = solution.w / max(solution.total, 1e-12)
    cont = measure(w_cont, prep.risk, prep.exposures, book.turnover(q_cont), prep.risk_sample)
    q, _ = initial_round(book, q_cont, fractional=options.fractional, min_trade_usd=prep.min_order)
    # the repair holds the cap on the estimate that binds at the solver's portfolio (the larger of the two, where
    # it is near the cap; far below it the volatility term is 0 either way and the smaller model is cheaper)
    near_cap = cont.volatility_sample > prep.limits.vol_cap - REPAIR_VOL_MARGIN
    repair_risk = prep.risk_sample.model() if near_cap and cont.volatility_sample > cont.volatility else prep.risk
    repairer = Repairer(book, repair_risk, prep.exposures, prep.limits, _allowance(prep, cont),
                        fractional=options.fractional, min_trade_usd=prep.min_order,
                        cash_drag=prep.costs.cash_drag)
    q, steps = repairer.repair(q, relief, q_cont, max_steps=4 * len(q) + 20)
    q, relief = ensure_cash(book, q, relief, withdrawal, fractional=options.fractional)
    if prep.tax_budget is not None:
        q, relief = _within_budget(book, prep, q, relief, withdrawal, fractional=options.fractional)
    cont_amount = np.abs(q_cont * prep.prices)
    dropped = int(((cont_amount >= 1.0) & (cont_amount < prep.min_order) & (q == 0)).sum())
    cash_after = book.cash_after(q, relief)
    dollars_after = book.asset_dollars(q)
    total_after = float(dollars_after.sum() + cash_after.sum())
    w_after = dollars_after / total_after
    after = measure(w_after, prep.risk, prep.exposures, book.turnover(q), prep.risk_sample)
    vb = prep.value_before if prep.value_before > 0 else 1.0
    w_before = book.asset_dollars(np.zeros_like(q)) / vb
    before = measure(w_before, prep.risk, prep.exposures, sample=prep.risk_sample)
    return Rounded(q, relief, withdrawal, steps, dropped, cont, cash_after, total_after, w_before, w_after,
                   before, after)


def _within_budget(book: Book, prep: Prepared, q: np.ndarray, relief: np.ndarray, withdrawal: np.ndarray, *,
                   fractional: bool) -> tuple[np.ndarray, np.ndarray]:
    """The rounded trades with the tax budget enforced (engine.taxplan.trim_to_budget), the buys the trimmed
    sells funded trimmed too (cash >= 0), and no buy left under the minimum order."""
    assert prep.tax_budget is not None
    trimmed = trim_to_budget(q, lots=prep.lots, prices=prep.prices, budget=prep.tax_budget, min_order=prep.min_order,
                             fractional=fractional)
    if np.array_equal(trimmed, q):
        return q, relief
    trimmed, relief = ensure_cash(book, trimmed, relief, withdrawal, fractional=fractional)
    trimmed[(trimmed > 0) & (trimmed * prep.prices < prep.min_order)] = 0.0
    return trimmed, relief


def _relaxations(request: RebalanceRequest, prep: Prepared, r: Rounded, est_taxes: float,
                 runs: list[BudgetRun]) -> list[Relaxation]:
    options = request.options

    def cause(b: Breach) -> Cause:
        return cause_of(b, prep, r.cont, options, est_taxes=est_taxes,
                        by_budget=budget_cause(b, r.cont, prep, options, runs), budget_bound=bool(runs))

    relaxations = [Relaxation(b.limit, b.requested, b.achieved,
                              relaxation_message(b, cause(b)) + _both_estimates(b.limit, r.after))
                   for b in breaches(r.after, prep.limits, prep.exposures)]
    unraised = float(r.relief.sum())
    if unraised > 0.005:
        requested = float(r.withdrawal.sum())
        why = withdrawal_cause(prep, options, [int(a) for a in np.nonzero(r.relief > 0.005)[0]])
        relaxations.append(Relaxation("cash_withdrawal", requested, requested - unraised,
                                      withdrawal_message(requested, requested - unraised, why)))
    return relaxations


def _both_estimates(limit: str, after: Metrics) -> str:
    """For the volatility cap: both estimates it is held to, in plain words (else nothing)."""
    if limit != "volatility_cap":
        return ""
    return (f" Volatility after: {after.volatility:.1%} on the risk model, {after.volatility_sample:.1%} on the "
            f"plain 3-year sample covariance; the cap applies to the larger.")


def _warnings(prep: Prepared, solution: Solution, r: Rounded,
              trades: list[Trade], idle: str | None) -> list[str]:
    warnings = list(prep.warnings)
    bought = {t.ticker for t in trades if t.action == "buy"}
    warnings += [w for w in prep.risk.warnings if w.split(" ", 1)[0] in bought - prep.held]
    if r.dropped:
        warnings.append(f"{r.dropped} trade(s) under the {usd(prep.min_order)} minimum were left out.")
    if solution.report.attempts:
        failed = "; ".join(solution.report.attempts)
        warnings.append(f"Solved with the fallback solver {solution.report.solver} ({failed}).")
    if idle:
        warnings.append(idle)
    return warnings


def finish(
    request: RebalanceRequest, prep: Prepared, solution: Solution, timings: dict[str, float],
    runs: list[BudgetRun] | None = None,
) -> RebalanceResult:
    """Round to tradable orders, measure, explain, and assemble the result. `runs`: the other tax budgets'
    solutions when the budget binds (engine.tradeoffs)."""
    options = request.options
    runs = runs or []
    r = round_orders(request, prep, solution)
    full = prep.exposures_full
    vb = prep.value_before if prep.value_before > 0 else 1.0
    snap_before = replace(snapshot_from_model(r.w_before, float(prep.cash_start.sum()) / vb, full, r.before.volatility),
                          volatility_sample=r.before.volatility_sample)
    snap_after = replace(snapshot_from_model(r.w_after, float(r.cash_after.sum()) / r.total_after, full,
                                             r.after.volatility), volatility_sample=r.after.volatility_sample)
    ctx = Context(
        limits=prep.limits,
        exposures=full,
        risk=prep.risk,
        value=prep.value,
        dollars=r.w_before * vb,
        w_after=r.w_after,
        volatility_after=r.after.volatility,
        target=prep.target,
        cash_change=float(prep.cash_change.sum()),
        securities=request.market.securities,
        account_types=frozenset(prep.account_types),
    )
    trades = _trades(prep, r.q, ctx)
    est_costs = round(sum(t.est_cost for t in trades), 2)
    est_taxes = round(sum(t.est_tax for t in trades), 2)  # the plan's netted tax (engine.tax.allocate_taxes)
    relaxations = _relaxations(request, prep, r, est_taxes, runs)
    idle = idle_cash_warning(prep, options, solution, r.cont, r.cash_after, r.total_after)
    summary = summary_sentence(
        trades=trades,
        value=prep.value,
        before=r.before,
        after=r.after,
        est_costs=est_costs,
        est_taxes=est_taxes,
        relaxed=[x.limit for x in relaxations],
        profile=prep.profile.name,
        cash_before=float(prep.cash_start.sum()) / vb if idle else None,
        cash_after=float(r.cash_after.sum()) / r.total_after if idle else None,
    )
    timings["repair_steps"] = float(r.steps)
    return RebalanceResult(
        as_of=request.market.as_of,
        profile=prep.profile.name,
        status="relaxed" if relaxations else "optimal",
        value=round(prep.value, 2),
        trades=trades,
        before=snap_before,
        after=snap_after,
        warnings=_warnings(prep, solution, r, trades, idle),
        relaxations=relaxations,
        summary=summary,
        est_costs=est_costs,
        est_taxes=est_taxes,
        timings_ms=timings,
        tradeoffs=tradeoff_rows(prep, options, runs, est_taxes, r.cont),
        notes=[*tax_notes(prep, r.q, _cont_sells(prep, solution)),
               *location_notes(trades, dict(zip(prep.accounts, prep.account_types, strict=True)), prep.location,
                               request.market.securities)],
    )


def _cont_sells(prep: Prepared, solution: Solution) -> np.ndarray:
    """(K,) shares the solver sold in each slot."""
    q = solution.x[prep.slot_asset, prep.slot_account] * prep.value / prep.prices - prep.shares0
    return np.clip(-q, 0.0, None)


def _trades(prep: Prepared, q: np.ndarray, ctx: Context) -> list[Trade]:
    """The orders of q (K,) shares; each sell's est_tax is its share of the plan's netted tax (engine.tax)."""
    sold = realisations(prep.lots, q)
    shares_of_tax = allocate_taxes(list(sold.values()), prep.costs)
    sold = {j: replace(r, tax=tax) for (j, r), tax in zip(sold.items(), shares_of_tax, strict=True)}
    trades: list[Trade] = []
    for j in np.nonzero(np.abs(q) > 1e-9)[0]:
        ticker = prep.slot_ticker[j]
        action = "buy" if q[j] > 0 else "sell"
        shares = float(abs(q[j]))
        price = float(prep.prices[j])
        amount = shares * price
        account_type = prep.account_types[prep.slot_account[j]]
        realisation = sold.get(int(j)) if action == "sell" else None
        reason = trade_reason(ctx, ticker=ticker, asset=int(prep.slot_asset[j]), action=action, amount=amount,
                              account_type=account_type, realisation=realisation,
                              basis_known=bool(prep.basis_known[j]))
        trades.append(Trade(
            ticker=ticker,
            account=prep.accounts[prep.slot_account[j]],
            action=action,
            shares=round(shares) if abs(shares - round(shares)) < 1e-9 else shares,
            price=price,
            amount=amount,
            reason=reason,
            est_cost=amount * float(prep.cost_rate[j]),
            est_tax=realisation.tax if realisation else 0.0,
            realized_gain=realisation.gain if realisation else 0.0,
        ))
    trades.sort(key=lambda t: (t.action != "sell", -t.amount))
    return trades
