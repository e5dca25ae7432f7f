"""Real headless Chromium: a pending run turns into a result by htmx polling, without a reload."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone

from portfolios.models import Account, Holding, Portfolio, RebalanceRun, Security
from tests.conftest import ARTIFACTS, verified_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FIXTURE = Path(__file__).parent / "fixtures" / "sample_result.json"
PASSWORD = "correct horse battery"


def shot(page, name: str) -> str:
    path = os.path.join(ARTIFACTS, name)
    page.screenshot(path=path, full_page=True)
    return path


def log_in(page, email: str, next_url: str) -> None:
    page.goto(f"/accounts/login/?next={next_url}")
    page.locator("input[name=login]").fill(email)
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("form button[type=submit]").click()
    page.wait_for_url(f"**{next_url}")


@pytest.fixture
def portfolio(django_user_model) -> Portfolio:
    user = verified_user("alice", "alice@example.com", PASSWORD)
    portfolio = Portfolio.objects.create(owner=user, name="Retirement")
    account = Account.objects.create(portfolio=portfolio, name="Taxable")
    security = Security.objects.create(ticker="NVDA", kind="stock", priced=True)
    Holding.objects.create(account=account, security=security, shares=Decimal("420"))
    return portfolio


def test_a_pending_run_swaps_in_its_result_and_exports_csv(page, portfolio):
    sample = json.loads(FIXTURE.read_text())
    run = RebalanceRun.objects.create(portfolio=portfolio, status="pending", trigger="import", profile="moderate",
                                      inputs={"profile": "moderate"})
    url = f"/portfolios/{portfolio.pk}/"
    log_in(page, "alice@example.com", url)

    status = page.get_by_test_id("run-status")
    assert status.get_attribute("data-status") == "pending"
    assert "Recompute pending" in status.inner_text()
    assert page.get_by_test_id("trade-row").count() == 0
    page.evaluate("window.__sameDocument = 'yes'")
    shot(page, "recommendations-pending.png")

    # The worker finishes the run (written straight to the database with the fixture result).
    RebalanceRun.objects.filter(pk=run.pk).update(
        status="done", result=sample, prices_as_of=dt.date(2025, 12, 31),
        started_at=timezone.now(), finished_at=timezone.now(), duration_ms=2100,
    )
    page.get_by_test_id("summary").wait_for(timeout=15_000)
    assert page.evaluate("window.__sameDocument") == "yes"  # swapped in by polling, not a reload
    assert status.get_attribute("data-status") == "done"
    assert page.get_by_test_id("summary").inner_text() == sample["summary"]

    rows = page.get_by_test_id("trade-row")
    assert rows.count() == len(sample["trades"])
    first = rows.nth(0).inner_text()
    assert sample["trades"][0]["ticker"] in first and "Sell" in first
    assert "2025-12-31" in page.get_by_test_id("history").inner_text()

    # the charts were drawn in the swapped-in section (four exposures + equity curve)
    page.wait_for_function("document.querySelectorAll('canvas[data-drawn]').length === 5")
    shot(page, "recommendations-result-desktop.png")

    with page.expect_download() as download_info:
        page.get_by_test_id("export-csv").click()
    download = download_info.value
    assert download.suggested_filename == "retirement-trades-2025-12-31.csv"
    rows_csv = list(csv.DictReader(io.StringIO(Path(download.path()).read_text())))
    assert [r["ticker"] for r in rows_csv] == [t["ticker"] for t in sample["trades"]]

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    page.wait_for_function("document.querySelectorAll('canvas[data-drawn]').length === 5")
    # on a phone the trade table becomes cards and wide tables scroll inside their own box: the page itself
    # is no wider than the viewport (or than the site header, which is base.html's business)
    assert page.evaluate(
        "document.documentElement.scrollWidth <= "
        "Math.max(window.innerWidth, document.querySelector('body > header').scrollWidth) + 1"
    )
    assert page.evaluate("document.querySelector('main').scrollWidth <= window.innerWidth + 1")
    shot(page, "recommendations-result-mobile.png")

    page.set_viewport_size({"width": 1100, "height": 900})
    page.goto(f"/portfolios/{portfolio.pk}/runs/{run.pk}/print/")
    assert page.get_by_test_id("trade-row").count() == len(sample["trades"])
    shot(page, "recommendations-print.png")


def test_a_poll_after_the_session_expired_goes_to_the_login_page(page, portfolio):
    RebalanceRun.objects.create(portfolio=portfolio, status="pending", trigger="manual", profile="moderate")
    url = f"/portfolios/{portfolio.pk}/"
    log_in(page, "alice@example.com", url)
    assert page.get_by_test_id("run-status").get_attribute("data-status") == "pending"
    page.context.clear_cookies()
    page.wait_for_url(f"**/accounts/login/?next=%2Fportfolios%2F{portfolio.pk}%2F", timeout=10_000)
    assert page.locator("input[name=login]").is_visible()  # a whole login page, not one stuffed into the status box
