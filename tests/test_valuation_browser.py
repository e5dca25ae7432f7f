"""Real headless Chromium: a partial run (too little of the value modelled) leads the page with it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from portfolios.models import RebalanceRun
from portfolios.recommendations import proxies
from tests.test_recommendations_browser import log_in, shot
from tests.test_recommendations_browser import portfolio as portfolio

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FIXTURE = Path(__file__).parent / "fixtures" / "sample_result.json"


def test_a_partial_run_is_the_first_thing_the_page_says(page, portfolio):
    result = proxies.apply_coverage(json.loads(FIXTURE.read_text()), [proxies.Proxy(
        "-NVDA260116C200", "option", proxies.Method.FIXED, (), 5_000.0, 10.0, False, "an option, held fixed")])
    RebalanceRun.objects.create(portfolio=portfolio, status="done", trigger="import", profile="moderate",
                                inputs={"profile": "moderate"}, result=result)
    url = f"/portfolios/{portfolio.pk}/"
    log_in(page, "alice@example.com", url)

    banner = page.get_by_test_id("partial-status")
    assert banner.is_visible()
    assert "only 84% of the value is modelled" in banner.inner_text()
    assert banner.bounding_box()["y"] < page.get_by_test_id("trades").bounding_box()["y"]
    assert "held fixed 16%" in page.get_by_test_id("coverage").inner_text()
    assert "-NVDA260116C200" in page.get_by_test_id("warnings").inner_text()
    shot(page, "valuation-partial.png")
