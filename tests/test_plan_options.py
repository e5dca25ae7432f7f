"""Issue 15's plan limits on the Django side: the tax budget, the fund cap and the minimum order as portfolio
settings (options form, run inputs, engine Options), the tax executed plans already realised this year, and the
new result fields on the page, the print view and the API."""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from engine.types import Options
from portfolios.holdings.selectors import executed_tax_this_year
from portfolios.models import Account, ExecutedPlan, Holding, Portfolio, RebalanceRun, Security
from portfolios.recommendations.engine_feed import options_from_inputs
from portfolios.recommendations.fragments import _options_key
from portfolios.recommendations.selectors import result_display, run_inputs_display
from portfolios.recommendations.services import run_inputs_for
from tests.test_api_fixtures import _fresh_throttle_history, portfolio_with_holdings, token_client  # noqa: F401

pytestmark = pytest.mark.django_db

FIXTURE = Path(__file__).parent / "fixtures" / "sample_result.json"
UNLIMITED_TICKED = re.compile(r'<input type="checkbox" name="tax_unlimited"[^>]* checked')


def old_document() -> dict:
    """A stored run's document from before issue 15 (no orders, notes, tradeoffs, tax_budget, volatility_sample)."""
    return json.loads(FIXTURE.read_text())


def issue15_document(*, tax_budget: float | None = 0.01) -> dict:
    """The same plan as the engine documents it since issue 15 (engine-independent: written out here)."""
    doc = old_document()
    doc.update(
        orders=len(doc["trades"]), funds_bought=len({t["ticker"] for t in doc["trades"] if t["action"] == "buy"}),
        notes=["Waited for 40 NVDA shares that turn long-term on 2026-02-03: selling them then saves $1,210.",
               "Bonds go in the Traditional IRA: their interest is not taxed there."],
        tradeoffs=[
            {"budget": 0.0, "est_taxes": 0.0, "volatility": 0.241, "limits_met": 3, "limits_total": 6,
             "current": False},
            {"budget": 0.01, "est_taxes": 3150.0, "volatility": 0.205, "limits_met": 5, "limits_total": 6,
             "current": tax_budget == 0.01},
            {"budget": 0.03, "est_taxes": 9200.0, "volatility": 0.178, "limits_met": 6, "limits_total": 6,
             "current": False},
            {"budget": None, "est_taxes": 11800.0, "volatility": 0.176, "limits_met": 6, "limits_total": 6,
             "current": tax_budget is None},
        ],
        tax_budget=tax_budget, tax_spent_usd=0.0, est_taxes=3150.0,
    )
    doc["before"]["volatility_sample"] = 0.3312
    doc["after"]["volatility_sample"] = 0.2187
    return doc


def make_portfolio(owner, *, holdings: bool = True) -> Portfolio:
    portfolio = Portfolio.objects.create(owner=owner, name="Retirement")
    if holdings:
        account = Account.objects.create(portfolio=portfolio, name="Taxable")
        security, _ = Security.objects.get_or_create(ticker="AAPL", defaults={"kind": "stock", "priced": True})
        Holding.objects.create(account=account, security=security, shares=Decimal("300"))
    return portfolio


def done_run(portfolio: Portfolio, result: dict, inputs: dict | None = None) -> RebalanceRun:
    return RebalanceRun.objects.create(
        portfolio=portfolio, status="done", trigger="manual", profile="moderate",
        inputs=inputs if inputs is not None else run_inputs_for(portfolio), result=result,
        finished_at=timezone.now(), prices_as_of=dt.date(2025, 12, 31),
    )


@pytest.fixture
def portfolio(alice) -> Portfolio:
    return make_portfolio(alice)


def detail_url(portfolio) -> str:
    return reverse("portfolio_detail", kwargs={"portfolio_id": portfolio.pk})


def options_url(portfolio) -> str:
    return reverse("portfolio_options", kwargs={"portfolio_id": portfolio.pk})


def options_post(**overrides) -> dict:
    data = {"profile": "moderate", "cash_change_usd": "0", "keep_tickers": "", "max_turnover_pct": "",
            "use_views": "on", "tax_budget_pct": "1", "max_funds": "6", "min_trade_usd": "250",
            "min_trade_pct": "0.25"}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


# --- settings: defaults, the form, the run inputs, the engine's Options ---------------------------------


