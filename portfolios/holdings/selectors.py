"""Reads of holdings: portfolio summaries, valued positions, the holdings page and the import preview."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.utils import timezone

from portfolios.holdings.importers import ParsedAccount, ParsedFile, ParsedPosition
from portfolios.models import Account, ExecutedPlan, Holding, Portfolio, Price, RebalanceRun, Security

CENT = Decimal("0.01")


def shares_text(shares: Decimal) -> str:
    """1250.500000 -> "1,250.5" (no exponent, no trailing zeros)."""
    return f"{shares.normalize():,f}"


@dataclass(frozen=True)
class PortfolioSummary:
    portfolio: Portfolio
    accounts: int
    positions: int


def portfolio_summaries(*, owner) -> list[PortfolioSummary]:
    rows = (
        Portfolio.objects.filter(owner=owner)
        .annotate(n_accounts=Count("accounts", distinct=True), n_positions=Count("accounts__holdings"))
        .order_by("name", "id")
    )
    return [PortfolioSummary(p, p.n_accounts, p.n_positions) for p in rows]


# --- valued positions --------------------------------------------------------------------------


@dataclass(frozen=True)
class PositionRow:
    """One lot, valued at the newest stored price of its security (None when it has no price)."""

    holding_id: int
    account_id: int
    account: str
    account_type: str
    ticker: str
    name: str
    shares: Decimal
    cost_basis: Decimal | None
    acquired_on: dt.date | None
    price: Decimal | None
    price_date: dt.date | None
    value: Decimal | None
    priced: bool  # has a price: the market's, or the file's when the market data has none (`from_file`)
    from_file: bool = False

    @property
    def shares_text(self) -> str:
        return shares_text(self.shares)


def _latest(field_name: str, security_ref: str) -> Subquery:
    newest = Price.objects.filter(security=OuterRef(security_ref)).order_by("-date")
    return Subquery(newest.values(field_name)[:1])


def _money(price: float | None, shares: Decimal) -> tuple[Decimal | None, Decimal | None]:
    if price is None:
        return None, None
    price_dec = Decimal(str(price))
    return price_dec, (price_dec * shares).quantize(CENT)


def file_money(*, price: Decimal | None, value: Decimal | None, shares: Decimal
               ) -> tuple[Decimal | None, Decimal | None]:
    """(price, value) from what the broker file said: its market value (price = value / shares), else its price;
    (None, None) when it said neither."""
    if value is not None and value > 0 and shares > 0:
        return (value / shares).quantize(Decimal("0.000001")), value.quantize(CENT)
    if price is not None and price > 0:
        return price, (price * shares).quantize(CENT)
    return None, None


def portfolio_positions(*, portfolio: Portfolio) -> list[PositionRow]:
    """Every holding of the portfolio with its account, shares, cost basis, latest price and value; a holding
    without a market price is valued at the file's price or market value (`from_file`), as the runs value it."""
    rows = (
        Holding.objects.filter(account__portfolio=portfolio)
        .select_related("account", "security")
        .annotate(latest_close=_latest("close", "security"), latest_date=_latest("date", "security"))
        .order_by("account__name", "account_id", "security__ticker", "id")
    )
    result = []
    for h in rows:
        price, value = _money(h.latest_close, h.shares)
        from_file = price is None
        if from_file:
            price, value = file_money(price=h.file_price_usd, value=h.file_value_usd, shares=h.shares)
        result.append(PositionRow(
            holding_id=h.pk, account_id=h.account_id, account=h.account.name, account_type=h.account.account_type,
            ticker=h.security.ticker, name=h.security.name, shares=h.shares, cost_basis=h.cost_basis_usd,
            acquired_on=h.acquired_on, price=price, price_date=h.latest_date, value=value, priced=price is not None,
            from_file=from_file and price is not None,
        ))
    return result


# --- the holdings page -------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountHoldings:
    account: Account
    positions: list[PositionRow]
    cash: Decimal
    value: Decimal  # priced positions plus cash

    @property
    def unpriced(self) -> list[PositionRow]:
        return [p for p in self.positions if not p.priced]


@dataclass(frozen=True)
class HoldingsOverview:
    portfolio: Portfolio
    accounts: list[AccountHoldings]
    value: Decimal
    cash: Decimal
    positions: int
    unpriced: list[str] = field(default_factory=list)
    missing_cost: list[str] = field(default_factory=list)
    prices_as_of: dt.date | None = None
    file_valued: list[str] = field(default_factory=list)  # no market price: valued at the file's price


