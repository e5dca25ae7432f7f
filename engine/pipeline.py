"""`rebalance(request, snapshot=...)`: prepare, build the problem data, solve, round, explain.

Money is USD; inside the optimizer every amount is a fraction of V, the portfolio value after the
cash change (priced holdings + cash in every account + the change). Unpriced holdings are held fixed
and left out of V and of every weight (reported in warnings).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from engine.explain import (
    Context,
    cause_of,
    idle_cash_warning,
    relaxation_message,
    summary_sentence,
    top_name,
    trade_reason,
    usd,
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
    Metrics,
    base_limit_rows,
    breaches,
    exposure_base,
    measure,
    name_limit_rows,
    names_that_can_bind,
)
from engine.market import MarketSnapshot
from engine.prepare import Prepared, prepare
from engine.problem import ProblemData, Solution
from engine.rounding import Allowance, Book, Repairer, ensure_cash, initial_round
from engine.shape import annotate, shape_plan
from engine.target import Target
from engine.tax import TAX_PIECES, realise, tax_curve
from engine.types import RebalanceRequest, RebalanceResult, Relaxation, Trade

ASSET_CLASS_EMPHASIS = 1.5  # asset-class gaps count this much more than sector/size gaps
CASH_MAX = 2.0  # no upper bound on cash in practice (fractions of V)
BUY_MAX = 2.0


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
    shaped = shape_plan(request, prep, data, cache)  # the band, the solve, the restricted re-solve
    solution = shaped.solution
    timings["solve"] = (time.perf_counter() - mark) * 1e3
    timings["solver"] = solution.report.solve_ms
    timings["resolves"] = float(shaped.resolves)
    mark = time.perf_counter()
    result = annotate(finish(request, shaped.prep, solution, timings), shaped)
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
        sell_max=matrix(np.where(prep.can_sell, x0, 0.0)),
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
        buy_budget=prep.limits.max_turnover + prep.cash_in() / V,
        sell_budget=prep.limits.max_turnover + prep.cash_out() / V,
        vol_penalty=PENALTY_VOLATILITY,
        turnover_penalty=PENALTY_TURNOVER,
        relief_penalty=PENALTY_WITHDRAWAL,
    )


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
    )


def _allowance(prep: Prepared, cont: Metrics) -> Allowance:
    lim = prep.limits
    return Allowance(
        vol=max(0.0, cont.volatility - lim.vol_cap),
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
    cont = measure(w_cont, prep.risk, prep.exposures, book.turnover(q_cont))
    q, _ = initial_round(book, q_cont, fractional=options.fractional, min_trade_usd=prep.min_order)
    repairer = Repairer(book, prep.risk, prep.exposures, prep.limits, _allowance(prep, cont),
                        fractional=options.fractional, min_trade_usd=prep.min_order,
                        cash_drag=prep.costs.cash_drag)
    q, steps = repairer.repair(q, relief, q_cont, max_steps=4 * len(q) + 20)
    q, relief = ensure_cash(book, q, relief, withdrawal, fractional=options.fractional)
    cont_amount = np.abs(q_cont * prep.prices)
    dropped = int(((cont_amount >= 1.0) & (cont_amount < prep.min_order) & (q == 0)).sum())
    cash_after = book.cash_after(q, relief)
    dollars_after = book.asset_dollars(q)
    total_after = float(dollars_after.sum() + cash_after.sum())
    w_after = dollars_after / total_after
    after = measure(w_after, prep.risk, prep.exposures, book.turnover(q))
    vb = prep.value_before if prep.value_before > 0 else 1.0
    w_before = book.asset_dollars(np.zeros_like(q)) / vb
    before = measure(w_before, prep.risk, prep.exposures)
    return Rounded(q, relief, withdrawal, steps, dropped, cont, cash_after, total_after, w_before, w_after,
                   before, after)


def _relaxations(request: RebalanceRequest, prep: Prepared, r: Rounded) -> list[Relaxation]:
    options = request.options
    relaxations = [
        Relaxation(b.limit, b.requested, b.achieved, relaxation_message(b, cause_of(b, prep, r.cont, options)))
        for b in breaches(r.after, prep.limits, prep.exposures)
    ]
    unraised = float(r.relief.sum())
    if unraised > 0.005:
        requested = float(r.withdrawal.sum())
        why = "buy-only mode allows no sales" if options.buy_only else "the holdings there may not be sold"
        relaxations.append(Relaxation("cash_withdrawal", requested, requested - unraised,
                                      withdrawal_message(requested, requested - unraised, why)))
    return relaxations


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
    request: RebalanceRequest, prep: Prepared, solution: Solution, timings: dict[str, float]
) -> RebalanceResult:
    """Round to tradable orders, measure, explain, and assemble the result."""
    options = request.options
    r = round_orders(request, prep, solution)
    relaxations = _relaxations(request, prep, r)
    full = prep.exposures_full
    vb = prep.value_before if prep.value_before > 0 else 1.0
    snap_before = snapshot_from_model(r.w_before, float(prep.cash_start.sum()) / vb, full, r.before.volatility)
    snap_after = snapshot_from_model(r.w_after, float(r.cash_after.sum()) / r.total_after, full, r.after.volatility)
    ctx = Context(
        limits=prep.limits,
        before=r.before,
        after=r.after,
        exposures=prep.exposures,
        bonds_before=snap_before.asset_class.get("bond", 0.0),
        bonds_after=snap_after.asset_class.get("bond", 0.0),
        target=prep.target,
        cash_change=float(prep.cash_change.sum()),
        securities=request.market.securities,
        top_name_before=top_name(full, r.w_before),
        top_name_after=top_name(full, r.w_after),
    )
    trades = _trades(prep, r.q, ctx)
    est_costs = round(sum(t.est_cost for t in trades), 2)
    est_taxes = round(sum(t.est_tax for t in trades), 2)
    idle = idle_cash_warning(prep, options, solution, r.cont, r.cash_after, r.total_after)
    summary = summary_sentence(
        n_sells=sum(t.action == "sell" for t in trades),
        n_buys=sum(t.action == "buy" for t in trades),
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
    )


def _trades(prep: Prepared, q: np.ndarray, ctx: Context) -> list[Trade]:
    trades: list[Trade] = []
    for j in np.nonzero(np.abs(q) > 1e-9)[0]:
        ticker = prep.slot_ticker[j]
        action = "buy" if q[j] > 0 else "sell"
        shares = float(abs(q[j]))
        price = float(prep.prices[j])
        amount = shares * price
        account_type = prep.account_types[prep.slot_account[j]]
        realisation = realise(prep.lots[j], shares) if action == "sell" and prep.lots[j] else None
        reason = trade_reason(ctx, ticker=ticker, asset=int(prep.slot_asset[j]), action=action,
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
