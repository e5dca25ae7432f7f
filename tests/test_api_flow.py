"""The whole API flow with a real Celery worker: create, import, rebalance (202), poll the run, export CSV."""

from __future__ import annotations

import csv
import io
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.test_api_fixtures import _fresh_throttle_history, token_client  # noqa: F401


@pytest.mark.broker
def test_a_script_can_go_from_a_positions_file_to_a_trade_list(alice, market, celery_worker):
    api = token_client(alice)
    portfolio_id = api.post("/api/portfolios/", {"name": "Tech heavy", "profile": "moderate"},
                            format="json").json()["id"]
    positions = "ticker,shares,cost_basis,account,account_type\nAAPL,120,9000,Taxable,taxable\n" \
                "NVDA,150,4000,Taxable,taxable\nQQQ,40,12000,IRA,traditional_ira\nCASH,2500,,Taxable,taxable\n"
    upload = SimpleUploadedFile("positions.csv", positions.encode(), content_type="text/csv")
    imported = api.post(f"/api/portfolios/{portfolio_id}/import/", {"file": upload}, format="multipart")
    assert imported.status_code == 200, imported.content
    assert imported.json()["holdings"] == 3

    detail = api.get(f"/api/portfolios/{portfolio_id}/").json()
    assert {h["ticker"] for h in detail["holdings"]} == {"AAPL", "NVDA", "QQQ"}
    assert all(h["price"] and h["value"] for h in detail["holdings"])
    assert detail["value"] == pytest.approx(sum(h["value"] for h in detail["holdings"]) + 2500, abs=0.01)

    accepted = api.post(f"/api/portfolios/{portfolio_id}/rebalance/", {"profile": "conservative", "cash": 1000},
                        format="json")
    assert accepted.status_code == 202
    run_url = accepted.json()["url"]

    deadline = time.monotonic() + 120
    run = api.get(run_url).json()
    while run["status"] in ("pending", "running") and time.monotonic() < deadline:
        time.sleep(0.2)
        run = api.get(run_url).json()
    assert run["status"] == "done", run["error"]
    assert run["inputs"]["profile"] == "conservative" and run["inputs"]["cash"] == 1000.0
    result = run["result"]
    assert result["profile"] == "conservative"
    assert result["trades"], "a tech-heavy portfolio should get trades"

    exported = api.get(f"/api/portfolios/{portfolio_id}/trades.csv")
    assert exported.status_code == 200
    rows = list(csv.DictReader(io.StringIO(exported.content.decode())))
    assert [(r["ticker"], r["account"], r["action"]) for r in rows] == [
        (t["ticker"], t["account"], t["action"]) for t in result["trades"]
    ]