def test_a_new_portfolio_has_the_planners_defaults(portfolio):
    assert (portfolio.tax_budget, portfolio.max_funds, portfolio.min_trade_usd, portfolio.min_trade_fraction) == (
        0.01, 6, 250.0, 0.0025)
    defaults = Options()
    options = options_from_inputs(run_inputs_for(portfolio))
    assert (options.tax_budget, options.max_funds, options.min_trade_usd, options.min_trade_fraction) == (
        defaults.tax_budget, defaults.max_funds, defaults.min_trade_usd, defaults.min_trade_fraction)
    assert options.tax_spent_usd == 0.0


def test_the_form_shows_the_defaults_and_the_summary_line_says_them(alice_client, portfolio):
    html = alice_client.get(detail_url(portfolio)).content.decode()
    assert 'name="tax_budget_pct" value="1"' in html
    assert 'name="max_funds" value="6"' in html
    assert 'name="min_trade_usd" value="250"' in html
    assert 'name="min_trade_pct" value="0.25"' in html
    assert 'name="tax_unlimited"' in html and not UNLIMITED_TICKED.search(html)
    assert "tax budget 1% a year, at most 6 funds bought, orders of at least $250 or 0.25%" in html


def test_saved_limits_go_to_the_run_and_to_the_engine(alice_client, portfolio):
    response = alice_client.post(options_url(portfolio), options_post(
        tax_budget_pct="0.5", max_funds="4", min_trade_usd="500", min_trade_pct="0.1"))
    assert response.status_code == 302
    portfolio.refresh_from_db()
    assert portfolio.tax_budget == pytest.approx(0.005)
    assert portfolio.max_funds == 4
    assert portfolio.min_trade_usd == 500.0
    assert portfolio.min_trade_fraction == pytest.approx(0.001)
    run = RebalanceRun.objects.get(portfolio=portfolio)
    assert (run.status, run.trigger) == ("pending", "options")
    assert run.inputs["tax_budget"] == pytest.approx(0.005) and run.inputs["max_funds"] == 4
    options = options_from_inputs(run.inputs)
    assert options.tax_budget == pytest.approx(0.005)
    assert options.max_funds == 4
    assert (options.min_trade_usd, options.min_trade_fraction) == (500.0, pytest.approx(0.001))
    html = alice_client.get(detail_url(portfolio)).content.decode()
    assert 'name="tax_budget_pct" value="0.5"' in html and 'name="min_trade_pct" value="0.1"' in html
    assert "tax budget 0.5% a year, at most 4 funds bought, orders of at least $500 or 0.1%" in html


def test_no_tax_limit_no_fund_cap_and_a_zero_budget(alice_client, portfolio):
    alice_client.post(options_url(portfolio), options_post(tax_unlimited="on", max_funds=""))
    portfolio.refresh_from_db()
    assert portfolio.tax_budget is None and portfolio.max_funds is None
    options = options_from_inputs(RebalanceRun.objects.get(portfolio=portfolio).inputs)
    assert options.tax_budget is None and options.max_funds is None
    html = alice_client.get(detail_url(portfolio)).content.decode()
    assert UNLIMITED_TICKED.search(html)
    assert "no tax limit, no cap on funds bought" in html

    alice_client.post(options_url(portfolio), options_post(tax_budget_pct="0"))
    portfolio.refresh_from_db()
    assert portfolio.tax_budget == 0.0 and portfolio.max_funds == 6
    assert options_from_inputs(RebalanceRun.objects.get(portfolio=portfolio).inputs).tax_budget == 0.0
    assert "tax budget 0% a year" in alice_client.get(detail_url(portfolio)).content.decode()


def test_blank_amounts_take_the_defaults(alice_client, portfolio):
    Portfolio.objects.filter(pk=portfolio.pk).update(tax_budget=0.03, min_trade_usd=900, min_trade_fraction=0.01)
    alice_client.post(options_url(portfolio), options_post(tax_budget_pct="", min_trade_usd="", min_trade_pct=""))
    portfolio.refresh_from_db()
    assert (portfolio.tax_budget, portfolio.min_trade_usd, portfolio.min_trade_fraction) == (0.01, 250.0, 0.0025)


