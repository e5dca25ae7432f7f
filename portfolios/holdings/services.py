"""Writes to holdings: importing a parsed file (replace or merge) and manual edits.

Every write requests a rebalance run inside its transaction (the run is queued once it commits).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction

from portfolios.holdings.importers import ImportFailed, ParsedAccount, ParsedFile, parse_positions, ticker_normalize
from portfolios.models import Account, Holding, Portfolio, RebalanceRun, Security
from portfolios.recommendations.services import rebalance_run_request

MODES = ("replace", "merge")
CASH_TICKER = "CASH"


@dataclass(frozen=True)
class ImportOutcome:
    holdings: int
    accounts: int
    warnings: list[str]


def securities_for_tickers(tickers: Iterable[str]) -> dict[str, Security]:
    """Existing securities by ticker; unknown tickers are created as unpriced `unknown` securities.

    The optimizer holds unpriced securities fixed.
    """
    wanted = sorted(set(tickers))
    found = {s.ticker: s for s in Security.objects.filter(ticker__in=wanted)}
    missing = [t for t in wanted if t not in found]
    if missing:
        Security.objects.bulk_create(
            [Security(ticker=t, kind=Security.Kind.UNKNOWN, priced=False, source="import") for t in missing],
            ignore_conflicts=True,  # a concurrent import may create the same ticker
        )
        found.update({s.ticker: s for s in Security.objects.filter(ticker__in=missing)})
    return found


def _account_write(portfolio: Portfolio, account: Account | None, parsed_account: ParsedAccount, mode: str) -> Account:
    """Create or update one account from the file (an existing account keeps a type the file only assumed)."""
    if account is None:
        account = Account(portfolio=portfolio, name=parsed_account.name)
    if not (parsed_account.type_assumed and account.pk):
        account.account_type = parsed_account.account_type
    account.broker = parsed_account.broker or account.broker
    account.number_masked = parsed_account.number_masked or account.number_masked
    if mode == "replace" or parsed_account.cash or account.pk is None:
        account.cash_usd = parsed_account.cash
    account.save()
    return account


def portfolio_import(*, portfolio: Portfolio, parsed: ParsedFile, mode: str = "replace") -> ImportOutcome:
    """Write a parsed file into `portfolio`, all or nothing.

    replace: the portfolio becomes exactly the file (accounts not in the file are removed).
    merge: accounts in the file are created or updated; in each, the file's lots replace the lots of the
    same tickers, other tickers stay; cash is replaced when the file gives the account a cash balance;
    accounts not in the file stay as they are.
    An existing account keeps the type the user gave it when the file only assumed one.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    known_accounts = {a.name for a in parsed.accounts}
    stray = sorted({p.account for p in parsed.positions} - known_accounts)
    if stray:
        raise ValueError(f"positions refer to accounts missing from the parsed file: {stray}")

    with transaction.atomic():
        Portfolio.objects.select_for_update().filter(pk=portfolio.pk).first()  # one import at a time
        existing = {a.name: a for a in portfolio.accounts.all()}
        if mode == "replace":
            Holding.objects.filter(account__portfolio=portfolio).delete()
            portfolio.accounts.exclude(name__in=known_accounts).delete()

        accounts = {a.name: _account_write(portfolio, existing.get(a.name), a, mode) for a in parsed.accounts}

        securities = securities_for_tickers(p.ticker for p in parsed.positions)
        if mode == "merge":
            for name, account in accounts.items():
                tickers = {p.ticker for p in parsed.positions if p.account == name}
                account.holdings.filter(security__ticker__in=tickers).delete()
        Holding.objects.bulk_create([
            Holding(account=accounts[p.account], security=securities[p.ticker], shares=p.shares,
                    cost_basis_usd=p.cost_basis, acquired_on=p.acquired_on,
                    file_price_usd=p.price, file_value_usd=p.market_value)
            for p in parsed.positions
        ])
        rebalance_run_request(portfolio=portfolio, trigger=RebalanceRun.Trigger.IMPORT)

    warnings = list(parsed.warnings)
    unknown = sorted(t for t, s in securities.items() if not s.priced)
    if unknown:
        warnings.append(f"No market data for {', '.join(unknown[:12])}{'…' if len(unknown) > 12 else ''}: "
                        "held fixed by the suggestions and left out of risk figures.")
    return ImportOutcome(holdings=len(parsed.positions), accounts=len(accounts), warnings=warnings)


