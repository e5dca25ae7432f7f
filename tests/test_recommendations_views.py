"""The portfolio page: live status, result rendering, options, exports, print view, history, access."""

from __future__ import annotations

import copy
import csv
import datetime as dt
import io
import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from portfolios.models import Account, Holding, Portfolio, Price, RebalanceRun, Security

pytestmark = pytest.mark.django_db

FIXTURE = Path(__file__).parent / "fixtures" / "sample_result.json"


@pytest.fixture
def sample_result() -> dict:
    return json.loads(FIXTURE.read_text())


def make_portfolio(owner, *, name="Retirement", holdings=True) -> Portfolio:
    portfolio = Portfolio.objects.create(owner=owner, name=name)
    if holdings:
        account = Account.objects.create(portfolio=portfolio, name="Taxable")
        security, _ = Security.objects.get_or_create(ticker="AAPL", defaults={"kind": "stock", "priced": True})
        Holding.objects.create(account=account, security=security, shares=Decimal("300"))
    return portfolio


def make_run(portfolio, *, status="done", result=None, error="", minutes_ago=0, prices_as_of=None,
             trigger="manual") -> RebalanceRun:
    run = RebalanceRun.objects.create(
        portfolio=portfolio, status=status, trigger=trigger, profile=portfolio.profile,
        inputs={"profile": portfolio.profile, "cash": 0.0, "buy_only": False, "keep": [], "fractional": False,
                "max_turnover": None, "use_views": True},
        result=result, error=error, prices_as_of=prices_as_of,
    )
    created = timezone.now() - dt.timedelta(minutes=minutes_ago)
    finished = created + dt.timedelta(seconds=3) if status in ("done", "failed") else None
    RebalanceRun.objects.filter(pk=run.pk).update(created_at=created, finished_at=finished)
    run.refresh_from_db()
    return run


@pytest.fixture
def portfolio(alice) -> Portfolio:
    return make_portfolio(alice)


def detail_url(portfolio) -> str:
    return reverse("portfolio_detail", kwargs={"portfolio_id": portfolio.pk})


def status_url(portfolio) -> str:
    return reverse("run_status", kwargs={"portfolio_id": portfolio.pk})


def text_of(response) -> str:
    return response.content.decode()


def usd(value: float, digits: int = 0) -> str:
    return f"${value:,.{digits}f}"


def pct(value: float) -> str:
    return f"{abs(value) * 100:.1f}%"


# --- empty states -------------------------------------------------------------------------------


def test_it_invites_upload_when_there_are_no_holdings(alice_client, alice):
    empty = make_portfolio(alice, name="Empty", holdings=False)
    response = alice_client.get(detail_url(empty))
    assert response.status_code == 200
    html = text_of(response)
    assert 'data-testid="empty-holdings"' in html
    assert reverse("holdings", kwargs={"portfolio_id": empty.pk}) in html
    assert 'data-testid="compute"' not in html  # nothing to compute without holdings


def test_it_offers_compute_when_no_run_exists(alice_client, portfolio):
    html = text_of(alice_client.get(detail_url(portfolio)))
    assert 'data-testid="no-run"' in html
    assert reverse("run_recompute", kwargs={"portfolio_id": portfolio.pk}) in html
    assert "hx-trigger" not in html  # nothing to poll


def test_compute_button_queues_a_manual_run(alice_client, portfolio):
    response = alice_client.post(reverse("run_recompute", kwargs={"portfolio_id": portfolio.pk}))
    assert response.status_code == 302
    assert response.url == detail_url(portfolio)
    run = RebalanceRun.objects.get(portfolio=portfolio)
    assert (run.status, run.trigger) == ("pending", "manual")
    assert run.inputs["profile"] == portfolio.profile


# --- live status ----------------------------------------------------------------------------------


def test_a_pending_run_polls_the_status_fragment(alice_client, portfolio):
    make_run(portfolio, status="pending")
    html = text_of(alice_client.get(detail_url(portfolio)))
    assert f'hx-get="{status_url(portfolio)}"' in html
    assert 'hx-trigger="every 2s"' in html
    assert 'data-status="pending"' in html
    assert "Recompute pending" in html


