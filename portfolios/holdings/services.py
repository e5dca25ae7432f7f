"""Writes to holdings: importing a parsed file (replace or merge) and manual edits.

Nothing here knows about rebalance runs: the views write, then request the run (same transaction).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from engine.tickers import ticker_normalize
from portfolios.holdings.importers import ImportFailed, ParsedAccount, ParsedFile, parse_positions
from portfolios.marketdata.onboarding import IMPORT_SOURCE, ticker_confirmations_request
from portfolios.models import Account, ExecutedPlan, Holding, Portfolio, RebalanceRun, Security

MODES = ("replace", "merge")
CASH_TICKER = "CASH"


@dataclass(frozen=True)
class ImportOutcome:
    holdings: int
    accounts: int
    warnings: list[str]


def securities_for_tickers(tickers: Iterable[str], *, hints: Mapping[str, tuple[str, str]] | None = None
                           ) -> dict[str, Security]:
    """Existing securities by ticker; unknown tickers are created *unconfirmed* (`source="import"`, no prices:
    see marketdata/onboarding.py), with the kind and description the file gave (`hints`: {ticker: (kind,
    description)}) so the run can value them by proxy. Unconfirmed securities stay out of the refresh list and
    of everyone else's universe until a provider confirms them.
    """
    wanted = sorted(set(tickers))
    found = {s.ticker: s for s in Security.objects.filter(ticker__in=wanted)}
    missing = [t for t in wanted if t not in found]
    if missing:
        hints = hints or {}
        Security.objects.bulk_create(
            [_unconfirmed_security(t, *hints.get(t, ("", ""))) for t in missing],
            ignore_conflicts=True,  # a concurrent import may create the same ticker
        )
        found.update({s.ticker: s for s in Security.objects.filter(ticker__in=missing)})
    return found


def _unconfirmed_security(ticker: str, kind: str, description: str) -> Security:
    known_kind = kind if kind in Security.Kind.values else Security.Kind.UNKNOWN
    return Security(ticker=ticker, kind=known_kind, name=description[:200], priced=False, source=IMPORT_SOURCE)


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

        securities = securities_for_tickers((p.ticker for p in parsed.positions),
                                            hints={p.ticker: (p.kind, p.description) for p in parsed.positions})
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
        asked = ticker_confirmations_request(user_id=portfolio.owner_id, tickers=securities)

    warnings = list(parsed.warnings)
    unknown = sorted(t for t, s in securities.items() if not s.priced)
    if unknown:
        warnings.append(f"No market data for {', '.join(unknown[:12])}{'…' if len(unknown) > 12 else ''}: "
                        "valued at the file's price with a named proxy for risk (or held fixed) by the suggestions.")
    if asked:
        warnings.append(f"Looking up {', '.join(asked[:12])}{'…' if len(asked) > 12 else ''} with the price "
                        "provider; the suggestions are recomputed when they are found.")
    return ImportOutcome(holdings=len(parsed.positions), accounts=len(accounts), warnings=warnings)


def portfolio_import_file(*, portfolio: Portfolio, data: bytes, filename: str = "", mode: str = "replace"
                          ) -> ImportOutcome:
    """Parse and import; raises `ImportFailed` (and writes nothing) when the file is refused."""
    parsed = parse_positions(data, filename=filename)
    return portfolio_import(portfolio=portfolio, parsed=parsed, mode=mode)


# --- manual edits ------------------------------------------------------------------------------


@transaction.atomic
def account_create(*, portfolio: Portfolio, name: str, account_type: str = Account.Type.TAXABLE,
                   broker: str = "", number_masked: str = "", cash_usd: Decimal = Decimal("0")) -> Account:
    account = Account.objects.create(portfolio=portfolio, name=name.strip(), account_type=account_type,
                                     broker=broker.strip(), number_masked=number_masked.strip(), cash_usd=cash_usd)
    return account


@transaction.atomic
def account_update(*, account: Account, name: str, account_type: str, broker: str = "", number_masked: str = "",
                   cash_usd: Decimal = Decimal("0")) -> Account:
    account.name, account.account_type = name.strip(), account_type
    account.broker, account.number_masked, account.cash_usd = broker.strip(), number_masked.strip(), cash_usd
    account.save()
    return account


@transaction.atomic
def account_delete(*, account: Account) -> None:
    account.delete()


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
    ticker_confirmations_request(user_id=portfolio.owner_id, tickers=[normalized])
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
    ticker_confirmations_request(user_id=portfolio.owner_id, tickers=[normalized])
    return holding


@transaction.atomic
def holding_delete(*, holding: Holding) -> None:
    holding.delete()


# --- executed plans ("I made these trades") ------------------------------------------------------

CENT = Decimal("0.01")
SHARES_EPS = Decimal("0.000001")  # shares are stored to 6 decimals
MAX_FILL_PRICE = Decimal("1e9")


@dataclass(frozen=True)
class ExecutedSelection:
    """One trade of a run that the user made: its index in the run's trade list, and the fill price
    (None: the plan's price)."""

    index: int
    fill_price: Decimal | None = None


class ExecutionRefused(ValueError):
    """Nothing was written. `errors` maps each field at fault ("run", "trades", "prices") to messages."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{field}: {m}" for field, messages in errors.items() for m in messages))
        self.errors = errors


@dataclass
class _Book:
    """The portfolio's accounts and lots while an execution is applied (written back at the end)."""

    as_of: dt.date
    accounts: dict[str, Account]
    lots: dict[tuple[str, str], list[Holding]]  # (account name, ticker) -> lots, by id
    ordered: set[tuple[str, str]] = field(default_factory=set)  # lots already put in selling order
    emptied: list[Holding] = field(default_factory=list)
    changed: dict[int, Holding] = field(default_factory=dict)
    created: list[Holding] = field(default_factory=list)


def holdings_apply_executed(*, run: RebalanceRun, selections: Sequence[ExecutedSelection] | None,
                            user: User | None, fill_prices: Mapping[int, Decimal] | None = None
                            ) -> ExecutedPlan:
    """Apply the trades of a done run the user made at their broker, in one transaction, and record them.

    `selections` None means every trade not executed yet, at `fill_prices` where given (else the plan's).
    Sells take the lots in the order the engine's tax model sells them (lowest tax per dollar first; the
    result document does not name lots); buys become new lots at the fill price, acquired today; each trade
    moves its account's cash. The plan's deposit or withdrawal (the run's `cash` option) is booked with the
    run's first execution, in the account the engine put it in (the first taxable account by name), and the
    portfolio's option is reset to 0 when it still asks for the same amount.
    Raises `ExecutionRefused` and writes nothing on bad input. Requesting the next run is the caller's.
    """
    with transaction.atomic():
        Portfolio.objects.select_for_update().filter(pk=run.portfolio_id).first()  # one writer at a time
        run = RebalanceRun.objects.select_related("portfolio").get(pk=run.pk)
        trades = _run_trades(run)
        executed = {i for plan in run.executed_plans.all() for i in plan.trade_indexes}
        if selections is None:
            selections = _open_selections(trades, executed, fill_prices or {})
        chosen = _chosen(trades, selections, executed)
        book = _book_load(run)
        errors: list[str] = []
        entries = [_trade_apply(book, index, trades[index], fill, errors) for index, fill in chosen]
        if errors:
            raise ExecutionRefused({"trades": errors})
        cash_change = Decimal("0") if executed else _cash_change_book(book, run)
        _book_save(book)
        return ExecutedPlan.objects.create(portfolio=run.portfolio, run=run, executed_by=user,
                                           trades=entries, cash_change_usd=cash_change)


def _run_trades(run: RebalanceRun) -> list[dict]:
    if run.status != RebalanceRun.Status.DONE:
        raise ExecutionRefused({"run": [f"run {run.pk} is {run.status}: only a finished suggestion can be executed"]})
    trades = (run.result or {}).get("trades") or []
    if not trades:
        raise ExecutionRefused({"run": [f"run {run.pk} suggested no trades"]})
    return trades


def _open_selections(trades: list[dict], executed: set[int], fill_prices: Mapping[int, Decimal]
                     ) -> list[ExecutedSelection]:
    open_indexes = [i for i in range(len(trades)) if i not in executed]
    if not open_indexes:
        raise ExecutionRefused({"trades": ["every trade of this run is already marked executed"]})
    stray = sorted(set(fill_prices) - set(open_indexes))
    if stray:
        raise ExecutionRefused({"prices": [f"trade {i} is not an open trade of this run" for i in stray]})
    return [ExecutedSelection(i, fill_prices.get(i)) for i in open_indexes]


def _chosen(trades: list[dict], selections: Sequence[ExecutedSelection], executed: set[int]
            ) -> list[tuple[int, Decimal]]:
    """[(index, fill price)] in index order, or ExecutionRefused naming the field at fault."""
    errors: dict[str, list[str]] = {}
    seen: set[int] = set()
    for s in selections:
        if not 0 <= s.index < len(trades):
            errors.setdefault("trades", []).append(f"{s.index} is not a trade of this run (0 to {len(trades) - 1})")
        elif s.index in executed:
            errors.setdefault("trades", []).append(f"trade {s.index} is already marked executed")
        elif s.index in seen:
            errors.setdefault("trades", []).append(f"trade {s.index} is listed twice")
        if s.fill_price is not None and not (s.fill_price.is_finite() and 0 < s.fill_price <= MAX_FILL_PRICE):
            errors.setdefault("prices", []).append(f"trade {s.index}: the fill price must be above 0 and at most "
                                                    f"{MAX_FILL_PRICE:,.0f} USD")
        seen.add(s.index)
    if not selections:
        errors.setdefault("trades", []).append("choose at least one trade")
    if errors:
        raise ExecutionRefused(errors)
    return sorted((s.index, s.fill_price or _plan_price(trades[s.index])) for s in selections)


def _plan_price(trade: dict) -> Decimal:
    return Decimal(str(trade.get("price") or 0))


def _book_load(run: RebalanceRun) -> _Book:
    result = run.result or {}
    as_of = dt.date.fromisoformat(str(result.get("as_of"))) if result.get("as_of") else dt.date.today()
    accounts = {a.name: a for a in run.portfolio.accounts.select_for_update().order_by("name", "id")}
    lots: dict[tuple[str, str], list[Holding]] = {}
    holdings = (Holding.objects.select_for_update().filter(account__portfolio_id=run.portfolio_id)
                .select_related("account", "security").order_by("id"))
    for lot in holdings:
        lots.setdefault((lot.account.name, lot.security.ticker), []).append(lot)
    return _Book(as_of=as_of, accounts=accounts, lots=lots)


def _trade_apply(book: _Book, index: int, trade: dict, fill: Decimal, errors: list[str]) -> dict:
    """Apply one trade to the book; a problem goes to `errors` (the caller then writes nothing)."""
    ticker, account_name, action = str(trade.get("ticker")), str(trade.get("account")), trade.get("action")
    shares = Decimal(str(trade.get("shares") or 0)).quantize(SHARES_EPS)
    account = book.accounts.get(account_name)
    entry: dict[str, Any] = {
             "index": index, "ticker": ticker, "account": account_name, "action": action, "shares": float(shares),
             "plan_price": float(_plan_price(trade)), "fill_price": float(fill),
             "amount": float((shares * fill).quantize(CENT)), "lots": []}
    if account is None:
        errors.append(f"trade {index}: the account “{account_name}” is no longer in this portfolio")
    elif action == "sell":
        entry["lots"] = _sell(book, account, ticker, shares, _plan_price(trade), index, errors)
        account.cash_usd += (shares * fill).quantize(CENT)
    elif action == "buy":
        entry["lots"] = _buy(book, account, ticker, shares, fill, index, errors)
        account.cash_usd -= (shares * fill).quantize(CENT)
    else:
        errors.append(f"trade {index}: “{action}” is neither buy nor sell")
    return entry


def _sell(book: _Book, account: Account, ticker: str, shares: Decimal, plan_price: Decimal, index: int,
          errors: list[str]) -> list[dict]:
    key = (account.name, ticker)
    lots = _selling_order(book, key, account.account_type, plan_price)
    held = sum((lot.shares for lot in lots), Decimal("0"))
    if held + SHARES_EPS < shares:
        errors.append(f"trade {index}: sells {shares.normalize():f} {ticker} in {account.name}, which holds "
                      f"{held.normalize():f} now")
        return []
    taken: list[dict] = []
    remaining = shares
    for lot in list(lots):
        if remaining <= 0:
            break
        take = lot.shares if lot.shares <= remaining + SHARES_EPS else remaining
        taken.append(_lot_take(book, lot, take))
        remaining -= take
    return taken


def _lot_take(book: _Book, lot: Holding, take: Decimal) -> dict:
    """Take `take` shares out of `lot` (its cost basis and file value shrink in proportion)."""
    basis = None if lot.cost_basis_usd is None else (lot.cost_basis_usd * take / lot.shares).quantize(CENT)
    record = {"holding": lot.pk, "shares": float(take), "cost_basis": None if basis is None else float(basis),
              "acquired_on": lot.acquired_on.isoformat() if lot.acquired_on else None}
    key = (lot.account.name, lot.security.ticker)
    if take >= lot.shares:
        book.lots[key].remove(lot)
        book.emptied.append(lot)
        book.changed.pop(lot.pk, None)
        return record
    keep = lot.shares - take
    if lot.file_value_usd is not None:
        lot.file_value_usd = (lot.file_value_usd * keep / lot.shares).quantize(CENT)
    if basis is not None and lot.cost_basis_usd is not None:
        lot.cost_basis_usd -= basis
    lot.shares = keep
    book.changed[lot.pk] = lot
    return record


def _selling_order(book: _Book, key: tuple[str, str], account_type: str, price: Decimal) -> list[Holding]:
    """The lots of one holding in the order the engine's tax model sells them (lowest tax per dollar first)."""
    lots = book.lots.get(key, [])
    if key in book.ordered or price <= 0:
        return lots
    from engine.profiles import DEFAULT_COSTS
    from engine.tax import holding_lots
    from engine.types import Position

    def tax_per_dollar(lot: Holding) -> float:
        position = Position(ticker=key[1], account=key[0], account_type=account_type, shares=float(lot.shares),
                            price=float(price), acquired=lot.acquired_on,
                            cost_basis=None if lot.cost_basis_usd is None else float(lot.cost_basis_usd))
        found = holding_lots([position], price=float(price), as_of=book.as_of, costs=DEFAULT_COSTS)
        return found[0].tax_per_dollar if found else 0.0

    lots.sort(key=tax_per_dollar)  # stable: equal lots keep their id order
    book.ordered.add(key)
    return lots


def _buy(book: _Book, account: Account, ticker: str, shares: Decimal, fill: Decimal, index: int,
         errors: list[str]) -> list[dict]:
    security = Security.objects.filter(ticker=ticker).first()
    if security is None:
        errors.append(f"trade {index}: {ticker} is not in the security master")
        return []
    cost, today = (shares * fill).quantize(CENT), timezone.localdate()
    lot = Holding(account=account, security=security, shares=shares, cost_basis_usd=cost, acquired_on=today)
    book.created.append(lot)  # not sellable in the same execution: the engine never buys and sells one holding
    return [{"holding": None, "shares": float(shares), "cost_basis": float(cost), "acquired_on": today.isoformat()}]


def _cash_change_book(book: _Book, run: RebalanceRun) -> Decimal:
    change = Decimal(str((run.inputs or {}).get("cash") or 0)).quantize(CENT)
    accounts = list(book.accounts.values())
    if not change or not accounts:
        return Decimal("0")
    target = next((a for a in accounts if a.account_type == Account.Type.TAXABLE), accounts[0])
    target.cash_usd += change
    # The "cash to add or withdraw" option was this one-off: once booked, the next run must not plan it again.
    Portfolio.objects.filter(pk=run.portfolio_id, cash_change_usd=change).update(cash_change_usd=Decimal("0"))
    return change


def _book_save(book: _Book) -> None:
    Holding.objects.filter(pk__in=[lot.pk for lot in book.emptied]).delete()
    Holding.objects.bulk_update(list(book.changed.values()), ["shares", "cost_basis_usd", "file_value_usd"])
    Holding.objects.bulk_create(book.created)
    for account in book.accounts.values():
        account.save(update_fields=["cash_usd"])


__all__ = [
    "MODES",
    "ExecutedSelection",
    "ExecutionRefused",
    "ImportFailed",
    "ImportOutcome",
    "account_create",
    "account_default",
    "account_delete",
    "account_update",
    "holding_create",
    "holding_delete",
    "holding_update",
    "holdings_apply_executed",
    "portfolio_import",
    "portfolio_import_file",
    "securities_for_tickers",
]
