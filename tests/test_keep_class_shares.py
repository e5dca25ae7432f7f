"""Keep-these through every boundary: `keep=["BRK.B"]` protects the position stored as `BRK-B`.

The API with a real worker, the CLI in-process, the web form and the model all go through
`engine.tickers`; without the keep the optimizer sells the concentrated BRK-B lot, so each test
can fail.
"""

from __future__ import annotations

import io
import json
import re
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from hypothesis import given, settings
from hypothesis import strategies as st

from portfolios.models import Portfolio
from portfolios.recommendations.engine_feed import options_from_inputs
from tests.test_api_fixtures import _fresh_throttle_history, token_client  # noqa: F401

# Nine tenths of the value in one stock: any profile's single-name limit sells some of it.
POSITIONS = "ticker,shares,cost_basis,account,account_type\nBRK.B,400,60000,Taxable,taxable\n" \
            "AAPL,20,3000,Taxable,taxable\nCASH,1000,,Taxable,taxable\n"


def brk_sells(document: dict) -> list[dict]:
    return [t for t in document["trades"] if t["ticker"] == "BRK-B" and t["action"] == "sell"]


def wait_done(api, url: str) -> dict:
    deadline = time.monotonic() + 120
    run = api.get(url).json()
    while run["status"] in ("pending", "running") and time.monotonic() < deadline:
        time.sleep(0.2)
        run = api.get(url).json()
    assert run["status"] == "done", run["error"]
    return run


@pytest.mark.broker
def test_the_api_keeps_brk_b_when_asked_for_brk_dot_b(alice, market, celery_worker):
    api = token_client(alice)
    portfolio_id = api.post("/api/portfolios/", {"name": "Berkshire"}, format="json").json()["id"]
    upload = SimpleUploadedFile("positions.csv", POSITIONS.encode(), content_type="text/csv")
    assert api.post(f"/api/portfolios/{portfolio_id}/import/", {"file": upload}, format="multipart").status_code == 200
    assert {h["ticker"] for h in api.get(f"/api/portfolios/{portfolio_id}/").json()["holdings"]} == {"BRK-B", "AAPL"}

    free = api.post(f"/api/portfolios/{portfolio_id}/rebalance/", {}, format="json").json()
    assert brk_sells(wait_done(api, free["url"])["result"]), "without a keep the concentrated lot is sold"

    kept = api.post(f"/api/portfolios/{portfolio_id}/rebalance/", {"keep": ["BRK.B"]}, format="json")
    assert kept.status_code == 202, kept.content
    run = wait_done(api, kept.json()["url"])
    assert run["inputs"]["keep"] == ["BRK-B"]
    assert brk_sells(run["result"]) == []


def test_the_cli_keeps_brk_b_when_asked_for_brk_dot_b(market, tmp_path):
    holdings = tmp_path / "positions.csv"
    holdings.write_text(POSITIONS)

    def run(*extra: str) -> dict:
        out = io.StringIO()
        call_command("rebalance", "--holdings", str(holdings), *extra, stdout=out, stderr=io.StringIO())
        return json.loads(out.getvalue())

    assert brk_sells(run()), "without --keep the concentrated lot is sold"
    assert brk_sells(run("--keep", "aapl,BRK.B")) == []


def test_the_cli_names_a_bad_keep_ticker(db, tmp_path):
    holdings = tmp_path / "positions.csv"
    holdings.write_text(POSITIONS)
    out = io.StringIO()
    with pytest.raises(CommandError, match=r"--keep: .*=SUM"):
        call_command("rebalance", "--holdings", str(holdings), "--keep", "AAPL,=SUM(A1)", stdout=out)
    assert out.getvalue() == ""


@pytest.mark.parametrize("spelling", ["BRK.B", "brk/b", "BRK B", "brk-b", "BRKB"])
def test_every_spelling_reaches_the_engine_as_the_stored_ticker(spelling):
    assert options_from_inputs({"keep": [spelling, "aapl"]}).keep == frozenset({"BRK-B", "AAPL"})
    assert Portfolio(keep_tickers=f"{spelling}, aapl").keep_list == ["BRK-B", "AAPL"]


def test_the_options_form_stores_the_normalised_keep_list(alice_client, alice):
    portfolio = Portfolio.objects.create(owner=alice, name="Main")
    response = alice_client.post(f"/portfolios/{portfolio.pk}/options/", {
        "profile": "moderate", "cash_change_usd": "0", "keep_tickers": "brk.b, aapl BRK-B", "use_views": "on",
    })
    assert response.status_code == 302
    portfolio.refresh_from_db()
    assert portfolio.keep_tickers == "BRK-B, AAPL"


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="aZ09./- \t=é", max_size=9))
def test_the_schema_pattern_says_exactly_what_the_api_accepts(text):
    from rest_framework.exceptions import ValidationError

    from portfolios.api.serializers import TICKER_SPELLING, StrictTickerField

    try:
        StrictTickerField().to_internal_value(text)
        accepted = True
    except ValidationError:
        accepted = False
    assert accepted == (re.fullmatch(TICKER_SPELLING, text) is not None)