def portfolio_import_file(*, portfolio: Portfolio, data: bytes, filename: str = "", mode: str = "replace"
                          ) -> ImportOutcome:
    """Parse and import; raises `ImportFailed` (and writes nothing) when the file is refused."""
    parsed = parse_positions(data, filename=filename)
    return portfolio_import(portfolio=portfolio, parsed=parsed, mode=mode)


# --- manual edits ------------------------------------------------------------------------------


def _edited(portfolio: Portfolio) -> None:
    rebalance_run_request(portfolio=portfolio, trigger=RebalanceRun.Trigger.EDIT)


@transaction.atomic
def account_create(*, portfolio: Portfolio, name: str, account_type: str = Account.Type.TAXABLE,
                   broker: str = "", number_masked: str = "", cash_usd: Decimal = Decimal("0")) -> Account:
    account = Account.objects.create(portfolio=portfolio, name=name.strip(), account_type=account_type,
                                     broker=broker.strip(), number_masked=number_masked.strip(), cash_usd=cash_usd)
    _edited(portfolio)
    return account


@transaction.atomic
def account_update(*, account: Account, name: str, account_type: str, broker: str = "", number_masked: str = "",
                   cash_usd: Decimal = Decimal("0")) -> Account:
    account.name, account.account_type = name.strip(), account_type
    account.broker, account.number_masked, account.cash_usd = broker.strip(), number_masked.strip(), cash_usd
    account.save()
    _edited(account.portfolio)
    return account


@transaction.atomic
def account_delete(*, account: Account) -> None:
    portfolio = account.portfolio
    account.delete()
    _edited(portfolio)


def account_default(*, portfolio: Portfolio) -> Account:
    """The account manual entries go to when the portfolio has none: "Taxable"."""
    account, _ = Account.objects.get_or_create(
        portfolio=portfolio, name="Taxable", defaults={"account_type": Account.Type.TAXABLE}
    )
    return account


@transaction.atomic
def holding_create(*, portfolio: Portfolio, account: Account | None, ticker: str, shares: Decimal,
                   cost_basis_usd: Decimal | None = None, acquired_on: dt.date | None = None) -> Holding:
    if account is None:
        account = account_default(portfolio=portfolio)
    if account.portfolio_id != portfolio.pk:
        raise ValueError("the account belongs to another portfolio")
    normalized = ticker_normalize(ticker)
    if normalized == CASH_TICKER:
        raise ValueError("cash is the account's cash balance, not a holding")
    security = securities_for_tickers([normalized])[normalized]
    holding = Holding.objects.create(account=account, security=security, shares=shares,
                                     cost_basis_usd=cost_basis_usd, acquired_on=acquired_on)
    _edited(portfolio)
    return holding


@transaction.atomic
def holding_update(*, holding: Holding, account: Account, ticker: str, shares: Decimal,
                   cost_basis_usd: Decimal | None = None, acquired_on: dt.date | None = None) -> Holding:
    portfolio = holding.account.portfolio
    if account.portfolio_id != portfolio.pk:
        raise ValueError("the account belongs to another portfolio")
    normalized = ticker_normalize(ticker)
    holding.account = account
    holding.security = securities_for_tickers([normalized])[normalized]
    holding.shares, holding.cost_basis_usd, holding.acquired_on = shares, cost_basis_usd, acquired_on
    holding.save()
    _edited(portfolio)
    return holding


@transaction.atomic
def holding_delete(*, holding: Holding) -> None:
    portfolio = holding.account.portfolio
    holding.delete()
    _edited(portfolio)


__all__ = [
    "MODES",
    "ImportFailed",
    "ImportOutcome",
    "account_create",
    "account_default",
    "account_delete",
    "account_update",
    "holding_create",
    "holding_delete",
    "holding_update",
    "portfolio_import",
    "portfolio_import_file",
    "securities_for_tickers",
]