def test_the_status_fragment_keeps_polling_while_running(alice_client, portfolio):
    run = make_run(portfolio, status="pending")
    RebalanceRun.objects.filter(pk=run.pk).update(status="running", started_at=timezone.now())
    response = alice_client.get(status_url(portfolio), HTTP_HX_REQUEST="true")
    html = text_of(response)
    assert response.status_code == 200
    assert "<html" not in html  # a fragment, not a page
    assert 'data-status="running"' in html
    assert "Computing new suggestions" in html
    assert f'hx-get="{status_url(portfolio)}"' in html
    assert "hx-swap-oob" not in html  # the result section is left alone until the run ends


def test_the_status_fragment_swaps_in_the_result_when_done(alice_client, portfolio, sample_result):
    run = make_run(portfolio, status="done", result=sample_result)
    html = text_of(alice_client.get(status_url(portfolio), HTTP_HX_REQUEST="true"))
    assert "hx-get" not in html  # polling stops
    assert 'data-status="done"' in html
    assert re.search(rf'<section id="run-result" hx-swap-oob="true"[^>]*data-run="{run.pk}"', html)
    assert '<section id="run-history" hx-swap-oob="true"' in html
    assert escape(sample_result["summary"]) in html
    assert 'id="chart-data"' in html


def test_a_run_pending_for_long_says_the_worker_may_be_down_and_polls_slower(alice_client, portfolio, sample_result):
    make_run(portfolio, status="done", result=sample_result, minutes_ago=30)
    make_run(portfolio, status="pending", minutes_ago=5)
    html = text_of(alice_client.get(detail_url(portfolio)))
    assert "may be busy or offline" in html
    assert 'hx-trigger="every 10s"' in html
    assert 'data-testid="summary"' in html  # the last result stays visible


def test_broker_down_leaves_the_run_pending_and_the_page_working(
    alice_client, portfolio, sample_result, monkeypatch, django_capture_on_commit_callbacks
):
    """Redis down: queuing raises inside the service's on_commit hook. The service swallows it (the
    run stays pending), so the page shows 'recompute pending' with the last result, never an error."""
    from kombu.exceptions import OperationalError

    from portfolios.recommendations import tasks

    attempts = []

    def broker_down(*args, **kwargs):
        attempts.append(args)
        raise OperationalError("Error 111 connecting to 127.0.0.1:1. Connection refused.")

    monkeypatch.setattr(tasks.rebalance_run_execute, "apply_async", broker_down)
    make_run(portfolio, status="done", result=sample_result, minutes_ago=10)
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post(reverse("run_recompute", kwargs={"portfolio_id": portfolio.pk}))
    assert response.status_code == 302
    pending = RebalanceRun.objects.get(portfolio=portfolio, status="pending")
    assert attempts == [((pending.pk,),)]  # the enqueue was really attempted and failed
    page = alice_client.get(detail_url(portfolio))
    assert page.status_code == 200
    html = text_of(page)
    assert "Recompute pending" in html
    assert "the task queue is unreachable right now" in html  # the page says what is happening
    assert 'data-testid="summary"' in html
    assert "stay until the new ones are ready" in html


def test_a_failed_run_shows_its_message_and_the_previous_result(alice_client, portfolio, sample_result):
    make_run(portfolio, status="done", result=sample_result, minutes_ago=60)
    make_run(portfolio, status="failed", error="No price history for NVDA: the risk model needs 60 days.",
             minutes_ago=5)
    html = text_of(alice_client.get(detail_url(portfolio)))
    assert 'data-status="failed"' in html
    assert 'data-testid="run-failed"' in html
    assert "No price history for NVDA: the risk model needs 60 days." in html
    assert "from the previous successful run" in html
    assert 'data-testid="summary"' in html
    assert "Try again" in html


def test_an_old_failure_is_not_shown_over_a_newer_result(alice_client, portfolio, sample_result):
    make_run(portfolio, status="failed", error="solver exploded", minutes_ago=60)
    make_run(portfolio, status="done", result=sample_result, minutes_ago=5)
    html = text_of(alice_client.get(detail_url(portfolio)))
    assert "solver exploded" not in html
    assert 'data-status="done"' in html


