"""Holdings writes and reads: import (replace, merge, atomicity), manual edits, valued positions."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from portfolios.holdings import selectors, services
from portfolios.holdings.importers import ImportFailed, ParsedAccount, ParsedFile, ParsedPosition, parse_positions
from portfolios.models import Account, Holding, Portfolio, Price, RebalanceRun, Security

pytestmark = pytest.mark.django_db
FIXTURES = Path(__file__).parent / "fixtures" / "brokers"


@pytest.fixture
def portfolio(alice) -> Portfolio:
    return Portfolio.objects.create(owner=alice, name="Main")


@pytest.fixture
def aapl() -> Security:
    security = Security.objects.create(ticker="AAPL", name="Apple", kind="stock", priced=True, source="bundled")
    Price.objects.create(security=security, date=dt.date(2025, 12, 30), close=240.0)
    Price.objects.create(security=security, date=dt.date(2025, 12, 31), close=250.5)
    return security


def lots(portfolio: Portfolio) -> list[tuple[str, str, Decimal, Decimal | None]]:
    return sorted(
        (h.account.name, h.security.ticker, h.shares, h.cost_basis_usd)
        for h in Holding.objects.filter(account__portfolio=portfolio).select_related("account", "security")
    )


def snapshot(portfolio: Portfolio) -> tuple:
    accounts = sorted(portfolio.accounts.values_list("name", "account_type", "cash_usd"))
    return accounts, lots(portfolio), Security.objects.count(), RebalanceRun.objects.count()


def parsed_of(*positions: tuple[str, str, str, str | None], cash: dict[str, str] | None = None,
              assumed: bool = False) -> ParsedFile:
    cash = cash or {}
    names = list(dict.fromkeys([p[0] for p in positions] + list(cash)))
    return ParsedFile(
        format="generic", warnings=[], as_of=None,
        accounts=[ParsedAccount(name=n, account_type="taxable", broker="", number_masked="",
                                cash=Decimal(cash.get(n, "0")), type_assumed=assumed) for n in names],
        positions=[ParsedPosition(account=a, ticker=t, shares=Decimal(s), cost_basis=None if c is None else Decimal(c),
                                  acquired_on=None, line=i + 2) for i, (a, t, s, c) in enumerate(positions)],
    )


# --- import ------------------------------------------------------------------------------------


def test_it_imports_a_broker_file_and_knows_nothing_of_runs(portfolio, aapl):
    outcome = services.portfolio_import_file(
        portfolio=portfolio, data=(FIXTURES / "Portfolio_Positions_Dec-31-2025.csv").read_bytes(),
        filename="Portfolio_Positions_Dec-31-2025.csv",
    )
    assert (outcome.holdings, outcome.accounts) == (7, 3)
    accounts = {a.name: a for a in portfolio.accounts.all()}
    assert accounts["ROTH IRA"].account_type == "roth_ira"
    assert accounts["Individual"].cash_usd == Decimal("2512.34")
    assert accounts["Individual"].number_masked == "...6789"
    assert accounts["Individual"].broker == "Fidelity"
    assert ("Individual", "BRK-B", Decimal("15.5"), Decimal("6200.00")) in lots(portfolio)
    # AAPL was known: reused. The others become unpriced "unknown" securities, held fixed by the optimizer.
    assert Security.objects.get(ticker="AAPL").pk == aapl.pk
    nvda = Security.objects.get(ticker="NVDA")
    assert (nvda.kind, nvda.priced, nvda.source) == ("unknown", False, "import")
    assert any("No market data for" in w and "NVDA" in w for w in outcome.warnings)
    assert any("pending activity" in w.lower() for w in outcome.warnings)
    assert not RebalanceRun.objects.filter(portfolio=portfolio).exists(), "the view requests the run, not the service"


def test_replace_makes_the_portfolio_exactly_the_file(portfolio):
    services.portfolio_import(portfolio=portfolio, parsed=parsed_of(
        ("Old", "MSFT", "3", "900"), ("Brokerage", "XLF", "10", None), cash={"Old": "50"}))
    services.portfolio_import(portfolio=portfolio, parsed=parsed_of(("Brokerage", "AAPL", "1", "100")))
    assert list(portfolio.accounts.values_list("name", flat=True)) == ["Brokerage"]
    assert lots(portfolio) == [("Brokerage", "AAPL", Decimal("1"), Decimal("100.00"))]


def test_merge_replaces_the_files_tickers_and_keeps_the_rest(portfolio):
    services.portfolio_import(portfolio=portfolio, parsed=parsed_of(
        ("Brokerage", "MSFT", "3", "900"), ("Brokerage", "AAPL", "1", "100"), ("Roth", "VTI", "5", None),
        cash={"Brokerage": "10", "Roth": "20"}))
    update = parsed_of(("Brokerage", "AAPL", "2", "150"), ("Brokerage", "AAPL", "1", "90"), ("New", "XLF", "4", None))
    for _ in range(2):  # merging the same file twice changes nothing more
        services.portfolio_import(portfolio=portfolio, parsed=update, mode="merge")
        assert lots(portfolio) == [
            ("Brokerage", "AAPL", Decimal("1"), Decimal("90.00")),
            ("Brokerage", "AAPL", Decimal("2"), Decimal("150.00")),
            ("Brokerage", "MSFT", Decimal("3"), Decimal("900.00")),
            ("New", "XLF", Decimal("4"), None),
            ("Roth", "VTI", Decimal("5"), None),
        ]
    cash = dict(portfolio.accounts.values_list("name", "cash_usd"))
    assert cash == {"Brokerage": Decimal("10.00"), "Roth": Decimal("20.00"), "New": Decimal("0.00")}


def test_an_assumed_type_does_not_overwrite_the_users_choice(portfolio):
    Account.objects.create(portfolio=portfolio, name="Vanguard ...5678", account_type="roth_ira")
    services.portfolio_import_file(portfolio=portfolio, data=(FIXTURES / "OfxDownload.csv").read_bytes())
    types = dict(portfolio.accounts.values_list("name", "account_type"))
    assert types == {"Vanguard ...5678": "roth_ira", "Vanguard ...4321": "taxable"}


def test_a_refused_file_writes_nothing(portfolio):
    services.portfolio_import(portfolio=portfolio, parsed=parsed_of(("Brokerage", "MSFT", "3", "900")))
    before = snapshot(portfolio)
    with pytest.raises(ImportFailed) as info:
        services.portfolio_import_file(portfolio=portfolio, data=b"ticker,shares\nAAPL,10\nNEWCO,-1\n")
    assert [(e.line, e.field) for e in info.value.errors] == [(3, "shares")]
    assert snapshot(portfolio) == before


def test_a_failure_halfway_through_writing_rolls_everything_back(portfolio):
    services.portfolio_import(portfolio=portfolio, parsed=parsed_of(("Brokerage", "MSFT", "3", "900"),
                                                                     cash={"Brokerage": "75"}))
    before = snapshot(portfolio)
    good = parsed_of(("Brokerage", "AAPL", "2", None), ("Other", "NEWCO", "1", None), cash={"Other": "5"})
    # The last lot breaks the database's own check (shares >= 0) after the accounts were rewritten, the
    # old holdings deleted and the new securities created.
    bad = replace(good, positions=[*good.positions, replace(good.positions[0], shares=Decimal("-1"))])
    from django.db import IntegrityError

    with pytest.raises(IntegrityError):
        services.portfolio_import(portfolio=portfolio, parsed=bad)
    assert snapshot(portfolio) == before
    assert not Security.objects.filter(ticker="NEWCO").exists()


def test_import_rejects_an_unknown_mode(portfolio):
    with pytest.raises(ValueError, match="mode"):
        services.portfolio_import(portfolio=portfolio, parsed=parsed_of(("A", "AAPL", "1", None)), mode="append")


# --- manual edits --------------------------------------------------------------------------------


def test_manual_edits_write_and_leave_runs_to_the_views(portfolio, aapl):
    holding = services.holding_create(portfolio=portfolio, account=None, ticker="aapl", shares=Decimal("3"))
    assert (holding.account.name, holding.account.account_type) == ("Taxable", "taxable")  # created on demand
    assert holding.security == aapl
    roth = services.account_create(portfolio=portfolio, name="Roth", account_type="roth_ira", cash_usd=Decimal("9"))
    services.holding_update(holding=holding, account=roth, ticker="BRK.B", shares=Decimal("4"),
                            cost_basis_usd=Decimal("1000"), acquired_on=dt.date(2020, 1, 2))
    holding.refresh_from_db()
    assert (holding.account, holding.security.ticker, holding.shares) == (roth, "BRK-B", Decimal("4"))
    services.account_update(account=roth, name="Roth IRA", account_type="roth_ira", cash_usd=Decimal("12.5"))
    assert Account.objects.get(pk=roth.pk).cash_usd == Decimal("12.50")
    services.holding_delete(holding=holding)
    assert not Holding.objects.filter(pk=holding.pk).exists()
    services.account_delete(account=roth)
    assert list(portfolio.accounts.values_list("name", flat=True)) == ["Taxable"]
    assert not RebalanceRun.objects.filter(portfolio=portfolio).exists()


def test_a_holding_cannot_go_into_another_portfolios_account(portfolio, bob):
    other = Account.objects.create(portfolio=Portfolio.objects.create(owner=bob, name="B"), name="X")
    with pytest.raises(ValueError):
        services.holding_create(portfolio=portfolio, account=other, ticker="AAPL", shares=Decimal("1"))


# --- reads ---------------------------------------------------------------------------------------


def test_positions_are_valued_at_the_newest_price(portfolio, aapl):
    services.portfolio_import(portfolio=portfolio, parsed=parsed_of(
        ("Brokerage", "AAPL", "2", "300"), ("Brokerage", "NEWCO", "5", None), cash={"Brokerage": "100"}))
    rows = {p.ticker: p for p in selectors.portfolio_positions(portfolio=portfolio)}
    assert rows["AAPL"].price == Decimal("250.5") and rows["AAPL"].price_date == dt.date(2025, 12, 31)
    assert rows["AAPL"].value == Decimal("501.00")
    assert rows["AAPL"].cost_basis == Decimal("300.00") and rows["AAPL"].account == "Brokerage"
    assert (rows["NEWCO"].price, rows["NEWCO"].value, rows["NEWCO"].priced) == (None, None, False)
    overview = selectors.portfolio_holdings_overview(portfolio=portfolio)
    assert overview.value == Decimal("601.00")  # priced positions and cash; NEWCO has no price
    assert overview.unpriced == ["NEWCO"]
    assert overview.missing_cost == ["NEWCO"]


def test_the_preview_says_what_is_missing(portfolio, aapl):
    parsed = parse_positions(b"ticker,shares\nAAPL,2\nNEWCO,1\n")
    preview = selectors.import_preview(portfolio=portfolio, parsed=parsed)
    assert preview.value == Decimal("501.00")
    assert [r.known for r in preview.accounts[0].positions] == [True, False]
    assert any("NEWCO" in m for m in preview.missing)
    assert any("tax estimates are off" in w for w in parsed.warnings)


def test_portfolio_summaries_count_accounts_and_positions(portfolio, alice):
    services.portfolio_import(portfolio=portfolio, parsed=parsed_of(("A", "AAPL", "1", None), ("B", "MSFT", "1", None),
                                                                     ("B", "XLF", "1", None)))
    (summary,) = selectors.portfolio_summaries(owner=alice)
    assert (summary.portfolio, summary.accounts, summary.positions) == (portfolio, 2, 3)


def test_the_preview_shows_the_type_an_existing_account_keeps(portfolio):
    Account.objects.create(portfolio=portfolio, name="Vanguard ...5678", account_type="roth_ira")
    parsed = parse_positions((FIXTURES / "OfxDownload.csv").read_bytes())
    labels = {a.account.name: a.account_type_label
              for a in selectors.import_preview(portfolio=portfolio, parsed=parsed).accounts}
    assert labels == {"Vanguard ...5678": "Roth IRA", "Vanguard ...4321": "Taxable"}
