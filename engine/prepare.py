"""`prepare(request, snapshot)`: validate a request and index it as arrays over accounts (m), assets (n) and
slots (K: one per held or buyable (ticker, account) pair), in named steps:

1. `validate`: refuse unusable numbers (DataError naming the field), drop empty lots;
2. `split_priced`: lots with a price vs lots held fixed (named in a warning);
3. `money`: accounts, their cash, the value before and after the cash change;
4. `pick_menu`: the menu funds that have a price;
5. `market_models`: the universe (held, then menu), its risk model, exposures and target (from the snapshot);
6. `slots`: every (ticker, account) slot with its shares, tax lots and what may be traded;
7. `plan_lots` (engine.taxplan): the lots each taxable holding may sell (no wash sale, the wait for
   long-term) and the buys a harvested loss blocks.

Every ticker is read through `engine.tickers.ticker_key`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from engine.errors import DataError
from engine.explain import usd
from engine.exposures import ExposureModel
from engine.limits import Limits
from engine.location import Location, asset_location
from engine.market import MarketSnapshot
from engine.menu import one_fund_per_role, views_vehicles
from engine.profiles import DEFAULT_COSTS, CostModel, Profile, profile_get, tax_drag
from engine.risk import RiskModel, SampleRisk
from engine.roles import fund_roles
from engine.target import Target, build_target, target_key
from engine.tax import Lot, holding_lots, is_taxable
from engine.taxplan import LotPlan, budget_usd, plan_lots, withdrawal_tax
from engine.tickers import ticker_key
from engine.types import AccountCash, MarketData, Options, Position, RebalanceRequest

KNOWN_ACCOUNT_TYPES = ("taxable", "traditional_ira", "roth_ira", "401k")


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
    min_order: float  # USD: the smallest order placed, max(options.min_trade_usd, options.min_trade_fraction x V)
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
    lots: list[list[Lot]]  # (K,) the lots each slot may sell, in sale order (engine.taxplan)
    sellable: np.ndarray  # (K,) shares each slot may sell at most (held shares less lots held back)
    basis_known: np.ndarray
    risk: RiskModel
    risk_sample: SampleRisk  # the plain 3-year sample estimate: the volatility cap holds on both
    exposures: ExposureModel  # optimizer rows (names thresholded at the single-stock cap)
    exposures_full: ExposureModel  # every look-through name (snapshots)
    target: Target
    target_vec: np.ndarray  # (n,)
    location: Location  # asset location: where income funds may be bought, the tax-free swap (engine.location)
    warnings: list[str] = field(default_factory=list)
    held: set[str] = field(default_factory=set)
    roles: Mapping[str, str] = field(default_factory=dict)  # ticker -> fund role (engine.roles), per snapshot
    tax_budget: float | None = None  # USD the plan may realise in net tax (None = no limit)
    lot_plan: LotPlan | None = None  # harvests, waits, loss lots kept (for the notes)
    # (K,) slots a shaped plan may buy / sell (engine.shape: few funds and orders); None = every tradable slot
    buy_open: np.ndarray | None = None
    sell_open: np.ndarray | None = None

    def cash_in(self) -> float:
        """USD that buys may use without counting as turnover: cash on hand after the cash change."""
        return max(0.0, float(self.cash_start.sum() + self.cash_change.sum()))

    def cash_out(self) -> float:
        """USD that sells may raise without counting as turnover: the withdrawal."""
        return float(np.clip(-self.cash_change, 0.0, None).sum())


@dataclass(frozen=True)
class Priced:
    """Step 2: the lots with a price, each ticker's price, and the warnings on the lots without one."""

    positions: list[Position]
    price_of: dict[str, float]
    warnings: list[str]


@dataclass(frozen=True)
class Money:
    """Step 3: accounts and cash (USD)."""

    accounts: list[str]
    account_types: list[str]
    cash_start: np.ndarray  # (m,)
    cash_change: np.ndarray  # (m,): the whole change on the first taxable account
    value_before: float
    value: float
    warnings: list[str]


