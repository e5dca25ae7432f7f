"""Real headless Chromium: set a tax budget on the page, run, and read the plan's figures and the trade-off table.

The worker's part is played by the test (the run is finished in the database with an engine-independent
document carrying issue 15's keys), so this checks the page, not the engine."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from portfolios.models import Account, Holding, Portfolio, RebalanceRun, Security
from tests.conftest import ARTIFACTS, verified_user
from tests.test_plan_options import issue15_document
from tests.test_recommendations_browser import PASSWORD, log_in, shot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def portfolio(django_user_model) -> Portfolio:
    user = verified_user("alice", "alice@example.com", PASSWORD)
    portfolio = Portfolio.objects.create(owner=user, name="Retirement")
    account = Account.objects.create(portfolio=portfolio, name="Taxable")
    security = Security.objects.create(ticker="NVDA", kind="stock", priced=True)
    Holding.objects.create(account=account, security=security, shares=Decimal("420"))
    return portfolio


def test_a_tax_budget_set_on_the_page_shows_in_the_plan_and_its_tradeoffs(page, portfolio, monkeypatch):
    # The session's real worker (started by earlier tests) must not take this run: it is finished by hand below.
    queued: list[int] = []
    monkeypatch.setattr("portfolios.recommendations.services._enqueue", lambda ids, **kw: queued.extend(ids) or 0)
    url = f"/portfolios/{portfolio.pk}/"
    log_in(page, "alice@example.com", url)
    options = page.get_by_test_id("options")
    assert "tax budget 1% a year" in options.locator("summary").inner_text()
    options.locator("summary").click()
    assert page.locator("#id_tax_budget_pct").input_value() == "1"
    assert page.locator("#id_max_funds").input_value() == "6"

    page.locator("#id_tax_budget_pct").fill("0.5")
    page.locator("#id_max_funds").fill("4")
    page.get_by_test_id("save-options").click()
    page.wait_for_url(f"**{url}")
    assert "tax budget 0.5% a year, at most 4 funds bought" in page.get_by_test_id("options").inner_text()
    run = RebalanceRun.objects.get(portfolio=portfolio)
    assert (run.status, run.inputs["tax_budget"], run.inputs["max_funds"]) == ("pending", 0.005, 4)
    assert queued == [run.pk]
    assert page.get_by_test_id("run-status").get_attribute("data-status") == "pending"

    # The worker finishes the run with the plan a 0.5% budget allowed (the row it chose marked current).
    document = issue15_document(tax_budget=0.005)
    for row in document["tradeoffs"]:
        row["current"] = False
    document["tradeoffs"].insert(1, {"budget": 0.005, "est_taxes": 1580.0, "volatility": 0.219, "limits_met": 4,
                                     "limits_total": 6, "current": True})
    document["est_taxes"] = 1580.0
    RebalanceRun.objects.filter(pk=run.pk).update(
        status="done", result=document, prices_as_of=dt.date(2025, 12, 31),
        started_at=timezone.now(), finished_at=timezone.now(), duration_ms=1900,
    )
    facts = page.get_by_test_id("plan-facts")
    facts.wait_for(timeout=15_000)  # swapped in by polling
    assert page.get_by_test_id("plan-orders").inner_text() == str(document["orders"])
    assert page.get_by_test_id("plan-funds").inner_text() == str(document["funds_bought"])
    assert page.get_by_test_id("plan-tax").inner_text() == "$1,580"
    budget_line = page.get_by_test_id("plan-tax-budget").inner_text()
    assert f"{1580 / document['value']:.2%} of value" in budget_line and "budget 0.5% a year" in budget_line
    notes = page.get_by_test_id("notes").inner_text()
    assert all(note in notes for note in document["notes"])
    risk = page.get_by_test_id("risk").inner_text()
    assert "plain 3-year sample" in risk and "33.1%" in risk and "21.9%" in risk

    table = page.get_by_test_id("tradeoffs")
    assert table.is_visible()
    rows = page.get_by_test_id("tradeoff-row")
    assert rows.count() == 5
    current = page.locator("[data-testid=tradeoff-row][data-current=true]")
    assert current.count() == 1
    assert "0.5% of value (this plan)" in current.inner_text() and "4 of 6" in current.inner_text()
    assert "No limit" in rows.nth(4).inner_text()
    page.get_by_role("link", name="Tax trade-off").click()
    assert page.evaluate("location.hash") == "#tradeoffs"
    shot(page, "plan-options-result.png")
    page.locator("#run-result header.result-head").screenshot(path=f"{ARTIFACTS}/plan-options-head.png")
    facts.screenshot(path=f"{ARTIFACTS}/plan-options-facts.png")
    page.locator("#tradeoffs").screenshot(path=f"{ARTIFACTS}/plan-options-tradeoffs.png")

    page.goto(f"/portfolios/{portfolio.pk}/runs/{run.pk}/print/")
    assert page.get_by_test_id("plan-facts").is_visible()
    assert page.locator("[data-testid=tradeoff-row][data-current=true]").count() == 1
    shot(page, "plan-options-print.png")