@pytest.mark.parametrize("field,value,message", [
    ("tax_budget_pct", "101", "Tax budget is a percentage of value from 0 to 100."),
    ("tax_budget_pct", "-0.5", "Tax budget is a percentage of value from 0 to 100."),
    ("tax_budget_pct", "a lot", "Tax budget: enter a percentage, e.g. 1 or 0.5."),
    ("tax_budget_pct", "0.125", "Tax budget: use at most two decimal places"),
    ("max_funds", "0", "Most funds to buy is a whole number from 1 to 50, or blank for no cap."),
    ("max_funds", "51", "Most funds to buy is a whole number from 1 to 50, or blank for no cap."),
    ("max_funds", "2.5", "Most funds to buy is a whole number from 1 to 50, or blank for no cap."),
    ("min_trade_usd", "-1", "Minimum order (USD) is an amount from 0 to 100,000."),
    ("min_trade_usd", "250000", "Minimum order (USD) is an amount from 0 to 100,000."),
    ("min_trade_usd", "cheap", "Minimum order (USD): enter an amount in dollars, e.g. 250."),
    ("min_trade_pct", "11", "Minimum order (% of value) is a percentage from 0 to 10."),
    ("min_trade_pct", "-0.1", "Minimum order (% of value) is a percentage from 0 to 10."),
])
def test_bad_limits_are_refused_naming_the_field_and_nothing_is_written(alice_client, portfolio, field, value,
                                                                          message):
    response = alice_client.post(options_url(portfolio), options_post(**{field: value}))
    assert response.status_code == 400
    html = response.content.decode()
    assert message in html
    assert f'id="id_{field}_errors"' in html  # shown next to its own field
    portfolio.refresh_from_db()
    assert (portfolio.tax_budget, portfolio.max_funds, portfolio.min_trade_usd) == (0.01, 6, 250.0)
    assert not RebalanceRun.objects.filter(portfolio=portfolio).exists()


def test_a_change_of_limits_renders_the_options_fields_anew(portfolio):
    """The options fields are cached per saved options: each limit is part of the key."""
    keys = {_options_key(portfolio)}
    for name, value in (("tax_budget", 0.02), ("tax_budget", None), ("max_funds", 3), ("min_trade_usd", 100.0),
                        ("min_trade_fraction", 0.001)):
        setattr(portfolio, name, value)  # updated_at unchanged: the fields themselves must move the key
        keys.add(_options_key(portfolio))
    assert len(keys) == 6


def test_old_run_inputs_take_the_engine_defaults():
    old = {"profile": "moderate", "cash": 0.0, "buy_only": False, "keep": [], "fractional": False,
           "max_turnover": None, "use_views": True}
    options, defaults = options_from_inputs(old), Options()
    assert (options.tax_budget, options.max_funds, options.min_trade_usd, options.min_trade_fraction,
            options.tax_spent_usd) == (defaults.tax_budget, defaults.max_funds, defaults.min_trade_usd,
                                       defaults.min_trade_fraction, 0.0)
    explicit = options_from_inputs({**old, "tax_budget": None, "max_funds": None})
    assert explicit.tax_budget is None and explicit.max_funds is None


def test_the_run_page_lists_the_limits_it_used(portfolio):
    run = done_run(portfolio, old_document(), inputs={**run_inputs_for(portfolio), "tax_spent_usd": 812.4})
    rows = dict(run_inputs_display(run=run))
    assert rows["Tax budget"] == "1% of value a year"
    assert rows["Tax already realised this year"] == "$812 (executed plans)"
    assert rows["Most funds to buy"] == "6"
    assert rows["Minimum order"] == "$250 or 0.25% of value, whichever is larger"
    unlimited = done_run(portfolio, old_document(), inputs={"profile": "moderate", "tax_budget": None,
                                                            "max_funds": None})
    rows = dict(run_inputs_display(run=unlimited))
    assert (rows["Tax budget"], rows["Most funds to buy"]) == ("no limit", "no cap")
    old = done_run(portfolio, old_document(), inputs={"profile": "moderate"})
    assert not {"Tax budget", "Most funds to buy", "Minimum order"} & set(dict(run_inputs_display(run=old)))


# --- tax already realised this calendar year ----------------------------------------------------------


def executed(portfolio, *, when: dt.datetime, trades: list[dict]) -> ExecutedPlan:
    plan = ExecutedPlan.objects.create(portfolio=portfolio, trades=trades)
    ExecutedPlan.objects.filter(pk=plan.pk).update(executed_at=when)
    return plan


def sell(account: str, fill: float, lots: list[tuple[float, float | None, str | None]]) -> dict:
    return {"index": 0, "ticker": "AAPL", "account": account, "action": "sell", "shares": sum(s for s, _, _ in lots),
            "plan_price": fill, "fill_price": fill, "amount": fill * sum(s for s, _, _ in lots),
            "lots": [{"holding": None, "shares": s, "cost_basis": b, "acquired_on": d} for s, b, d in lots]}


