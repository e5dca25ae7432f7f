"""Contract of POST /api/portfolios/{id}/rebalance/, GET /api/runs/{id}/ and GET .../trades.csv."""

import csv
import io
import json

import pytest

from portfolios.models import Portfolio, RebalanceRun
from portfolios.recommendations.services import run_inputs_for
from tests.test_api_fixtures import (  # noqa: F401
    SAMPLE_RESULT,
    _fresh_throttle_history,
    done_run,
    portfolio_with_holdings,
    token_client,
)

pytestmark = pytest.mark.django_db


def test_rebalance_answers_202_and_queues_one_run_after_commit(alice, django_capture_on_commit_callbacks):
    portfolio = portfolio_with_holdings(alice)
    with django_capture_on_commit_callbacks() as callbacks:
        response = token_client(alice).post(f"/api/portfolios/{portfolio.pk}/rebalance/",
                                            {"profile": "aggressive", "cash": 5000, "buy_only": True}, format="json")
    assert response.status_code == 202, response.content
    run = RebalanceRun.objects.get(portfolio=portfolio)
    assert response.json() == {"run": run.pk, "status": "pending", "url": f"/api/runs/{run.pk}/"}
    assert response["Location"] == f"/api/runs/{run.pk}/"
    assert len(callbacks) == 1  # the task is sent once the transaction commits
    assert (run.trigger, run.profile) == ("api", "aggressive")
    assert run.inputs == {**run_inputs_for(portfolio), "profile": "aggressive", "cash": 5000.0, "buy_only": True}
    portfolio.refresh_from_db()
    assert (portfolio.profile, portfolio.buy_only) == ("moderate", False), "a one-off run leaves the settings alone"


def test_rebalance_accepts_every_option(alice):
    portfolio = portfolio_with_holdings(alice)
    body = {"cash": -1200.5, "keep": ["aapl", "xlf", "AAPL", "BRK-B", "brk.b"], "fractional": True,
            "max_turnover": 0.15, "use_views": False}
    response = token_client(alice).post(f"/api/portfolios/{portfolio.pk}/rebalance/", body, format="json")
    assert response.status_code == 202
    inputs = RebalanceRun.objects.get(pk=response.json()["run"]).inputs
    assert inputs["keep"] == ["AAPL", "XLF", "BRK-B"]  # one normaliser: BRK.B is the BRK-B position
    assert (inputs["cash"], inputs["fractional"], inputs["max_turnover"], inputs["use_views"]) == (
        -1200.5, True, 0.15, False)
    assert inputs["profile"] == "moderate" and inputs["buy_only"] is False  # omitted: the portfolio's settings


def test_an_empty_body_uses_the_portfolio_settings(alice):
    portfolio = portfolio_with_holdings(alice)
    portfolio.buy_only, portfolio.keep_tickers = True, "AAPL"
    portfolio.save()
    response = token_client(alice).post(f"/api/portfolios/{portfolio.pk}/rebalance/")
    assert response.status_code == 202
    assert RebalanceRun.objects.get(pk=response.json()["run"]).inputs == run_inputs_for(portfolio)


def test_a_second_request_supersedes_the_pending_run(alice):
    portfolio = portfolio_with_holdings(alice)
    client = token_client(alice)
    first = client.post(f"/api/portfolios/{portfolio.pk}/rebalance/", {"cash": 100}, format="json").json()
    second = client.post(f"/api/portfolios/{portfolio.pk}/rebalance/", {"cash": 900}, format="json").json()
    assert first["run"] == second["run"]
    assert RebalanceRun.objects.get().inputs["cash"] == 900.0