def portfolio_holdings_overview(*, portfolio: Portfolio) -> HoldingsOverview:
    positions = portfolio_positions(portfolio=portfolio)
    by_account: dict[int, list[PositionRow]] = {}
    for p in positions:
        by_account.setdefault(p.account_id, []).append(p)
    accounts = []
    for account in portfolio.accounts.order_by("name", "id"):
        rows = by_account.get(account.pk, [])
        invested = sum((p.value for p in rows if p.value is not None), Decimal("0"))
        accounts.append(AccountHoldings(account, rows, account.cash_usd, invested + account.cash_usd))
    dates = [p.price_date for p in positions if p.price_date]
    return HoldingsOverview(
        portfolio=portfolio,
        accounts=accounts,
        value=sum((a.value for a in accounts), Decimal("0")),
        cash=sum((a.cash for a in accounts), Decimal("0")),
        positions=len(positions),
        unpriced=sorted({p.ticker for p in positions if not p.priced}),
        missing_cost=sorted({p.ticker for p in positions if p.cost_basis is None and p.account_type == "taxable"}),
        prices_as_of=max(dates) if dates else None,
        file_valued=sorted({p.ticker for p in positions if p.from_file}),
    )


# --- the import preview ------------------------------------------------------------------------


@dataclass(frozen=True)
class PreviewPosition:
    position: ParsedPosition
    known: bool  # in the security master
    price: Decimal | None
    value: Decimal | None

    @property
    def shares_text(self) -> str:
        return shares_text(self.position.shares)


@dataclass(frozen=True)
class PreviewAccount:
    account: ParsedAccount
    positions: list[PreviewPosition]
    value: Decimal
    exists: bool  # an account of that name is already in the portfolio
    kept_type: str | None = None  # the existing account's type, kept because the file only assumed one

    @property
    def unpriced(self) -> int:
        return sum(1 for p in self.positions if p.price is None)

    @property
    def account_type_label(self) -> str:
        return Account.Type(self.kept_type or self.account.account_type).label


@dataclass(frozen=True)
class ImportPreview:
    parsed: ParsedFile
    accounts: list[PreviewAccount]
    value: Decimal
    missing: list[str]  # what the market data lacks for this file, in plain words (cost basis: in warnings)
    replaced_holdings: int  # holdings the portfolio has now (all go on "replace")
    removed_accounts: list[str]  # accounts "replace" removes


def securities_with_prices(tickers: Iterable[str]) -> QuerySet[Security]:
    return Security.objects.filter(ticker__in=set(tickers)).annotate(
        latest_close=_latest("close", "pk"), latest_date=_latest("date", "pk")
    )


def import_preview(*, portfolio: Portfolio, parsed: ParsedFile) -> ImportPreview:
    securities = {s.ticker: s for s in securities_with_prices(p.ticker for p in parsed.positions)}
    existing_types = dict(portfolio.accounts.values_list("name", "account_type"))
    existing = set(existing_types)
    accounts = []
    for parsed_account in parsed.accounts:
        rows = []
        for p in parsed.positions:
            if p.account != parsed_account.name:
                continue
            security = securities.get(p.ticker)
            price, value = _money(getattr(security, "latest_close", None), p.shares)
            if price is None:
                price, value = file_money(price=p.price, value=p.market_value, shares=p.shares)
            rows.append(PreviewPosition(p, security is not None, price, value))
        invested = sum((r.value for r in rows if r.value is not None), Decimal("0"))
        kept = existing_types.get(parsed_account.name) if parsed_account.type_assumed else None
        accounts.append(PreviewAccount(parsed_account, rows, invested + parsed_account.cash,
                                       parsed_account.name in existing, kept))

    missing = []
    unknown = sorted({p.ticker for p in parsed.positions if p.ticker not in securities})
    unpriced = sorted({t for t, s in securities.items() if getattr(s, "latest_close", None) is None})
    if unknown:
        missing.append(f"Not in the market data: {', '.join(unknown)}. They are valued at the file's price where it "
                       "gives one, and the suggestions model their risk by a named proxy or hold them fixed.")
    if unpriced:
        missing.append(f"No price yet for {', '.join(unpriced)}: values are missing until prices refresh.")
    if parsed.as_of is None:
        missing.append("The file does not say when it was exported.")

    file_accounts = {a.name for a in parsed.accounts}
    return ImportPreview(
        parsed=parsed,
        accounts=accounts,
        value=sum((a.value for a in accounts), Decimal("0")),
        missing=missing,
        replaced_holdings=Holding.objects.filter(account__portfolio=portfolio).count(),
        removed_accounts=sorted(existing - file_accounts),
    )


# --- executed plans ----------------------------------------------------------------------------

EXECUTED_PLANS_SHOWN = 20


