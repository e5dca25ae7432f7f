"""Holdings pages: upload -> preview -> confirm, manual editing, CSV export, and ownership (404)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from portfolios.holdings.importers import parse_positions
from portfolios.models import Account, Holding, Portfolio, Price, RebalanceRun, Security

pytestmark = pytest.mark.django_db
FIXTURES = Path(__file__).parent / "fixtures" / "brokers"
FIDELITY = "Portfolio_Positions_Dec-31-2025.csv"


@pytest.fixture
def portfolio(alice) -> Portfolio:
    return Portfolio.objects.create(owner=alice, name="Alice main")


@pytest.fixture
def account(portfolio) -> Account:
    return Account.objects.create(portfolio=portfolio, name="Brokerage", cash_usd=Decimal("100"))


@pytest.fixture
def holding(account) -> Holding:
    security = Security.objects.create(ticker="AAPL", name="Apple", kind="stock", priced=True)
    Price.objects.create(security=security, date=dt.date(2025, 12, 31), close=250.0)
    return Holding.objects.create(account=account, security=security, shares=Decimal("4"),
                                  cost_basis_usd=Decimal("600"))


def upload(client, portfolio, name: str, data: bytes | None = None):
    data = (FIXTURES / name).read_bytes() if data is None else data
    return client.post(reverse("holdings_upload", args=[portfolio.pk]),
                       {"file": SimpleUploadedFile(name, data, content_type="text/csv")})


def lots(portfolio):
    return sorted((h.account.name, h.security.ticker, h.shares, h.cost_basis_usd)
                  for h in Holding.objects.filter(account__portfolio=portfolio).select_related("account", "security"))


# --- holdings page -------------------------------------------------------------------------------


def test_the_holdings_page_shows_accounts_positions_values_and_links(alice_client, portfolio, holding):
    response = alice_client.get(reverse("holdings", args=[portfolio.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Brokerage" in html and "AAPL" in html
    assert "$1,000.00" in html  # 4 x 250
    assert "$1,100.00" in html  # with the cash
    for name in ("holdings_upload", "holding_add", "account_add", "holdings_export", "portfolio_detail"):
        assert reverse(name, args=[portfolio.pk]) in html
    assert reverse("holding_edit", args=[holding.pk]) in html


def test_an_empty_portfolio_invites_an_upload(alice_client, portfolio):
    response = alice_client.get(reverse("holdings", args=[portfolio.pk]))
    assert 'data-testid="holdings-empty"' in response.content.decode()


def test_creating_a_portfolio_lands_on_its_holdings(alice_client):
    response = alice_client.post(reverse("portfolio_create"), {"name": "New one", "profile": "moderate"})
    portfolio = Portfolio.objects.get(name="New one")
    assert response.url == reverse("holdings", args=[portfolio.pk])


# --- upload -> preview -> confirm ------------------------------------------------------------------


def test_upload_preview_confirm_writes_exactly_what_was_previewed(alice_client, portfolio, holding):
    response = upload(alice_client, portfolio, FIDELITY)
    assert response.status_code == 302
    assert response.url == reverse("holdings_import_preview", args=[portfolio.pk])
    assert lots(portfolio) == [("Brokerage", "AAPL", Decimal("4.000000"), Decimal("600.00"))]  # nothing yet

    preview = alice_client.get(response.url)
    html = preview.content.decode()
    assert preview.status_code == 200
    assert "Fidelity" in html and "as of 2025-12-31" in html
    assert html.count('data-testid="preview-row"') == 7
    assert "No cost basis" in html and "tax estimates are off" in html
    assert "pending activity" in html.lower()
    assert "$2,512.34" in html  # cash read from SPAXX**
    assert "Replace removes the 1 holding" in html and "Brokerage" in html
    token = preview.context["form"].initial["token"]

    confirm = alice_client.post(reverse("holdings_import_confirm", args=[portfolio.pk]),
                                {"mode": "replace", "token": token})
    assert confirm.url == reverse("holdings", args=[portfolio.pk])
    expected = parse_positions((FIXTURES / FIDELITY).read_bytes())
    assert lots(portfolio) == sorted((p.account, p.ticker, p.shares, p.cost_basis) for p in expected.positions)
    assert RebalanceRun.objects.get(portfolio=portfolio).trigger == "import"
    # The preview is used up: confirming again does nothing more.
    again = alice_client.post(reverse("holdings_import_confirm", args=[portfolio.pk]),
                              {"mode": "replace", "token": token})
    assert again.url == reverse("holdings_upload", args=[portfolio.pk])


def test_confirm_can_merge(alice_client, portfolio, holding):
    upload(alice_client, portfolio, "generic_minimal.csv")
    token = alice_client.get(reverse("holdings_import_preview", args=[portfolio.pk])).context["form"].initial["token"]
    alice_client.post(reverse("holdings_import_confirm", args=[portfolio.pk]), {"mode": "merge", "token": token})
    assert lots(portfolio) == [
        ("Brokerage", "AAPL", Decimal("4.000000"), Decimal("600.00")),
        ("Taxable", "MSFT", Decimal("3.000000"), None),
        ("Taxable", "QQQ", Decimal("2.500000"), None),
    ]


def test_a_stale_preview_token_writes_nothing(alice_client, portfolio):
    upload(alice_client, portfolio, "generic_minimal.csv")
    response = alice_client.post(reverse("holdings_import_confirm", args=[portfolio.pk]),
                                 {"mode": "replace", "token": "not-the-token"})
    assert response.url == reverse("holdings_import_preview", args=[portfolio.pk])
    assert lots(portfolio) == []


def test_preview_without_an_upload_sends_back_to_upload(alice_client, portfolio):
    response = alice_client.get(reverse("holdings_import_preview", args=[portfolio.pk]))
    assert response.url == reverse("holdings_upload", args=[portfolio.pk])


def test_a_refused_file_lists_every_problem_and_writes_nothing(alice_client, portfolio, holding):
    response = upload(alice_client, portfolio, "bad.csv", b"ticker,shares\n=cmd(),1\nMSFT,-2\nXLF,NaN\n")
    assert response.status_code == 400
    html = response.content.decode()
    assert html.count('data-testid="import-problem"') == 3
    assert "negative quantity" in html and "not a finite number" in html and "cannot be a ticker" in html
    assert lots(portfolio) == [("Brokerage", "AAPL", Decimal("4.000000"), Decimal("600.00"))]
    assert f"holdings_import_{portfolio.pk}" not in alice_client.session


def test_an_oversized_upload_is_refused_before_reading(alice_client, portfolio, settings):
    settings.IMPORT_MAX_BYTES = 1024
    response = upload(alice_client, portfolio, "big.csv", b"ticker,shares\n" + b"AAPL,1\n" * 400)
    assert response.status_code == 400
    assert "the limit is" in response.content.decode()


def test_the_upload_page_is_an_accessible_form(alice_client, portfolio):
    html = alice_client.get(reverse("holdings_upload", args=[portfolio.pk])).content.decode()
    assert 'enctype="multipart/form-data"' in html
    assert '<label for="id_file">' in html


# --- manual editing ------------------------------------------------------------------------------


def test_add_edit_and_delete_a_holding(alice_client, portfolio, account):
    add = alice_client.post(reverse("holding_add", args=[portfolio.pk]),
                            {"account": account.pk, "ticker": "brk.b", "shares": "2.5", "cost_basis_usd": "1000"})
    assert add.status_code == 302
    holding = Holding.objects.get(account=account)
    assert (holding.security.ticker, holding.shares) == ("BRK-B", Decimal("2.5"))
    assert RebalanceRun.objects.get(portfolio=portfolio).trigger == "edit"

    edit = alice_client.post(reverse("holding_edit", args=[holding.pk]),
                             {"account": account.pk, "ticker": "BRK-B", "shares": "3", "acquired_on": "2020-05-01"})
    assert edit.status_code == 302
    holding.refresh_from_db()
    assert (holding.shares, holding.cost_basis_usd, holding.acquired_on) == (Decimal("3"), None, dt.date(2020, 5, 1))

    assert alice_client.get(reverse("holding_delete", args=[holding.pk])).status_code == 200
    alice_client.post(reverse("holding_delete", args=[holding.pk]))
    assert not Holding.objects.filter(pk=holding.pk).exists()


def test_adding_to_a_portfolio_without_accounts_creates_a_taxable_one(alice_client, portfolio):
    alice_client.post(reverse("holding_add", args=[portfolio.pk]), {"ticker": "VTI", "shares": "1"})
    assert lots(portfolio) == [("Taxable", "VTI", Decimal("1.000000"), None)]


def test_holding_form_errors_are_inline(alice_client, portfolio, account):
    response = alice_client.post(reverse("holding_add", args=[portfolio.pk]),
                                 {"account": account.pk, "ticker": "=cmd()", "shares": "-1"})
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="id_ticker_errors"' in html and 'id="id_shares_errors"' in html
    assert "cannot be a ticker" in html
    assert not Holding.objects.exists()


def test_add_edit_and_delete_an_account_and_its_cash(alice_client, portfolio, account, holding):
    alice_client.post(reverse("account_add", args=[portfolio.pk]),
                      {"name": "Roth", "account_type": "roth_ira", "cash_usd": "250.75"})
    roth = Account.objects.get(portfolio=portfolio, name="Roth")
    assert (roth.account_type, roth.cash_usd) == ("roth_ira", Decimal("250.75"))

    duplicate = alice_client.post(reverse("account_add", args=[portfolio.pk]),
                                  {"name": "Roth", "account_type": "roth_ira", "cash_usd": "0"})
    assert duplicate.status_code == 400 and "already has an account" in duplicate.content.decode()

    alice_client.post(reverse("account_edit", args=[account.pk]),
                      {"name": "Brokerage", "account_type": "taxable", "cash_usd": "999.99",
                       "number_masked": "...1234"})
    account.refresh_from_db()
    assert (account.cash_usd, account.number_masked) == (Decimal("999.99"), "...1234")
    full_number = alice_client.post(reverse("account_edit", args=[account.pk]),
                                    {"name": "Brokerage", "account_type": "taxable", "cash_usd": "1",
                                     "number_masked": "123456789"})
    assert full_number.status_code == 400

    alice_client.post(reverse("account_delete", args=[account.pk]))
    assert not Account.objects.filter(pk=account.pk).exists()
    assert not Holding.objects.filter(pk=holding.pk).exists()


# --- export --------------------------------------------------------------------------------------


def test_export_is_formula_safe_and_reads_back(alice_client, portfolio, holding):
    evil = Account.objects.create(portfolio=portfolio, name="=HYPERLINK(\"http://x\")", cash_usd=Decimal("-5"))
    Holding.objects.create(account=evil, security=holding.security, shares=Decimal("1.5"))
    response = alice_client.get(reverse("holdings_export", args=[portfolio.pk]))
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    text = response.content.decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {r["account"] for r in rows} == {"Brokerage", "'=HYPERLINK(\"http://x\")"}
    assert any(r["ticker"] == "CASH" and r["shares"] == "-5.0" for r in rows)  # a number stays a number
    assert any(r["ticker"] == "AAPL" and r["value"] == "1000.0" for r in rows)

    reread = parse_positions(response.content)  # the generic importer reads the export back
    assert sorted((p.ticker, p.shares, p.cost_basis) for p in reread.positions) == [
        ("AAPL", Decimal("1.5"), None), ("AAPL", Decimal("4"), Decimal("600.00"))]
    assert {a.name: a.cash for a in reread.accounts}["Brokerage"] == Decimal("100.00")


# --- ownership -----------------------------------------------------------------------------------


def _alice_urls(portfolio, account, holding):
    return [
        ("get", reverse("holdings", args=[portfolio.pk])),
        ("get", reverse("holdings_export", args=[portfolio.pk])),
        ("get", reverse("holdings_upload", args=[portfolio.pk])),
        ("post", reverse("holdings_upload", args=[portfolio.pk])),
        ("get", reverse("holdings_import_preview", args=[portfolio.pk])),
        ("post", reverse("holdings_import_confirm", args=[portfolio.pk])),
        ("get", reverse("holding_add", args=[portfolio.pk])),
        ("post", reverse("holding_add", args=[portfolio.pk])),
        ("get", reverse("holding_edit", args=[holding.pk])),
        ("post", reverse("holding_edit", args=[holding.pk])),
        ("get", reverse("holding_delete", args=[holding.pk])),
        ("post", reverse("holding_delete", args=[holding.pk])),
        ("get", reverse("account_add", args=[portfolio.pk])),
        ("post", reverse("account_add", args=[portfolio.pk])),
        ("get", reverse("account_edit", args=[account.pk])),
        ("post", reverse("account_edit", args=[account.pk])),
        ("get", reverse("account_delete", args=[account.pk])),
        ("post", reverse("account_delete", args=[account.pk])),
    ]


def test_bob_gets_404_for_every_holdings_url_of_alice(bob_client, portfolio, account, holding):
    before = lots(portfolio), list(portfolio.accounts.values_list("name", "cash_usd"))
    payload = {"ticker": "AAPL", "shares": "1", "name": "X", "account_type": "taxable", "cash_usd": "1",
               "account": account.pk, "mode": "replace", "token": "x"}
    for method, url in _alice_urls(portfolio, account, holding):
        data = dict(payload, file=SimpleUploadedFile("a.csv", b"ticker,shares\nAAPL,1\n")) if method == "post" else None
        response = getattr(bob_client, method)(url, data) if data else bob_client.get(url)
        assert response.status_code == 404, (method, url, response.status_code)
    assert (lots(portfolio), list(portfolio.accounts.values_list("name", "cash_usd"))) == before


def test_bob_cannot_move_his_holding_into_alices_account(bob_client, bob, account):
    own = Portfolio.objects.create(owner=bob, name="Bob")
    response = bob_client.post(reverse("holding_add", args=[own.pk]),
                               {"account": account.pk, "ticker": "AAPL", "shares": "1"})
    assert response.status_code == 400  # not one of his accounts: an invalid choice
    assert not Holding.objects.filter(account=account).exists()