# --- the rendered result ----------------------------------------------------------------------------


def test_it_renders_a_done_result(alice_client, portfolio, sample_result):
    make_run(portfolio, status="done", result=sample_result, prices_as_of=dt.date(2025, 12, 31))
    response = alice_client.get(detail_url(portfolio))
    assert response.status_code == 200
    html = text_of(response)
    trades = sample_result["trades"]

    # summary and trades
    assert escape(sample_result["summary"]) in html
    assert html.count('data-testid="trade-row"') == len(trades)
    for trade in trades:
        assert escape(trade["reason"]) in html
        assert usd(trade["amount"]) in html
    buys = sum(t["amount"] for t in trades if t["action"] == "buy")
    sells = sum(t["amount"] for t in trades if t["action"] == "sell")
    assert usd(buys) in html and usd(sells) in html
    assert usd(sample_result["est_costs"], 2) in html
    assert usd(sample_result["est_taxes"]) in html
    net = sells - buys
    assert ("−" if net < 0 else "") + usd(abs(net)) in html

    # warnings: stale prices, unpriced, relaxations and the result's own warnings
    assert "more than 5 trading days old" in html
    assert "ARM has no price" in html and "No price for ARM" not in html  # reported once, by the engine
    relaxation = sample_result["relaxations"][0]
    assert relaxation["message"] in html
    assert "Maximum turnover" in html and pct(relaxation["achieved"]) in html
    for warning in sample_result["warnings"]:
        assert warning in html

    # risk before/after
    assert pct(sample_result["before"]["volatility"]) in html
    assert pct(sample_result["after"]["volatility"]) in html
    lp = sample_result["before"]["largest_position"]
    assert f"{lp['ticker']} {pct(lp['weight'])}" in html
    assert str(sample_result["after"]["effective_holdings"]) in html

    # stress tests and backtest
    for episode in sample_result["stress"]:
        assert episode["name"] in html
    assert "Missing: PLTR." in html
    assert "Information Technology +20%" in html  # assumptions beside the hypothetical scenario
    assert "Hypothetical backtest, 2023-01-03 to 2025-12-31" in html
    assert "chosen with knowledge of this history" in html
    assert pct(sample_result["backtest"]["after"]["max_drawdown"]) in html

    # the dated thesis and the disclaimer
    views = sample_result["views"]
    assert views["title"] in html and views["as_of"] in html
    assert views["risks"][0] in html and escape(views["facts"][0]) in html
    assert "Source: " + views["source"] in html
    assert "Not personalised financial advice" in html


def test_the_chart_data_matches_the_result(alice_client, portfolio, sample_result):
    make_run(portfolio, status="done", result=sample_result)
    html = text_of(alice_client.get(detail_url(portfolio)))
    match = re.search(r'<script id="chart-data" type="application/json">(.*?)</script>', html, re.S)
    assert match
    charts = json.loads(match.group(1))
    assert set(charts) == {"sectors", "size", "asset_class", "top_names", "backtest"}
    sectors = charts["sectors"]
    it = sectors["labels"].index("Information Technology")
    assert sectors["before"][it] == sample_result["before"]["sectors"]["Information Technology"]
    assert sectors["after"][it] == sample_result["after"]["sectors"]["Information Technology"]
    # a name in the proposed top 10 only has no known current weight (not a zero)
    jpm = charts["top_names"]["labels"].index("JPM")
    assert charts["top_names"]["before"][jpm] is None
    assert charts["backtest"]["dates"] == sample_result["backtest"]["curve"]["dates"]
    assert html.count("<canvas") == 5  # four exposures + the equity curve, each beside a table


