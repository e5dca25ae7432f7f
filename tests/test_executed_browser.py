"""Real headless Chromium: mark a suggestion's trades as made (one left out, one at its own fill price) and see
the holdings follow, with the audit trail on the portfolio page."""

from __future__ import annotations

import datetime as dt
import json
import os
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone

from portfolios.models import Account, ExecutedPlan, Holding, Portfolio, Price, RebalanceRun, Security
from tests.conftest import ARTIFACTS, PASSWORD, verified_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SAMPLE = json.loads((Path(__file__).parent / "fixtures" / "sample_result.json").read_text())


def security(ticker: str, price: float) -> Security:
    sec = Security.objects.create(ticker=ticker, kind="etf", priced=True)
    Price.objects.create(security=sec, date=dt.date(2025, 12, 31), close=price)
    return sec


@pytest.fixture
def run() -> RebalanceRun:
    """The sample suggestion (sell NVDA, AAPL, XLK; buy XLF, IWM, BND, RSP) on holdings it fits."""
    user = verified_user("alice", "alice@example.com", PASSWORD)
    portfolio = Portfolio.objects.create(owner=user, name="Retirement")
    taxable = Account.objects.create(portfolio=portfolio, name="Taxable", cash_usd=Decimal("2000"))
    ira = Account.objects.create(portfolio=portfolio, name="Rollover IRA", account_type="traditional_ira")
    prices = {t["ticker"]: t["price"] for t in SAMPLE["trades"]}
    sec = {ticker: security(ticker, price) for ticker, price in prices.items()}
    Holding.objects.create(account=taxable, security=sec["NVDA"], shares=200, cost_basis_usd=10_000,
                           acquired_on=dt.date(2021, 3, 1))
    Holding.objects.create(account=taxable, security=sec["AAPL"], shares=100, cost_basis_usd=8_000)
    Holding.objects.create(account=ira, security=sec["XLK"], shares=300)
    return RebalanceRun.objects.create(
        portfolio=portfolio, status="done", trigger="import", profile="moderate", inputs={"profile": "moderate"},
        result=SAMPLE, prices_as_of=dt.date(2025, 12, 31), started_at=timezone.now(), finished_at=timezone.now(),
    )


def held(portfolio: Portfolio) -> dict[tuple[str, str], Decimal]:
    return {(h.account.name, h.security.ticker): h.shares
            for h in Holding.objects.filter(account__portfolio=portfolio).select_related("account", "security")}


def test_marking_trades_as_made_updates_the_holdings(page, run):
    portfolio = run.portfolio
    url = f"/portfolios/{portfolio.pk}/"
    page.goto(f"/accounts/login/?next={url}")
    page.locator("input[name=login]").fill("alice@example.com")
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("form button[type=submit]").click()
    page.wait_for_url(f"**{url}")

    page.get_by_test_id("mark-executed").click()
    page.wait_for_url(f"**/runs/{run.pk}/executed/")
    rows = page.get_by_test_id("executed-row")
    assert rows.count() == len(SAMPLE["trades"])
    bnd = 5
    assert SAMPLE["trades"][bnd]["ticker"] == "BND"
    page.get_by_label(f"I made trade {bnd + 1}").uncheck()  # not made (yet)
    page.get_by_label("Fill price of trade 7 (RSP, USD)").fill("189.5")
    page.get_by_label("Fill price of trade 1 (NVDA, USD)").fill("-1")
    page.get_by_test_id("executed-submit").click()
    # A bad price is refused with its field named, and nothing changes.
    errors = page.get_by_test_id("executed-errors")
    assert "Fill price of trade 1 (NVDA, USD): A fill price is above 0." in errors.inner_text()
    assert not ExecutedPlan.objects.exists()
    assert not page.get_by_label(f"I made trade {bnd + 1}").is_checked(), "the choices survive the error"
    assert page.get_by_label("Fill price of trade 7 (RSP, USD)").input_value() == "189.5"
    page.get_by_label("Fill price of trade 1 (NVDA, USD)").fill("")
    page.get_by_test_id("executed-submit").click()

    page.wait_for_url(f"**{url}")
    assert "Marked 6 trade(s) as made" in page.content()
    trail = page.get_by_test_id("executed-plan")
    assert trail.count() == 1
    assert "buy 238 RSP at $189.50" in " ".join(trail.inner_text().split())
    page.screenshot(path=os.path.join(ARTIFACTS, "executed-portfolio.png"), full_page=True)

    page.goto(f"/portfolios/{portfolio.pk}/holdings/")
    tickers = page.get_by_test_id("holding-row").locator("th").all_inner_texts()
    assert sorted(tickers) == ["AAPL", "IWM", "NVDA", "RSP", "XLF", "XLK"]  # BND was not bought
    page.screenshot(path=os.path.join(ARTIFACTS, "executed-holdings.png"), full_page=True)
    assert held(portfolio) == {
        ("Taxable", "NVDA"): 50, ("Taxable", "AAPL"): 30, ("Taxable", "RSP"): 238,
        ("Rollover IRA", "XLK"): 50, ("Rollover IRA", "XLF"): 372, ("Rollover IRA", "IWM"): 45,
    }
    # A new run is requested (a worker of the test session may already have taken it).
    assert RebalanceRun.objects.filter(portfolio=portfolio, pk__gt=run.pk, trigger="edit").exists()
