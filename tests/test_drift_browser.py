"""Real headless Chromium: choose a custom target, see the live validation, save it, see it on the page."""

from __future__ import annotations

import os

import pytest

from portfolios.models import Portfolio, Security
from tests.conftest import ARTIFACTS, verified_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery"


@pytest.fixture
def portfolio() -> Portfolio:
    user = verified_user("alice", "alice@example.com", PASSWORD)
    for ticker, klass in (("VTI", "equity"), ("VXUS", "equity"), ("XLF", "equity"), ("BND", "bond")):
        Security.objects.create(ticker=ticker, kind="etf", asset_class=klass, is_menu=True, priced=True)
    return Portfolio.objects.create(owner=user, name="Retirement")


def test_a_custom_target_in_a_real_browser(page, portfolio):
    url = f"/portfolios/{portfolio.pk}/target/"
    page.goto(f"/accounts/login/?next={url}")
    page.locator("input[name=login]").fill("alice@example.com")
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("form button[type=submit]").click()
    page.wait_for_url(f"**{url}")
    assert not page.get_by_test_id("custom-target").is_visible()  # thesis by default: no custom fields

    page.get_by_label("Custom").check()
    assert page.get_by_test_id("custom-target").is_visible()
    page.get_by_label("Stocks (%)").fill("60")
    page.get_by_label("Bonds (%)").fill("30")
    page.get_by_label("Cash (%)").fill("5")
    assert "must sum to 100% (now 95.0%)" in page.get_by_test_id("mix-total").inner_text()
    page.get_by_label("Stock funds").fill("VTI 70, AAPL 30")
    assert "AAPL is not a stocks fund on the menu" in page.get_by_test_id("stock-funds-live").inner_text()
    page.screenshot(path=os.path.join(ARTIFACTS, "drift-target-live-errors.png"), full_page=True)

    # The server refuses it too (no JavaScript needed), naming the fields, and writes nothing.
    page.get_by_role("button", name="Save target").click()
    page.wait_for_load_state()
    errors = page.locator("ul.errorlist").all_inner_texts()
    assert any("Stocks + bonds + cash" in e for e in errors) and any("AAPL" in e for e in errors)
    assert Portfolio.objects.get(pk=portfolio.pk).target == {"kind": "thesis"}

    page.get_by_label("Custom").check()
    page.get_by_label("Cash (%)").fill("10")
    assert page.get_by_test_id("mix-total").inner_text() == "Total 100%."
    page.get_by_label("Stock funds").fill("VTI 70, XLF 30")
    page.get_by_label("Bond funds").fill("BND 100")
    assert page.get_by_test_id("stock-funds-live").inner_text() == "OK."
    page.get_by_role("button", name="Save target").click()
    page.wait_for_url(f"**/portfolios/{portfolio.pk}/")
    target = Portfolio.objects.get(pk=portfolio.pk).target
    assert target["mix"] == {"stocks": 0.6, "bonds": 0.3, "cash": 0.1}
    assert target["funds"]["stocks"] == {"VTI": 0.7, "XLF": 0.3}
    panel = page.get_by_test_id("drift-panel").inner_text()
    assert "Asset classes: stocks 60%, bonds 30%, cash 10%." in panel
    page.screenshot(path=os.path.join(ARTIFACTS, "drift-target-saved.png"), full_page=True)


def test_the_drift_chart_and_badge_render(page, portfolio):
    from portfolios.models import DriftCheck

    for largest, status in ((0.02, "in_band"), (0.09, "drifted"), (0.2, "breaks_limit")):
        DriftCheck.objects.create(portfolio=portfolio, status=status, largest=largest, largest_label="NVDA",
                                  since_plan=largest / 2)
    page.goto(f"/accounts/login/?next=/portfolios/{portfolio.pk}/")
    page.locator("input[name=login]").fill("alice@example.com")
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("form button[type=submit]").click()
    page.wait_for_url(f"**/portfolios/{portfolio.pk}/")
    page.wait_for_function("() => window.Chart && Chart.getChart(document.getElementById('drift-chart'))")
    points = page.evaluate("() => Chart.getChart(document.getElementById('drift-chart')).data.datasets[0].data")
    assert points == [2.0, 9.0, 20.0]
    assert page.get_by_test_id("drift-badge").inner_text() == "breaks a limit"
    page.screenshot(path=os.path.join(ARTIFACTS, "drift-panel.png"), full_page=True)
    page.goto("/portfolios/")
    assert page.get_by_test_id("drift-badge").inner_text() == "breaks a limit"