def test_a_bare_cli_document_renders_without_the_optional_parts(alice_client, portfolio):
    bare = {"as_of": "2025-12-31", "profile": "moderate", "status": "optimal", "value": 1000.0,
            "trades": [{"ticker": "XLF", "account": "Taxable", "action": "buy", "shares": 3, "price": 50.0,
                        "amount": 150.0, "reason": "Adds Financials."}],
            "before": {"weights": {"CASH": 1.0}, "sectors": {}, "size": {}, "volatility": 0.0},
            "after": {"weights": {"XLF": 0.15, "CASH": 0.85}, "sectors": {"Financials": 1.0},
                      "size": {"large": 1.0}, "volatility": 0.03},
            "warnings": []}
    make_run(portfolio, status="done", result=bare)
    response = alice_client.get(detail_url(portfolio))
    assert response.status_code == 200
    html = text_of(response)
    assert "Adds Financials." in html
    assert 'id="stress"' not in html
    assert "carries no investment views" in html
    assert "Not personalised financial advice" in html


def test_unpriced_holdings_the_engine_did_not_mention_are_reported(alice_client, portfolio, sample_result):
    result = copy.deepcopy(sample_result)
    result["unpriced"] = ["ARM", "SPAXX"]
    html = text_of(alice_client.get(detail_url(make_run(portfolio, status="done", result=result).portfolio)))
    assert "No price for SPAXX: held as is" in html
    assert "No price for ARM" not in html


def test_an_empty_trade_list_says_no_trades_are_needed(alice_client, portfolio, sample_result):
    result = copy.deepcopy(sample_result)
    result["trades"] = []
    make_run(portfolio, status="done", result=result)
    html = text_of(alice_client.get(detail_url(portfolio)))
    assert 'data-testid="no-trades"' in html


def test_it_warns_when_newer_prices_exist(alice_client, portfolio, sample_result):
    security = Security.objects.get(ticker="AAPL")
    today = dt.date.today()
    Price.objects.create(security=security, date=today, close=270.0)
    make_run(portfolio, status="done", result=sample_result, prices_as_of=today - dt.timedelta(days=1))
    html = text_of(alice_client.get(detail_url(portfolio)))
    assert f"Newer prices exist (as of {today:%Y-%m-%d})" in html
    assert "more than 5 trading days old" not in html


# --- options ------------------------------------------------------------------------------------


def options_url(portfolio) -> str:
    return reverse("portfolio_options", kwargs={"portfolio_id": portfolio.pk})


def options_post(**overrides) -> dict:
    data = {"profile": "aggressive", "cash_change_usd": "-2500.00", "keep_tickers": "aapl, brk.b msft;AAPL",
            "max_turnover_pct": "30", "buy_only": "on", "use_views": "on"}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_saving_options_updates_the_portfolio_and_queues_a_run(alice_client, portfolio):
    response = alice_client.post(options_url(portfolio), options_post())
    assert response.status_code == 302
    portfolio.refresh_from_db()
    assert portfolio.profile == "aggressive"
    assert portfolio.cash_change_usd == Decimal("-2500.00")
    assert portfolio.keep_tickers == "AAPL, BRK-B, MSFT"
    assert portfolio.max_turnover == pytest.approx(0.30)
    assert portfolio.buy_only is True and portfolio.fractional is False and portfolio.use_views is True
    run = RebalanceRun.objects.get(portfolio=portfolio)
    assert (run.status, run.trigger, run.profile) == ("pending", "options", "aggressive")
    assert run.inputs["keep"] == ["AAPL", "BRK-B", "MSFT"]
    assert run.inputs["max_turnover"] == pytest.approx(0.30)
    assert run.inputs["cash"] == -2500.0


def test_saving_options_again_supersedes_the_pending_run(alice_client, portfolio):
    alice_client.post(options_url(portfolio), options_post())
    first = RebalanceRun.objects.get(portfolio=portfolio)
    alice_client.post(options_url(portfolio), options_post(profile="conservative", max_turnover_pct="", buy_only=None))
    runs = list(RebalanceRun.objects.filter(portfolio=portfolio))
    assert [r.pk for r in runs] == [first.pk]  # still one pending run, updated in place
    assert runs[0].profile == "conservative"
    assert runs[0].inputs["max_turnover"] is None
    assert runs[0].inputs["buy_only"] is False