def executed_plans_for_portfolio(*, portfolio: Portfolio, limit: int = EXECUTED_PLANS_SHOWN) -> list[ExecutedPlan]:
    """The audit trail: the newest executed plans first, with who executed them."""
    return list(portfolio.executed_plans.select_related("executed_by").order_by("-executed_at", "-id")[:limit])


def accounts_overdrawn(*, portfolio: Portfolio) -> list[Account]:
    """Accounts whose cash is below zero (e.g. trades marked as bought with money never entered)."""
    return list(portfolio.accounts.filter(cash_usd__lt=0).order_by("name"))


@dataclass(frozen=True)
class ExecutableTrade:
    """One trade of a run as the "I made these trades" form shows it."""

    index: int
    trade: dict
    executed_at: dt.datetime | None  # when it was marked executed (None: still open)


def run_executable_trades(*, run: RebalanceRun) -> list[ExecutableTrade]:
    """The run's trades, each with when it was marked executed, if it was (nothing for a run not done)."""
    if run.status != RebalanceRun.Status.DONE:
        return []
    executed = {i: plan.executed_at for plan in run.executed_plans.order_by("executed_at") for i in plan.trade_indexes}
    trades = [t for t in (run.result or {}).get("trades") or [] if isinstance(t, dict)]
    return [ExecutableTrade(index=i, trade=t, executed_at=executed.get(i)) for i, t in enumerate(trades)]


def run_open_trade_count(*, run: RebalanceRun | None, plans: list[ExecutedPlan]) -> int:
    """How many of a done run's trades are not marked executed yet, from `plans` (the portfolio's executed
    plans, newest first) when they reach back far enough; the trade count comes from the page's annotation
    (`trade_count`, see recommendations.selectors.runs_for_page) when the run carries it."""
    if run is None or run.status != RebalanceRun.Status.DONE:
        return 0
    total = getattr(run, "trade_count", None)
    if total is None or len(plans) >= EXECUTED_PLANS_SHOWN:  # not annotated, or older plans may be cut off
        return sum(1 for t in run_executable_trades(run=run) if t.executed_at is None)
    executed = {i for plan in plans if plan.run_id == run.pk for i in plan.trade_indexes}
    return max(int(total) - len(executed), 0)


# --- tax already realised this calendar year ---------------------------------------------------


def executed_tax_this_year(*, portfolio_ids: Iterable[int], year: int | None = None) -> dict[int, float]:
    """Estimated tax (USD) the plans marked executed in calendar `year` (default: this year) realised, per
    portfolio; portfolios without any are left out. Two queries at most, whatever the number of portfolios.

    Each sold lot the execution recorded realises its fill value minus its cost basis, in a taxable account
    (the account's current type; an account since deleted or renamed counts as taxable, as the engine treats
    an unknown type). The engine's tax model applies: long-term after 365 days (an unknown date: long-term),
    an unknown basis is half gain, 15% long-term / 35% short-term. Gains and losses are netted by term and
    then across terms; a net loss counts as 0 (it is not carried into the next plan's budget).
    """
    from engine.profiles import DEFAULT_COSTS
    from engine.tax import LONG_TERM_DAYS, is_taxable, net_tax

    ids = list(portfolio_ids)
    if not ids:
        return {}
    year = year or timezone.localdate().year
    plans = list(ExecutedPlan.objects.filter(portfolio_id__in=ids, executed_at__year=year)
                 .values_list("portfolio_id", "executed_at", "trades"))
    if not plans:
        return {}
    types = {(p, name): kind for p, name, kind in Account.objects.filter(portfolio_id__in={p for p, _, _ in plans})
             .values_list("portfolio_id", "name", "account_type")}
    gains: dict[int, list[float]] = {}  # portfolio -> [short-term, long-term]
    for portfolio_id, executed_at, trades in plans:
        day = timezone.localdate(executed_at)
        for trade in trades if isinstance(trades, list) else []:
            if not isinstance(trade, dict) or trade.get("action") != "sell":
                continue
            if not is_taxable(types.get((portfolio_id, str(trade.get("account"))), "taxable")):
                continue
            fill = float(trade.get("fill_price") or 0.0)
            for lot in trade.get("lots") or []:
                shares = float(lot.get("shares") or 0.0)
                value = shares * fill
                basis = lot.get("cost_basis")
                basis = value * (1.0 - DEFAULT_COSTS.unknown_basis_gain_fraction) if basis is None else float(basis)
                acquired = lot.get("acquired_on")
                long_term = not acquired or (day - dt.date.fromisoformat(str(acquired)[:10])).days > LONG_TERM_DAYS
                gains.setdefault(portfolio_id, [0.0, 0.0])[int(long_term)] += value - basis
    return {p: round(net_tax(short, long, DEFAULT_COSTS), 2) for p, (short, long) in gains.items()}