@pytest.mark.parametrize("body,field", [
    ({"profile": "reckless"}, "profile"),
    ({"cash": "lots"}, "cash"),
    ({"cash": 1e13}, "cash"),
    ({"buy_only": "perhaps"}, "buy_only"),
    ({"max_turnover": 1.5}, "max_turnover"),
    ({"keep": ["AAPL", "=HYPERLINK(1)"]}, "keep"),
    ({"keep": [" AAPL"]}, "keep"),
    ({"keep": ["^GSPC"]}, "keep"),  # an index, never a holding
    ({"keep": "AAPL"}, "keep"),
    ({"keep": [123]}, "keep"),
    ({"cash": "100"}, "cash"),
    ({"max_turnover": False}, "max_turnover"),
    ({"buy_only": 1}, "buy_only"),
    ({"fractional": "true"}, "fractional"),
])
def test_rebalance_refuses_bad_options_and_queues_nothing(alice, body, field):
    portfolio = portfolio_with_holdings(alice)
    response = token_client(alice).post(f"/api/portfolios/{portfolio.pk}/rebalance/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not RebalanceRun.objects.exists()


def test_a_run_reads_pending_then_done_with_the_result_document(alice):
    portfolio = portfolio_with_holdings(alice)
    client = token_client(alice)
    run_id = client.post(f"/api/portfolios/{portfolio.pk}/rebalance/", {}, format="json").json()["run"]
    pending = client.get(f"/api/runs/{run_id}/").json()
    assert (pending["id"], pending["portfolio"], pending["status"]) == (run_id, portfolio.pk, "pending")
    assert pending["result"] is None and pending["error"] == ""
    assert pending["inputs"]["profile"] == "moderate"

    document = json.loads(SAMPLE_RESULT.read_text())
    RebalanceRun.objects.filter(pk=run_id).update(status="done", result=document, prices_as_of="2025-12-31")
    done = client.get(f"/api/runs/{run_id}/").json()
    assert done["status"] == "done"
    assert done["result"] == document
    assert done["prices_as_of"] == "2025-12-31"


def test_a_failed_run_carries_its_error(alice):
    portfolio = Portfolio.objects.create(owner=alice, name="Empty")
    run = RebalanceRun.objects.create(portfolio=portfolio, profile="moderate", status="failed",
                                      error="The optimizer could not produce a suggestion: no holdings")
    body = token_client(alice).get(f"/api/runs/{run.pk}/").json()
    assert body["status"] == "failed"
    assert body["error"].startswith("The optimizer could not produce a suggestion")
    assert body["result"] is None


def test_a_missing_run_is_404(alice):
    assert token_client(alice).get("/api/runs/987654/").status_code == 404


def _csv_rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.content.decode())))


def test_trades_csv_has_the_latest_done_runs_trades(alice):
    portfolio = portfolio_with_holdings(alice)
    done_run(portfolio, {"trades": [{"ticker": "OLD", "account": "Taxable", "action": "buy", "shares": 1,
                                     "price": 1.0, "amount": 1.0, "reason": "old"}]})
    latest = done_run(portfolio)
    RebalanceRun.objects.create(portfolio=portfolio, profile="moderate")  # pending: not finished, ignored
    response = token_client(alice).get(f"/api/portfolios/{portfolio.pk}/trades.csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    filename = f"trades-portfolio{portfolio.pk}-run{latest.pk}.csv"
    assert response["Content-Disposition"] == f'attachment; filename="{filename}"'
    rows = _csv_rows(response)
    assert rows[0] == ["ticker", "account", "action", "shares", "price", "amount", "reason"]
    trades = latest.result["trades"]
    assert len(rows) == len(trades) + 1
    assert [r[0] for r in rows[1:]] == [t["ticker"] for t in trades]
    assert float(rows[1][5]) == pytest.approx(trades[0]["amount"])


def test_trades_csv_neutralises_formulas(alice):
    portfolio = Portfolio.objects.create(owner=alice, name="P")
    done_run(portfolio, {"trades": [{"ticker": "XLF", "account": "=cmd|' /C calc'!A0", "action": "buy",
                                     "shares": 2, "price": 50.0, "amount": 100.0, "reason": "@SUM(1)"}]})
    rows = _csv_rows(token_client(alice).get(f"/api/portfolios/{portfolio.pk}/trades.csv"))
    assert rows[1][1].startswith("'=") and rows[1][6] == "'@SUM(1)"


def test_trades_csv_honours_accept_text_csv(alice):
    portfolio = Portfolio.objects.create(owner=alice, name="P")
    done_run(portfolio)
    client = token_client(alice)
    response = client.get(f"/api/portfolios/{portfolio.pk}/trades.csv", HTTP_ACCEPT="text/csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    missing = client.get("/api/portfolios/987654/trades.csv", HTTP_ACCEPT="text/csv")
    assert missing.status_code == 404 and "detail" in missing.json()


def test_trades_csv_without_a_finished_run_is_404_with_a_hint(alice):
    portfolio = Portfolio.objects.create(owner=alice, name="P")
    RebalanceRun.objects.create(portfolio=portfolio, profile="moderate", status="failed", error="x")
    response = token_client(alice).get(f"/api/portfolios/{portfolio.pk}/trades.csv")
    assert response.status_code == 404
    assert "rebalance" in response.json()["detail"]