def test_tax_of_this_years_executed_sales_is_netted_and_fed_to_the_engine(alice, portfolio):
    Account.objects.create(portfolio=portfolio, name="IRA", account_type="traditional_ira")
    now = timezone.now()
    year = timezone.localdate().year
    long_ago, recent = "2015-01-02", (timezone.localdate() - dt.timedelta(days=30)).isoformat()
    executed(portfolio, when=now, trades=[
        sell("Taxable", 100.0, [(10, 400.0, long_ago)]),  # long-term gain 600
        sell("Taxable", 100.0, [(5, 300.0, recent), (5, 900.0, recent)]),  # short-term: +200 - 400 = -200
        sell("IRA", 100.0, [(50, 0.0, long_ago)]),  # tax-deferred: nothing
        {"index": 3, "ticker": "XLF", "account": "Taxable", "action": "buy", "shares": 3, "fill_price": 50,
         "lots": [{"holding": None, "shares": 3, "cost_basis": 150.0, "acquired_on": recent}]},
    ])
    executed(portfolio, when=now.replace(year=year - 1), trades=[sell("Taxable", 100.0, [(100, 0.0, long_ago)])])
    other = make_portfolio(alice)
    executed(other, when=now, trades=[sell("Gone", 100.0, [(2, None, None)])])  # deleted account, unknown basis

    spent = executed_tax_this_year(portfolio_ids=[portfolio.pk, other.pk])
    # the short-term loss offsets the long-term gain: (600 - 200) x 15%; last year's sale does not count
    assert spent[portfolio.pk] == pytest.approx(60.0)
    assert spent[other.pk] == pytest.approx(100 * 0.15)  # half of $200 is gain, long-term, counted as taxable
    assert executed_tax_this_year(portfolio_ids=[portfolio.pk], year=year - 1)[portfolio.pk] == pytest.approx(1500.0)

    inputs = run_inputs_for(portfolio)
    assert inputs["tax_spent_usd"] == pytest.approx(60.0)
    assert options_from_inputs(inputs).tax_spent_usd == pytest.approx(60.0)


def test_a_net_loss_so_far_counts_as_nothing_spent(portfolio):
    executed(portfolio, when=timezone.now(), trades=[sell("Taxable", 10.0, [(10, 500.0, "2015-01-02")])])
    assert executed_tax_this_year(portfolio_ids=[portfolio.pk]) == {portfolio.pk: 0.0}
    assert executed_tax_this_year(portfolio_ids=[]) == {}


def test_marking_trades_executed_requests_a_run_that_knows_the_tax_spent(alice_client, portfolio):
    account = Account.objects.get(portfolio=portfolio)
    Holding.objects.filter(account=account).update(cost_basis_usd=Decimal("15000"), acquired_on=dt.date(2015, 1, 2))
    result = old_document()
    result["trades"] = [{"ticker": "AAPL", "account": "Taxable", "action": "sell", "shares": 100, "price": 250.0,
                         "amount": 25000.0, "reason": "trim"}]
    run = done_run(portfolio, result)
    response = token_client(portfolio.owner).post(f"/api/runs/{run.pk}/executed/", {}, format="json")
    assert response.status_code == 200, response.content
    nxt = RebalanceRun.objects.get(pk=response.json()["run"])
    # 100 of 300 shares at $250 against a third of the $15,000 basis: a $20,000 long-term gain at 15%
    assert nxt.inputs["tax_spent_usd"] == pytest.approx(3000.0)


def test_a_price_refresh_fan_out_reads_the_tax_spent_of_each_portfolio(alice, portfolio):
    from portfolios.recommendations.services import recompute_request_bulk

    executed(portfolio, when=timezone.now(), trades=[sell("Taxable", 100.0, [(10, 0.0, "2015-01-02")])])
    others = [make_portfolio(alice) for _ in range(3)]
    recompute_request_bulk(portfolio_ids=[portfolio.pk, *(p.pk for p in others)])
    runs = {r.portfolio_id: r for r in RebalanceRun.objects.all()}
    assert runs[portfolio.pk].inputs["tax_spent_usd"] == pytest.approx(150.0)
    assert all(runs[p.pk].inputs["tax_spent_usd"] == 0.0 for p in others)


# --- the result: plan facts, notes, both volatilities, the trade-off table -------------------------------