@dataclass(frozen=True)
class Models:
    """Step 5: the universe and what the market says about it."""

    universe: list[str]
    risk: RiskModel
    risk_sample: SampleRisk
    exposures: ExposureModel
    exposures_full: ExposureModel
    target: Target
    target_vec: np.ndarray


@dataclass(frozen=True)
class Slots:
    """Step 6: one entry per (ticker, account) slot, held ones first in each account, then buyable ones."""

    ticker: list[str]
    account: np.ndarray
    shares0: np.ndarray
    lots: list[list[Lot]]
    basis_known: np.ndarray
    warnings: list[str]


def prepare(request: RebalanceRequest, snapshot: MarketSnapshot) -> Prepared:
    """Validate and index the request; take the risk model, exposures and target from `snapshot`."""
    positions, cash = validate(request)
    options = request.options
    profile = profile_get(options.profile)
    limits = Limits.for_profile(profile, options.max_turnover)
    costs = DEFAULT_COSTS
    market = snapshot.market
    priced = split_priced(positions)
    money = account_money(priced, cash, options.cash_change)
    menu, menu_warnings = pick_menu(request.menu, snapshot.last_prices)
    held = list(dict.fromkeys(ticker_key(p.ticker) for p in priced.positions))
    views = request.views if options.use_views else None
    roles = snapshot.derived(("roles",), lambda: fund_roles(market.securities, market.etf_sectors))
    menu = one_fund_per_role(menu, held=held, roles=roles, preferred=views_vehicles(views))
    models = market_models(snapshot, held, menu, profile, limits, views)
    target_vec = models.target_vec
    if not models.target.weights:  # nothing on the menu to build a target from: hold what is there, limits only
        target_vec = _holdings_as_target(priced, models.universe, money.value)
    slots = slot_table(priced, money, menu, snapshot, costs)
    unsellable = frozenset(ticker_key(t) for t in (*options.keep, *options.fixed))  # kept by the user, or held fixed
    menu_set = set(menu)
    held_set = set(held)
    warnings = [*priced.warnings, *money.warnings, *menu_warnings, *slots.warnings, *_account_type_warnings(money)]
    warnings += [w for w in models.exposures.warnings if w.split(" ", 1)[0] in held_set]
    warnings += [w for w in models.risk.warnings if w.split(" ", 1)[0] in held_set]
    warnings += list(models.target.warnings)
    index = {t: i for i, t in enumerate(models.universe)}
    last = snapshot.last_prices
    prices = np.array([priced.price_of.get(t) or last[t] for t in slots.ticker])
    shares0 = slots.shares0
    can_sell = np.array([not options.buy_only and t not in unsellable for t in slots.ticker], dtype=bool)
    location = asset_location(slot_ticker=slots.ticker, slot_account=slots.account, account_types=money.account_types,
                              slot_value_usd=shares0 * prices, cash_usd=money.cash_start + money.cash_change,
                              can_sell=can_sell, target_weights=models.target.weights, securities=market.securities,
                              value_usd=money.value)
    lot_plan = plan_lots(
        tickers=slots.ticker, accounts=money.accounts, slot_account=slots.account,
        taxable=[is_taxable(t) for t in money.account_types], lots=slots.lots, shares0=shares0,
        can_buy=np.array([t in menu_set for t in slots.ticker], dtype=bool) & location.buyable,
        positions=priced.positions, roles=roles, as_of=market.as_of, value=money.value,
    )
    return Prepared(
        profile=profile,
        limits=limits,
        costs=costs,
        accounts=money.accounts,
        account_types=money.account_types,
        cash_start=money.cash_start,
        cash_change=money.cash_change,
        value=money.value,
        value_before=money.value_before,
        min_order=max(float(options.min_trade_usd), float(options.min_trade_fraction) * money.value),
        universe=models.universe,
        slot_ticker=slots.ticker,
        slot_account=slots.account,
        slot_asset=np.array([index[t] for t in slots.ticker], dtype=int),
        prices=prices,
        shares0=shares0,
        can_buy=lot_plan.can_buy,
        can_sell=can_sell,
        cost_rate=np.array([cost_rate(t, market, costs) for t in slots.ticker]),
        holding_drag=np.array([
            tax_drag(asset_class(t, market), is_taxable(money.account_types[a]), costs)
            for t, a in zip(slots.ticker, slots.account, strict=True)
        ]),
        lots=lot_plan.lots,
        sellable=lot_plan.sellable,
        basis_known=slots.basis_known,
        risk=models.risk,
        risk_sample=models.risk_sample,
        exposures=models.exposures,
        exposures_full=models.exposures_full,
        target=models.target,
        target_vec=target_vec,
        location=location,
        warnings=warnings,
        held=held_set,
        roles=roles,
        tax_budget=_tax_budget(options, money, lot_plan, priced, slots, can_sell, last),
        lot_plan=lot_plan,
    )