def test_the_form_shows_current_options(alice_client, portfolio):
    Portfolio.objects.filter(pk=portfolio.pk).update(max_turnover=0.25, keep_tickers="NVDA")
    html = text_of(alice_client.get(detail_url(portfolio)))
    assert 'name="max_turnover_pct" value="25.0"' in html
    assert 'value="NVDA"' in html
    assert "max turnover 25%" in html


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("max_turnover_pct", "150", "Max turnover is a percentage from 0 to 100."),
        ("max_turnover_pct", "-1", "Max turnover is a percentage from 0 to 100."),
        ("max_turnover_pct", "12.25", "at most one decimal place"),
        ("keep_tickers", "AAPL, AA$PL", "Not a ticker: AA$PL"),
        ("cash_change_usd", "lots", "Enter a number"),
        ("profile", "yolo", "Select a valid choice"),
    ],
)
def test_bad_options_are_refused_and_nothing_is_written(alice_client, portfolio, field, value, message):
    response = alice_client.post(options_url(portfolio), options_post(**{field: value}))
    assert response.status_code == 400
    assert message in text_of(response)
    assert "<details class=\"options\" id=\"options\" open" in text_of(response)
    portfolio.refresh_from_db()
    assert portfolio.profile == "moderate" and portfolio.keep_tickers == "" and portfolio.max_turnover is None
    assert not RebalanceRun.objects.filter(portfolio=portfolio).exists()


# --- CSV export ---------------------------------------------------------------------------------


def export_url(portfolio) -> str:
    return reverse("trades_export", kwargs={"portfolio_id": portfolio.pk})


def test_csv_export_lists_the_trades(alice_client, portfolio, sample_result):
    make_run(portfolio, status="done", result=sample_result)
    response = alice_client.get(export_url(portfolio))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == 'attachment; filename="retirement-trades-2025-12-31.csv"'
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == len(sample_result["trades"])
    for row, trade in zip(rows, sample_result["trades"], strict=True):
        assert (row["ticker"], row["account"], row["action"]) == (trade["ticker"], trade["account"], trade["action"])
        assert float(row["shares"]) == trade["shares"]
        assert float(row["amount"]) == trade["amount"]
        assert float(row["est_tax"]) == trade["est_tax"]
        assert row["reason"] == trade["reason"]


def test_csv_export_is_safe_against_formula_injection(alice_client, portfolio, sample_result):
    result = copy.deepcopy(sample_result)
    result["trades"][0]["account"] = '=HYPERLINK("http://evil.example","x")'
    result["trades"][0]["reason"] = "@SUM(A1:A9)"
    result["trades"][1]["ticker"] = "+CMD"
    make_run(portfolio, status="done", result=result)
    rows = list(csv.reader(io.StringIO(alice_client.get(export_url(portfolio)).content.decode())))
    assert rows[1][1] == "'=HYPERLINK(\"http://evil.example\",\"x\")"
    assert rows[1][6] == "'@SUM(A1:A9)"
    assert rows[2][0] == "'+CMD"
    for row in rows:
        for cell in row:
            assert not cell.startswith(("=", "+", "@")), cell


def test_csv_export_of_an_earlier_run(alice_client, portfolio, sample_result):
    older = copy.deepcopy(sample_result)
    older["trades"] = older["trades"][:1]
    old_run = make_run(portfolio, status="done", result=older, minutes_ago=60)
    make_run(portfolio, status="done", result=sample_result, minutes_ago=1)
    rows = list(csv.reader(io.StringIO(alice_client.get(f"{export_url(portfolio)}?run={old_run.pk}").content.decode())))
    assert len(rows) == 2
    assert alice_client.get(f"{export_url(portfolio)}?run=abc").status_code == 404


def test_csv_export_without_a_result_is_404(alice_client, portfolio):
    make_run(portfolio, status="pending")
    assert alice_client.get(export_url(portfolio)).status_code == 404


# --- print view, run detail, history ------------------------------------------------------------


