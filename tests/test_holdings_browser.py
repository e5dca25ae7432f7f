"""Real headless Chromium: upload a Fidelity file, check the preview, confirm, see the holdings."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from portfolios.models import Holding, Portfolio, Price, RebalanceRun, Security
from tests.conftest import ARTIFACTS, verified_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FIDELITY = Path(__file__).parent / "fixtures" / "brokers" / "Portfolio_Positions_Dec-31-2025.csv"
PASSWORD = "correct horse battery"


@pytest.fixture
def portfolio(django_user_model) -> Portfolio:
    user = verified_user("alice", "alice@example.com", PASSWORD)
    aapl = Security.objects.create(ticker="AAPL", name="Apple", kind="stock", priced=True)
    Price.objects.create(security=aapl, date=dt.date(2025, 12, 31), close=250.0)
    return Portfolio.objects.create(owner=user, name="Retirement")


def test_upload_preview_confirm_in_a_real_browser(page, portfolio):
    holdings_url = f"/portfolios/{portfolio.pk}/holdings/"
    page.goto(f"/accounts/login/?next={holdings_url}")
    page.locator("input[name=login]").fill("alice@example.com")
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("form button[type=submit]").click()
    page.wait_for_url(f"**{holdings_url}")
    assert page.get_by_test_id("holdings-empty").is_visible()

    page.get_by_test_id("upload-link").click()
    page.wait_for_url(f"**/portfolios/{portfolio.pk}/import/")
    # A damaged file first: refused with every problem listed, nothing written.
    page.get_by_label("Positions file").set_input_files(
        {"name": "mine.csv", "mimeType": "text/csv", "buffer": b"ticker,shares\nAAPL,-3\n=cmd(),1\nXLF,\"12,5\"\n"})
    page.get_by_role("button", name="Read the file").click()
    page.wait_for_load_state()
    assert page.get_by_test_id("import-problem").count() == 3
    page.screenshot(path=os.path.join(ARTIFACTS, "holdings-import-refused.png"), full_page=True)

    page.get_by_label("Positions file").set_input_files(str(FIDELITY))
    page.get_by_role("button", name="Read the file").click()
    page.wait_for_url("**/import/preview/")

    assert page.get_by_test_id("preview-row").count() == 7
    assert page.get_by_test_id("preview-account").count() == 3
    warnings = page.get_by_test_id("preview-warnings").inner_text()
    assert "tax estimates are off" in warnings and "pending activity" in warnings.lower()
    assert "2025-12-31" in page.get_by_test_id("preview-summary").inner_text()
    assert Holding.objects.count() == 0  # nothing written before confirming
    page.screenshot(path=os.path.join(ARTIFACTS, "holdings-import-preview.png"), full_page=True)

    page.get_by_test_id("confirm-import").click()
    page.wait_for_url(f"**{holdings_url}")
    assert page.get_by_test_id("holding-row").count() == 7
    assert "Imported 7 position(s) in 3 account(s)" in page.content()
    assert page.get_by_test_id("account-section").count() == 3
    page.screenshot(path=os.path.join(ARTIFACTS, "holdings-after-import.png"), full_page=True)

    assert Holding.objects.filter(account__portfolio=portfolio).count() == 7
    assert RebalanceRun.objects.filter(portfolio=portfolio, trigger="import").exists()


def test_an_ofx_statement_and_a_history_file_in_a_real_browser(page, portfolio):
    """An OFX/QFX statement previews with its money fund as cash and its T-bill kept; a transaction
    history is refused with what it is and the export to use instead."""
    brokers = FIDELITY.parent
    page.goto(f"/accounts/login/?next=/portfolios/{portfolio.pk}/import/")
    page.locator("input[name=login]").fill("alice@example.com")
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("form button[type=submit]").click()
    page.wait_for_url(f"**/portfolios/{portfolio.pk}/import/")
    assert ".qfx" in page.get_by_label("Positions file").get_attribute("accept")

    page.get_by_label("Positions file").set_input_files(str(brokers / "refused_History_for_Account_Z23456789.csv"))
    page.get_by_role("button", name="Read the file").click()
    page.wait_for_load_state()
    problem = page.get_by_test_id("import-problem").inner_text()
    assert "transaction history" in problem and "Positions > Download" in problem

    page.get_by_label("Positions file").set_input_files(str(brokers / "Fidelity_X12345678.qfx"))
    page.get_by_role("button", name="Read the file").click()
    page.wait_for_url("**/import/preview/")
    assert page.get_by_test_id("preview-row").count() == 5  # SPAXX became cash
    text = page.content()
    assert "912797KX4" in text and "AAPL260116C00300000" in text
    assert "money-market funds as cash: SPAXX" in page.get_by_test_id("preview-warnings").inner_text()
    page.screenshot(path=os.path.join(ARTIFACTS, "holdings-import-ofx-preview.png"), full_page=True)
    page.get_by_test_id("confirm-import").click()
    page.wait_for_url(f"**/portfolios/{portfolio.pk}/holdings/")
    values = dict(Holding.objects.filter(account__portfolio=portfolio).values_list("security__ticker",
                                                                                    "file_value_usd"))
    assert str(values["912797KX4"]) == "49456.00"