def test_the_page_shows_orders_funds_tax_notes_volatilities_and_the_tradeoffs(alice_client, portfolio):
    doc = issue15_document()
    done_run(portfolio, doc)
    html = alice_client.get(detail_url(portfolio)).content.decode()
    display = result_display(result=doc)
    facts = display.facts
    assert (facts.orders, facts.funds_bought) == (len(doc["trades"]), doc["funds_bought"])
    assert f'data-testid="plan-orders">{facts.orders}<' in html
    assert f'data-testid="plan-funds">{doc["funds_bought"]}<' in html
    assert 'data-testid="plan-tax">$3,150<' in html
    assert f"{3150 / doc['value']:.2%} of value; budget 1% a year" in html
    for note in doc["notes"]:
        assert note in html
    assert "Volatility (annualised, risk model)" in html and "Volatility (annualised, plain 3-year sample)" in html
    assert "33.1%" in html and "21.9%" in html
    assert 'data-testid="tradeoffs"' in html and 'href="#tradeoffs"' in html
    assert html.count('data-testid="tradeoff-row"') == 4
    assert html.count('data-current="true"') == 1
    current = html[html.index('data-current="true"'):]
    assert current.index("1% of value") < current.index("(this plan)") < current.index("</tr>")
    assert "No limit" in html and "5 of 6" in html and "17.6%" in html


def test_the_print_view_shows_the_same_figures(alice_client, portfolio):
    doc = issue15_document(tax_budget=None)
    run = done_run(portfolio, doc)
    html = alice_client.get(reverse("run_print", kwargs={"portfolio_id": portfolio.pk, "run_id": run.pk})
                            ).content.decode()
    assert 'data-testid="plan-facts"' in html and "no tax limit" in html
    assert doc["notes"][0] in html
    assert 'data-testid="tradeoffs"' in html and html.count('data-current="true"') == 1
    assert "plain 3-year sample" in html


def test_a_document_from_before_issue_15_still_renders(alice_client, portfolio):
    doc = old_document()
    run = done_run(portfolio, doc, inputs={"profile": "moderate"})
    for url in (detail_url(portfolio),
                reverse("run_print", kwargs={"portfolio_id": portfolio.pk, "run_id": run.pk}),
                reverse("run_detail", kwargs={"portfolio_id": portfolio.pk, "run_id": run.pk})):
        response = alice_client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        assert escape(doc["summary"]) in html
        assert 'data-testid="plan-facts"' in html  # counted from its trades
        assert f'data-testid="plan-orders">{len(doc["trades"])}<' in html
        assert "budget" not in html.split('data-testid="plan-tax-budget"')[1].split("</span>")[0]  # not known
        assert 'data-testid="tradeoffs"' not in html and 'data-testid="notes"' not in html
        assert "plain 3-year sample" not in html and "Volatility (annualised)" in html


def test_odd_shapes_of_the_new_keys_never_break_the_page(alice_client, portfolio):
    doc = issue15_document()
    doc.update(orders="many", funds_bought=None, notes="not a list", tax_budget="1%",
               tradeoffs=[{"budget": "x"}, "junk", {"current": True}])
    doc["after"]["volatility_sample"] = "n/a"
    done_run(portfolio, doc)
    response = alice_client.get(detail_url(portfolio))
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('data-testid="tradeoff-row"') == 2


def test_a_plan_over_its_budget_says_so(portfolio):
    doc = issue15_document()
    doc["est_taxes"] = doc["value"] * 0.02
    assert result_display(result=doc).facts.over_budget
    assert not result_display(result=issue15_document()).facts.over_budget
    assert not result_display(result=issue15_document(tax_budget=None) | {"est_taxes": 1e9}).facts.over_budget


# --- API ----------------------------------------------------------------------------------------------


def test_api_rebalance_takes_the_limits_for_one_run(alice):
    portfolio = portfolio_with_holdings(alice)
    body = {"tax_budget": None, "max_funds": 3, "min_trade_usd": 1000, "min_trade_fraction": 0.005}
    response = token_client(alice).post(f"/api/portfolios/{portfolio.pk}/rebalance/", body, format="json")
    assert response.status_code == 202, response.content
    inputs = RebalanceRun.objects.get(pk=response.json()["run"]).inputs
    assert (inputs["tax_budget"], inputs["max_funds"], inputs["min_trade_usd"], inputs["min_trade_fraction"]) == (
        None, 3, 1000.0, 0.005)
    options = options_from_inputs(inputs)
    assert (options.tax_budget, options.max_funds, options.min_trade_usd) == (None, 3, 1000.0)
    portfolio.refresh_from_db()
    assert portfolio.tax_budget == 0.01, "a one-off run leaves the settings alone"
    omitted = token_client(alice).post(f"/api/portfolios/{portfolio.pk}/rebalance/", {}, format="json")
    assert RebalanceRun.objects.get(pk=omitted.json()["run"]).inputs["tax_budget"] == 0.01