def _tax_budget(options: Options, money: Money, lot_plan: LotPlan, priced: Priced, slots: Slots,
                can_sell: np.ndarray, last: Mapping[str, float]) -> float | None:
    """USD of net tax the plan may realise: the yearly budget left (engine.taxplan.budget_usd) plus the least tax
    of raising a withdrawal (a withdrawal is raised whatever it costs)."""
    budget = budget_usd(options, money.value)
    if budget is None or not (money.cash_start + money.cash_change < 0).any():
        return budget
    prices = np.array([priced.price_of.get(t) or last[t] for t in slots.ticker])
    return budget + withdrawal_tax(lots=lot_plan.lots, sellable=lot_plan.sellable, prices=prices,
                                   slot_account=slots.account, can_sell=can_sell,
                                   cash=money.cash_start + money.cash_change)


# ---------------------------------------------------------------- 1. validate


def check_number(value: float, what: str, field_name: str) -> float:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DataError(f"{what}: {field_name} must be a finite number, got {value!r}", field=field_name)
    return float(value)


def _check_position(p: Position) -> float:
    """The lot's shares, after checking its numbers."""
    if not isinstance(p.ticker, str) or not p.ticker.strip():
        raise DataError(f"a position in account {p.account!r} has no ticker", field="ticker")
    where = f"{p.ticker} in {p.account}"
    shares = check_number(p.shares, where, "shares")
    if shares < 0:
        raise DataError(f"{where}: shares must be >= 0 (short positions are not supported)", field="shares")
    if p.price is not None and check_number(p.price, where, "price") <= 0:
        raise DataError(f"{where}: price must be > 0", field="price")
    if p.cost_basis is not None and check_number(p.cost_basis, where, "cost_basis") < 0:
        raise DataError(f"{where}: cost_basis must be >= 0", field="cost_basis")
    return shares


def _check_options(o: Options) -> None:
    check_number(o.cash_change, "options", "cash_change")
    if o.max_turnover is not None and not 0 <= check_number(o.max_turnover, "options", "max_turnover") <= 2:
        raise DataError("options: max_turnover must be between 0 and 2 (a fraction of value)", field="max_turnover")
    if check_number(o.min_trade_usd, "options", "min_trade_usd") < 0:
        raise DataError("options: min_trade_usd must be >= 0", field="min_trade_usd")
    if not 0 <= check_number(o.min_trade_fraction, "options", "min_trade_fraction") < 1:
        raise DataError("options: min_trade_fraction must be from 0 to 1", field="min_trade_fraction")
    if o.tax_budget is not None and not 0 <= check_number(o.tax_budget, "options", "tax_budget") <= 1:
        raise DataError("options: tax_budget must be from 0 to 1 (a fraction of value) or none", field="tax_budget")
    if check_number(o.tax_spent_usd, "options", "tax_spent_usd") < 0:
        raise DataError("options: tax_spent_usd must be >= 0", field="tax_spent_usd")


