"""The whole journey in real Chromium with a real Celery worker: sign up, upload a Fidelity file,
watch the suggestion get computed, read the trades, export them as CSV."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pytest

from portfolios.models import RebalanceRun
from tests.conftest import ARTIFACTS, confirm_email_in_browser

pytestmark = [pytest.mark.browser, pytest.mark.broker]

FIDELITY = Path(__file__).parent / "fixtures" / "brokers" / "Portfolio_Positions_Dec-31-2025.csv"


def test_sign_up_upload_watch_the_run_and_export_the_trades(page, market, celery_worker):
    page.goto("/accounts/signup/")
    page.get_by_label("Email:").fill("frank@example.com")
    page.get_by_label("Password:", exact=True).fill("a long secret 9!")
    page.get_by_label("Password (again):").fill("a long secret 9!")
    page.locator("form button[type=submit]").click()
    confirm_email_in_browser(page, "frank@example.com")
    page.wait_for_url("**/portfolios/")

    page.get_by_text("Add holdings").click()
    page.wait_for_url("**/portfolios/new/")
    page.get_by_label("Name").fill("Retirement")
    page.locator("main form button[type=submit]").click()
    page.wait_for_url("**/holdings/")

    page.get_by_test_id("upload-link").click()
    page.get_by_label("Positions file").set_input_files(str(FIDELITY))
    page.get_by_role("button", name="Read the file").click()
    page.wait_for_url("**/import/preview/")
    page.get_by_test_id("confirm-import").click()
    page.wait_for_url("**/holdings/")

    run = RebalanceRun.objects.get(portfolio__name="Retirement")
    page.goto(f"/portfolios/{run.portfolio_id}/")
    # The page polls the run's status and swaps the result in when the worker is done.
    page.get_by_test_id("trade-row").first.wait_for(timeout=120_000)
    run.refresh_from_db()
    assert run.status == "done", run.error
    rows = page.get_by_test_id("trade-row")
    assert rows.count() == len(run.result["trades"]) > 0
    first_ticker = run.result["trades"][0]["ticker"]
    assert first_ticker in rows.first.inner_text()
    assert page.get_by_test_id("summary").inner_text().strip()
    assert "FXAIX" in page.get_by_test_id("warnings").inner_text()  # a mutual fund with no price: held fixed
    page.screenshot(path=os.path.join(ARTIFACTS, "e2e-suggestion.png"), full_page=True)

    with page.expect_download() as download_info:
        page.get_by_test_id("export-csv").click()
    exported = Path(download_info.value.path()).read_text(encoding="utf-8")
    table = list(csv.reader(io.StringIO(exported)))
    assert table[0][:7] == ["ticker", "account", "action", "shares", "price", "amount", "reason"]
    assert [r[0] for r in table[1:]] == [t["ticker"] for t in run.result["trades"]]