@pytest.mark.parametrize("body,field", [
    ({"tax_budget": 1.5}, "tax_budget"),
    ({"tax_budget": -0.01}, "tax_budget"),
    ({"tax_budget": "1%"}, "tax_budget"),
    ({"tax_budget": True}, "tax_budget"),
    ({"max_funds": 0}, "max_funds"),
    ({"max_funds": 51}, "max_funds"),
    ({"max_funds": 2.5}, "max_funds"),
    ({"max_funds": "6"}, "max_funds"),
    ({"min_trade_usd": -5}, "min_trade_usd"),
    ({"min_trade_usd": None}, "min_trade_usd"),
    ({"min_trade_usd": 1e6}, "min_trade_usd"),
    ({"min_trade_fraction": 0.2}, "min_trade_fraction"),
])
def test_api_refuses_bad_limits_naming_the_field(alice, body, field):
    portfolio = portfolio_with_holdings(alice)
    client = token_client(alice)
    response = client.post(f"/api/portfolios/{portfolio.pk}/rebalance/", body, format="json")
    assert response.status_code == 400 and field in response.json()
    assert not RebalanceRun.objects.exists()
    patched = client.patch(f"/api/portfolios/{portfolio.pk}/", body, format="json")
    assert patched.status_code == 400 and field in patched.json()
    portfolio.refresh_from_db()
    assert (portfolio.tax_budget, portfolio.max_funds, portfolio.min_trade_usd, portfolio.min_trade_fraction) == (
        0.01, 6, 250.0, 0.0025)


def test_api_sets_and_reads_the_portfolio_limits(alice):
    portfolio = portfolio_with_holdings(alice)
    client = token_client(alice)
    response = client.patch(f"/api/portfolios/{portfolio.pk}/", {"tax_budget": 0.0, "max_funds": None},
                            format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["tax_budget"], body["max_funds"], body["min_trade_usd"], body["min_trade_fraction"]) == (
        0.0, None, 250.0, 0.0025)
    portfolio.refresh_from_db()
    assert (portfolio.tax_budget, portfolio.max_funds) == (0.0, None)
    run = RebalanceRun.objects.get(portfolio=portfolio)  # a new limit recomputes, as on the page
    assert (run.trigger, run.inputs["tax_budget"], run.inputs["max_funds"]) == ("options", 0.0, None)
    assert client.get(f"/api/portfolios/{portfolio.pk}/").json()["tax_budget"] == 0.0
    created = client.post("/api/portfolios/", {"name": "Kids", "tax_budget": None, "min_trade_usd": 100},
                          format="json").json()
    assert (created["tax_budget"], created["min_trade_usd"], created["max_funds"]) == (None, 100.0, 6)


def test_api_run_result_carries_the_new_keys(alice):
    portfolio = portfolio_with_holdings(alice)
    doc = issue15_document()
    run = done_run(portfolio, doc)
    result = token_client(alice).get(f"/api/runs/{run.pk}/").json()["result"]
    assert result == doc
    assert {"orders", "funds_bought", "notes", "tradeoffs", "tax_budget"} <= set(result)
    assert result["after"]["volatility_sample"] == 0.2187


def test_the_schema_documents_the_limits_and_the_result_keys(alice):
    schema = token_client(alice).get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    schemas = schema["components"]["schemas"]
    for name in ("RebalanceRequest", "PortfolioWrite", "PatchedPortfolioWrite", "PortfolioDetail"):
        props = schemas[name]["properties"]
        assert {"tax_budget", "max_funds", "min_trade_usd", "min_trade_fraction"} <= set(props), name
    request = schemas["RebalanceRequest"]["properties"]
    assert request["tax_budget"]["nullable"] is True and request["tax_budget"]["maximum"] == 1
    assert request["max_funds"]["nullable"] is True and request["max_funds"]["maximum"] == 50
    assert "no limit" in request["tax_budget"]["description"]
    result = schemas["Run"]["properties"]["result"]
    assert {"orders", "funds_bought", "notes", "tradeoffs", "tax_budget", "before", "after"} <= set(
        result["properties"])
    assert "volatility_sample" in result["properties"]["after"]["properties"]
    assert set(result["properties"]["tradeoffs"]["items"]["properties"]) == {
        "budget", "est_taxes", "volatility", "limits_met", "limits_total", "current"}