def validate(request: RebalanceRequest) -> tuple[list[Position], list[AccountCash]]:
    """The lots with shares and the cash rows, after checking every number (DataError names the field)."""
    positions = [p for p in request.positions if _check_position(p) > 0]
    for c in request.cash:
        if check_number(c.cash, f"cash in {c.account}", "cash") < 0:
            raise DataError(f"cash in {c.account}: must be >= 0", field="cash")
    _check_options(request.options)
    return positions, list(request.cash)


# ---------------------------------------------------------------- 2. priced lots


def split_priced(positions: Sequence[Position]) -> Priced:
    """Lots whose ticker has a price (the first price given for a ticker counts) vs lots held fixed."""
    price_of: dict[str, float] = {}
    for p in positions:
        if p.price is not None:
            price_of.setdefault(ticker_key(p.ticker), float(p.price))
    priced: list[Position] = []
    unpriced: dict[tuple[str, str], float] = {}
    for p in positions:
        ticker = ticker_key(p.ticker)
        if ticker in price_of:
            priced.append(p)
        else:
            unpriced[(ticker, p.account)] = unpriced.get((ticker, p.account), 0.0) + float(p.shares)
    warnings = [
        f"{ticker} ({shares:g} shares in {account}) has no price: held as is and left out of the value, "
        f"the weights and the limits."
        for (ticker, account), shares in unpriced.items()
    ]
    return Priced(priced, price_of, warnings)


# ---------------------------------------------------------------- 3. accounts and cash


def accounts_of(
    positions: Sequence[Position], cash: Sequence[AccountCash], warnings: list[str]
) -> tuple[list[str], list[str], np.ndarray]:
    """(account names in order of appearance, their types, their cash in USD); a type conflict is warned."""
    names: list[str] = []
    types: dict[str, str] = {}
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
    balances: dict[str, float] = {}
    for c in cash:
        balances[c.account] = balances.get(c.account, 0.0) + float(c.cash)
    return names, [types[a] for a in names], np.array([balances.get(a, 0.0) for a in names])


def account_money(priced: Priced, cash: Sequence[AccountCash], change: float) -> Money:
    """Accounts, cash and value; DataError when there is nothing to rebalance or too much to withdraw."""
    warnings: list[str] = []
    accounts, account_types, cash_start = accounts_of(priced.positions, cash, warnings)
    value_before = float(
        sum(p.shares * priced.price_of[ticker_key(p.ticker)] for p in priced.positions) + cash_start.sum()
    )
    change = float(change)
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
    cash_change[next((i for i, t in enumerate(account_types) if t == "taxable"), 0)] = change
    return Money(accounts, account_types, cash_start, cash_change, value_before, value, warnings)


def _account_type_warnings(money: Money) -> list[str]:
    return [
        f"Account {name} has type {account_type!r}: sales there are taxed like a taxable account (a cautious "
        f"assumption)."
        for name, account_type in zip(money.accounts, money.account_types, strict=True)
        if account_type not in KNOWN_ACCOUNT_TYPES
    ]


# ---------------------------------------------------------------- 4. menu


def pick_menu(requested: Sequence[str], last: Mapping[str, float]) -> tuple[list[str], list[str]]:
    """(menu funds with a price, in order and once each; a warning naming the ones without)."""
    menu: list[str] = []
    missing: list[str] = []
    for t in requested:
        ticker = ticker_key(t)
        if ticker not in menu:
            (menu if ticker in last else missing).append(ticker)
    warnings = [f"Menu funds without a price were skipped: {', '.join(missing)}."] if missing else []
    return menu, warnings


# ---------------------------------------------------------------- 5. the universe and its models


