"""`rebalance(request)`: validate, build the problem data, solve, round, explain.

Money is USD; inside the optimizer every amount is a fraction of V, the portfolio value after the
cash change (priced holdings + cash in every account + the change). Unpriced holdings are held fixed
and left out of V and of every weight (reported in warnings).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from engine.errors import DataError
from engine.explain import (
    Cause,
    Context,
    idle_cash_message,
    pct,
    relaxation_message,
    summary_sentence,
    trade_reason,
    usd,
    withdrawal_message,
)
from engine.exposures import (
    GICS_SECTORS,
    SIZES,
    ExposureCatalog,
    ExposureModel,
    exposure_models,
    snapshot_from_model,
)
from engine.limits import (
    BASE_BOND,
    BASE_COMMODITY,
    BASE_EQUITY,
    BASE_ROWS,
    BASE_SIZES,
    PENALTY_TURNOVER,
    PENALTY_VOLATILITY,
    PENALTY_WITHDRAWAL,
    TOLERANCE,
    Breach,
    Limits,
    Metrics,
    base_limit_rows,
    breaches,
    exposure_base,
    measure,
    name_limit_rows,
    names_that_can_bind,
)
from engine.menu import one_fund_per_role, views_vehicles
from engine.problem import ProblemCache, ProblemData, Solution, solve_problem
from engine.profiles import DEFAULT_COSTS, CostModel, Profile, profile_get, tax_drag
from engine.risk import RiskModel, estimate_risk_model
from engine.rounding import Allowance, Book, Repairer, ensure_cash, initial_round
from engine.target import Target, build_target, target_key
from engine.tax import TAX_PIECES, Lot, holding_lots, is_taxable, realise, tax_curve
from engine.types import (
    AccountCash,
    MarketData,
    Options,
    Position,
    RebalanceRequest,
    RebalanceResult,
    Relaxation,
    Trade,
)

ASSET_CLASS_EMPHASIS = 1.5  # asset-class gaps count this much more than sector/size gaps
CASH_MAX = 2.0  # no upper bound on cash in practice (fractions of V)
IDLE_CASH_SHARE = 0.005  # cash kept beyond what the person had, over this share of V (and over what no order can
# invest: the cheapest buyable share or the minimum trade in each account), is explained in a warning
BUY_MAX = 2.0


@dataclass
class Prepared:
    """Validated inputs of one run, as arrays over accounts (m), assets (n) and slots (K)."""

    profile: Profile
    limits: Limits
    costs: CostModel
    accounts: list[str]
    account_types: list[str]
    cash_start: np.ndarray  # (m,) USD
    cash_change: np.ndarray  # (m,) USD, + add / - withdrawal
    value: float  # V (USD)
    value_before: float  # current value (USD), before the cash change
    universe: list[str]
    slot_ticker: list[str]
    slot_account: np.ndarray
    slot_asset: np.ndarray
    prices: np.ndarray
    shares0: np.ndarray
    can_buy: np.ndarray
    can_sell: np.ndarray
    cost_rate: np.ndarray
    holding_drag: np.ndarray  # (K,) yearly tax drag per unit held (fraction of value)
    lots: list[list[Lot]]
    basis_known: np.ndarray
    risk: RiskModel
    exposures: ExposureModel  # optimizer rows (names thresholded at the single-stock cap)
    exposures_full: ExposureModel  # every look-through name (snapshots)
    target: Target
    target_vec: np.ndarray  # (n,)
    warnings: list[str] = field(default_factory=list)
    held: set[str] = field(default_factory=set)


def rebalance(request: RebalanceRequest, *, cache: ProblemCache | None = None) -> RebalanceResult:
    """Suggest trades for `request` (see DESIGN.md "The optimizer").

    Never raises for conflicting limits: they are relaxed with penalised slack and reported
    (status "relaxed"). Raises `DataError` for unusable inputs and `OptimizationError` only when no
    solver certifies any solution. Pass one `ProblemCache` per process to reuse compiled problems.
    Sale proceeds are reinvested; cash kept beyond what the person had (more than a rounding remainder)
    gets a warning saying why (see `_idle_cash_warning`) and a mention in the summary.
    """
    timings: dict[str, float] = {}
    start = time.perf_counter()
    cache = cache if cache is not None else ProblemCache()
    prep = prepare(request, cache)
    timings["prepare"] = (time.perf_counter() - start) * 1e3
    data = problem_data(prep)
    mark = time.perf_counter()
    solution = solve_problem(data, cache)
    timings["solve"] = (time.perf_counter() - mark) * 1e3
    timings["solver"] = solution.report.solve_ms
    mark = time.perf_counter()
    result = finish(request, prep, solution, timings)
    timings["finish"] = (time.perf_counter() - mark) * 1e3
    timings["total"] = (time.perf_counter() - start) * 1e3
    return result


# ---------------------------------------------------------------- preparation


def _check_number(value: float, what: str, field_name: str) -> float:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DataError(f"{what}: {field_name} must be a finite number, got {value!r}", field=field_name)
    return float(value)


def _validate(request: RebalanceRequest) -> tuple[list[Position], list[AccountCash]]:
    positions: list[Position] = []
    for p in request.positions:
        if not isinstance(p.ticker, str) or not p.ticker.strip():
            raise DataError(f"a position in account {p.account!r} has no ticker", field="ticker")
        where = f"{p.ticker} in {p.account}"
        shares = _check_number(p.shares, where, "shares")
        if shares < 0:
            raise DataError(f"{where}: shares must be >= 0 (short positions are not supported)", field="shares")
        if p.price is not None and _check_number(p.price, where, "price") <= 0:
            raise DataError(f"{where}: price must be > 0", field="price")
        if p.cost_basis is not None and _check_number(p.cost_basis, where, "cost_basis") < 0:
            raise DataError(f"{where}: cost_basis must be >= 0", field="cost_basis")
        if shares > 0:
            positions.append(p)
    for c in request.cash:
        if _check_number(c.cash, f"cash in {c.account}", "cash") < 0:
            raise DataError(f"cash in {c.account}: must be >= 0", field="cash")
    o = request.options
    _check_number(o.cash_change, "options", "cash_change")
    if o.max_turnover is not None and not 0 <= _check_number(o.max_turnover, "options", "max_turnover") <= 2:
        raise DataError("options: max_turnover must be between 0 and 2 (a fraction of value)", field="max_turnover")
    if _check_number(o.min_trade_usd, "options", "min_trade_usd") < 0:
        raise DataError("options: min_trade_usd must be >= 0", field="min_trade_usd")
    return positions, list(request.cash)


def _accounts(
    positions: Sequence[Position], cash: Sequence[AccountCash], warnings: list[str]
) -> tuple[list[str], list[str], np.ndarray]:
    names: list[str] = []
    types: dict[str, str] = {}
    balances: dict[str, float] = {}
    for account, account_type in [(c.account, c.account_type) for c in cash] + [
        (p.account, p.account_type) for p in positions
    ]:
        if account not in types:
            names.append(account)
            types[account] = account_type
        elif types[account] != account_type:
            warnings.append(
                f"Account {account} is listed as both {types[account]} and {account_type}: treated as {types[account]}."
            )
            types[account] = types[account]
    for c in cash:
        balances[c.account] = balances.get(c.account, 0.0) + float(c.cash)
    return names, [types[a] for a in names], np.array([balances.get(a, 0.0) for a in names])


def _market_key(market: MarketData, cache: ProblemCache) -> tuple:
    """A fingerprint of the market data (prices hashed once per frame object)."""
    prices = market.prices

    def build() -> tuple:
        digest = hashlib.blake2b(digest_size=16)
        digest.update(np.ascontiguousarray(prices.to_numpy(dtype=float)).tobytes())
        digest.update("|".join(map(str, prices.columns)).encode())
        digest.update(str(prices.index[-1] if len(prices) else "").encode())
        return (market.as_of, prices.shape, digest.hexdigest())

    key = cache.fingerprint(prices, build)
    refs = (id(market.securities), id(market.etf_sectors), id(market.etf_holdings))
    cache.memo(("market-refs", refs), lambda: (market.securities, market.etf_sectors, market.etf_holdings))
    return (*key, refs)


def _last_prices(market: MarketData, cache: ProblemCache, key: tuple) -> Mapping[str, float]:
    def build() -> dict[str, float]:
        frame = market.prices
        frame = frame.loc[frame.index <= pd.Timestamp(market.as_of)] if len(frame) else frame
        last = frame.ffill().iloc[-1] if len(frame) else pd.Series(dtype=float)
        return {str(t): float(v) for t, v in last.items() if pd.notna(v) and v > 0}

    return cache.memo(("last-prices", key), build)


def prepare(request: RebalanceRequest, cache: ProblemCache) -> Prepared:
    """Validate and index the request; build (or reuse) the risk model, exposures and target."""
    positions, cash = _validate(request)
    options = request.options
    profile = profile_get(options.profile)
    limits = Limits.for_profile(profile, options.max_turnover)
    costs = DEFAULT_COSTS
    warnings: list[str] = []
    market = request.market
    keep = frozenset(t.strip().upper() for t in options.keep)

    priced: list[Position] = []
    unpriced: dict[tuple[str, str], float] = {}
    price_of: dict[str, float] = {}
    for p in positions:
        if p.price is not None:
            price_of.setdefault(p.ticker.strip().upper(), float(p.price))
    for p in positions:
        ticker = p.ticker.strip().upper()
        if ticker in price_of:
            priced.append(p)
        else:
            unpriced[(ticker, p.account)] = unpriced.get((ticker, p.account), 0.0) + float(p.shares)
    for (ticker, account), shares in unpriced.items():
        warnings.append(
            f"{ticker} ({shares:g} shares in {account}) has no price: held as is and left out of the value, "
            f"the weights and the limits."
        )
    accounts, account_types, cash_start = _accounts(priced, cash, warnings)
    value_before = float(sum(p.shares * price_of[p.ticker.strip().upper()] for p in priced) + cash_start.sum())
    change = float(options.cash_change)
    if not accounts:
        if change <= 0:
            raise DataError("nothing to rebalance: no priced positions and no cash", field="positions")
        accounts, account_types, cash_start = ["Taxable"], ["taxable"], np.zeros(1)
    if value_before <= 0 and change <= 0:
        raise DataError("nothing to rebalance: no priced positions and no cash", field="positions")
    if change < 0 and -change > value_before + 1e-9:
        raise DataError(
            f"the withdrawal of {usd(-change)} is more than the portfolio's priced value {usd(value_before)}",
            field="cash_change",
        )
    value = value_before + change
    if value <= 0:
        raise DataError("the portfolio has no value left after the withdrawal", field="cash_change")
    cash_change = np.zeros(len(accounts))
    taxable_first = next((i for i, t in enumerate(account_types) if t == "taxable"), 0)
    cash_change[taxable_first] = change

    key = _market_key(market, cache)
    last = _last_prices(market, cache, key)
    menu: list[str] = []
    missing_menu: list[str] = []
    for t in request.menu:
        ticker = t.strip().upper()
        if ticker in menu:
            continue
        (menu if ticker in last else missing_menu).append(ticker)
    if missing_menu:
        warnings.append(f"Menu funds without a price were skipped: {', '.join(missing_menu)}.")
    held_order: list[str] = []
    for p in priced:
        ticker = p.ticker.strip().upper()
        if ticker not in held_order:
            held_order.append(ticker)
    menu = one_fund_per_role(menu, held=held_order, securities=market.securities, etf_sectors=market.etf_sectors,
                             preferred=views_vehicles(request.views if options.use_views else None))
    universe = held_order + [t for t in menu if t not in held_order]
    n = len(universe)
    index = {t: i for i, t in enumerate(universe)}
    risk = cache.memo(("risk", key, tuple(universe)),
                      lambda: estimate_risk_model(market.prices, universe, market.securities))
    catalog = cache.memo(("exposure-catalog", key), lambda: ExposureCatalog(market))
    exposures, exposures_full = cache.memo(
        ("exposures", key, tuple(universe), limits.max_single_stock),
        lambda: exposure_models(universe, market, name_threshold=limits.max_single_stock, catalog=catalog),
    )
    views = request.views if options.use_views else None
    target = cache.memo(("target", key, target_key(profile, views, menu)),
                        lambda: build_target(profile=profile, views=views, menu=menu, market=market))
    target_vec = np.zeros(n)
    for ticker, weight in target.weights.items():
        if ticker in index:
            target_vec[index[ticker]] += weight
    if not target.weights:  # nothing on the menu to build a target from: hold what is there, limits only
        for p in priced:
            target_vec[index[p.ticker.strip().upper()]] += p.shares * price_of[p.ticker.strip().upper()] / value

    menu_set = set(menu)
    slot_ticker: list[str] = []
    slot_account: list[int] = []
    lots: list[list[Lot]] = []
    shares0: list[float] = []
    basis_known: list[bool] = []
    unknown_basis: list[str] = []
    unknown_dates: list[str] = []
    by_slot: dict[tuple[int, str], list[Position]] = {}
    account_index = {a: i for i, a in enumerate(accounts)}
    for p in priced:
        by_slot.setdefault((account_index[p.account], p.ticker.strip().upper()), []).append(p)
    for a, account in enumerate(accounts):
        held_here = [t for (acc, t) in by_slot if acc == a]
        for ticker in held_here + [t for t in menu if (a, t) not in by_slot]:  # held, then buyable
            slot_positions = by_slot.get((a, ticker), [])
            slot_ticker.append(ticker)
            slot_account.append(a)
            shares0.append(float(sum(p.shares for p in slot_positions)))
            if slot_positions and is_taxable(account_types[a]):
                slot_lots = holding_lots(slot_positions, price=price_of.get(ticker) or last.get(ticker, 0.0),
                                         as_of=market.as_of, costs=costs)
                if not all(lot.basis_known for lot in slot_lots):
                    unknown_basis.append(f"{ticker} ({account})")
                if not all(lot.date_known for lot in slot_lots):
                    unknown_dates.append(f"{ticker} ({account})")
            else:
                slot_lots = []
            lots.append(slot_lots)
            basis_known.append(all(lot.basis_known for lot in slot_lots))
    if unknown_basis:
        warnings.append(
            f"Cost basis unknown for {', '.join(unknown_basis)}: taxes on sales are estimated as if half the value "
            f"were gain."
        )
    if unknown_dates:
        warnings.append(f"Purchase date unknown for {', '.join(unknown_dates)}: gains are treated as long-term.")
    for a, account_type in enumerate(account_types):
        if account_type not in ("taxable", "traditional_ira", "roth_ira", "401k"):
            warnings.append(f"Account {accounts[a]} has type {account_type!r}: sales there are taxed like a taxable "
                            f"account (a cautious assumption).")
    prices = np.array([price_of.get(t) or last[t] for t in slot_ticker])
    can_buy = np.array([t in menu_set for t in slot_ticker])
    fixed = frozenset(t.strip().upper() for t in options.fixed)
    can_sell = np.array([not options.buy_only and t not in keep and t not in fixed for t in slot_ticker])
    cost_rate = np.array([_cost_rate(t, market, costs) for t in slot_ticker])
    holding_drag = np.array([
        tax_drag(_asset_class(t, market), is_taxable(account_types[a]), costs)
        for t, a in zip(slot_ticker, slot_account, strict=True)
    ])
    held = set(held_order)
    warnings += [w for w in exposures.warnings if w.split(" ", 1)[0] in held]
    warnings += [w for w in risk.warnings if w.split(" ", 1)[0] in held]
    warnings += list(target.warnings)
    return Prepared(
        profile=profile,
        limits=limits,
        costs=costs,
        accounts=accounts,
        account_types=account_types,
        cash_start=cash_start,
        cash_change=cash_change,
        value=value,
        value_before=value_before,
        universe=universe,
        slot_ticker=slot_ticker,
        slot_account=np.array(slot_account, dtype=int),
        slot_asset=np.array([index[t] for t in slot_ticker], dtype=int),
        prices=prices,
        shares0=np.array(shares0),
        can_buy=can_buy,
        can_sell=can_sell,
        cost_rate=cost_rate,
        holding_drag=holding_drag,
        lots=lots,
        basis_known=np.array(basis_known, dtype=bool),
        risk=risk,
        exposures=exposures,
        exposures_full=exposures_full,
        target=target,
        target_vec=target_vec,
        warnings=warnings,
        held=held,
    )


def _asset_class(ticker: str, market: MarketData) -> str:
    info = market.securities.get(ticker)
    return info.asset_class if info is not None and info.asset_class else "equity"


def _cost_rate(ticker: str, market: MarketData, costs: CostModel) -> float:
    info = market.securities.get(ticker)
    if info is None:
        spread = costs.spread_bps_other
    elif info.kind == "etf":
        spread = costs.spread_bps_etf
    elif info.kind == "stock" and info.size in ("large", "mid"):
        spread = costs.spread_bps_stock
    else:
        spread = costs.spread_bps_other
    return (costs.commission_bps + spread) / 1e4


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
        buy_budget=prep.limits.max_turnover + _cash_in(prep) / V,
        sell_budget=prep.limits.max_turnover + _cash_out(prep) / V,
        vol_penalty=PENALTY_VOLATILITY,
        turnover_penalty=PENALTY_TURNOVER,
        relief_penalty=PENALTY_WITHDRAWAL,
    )


def _cash_in(prep: Prepared) -> float:
    """USD that buys may use without counting as turnover: cash on hand after the cash change."""
    return max(0.0, float(prep.cash_start.sum() + prep.cash_change.sum()))


def _cash_out(prep: Prepared) -> float:
    """USD that sells may raise without counting as turnover: the withdrawal."""
    return float(np.clip(-prep.cash_change, 0.0, None).sum())


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
        can_buy=prep.can_buy,
        can_sell=prep.can_sell,
        cost_rate=prep.cost_rate,
        cash_start=prep.cash_start,
        cash_change=prep.cash_change,
        value=prep.value,
        n_assets=len(prep.universe),
        cash_in=_cash_in(prep),
        cash_out=_cash_out(prep),
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


def finish(
    request: RebalanceRequest, prep: Prepared, solution: Solution, timings: dict[str, float]
) -> RebalanceResult:
    """Round to tradable orders, measure, explain, and assemble the result."""
    options = request.options
    book = _book(prep)
    V = prep.value
    q_cont = solution.x[prep.slot_asset, prep.slot_account] * V / prep.prices - prep.shares0
    withdrawal = np.clip(-prep.cash_change, 0.0, None)
    relief = np.minimum(solution.relief * V, withdrawal)
    cont_turnover = book.turnover(q_cont)
    w_cont = solution.w / max(solution.total, 1e-12)
    cont = measure(w_cont, prep.risk, prep.exposures, cont_turnover)
    allowance = _allowance(prep, cont)
    q, _ = initial_round(book, q_cont, fractional=options.fractional, min_trade_usd=options.min_trade_usd)
    repairer = Repairer(book, prep.risk, prep.exposures, prep.limits, allowance,
                        fractional=options.fractional, min_trade_usd=options.min_trade_usd,
                        cash_drag=prep.costs.cash_drag)
    q, steps = repairer.repair(q, relief, q_cont, max_steps=4 * len(q) + 20)
    q, relief = ensure_cash(book, q, relief, withdrawal, fractional=options.fractional)
    cont_amount = np.abs(q_cont * prep.prices)
    dropped = int(((cont_amount >= 1.0) & (cont_amount < options.min_trade_usd) & (q == 0)).sum())

    cash_after = book.cash_after(q, relief)
    dollars_after = book.asset_dollars(q)
    total_after = float(dollars_after.sum() + cash_after.sum())
    w_after = dollars_after / total_after
    turnover = book.turnover(q)
    after = measure(w_after, prep.risk, prep.exposures, turnover)
    dollars_before = book.asset_dollars(np.zeros_like(q))
    vb = prep.value_before if prep.value_before > 0 else 1.0
    w_before = dollars_before / vb
    before = measure(w_before, prep.risk, prep.exposures)

    found = breaches(after, prep.limits, prep.exposures)
    relaxations = [
        Relaxation(b.limit, b.requested, b.achieved, relaxation_message(b, _cause(b, prep, cont, options)))
        for b in found
    ]
    unraised = float(relief.sum())
    if unraised > 0.005:
        requested = float(withdrawal.sum())
        why = "buy-only mode allows no sales" if options.buy_only else "the holdings there may not be sold"
        relaxations.append(Relaxation("cash_withdrawal", requested, requested - unraised,
                                      withdrawal_message(requested, requested - unraised, why)))

    full = prep.exposures_full
    snap_before = snapshot_from_model(w_before, float(prep.cash_start.sum()) / vb, full, before.volatility)
    snap_after = snapshot_from_model(w_after, float(cash_after.sum()) / total_after, full, after.volatility)
    top_before = _top_name(full, w_before)
    top_after = _top_name(full, w_after)
    ctx = Context(
        limits=prep.limits,
        before=before,
        after=after,
        exposures=prep.exposures,
        bonds_before=snap_before.asset_class.get("bond", 0.0),
        bonds_after=snap_after.asset_class.get("bond", 0.0),
        target=prep.target,
        cash_change=float(prep.cash_change.sum()),
        securities=request.market.securities,
        top_name_before=top_before,
        top_name_after=top_after,
    )
    trades = _trades(prep, q, ctx)
    est_costs = round(sum(t.est_cost for t in trades), 2)
    est_taxes = round(sum(t.est_tax for t in trades), 2)
    warnings = list(prep.warnings)
    bought = {t.ticker for t in trades if t.action == "buy"}
    warnings += [w for w in prep.risk.warnings if w.split(" ", 1)[0] in bought - prep.held]
    if dropped:
        warnings.append(f"{dropped} trade(s) under the {usd(options.min_trade_usd)} minimum were left out.")
    if solution.report.attempts:
        failed = "; ".join(solution.report.attempts)
        warnings.append(f"Solved with the fallback solver {solution.report.solver} ({failed}).")
    idle = _idle_cash_warning(prep, options, solution, cont, cash_after, total_after)
    if idle:
        warnings.append(idle)
    summary = summary_sentence(
        n_sells=sum(t.action == "sell" for t in trades),
        n_buys=sum(t.action == "buy" for t in trades),
        before=before,
        after=after,
        limits=prep.limits,
        est_costs=est_costs,
        est_taxes=est_taxes,
        relaxed=[r.limit for r in relaxations],
        profile=prep.profile.name,
        cash_before=float(prep.cash_start.sum()) / vb if idle else None,
        cash_after=float(cash_after.sum()) / total_after if idle else None,
    )
    timings["repair_steps"] = float(steps)
    return RebalanceResult(
        as_of=request.market.as_of,
        profile=prep.profile.name,
        status="relaxed" if relaxations else "optimal",
        value=round(V, 2),
        trades=trades,
        before=snap_before,
        after=snap_after,
        warnings=warnings,
        relaxations=relaxations,
        summary=summary,
        est_costs=est_costs,
        est_taxes=est_taxes,
        timings_ms=timings,
    )


def _idle_cash_warning(
    prep: Prepared, options: Options, solution: Solution, cont: Metrics, cash_after: np.ndarray, total_after: float
) -> str | None:
    """Plain words on cash kept beyond what the person had (cash added is to be invested; a withdrawal is
    raised by sales), or None when it is only a rounding remainder (see IDLE_CASH_SHARE).
    cash_after (m,) USD; total_after USD."""
    had = prep.cash_start
    extra = cash_after - had
    m = len(prep.accounts)
    uninvestable = np.full(m, np.inf)  # USD per account that no order could invest
    for a in range(m):
        buy = prep.can_buy & (prep.slot_account == a)
        if buy.any():
            share = 0.0 if options.fractional else float((prep.prices[buy] * (1 + prep.cost_rate[buy])).min())
            uninvestable[a] = max(float(options.min_trade_usd), share)
    tolerance = max(IDLE_CASH_SHARE * prep.value, float(uninvestable[np.isfinite(uninvestable)].sum()))
    if extra.sum() <= tolerance:
        return None
    lim = prep.limits
    target_cash = prep.target.cash
    solver_extra = float((solution.cash * prep.value - had).sum())
    stuck = [prep.accounts[a] for a in range(m) if not np.isfinite(uninvestable[a]) and extra[a] > 1.0]
    if stuck:
        why = f"nothing on the menu can be bought in {', '.join(stuck)}; add funds to the menu to invest it"
    elif cash_after.sum() <= target_cash * total_after + tolerance:
        why = f"the {prep.profile.name} target mix keeps {pct(target_cash)} of the portfolio in cash"
    elif solver_extra <= tolerance:
        how = "whole shares" if not options.fractional else "trade sizes"
        why = (f"rounding to {how} and the {usd(options.min_trade_usd)} minimum trade size, while keeping your "
               f"limits, left it uninvested; a next run would invest it")
    elif float(solution.buys.sum()) >= lim.max_turnover + _cash_in(prep) / prep.value - 1e-6:
        why = (f"the turnover limit of {pct(lim.max_turnover)} per run caps purchases (buys paid from sales count "
               f"toward it); a next run would invest it")
    elif cont.volatility >= lim.vol_cap - 1e-4:
        why = (f"holding it as cash is what keeps volatility within your {pct(lim.vol_cap)} cap with the funds on "
               f"the menu")
    else:
        why = "no purchase within your limits was worth its trading costs"
    return idle_cash_message(cash_usd=float(cash_after.sum()), share=float(cash_after.sum()) / total_after,
                             extra_usd=float(extra.sum()), had_usd=float(had.sum()), why=why)


def _top_name(model: ExposureModel, w: np.ndarray) -> tuple[str, float]:
    if not len(model.names):
        return ("", 0.0)
    values = model.names_matrix @ w
    i = int(np.argmax(values))
    return model.names[i], float(values[i])


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


def _relaxation(
    breach: Breach, prep: Prepared, cont: Metrics, options, q: np.ndarray, solution: Solution
) -> Relaxation:
    cause = _cause(breach, prep, cont, options)
    return Relaxation(breach.limit, breach.requested, breach.achieved, relaxation_message(breach, cause))


def _cause(breach: Breach, prep: Prepared, cont: Metrics, options) -> Cause:
    lim = prep.limits
    solver_met = _solver_met(breach, prep, cont)
    if solver_met:
        how = "rounding to whole shares" if not options.fractional else "leaving out trades under the minimum size"
        fix = "fractional shares would meet it exactly" if not options.fractional else "a next run would fine-tune it"
        return Cause(f"{how} and the {usd(options.min_trade_usd)} minimum trade size leave it there", fix)
    if breach.limit == "max_turnover":
        return Cause("meeting the other limits (or raising the withdrawal) needs more trading than that",
                     "the turnover limit applies again on the next run")
    blockers = _keep_blockers(breach, prep)
    fixed = [t for t in blockers if t in {f.strip().upper() for f in options.fixed}]
    if blockers and len(fixed) == len(blockers):
        verb = "is" if len(fixed) == 1 else "are"
        return Cause(f"{', '.join(fixed)} {verb} held fixed at the value your file gave (no market price to trade "
                     f"at)", "sell or replace them yourself to meet it")
    if blockers:
        return Cause(f"you asked to keep {', '.join(blockers)}", "allow selling them to meet it")
    if options.buy_only:
        return Cause("buy-only mode allows no sales and the cash available is not enough",
                     "add cash or switch off buy-only to meet it")
    if cont.turnover >= lim.max_turnover - 1e-4:
        return Cause(f"the turnover limit of {pct(lim.max_turnover)} per run was reached",
                     f"a next run would continue from here and bring it to {pct(breach.requested)}")
    return Cause("it conflicts with the other limits of the profile",
                 "loosen it or choose another risk profile to meet it")


def _solver_met(breach: Breach, prep: Prepared, cont: Metrics) -> bool:
    lim = prep.limits
    if breach.limit == "volatility_cap":
        return cont.volatility <= lim.vol_cap + TOLERANCE
    if breach.limit == "max_turnover":
        return cont.turnover <= lim.max_turnover + TOLERANCE
    if breach.limit == "min_financials":
        return cont.equity <= 1e-9 or float(cont.sectors[4]) >= lim.min_financials - TOLERANCE
    if breach.limit == "min_small_cap":
        return cont.equity <= 1e-9 or cont.small >= lim.min_small_cap - TOLERANCE
    if breach.limit.startswith("max_sector:"):
        from engine.exposures import GICS_SECTORS

        return float(cont.sectors[GICS_SECTORS.index(breach.limit.split(":", 1)[1])]) <= lim.max_sector + TOLERANCE
    if breach.limit.startswith("max_single_stock:"):
        i = prep.exposures.names.index(breach.limit.split(":", 1)[1])
        return float(cont.names[i]) <= lim.max_single_stock + TOLERANCE
    return False


def _keep_blockers(breach: Breach, prep: Prepared) -> list[str]:
    """Held tickers that may not be sold and feed the breached (max) limit."""
    from engine.exposures import GICS_SECTORS

    e = prep.exposures
    found: list[str] = []
    for j, ticker in enumerate(prep.slot_ticker):
        if prep.can_sell[j] or prep.shares0[j] <= 0 or ticker in found:
            continue
        a = prep.slot_asset[j]
        feeds = False
        if breach.limit.startswith("max_sector:"):
            feeds = e.sectors[GICS_SECTORS.index(breach.limit.split(":", 1)[1]), a] > 0.2
        elif breach.limit.startswith("max_single_stock:"):
            feeds = e.names_matrix[e.names.index(breach.limit.split(":", 1)[1]), a] > 0.02
        elif breach.limit == "volatility_cap":
            feeds = e.equity[a] > 0.5
        if feeds:
            found.append(ticker)
    return found