def test_the_print_view(alice_client, portfolio, sample_result):
    run = make_run(portfolio, status="done", result=sample_result)
    response = alice_client.get(reverse("run_print", kwargs={"portfolio_id": portfolio.pk, "run_id": run.pk}))
    assert response.status_code == 200
    html = text_of(response)
    assert html.count('data-testid="trade-row"') == len(sample_result["trades"])
    assert "Not personalised financial advice" in html
    assert "Options this run used" not in html and "Risk profile" in html
    assert "<nav aria-label=\"Main\">" not in html  # no site navigation on paper
    assert 'id="chart-data"' not in html


def test_the_print_view_of_an_unfinished_run_is_404(alice_client, portfolio):
    run = make_run(portfolio, status="pending")
    url = reverse("run_print", kwargs={"portfolio_id": portfolio.pk, "run_id": run.pk})
    assert alice_client.get(url).status_code == 404


def test_history_lists_past_runs_and_opens_each(alice_client, portfolio, sample_result):
    done = make_run(portfolio, status="done", result=sample_result, minutes_ago=90,
                    prices_as_of=dt.date(2025, 12, 31))
    failed = make_run(portfolio, status="failed", error="Optimizer did not converge.", minutes_ago=30,
                      trigger="prices")
    html = text_of(alice_client.get(detail_url(portfolio)))
    assert html.count('data-testid="history-row"') == 2
    assert "2025-12-31" in html and "Prices refreshed" in html
    for run in (done, failed):
        assert reverse("run_detail", kwargs={"portfolio_id": portfolio.pk, "run_id": run.pk}) in html

    done_page = text_of(
        alice_client.get(reverse("run_detail", kwargs={"portfolio_id": portfolio.pk, "run_id": done.pk}))
    )
    assert escape(sample_result["trades"][0]["reason"]) in done_page
    assert "Prices as of 2025-12-31" in done_page
    failed_page = text_of(
        alice_client.get(reverse("run_detail", kwargs={"portfolio_id": portfolio.pk, "run_id": failed.pk}))
    )
    assert "Optimizer did not converge." in failed_page
    assert 'data-testid="trade-row"' not in failed_page


def test_a_run_opened_under_another_of_my_portfolios_is_404(alice_client, alice, portfolio, sample_result):
    other = make_portfolio(alice, name="Other")
    run = make_run(other, status="done", result=sample_result)
    url = reverse("run_detail", kwargs={"portfolio_id": portfolio.pk, "run_id": run.pk})
    assert alice_client.get(url).status_code == 404


# --- access -------------------------------------------------------------------------------------


def all_urls(portfolio, run) -> list[tuple[str, str]]:
    p = {"portfolio_id": portfolio.pk}
    pr = {"portfolio_id": portfolio.pk, "run_id": run.pk}
    return [
        ("get", reverse("portfolio_detail", kwargs=p)),
        ("get", reverse("run_status", kwargs=p)),
        ("get", reverse("trades_export", kwargs=p)),
        ("get", reverse("run_detail", kwargs=pr)),
        ("get", reverse("run_print", kwargs=pr)),
        ("post", reverse("portfolio_options", kwargs=p)),
        ("post", reverse("run_recompute", kwargs=p)),
    ]


def test_bob_gets_404_on_every_url_of_alices_portfolio(bob_client, portfolio, sample_result):
    run = make_run(portfolio, status="done", result=sample_result)
    for method, url in all_urls(portfolio, run):
        data = options_post() if method == "post" else None
        response = getattr(bob_client, method)(url, data)
        assert response.status_code == 404, (method, url, response.status_code)
    assert RebalanceRun.objects.filter(portfolio=portfolio).count() == 1
    portfolio.refresh_from_db()
    assert portfolio.profile == "moderate"


def test_anonymous_users_are_sent_to_log_in(client, portfolio, sample_result):
    run = make_run(portfolio, status="done", result=sample_result)
    for method, url in all_urls(portfolio, run):
        response = getattr(client, method)(url)
        assert response.status_code == 302, url
        assert response.url.startswith("/accounts/login/?next="), url
    assert RebalanceRun.objects.filter(portfolio=portfolio).count() == 1