def market_models(
    snapshot: MarketSnapshot,
    held: Sequence[str],
    menu: Sequence[str],
    profile: Profile,
    limits: Limits,
    views: Mapping | None,
) -> Models:
    """The universe (held tickers, then menu funds not held) with its risk model, exposures and target."""
    universe = list(held) + [t for t in menu if t not in held]
    risk = snapshot.risk_model(universe)
    exposures, exposures_full = snapshot.exposure_models(universe, limits.max_single_stock)
    target = snapshot.derived(
        ("target", target_key(profile, views, menu)),
        lambda: build_target(profile=profile, views=views, menu=menu, market=snapshot.market),
    )
    index = {t: i for i, t in enumerate(universe)}
    target_vec = np.zeros(len(universe))
    for ticker, weight in target.weights.items():
        if ticker in index:
            target_vec[index[ticker]] += weight
    return Models(universe, risk, snapshot.sample_risk_model(universe), exposures, exposures_full, target, target_vec)


def _holdings_as_target(priced: Priced, universe: Sequence[str], value: float) -> np.ndarray:
    index = {t: i for i, t in enumerate(universe)}
    target_vec = np.zeros(len(universe))
    for p in priced.positions:
        ticker = ticker_key(p.ticker)
        target_vec[index[ticker]] += p.shares * priced.price_of[ticker] / value
    return target_vec


# ---------------------------------------------------------------- 6. slots


def slot_table(priced: Priced, money: Money, menu: Sequence[str], snapshot: MarketSnapshot,
               costs: CostModel) -> Slots:
    """Each account's held (ticker, account) slots, then its buyable menu slots, with tax lots."""
    account_index = {a: i for i, a in enumerate(money.accounts)}
    by_slot: dict[tuple[int, str], list[Position]] = {}
    for p in priced.positions:
        by_slot.setdefault((account_index[p.account], ticker_key(p.ticker)), []).append(p)
    tickers: list[str] = []
    accounts: list[int] = []
    shares0: list[float] = []
    lots: list[list[Lot]] = []
    unknown_basis: list[str] = []
    unknown_dates: list[str] = []
    for a, account in enumerate(money.accounts):
        held_here = [t for (acc, t) in by_slot if acc == a]
        for ticker in held_here + [t for t in menu if (a, t) not in by_slot]:  # held, then buyable
            slot_positions = by_slot.get((a, ticker), [])
            tickers.append(ticker)
            accounts.append(a)
            shares0.append(float(sum(p.shares for p in slot_positions)))
            slot_lots: list[Lot] = []
            if slot_positions and is_taxable(money.account_types[a]):
                price = priced.price_of.get(ticker) or snapshot.last_prices.get(ticker, 0.0)
                slot_lots = holding_lots(slot_positions, price=price, as_of=snapshot.market.as_of, costs=costs)
                if not all(lot.basis_known for lot in slot_lots):
                    unknown_basis.append(f"{ticker} ({account})")
                if not all(lot.date_known for lot in slot_lots):
                    unknown_dates.append(f"{ticker} ({account})")
            lots.append(slot_lots)
    basis_known = np.array([all(lot.basis_known for lot in slot_lots) for slot_lots in lots], dtype=bool)
    return Slots(tickers, np.array(accounts, dtype=int), np.array(shares0), lots, basis_known,
                 _lot_warnings(unknown_basis, unknown_dates))


def _lot_warnings(unknown_basis: Sequence[str], unknown_dates: Sequence[str]) -> list[str]:
    warnings: list[str] = []
    if unknown_basis:
        warnings.append(
            f"Cost basis unknown for {', '.join(unknown_basis)}: taxes on sales are estimated as if half the value "
            f"were gain."
        )
    if unknown_dates:
        warnings.append(f"Purchase date unknown for {', '.join(unknown_dates)}: gains are treated as long-term.")
    return warnings


def asset_class(ticker: str, market: MarketData) -> str:
    info = market.securities.get(ticker)
    return info.asset_class if info is not None and info.asset_class else "equity"


def cost_rate(ticker: str, market: MarketData, costs: CostModel) -> float:
    """Commission plus half-spread per unit traded, by kind and size of the security."""
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
