"""'I made these trades': the service (shares and cash reconcile, lots as the engine sells them, nothing
written on error), the web page and the API (`POST /api/runs/{id}/executed/`)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portfolios.holdings.services import ExecutedSelection, ExecutionRefused, holdings_apply_executed
from portfolios.models import Account, ExecutedPlan, Holding, Portfolio, Price, RebalanceRun, Security
from tests.test_api_fixtures import _fresh_throttle_history, token_client  # noqa: F401

pytestmark = pytest.mark.django_db

LONG_AGO = dt.date(2020, 1, 2)
RECENT = dt.date(2025, 10, 1)
TRADES = [
    {"ticker": "AAPL", "account": "Taxable", "action": "sell", "shares": 15, "price": 200.0, "amount": 3000.0},
    {"ticker": "NVDA", "account": "IRA", "action": "sell", "shares": 20, "price": 100.0, "amount": 2000.0},
    {"ticker": "XLF", "account": "Taxable", "action": "buy", "shares": 40, "price": 50.0, "amount": 2000.0},
    {"ticker": "IWM", "account": "IRA", "action": "buy", "shares": 9, "price": 220.0, "amount": 1980.0},
]


def security(ticker: str, price: float) -> Security:
    sec, _ = Security.objects.get_or_create(ticker=ticker, defaults={"kind": "stock", "priced": True})
    Price.objects.update_or_create(security=sec, date=dt.date(2025, 12, 31), defaults={"close": price})
    return sec


def portfolio_with_run(owner, *, cash_option: float = 0.0, status: str = "done") -> tuple[Portfolio, RebalanceRun]:
    """Taxable: $1,000 cash and three AAPL lots (a loss, a short-term small gain, a long-term big gain);
    IRA: 40 NVDA. The run sells 15 AAPL and 20 NVDA and buys XLF and IWM."""
    portfolio = Portfolio.objects.create(owner=owner, name="Main", cash_change_usd=Decimal(str(cash_option)))
    taxable = Account.objects.create(portfolio=portfolio, name="Taxable", cash_usd=Decimal("1000.00"))
    ira = Account.objects.create(portfolio=portfolio, name="IRA", account_type="traditional_ira")
    aapl = security("AAPL", 200.0)
    Holding.objects.create(account=taxable, security=aapl, shares=10, cost_basis_usd=500, acquired_on=LONG_AGO)
    Holding.objects.create(account=taxable, security=aapl, shares=10, cost_basis_usd=2500, acquired_on=LONG_AGO)
    Holding.objects.create(account=taxable, security=aapl, shares=5, cost_basis_usd=900, acquired_on=RECENT)
    Holding.objects.create(account=ira, security=security("NVDA", 100.0), shares=40)
    security("XLF", 50.0), security("IWM", 220.0)
    run = RebalanceRun.objects.create(
        portfolio=portfolio, status=status, profile="moderate", inputs={"profile": "moderate", "cash": cash_option},
        result={"as_of": "2025-12-31", "trades": [dict(t) for t in TRADES]}, finished_at=timezone.now(),
    )
    return portfolio, run


def shares_by_position(portfolio: Portfolio) -> dict[tuple[str, str], Decimal]:
    out: dict[tuple[str, str], Decimal] = {}
    for h in Holding.objects.filter(account__portfolio=portfolio).select_related("account", "security"):
        key = (h.account.name, h.security.ticker)
        out[key] = out.get(key, Decimal("0")) + h.shares
    return out


def cash_by_account(portfolio: Portfolio) -> dict[str, Decimal]:
    return dict(portfolio.accounts.values_list("name", "cash_usd"))


def everything(portfolio: Portfolio) -> tuple:
    """All that an execution could write."""
    lots = sorted(Holding.objects.filter(account__portfolio=portfolio).values_list(
        "id", "shares", "cost_basis_usd", "acquired_on", "file_value_usd"))
    portfolio.refresh_from_db()
    return (lots, sorted(cash_by_account(portfolio).items()), ExecutedPlan.objects.count(),
            RebalanceRun.objects.filter(portfolio=portfolio).count(), portfolio.cash_change_usd)


# --- the service -------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chosen=st.sets(st.integers(0, len(TRADES) - 1), min_size=1),
       fills=st.lists(st.decimals("0.01", "500", places=2), min_size=len(TRADES), max_size=len(TRADES)),
       cash_option=st.sampled_from([0.0, 500.0, -250.0]))
def test_shares_and_cash_reconcile_with_the_executed_trades(alice, chosen, fills, cash_option):
    portfolio, run = portfolio_with_run(alice, cash_option=cash_option)
    shares_before, cash_before = shares_by_position(portfolio), cash_by_account(portfolio)
    selections = [ExecutedSelection(i, fills[i]) for i in sorted(chosen)]
    plan = holdings_apply_executed(run=run, selections=selections, user=alice)

    expected_shares, expected_cash = dict(shares_before), dict(cash_before)
    for i in chosen:
        t, sign = TRADES[i], (1 if TRADES[i]["action"] == "buy" else -1)
        key = (t["account"], t["ticker"])
        expected_shares[key] = expected_shares.get(key, Decimal("0")) + sign * Decimal(t["shares"])
        expected_cash[t["account"]] -= sign * (Decimal(t["shares"]) * fills[i]).quantize(Decimal("0.01"))
    expected_cash["Taxable"] += Decimal(str(cash_option)).quantize(Decimal("0.01"))
    assert shares_by_position(portfolio) == {k: v for k, v in expected_shares.items() if v}
    assert cash_by_account(portfolio) == expected_cash
    assert sorted(plan.trade_indexes) == sorted(chosen)
    assert plan.cash_change_usd == Decimal(str(cash_option))
    assert all(t["fill_price"] == float(fills[t["index"]]) for t in plan.trades)


def test_sells_take_the_lots_the_engine_would_sell_first(alice):
    portfolio, run = portfolio_with_run(alice)
    loss, recent = (Holding.objects.get(account__portfolio=portfolio, cost_basis_usd=b) for b in (2500, 900))
    plan = holdings_apply_executed(run=run, selections=[ExecutedSelection(0)], user=alice)
    # At $200: the $250-basis lot is a loss (taken first), then the short-term lot with a $20 gain a share
    # (35% of 10% = 3.5 cents a dollar) before the long-term one with $150 a share (15% of 75% = 11.25 cents).
    assert [(lot["holding"], lot["shares"]) for lot in plan.trades[0]["lots"]] == [(loss.pk, 10.0), (recent.pk, 5.0)]
    [left] = Holding.objects.filter(account__portfolio=portfolio, security__ticker="AAPL")
    assert (left.shares, left.cost_basis_usd, left.acquired_on) == (10, 500, LONG_AGO)


def test_a_partial_lot_keeps_its_basis_in_proportion(alice):
    portfolio, run = portfolio_with_run(alice)
    run.result["trades"][0]["shares"] = 12  # the whole loss lot and 2 of the 5 recent shares
    run.save()
    holdings_apply_executed(run=run, selections=[ExecutedSelection(0)], user=alice)
    recent = Holding.objects.get(account__portfolio=portfolio, acquired_on=RECENT)
    assert (recent.shares, recent.cost_basis_usd) == (3, Decimal("540.00"))


def test_buys_become_lots_at_the_fill_price_dated_today(alice):
    portfolio, run = portfolio_with_run(alice)
    holdings_apply_executed(run=run, selections=[ExecutedSelection(2, Decimal("49.5"))], user=alice)
    lot = Holding.objects.get(account__portfolio=portfolio, security__ticker="XLF")
    assert (lot.shares, lot.cost_basis_usd, lot.acquired_on) == (40, Decimal("1980.00"), timezone.localdate())


def test_all_means_every_open_trade_and_the_deposit_is_booked_once(alice):
    portfolio, run = portfolio_with_run(alice, cash_option=500.0)
    first = holdings_apply_executed(run=run, selections=[ExecutedSelection(1)], user=alice)
    rest = holdings_apply_executed(run=run, selections=None, user=alice, fill_prices={2: Decimal("51")})
    assert (first.trade_indexes, rest.trade_indexes) == ([1], [0, 2, 3])
    assert (first.cash_change_usd, rest.cash_change_usd) == (Decimal("500.00"), Decimal("0"))
    assert [t["fill_price"] for t in rest.trades] == [200.0, 51.0, 220.0]
    portfolio.refresh_from_db()
    assert portfolio.cash_change_usd == 0, "the one-off deposit is not planned again"
    assert first.executed_by == alice


@pytest.mark.parametrize("selections,fill_prices,field", [
    ([ExecutedSelection(4)], None, "trades"),
    ([ExecutedSelection(-1)], None, "trades"),
    ([ExecutedSelection(0), ExecutedSelection(0)], None, "trades"),
    ([], None, "trades"),
    ([ExecutedSelection(0, Decimal("-5"))], None, "prices"),
    ([ExecutedSelection(0, Decimal("0"))], None, "prices"),
    ([ExecutedSelection(0, Decimal("NaN"))], None, "prices"),
    ([ExecutedSelection(0, Decimal("Infinity"))], None, "prices"),
    (None, {9: Decimal("10")}, "prices"),
])
def test_bad_input_names_the_field_and_writes_nothing(alice, selections, fill_prices, field):
    portfolio, run = portfolio_with_run(alice)
    before = everything(portfolio)
    with pytest.raises(ExecutionRefused) as refused:
        holdings_apply_executed(run=run, selections=selections, user=alice, fill_prices=fill_prices)
    assert field in refused.value.errors
    assert everything(portfolio) == before


def test_a_trade_executed_twice_is_refused_and_nothing_is_written(alice):
    portfolio, run = portfolio_with_run(alice)
    holdings_apply_executed(run=run, selections=[ExecutedSelection(2)], user=alice)
    before = everything(portfolio)
    with pytest.raises(ExecutionRefused, match="trade 2 is already marked executed"):
        holdings_apply_executed(run=run, selections=[ExecutedSelection(0), ExecutedSelection(2)], user=alice)
    assert everything(portfolio) == before
    holdings_apply_executed(run=run, selections=None, user=alice)
    with pytest.raises(ExecutionRefused, match="every trade"):
        holdings_apply_executed(run=run, selections=None, user=alice)


@pytest.mark.parametrize("status", ["pending", "running", "failed"])
def test_only_a_done_run_can_be_executed(alice, status):
    portfolio, run = portfolio_with_run(alice, status=status)
    before = everything(portfolio)
    with pytest.raises(ExecutionRefused) as refused:
        holdings_apply_executed(run=run, selections=None, user=alice)
    assert list(refused.value.errors) == ["run"]
    assert everything(portfolio) == before


def test_a_sale_larger_than_the_holding_now_is_refused_whole(alice):
    portfolio, run = portfolio_with_run(alice)
    Holding.objects.filter(account__portfolio=portfolio, security__ticker="NVDA").update(shares=5)
    before = everything(portfolio)
    with pytest.raises(ExecutionRefused, match="sells 20 NVDA in IRA, which holds 5 now"):
        holdings_apply_executed(run=run, selections=None, user=alice)  # trade 0 alone would have worked
    assert everything(portfolio) == before


def test_a_vanished_account_is_refused(alice):
    portfolio, run = portfolio_with_run(alice)
    portfolio.accounts.filter(name="IRA").delete()
    before = everything(portfolio)
    with pytest.raises(ExecutionRefused, match="“IRA” is no longer in this portfolio"):
        holdings_apply_executed(run=run, selections=[ExecutedSelection(3)], user=alice)
    assert everything(portfolio) == before


# --- the web page ------------------------------------------------------------------------------


def page_url(run: RebalanceRun) -> str:
    return f"/portfolios/{run.portfolio_id}/runs/{run.pk}/executed/"


def test_the_page_lists_the_trades_ticked(alice_client, alice):
    _, run = portfolio_with_run(alice)
    html = alice_client.get(page_url(run)).content.decode()
    assert html.count('data-testid="executed-row"') == len(TRADES)
    assert html.count('name="trades"') == html.count(" checked") == len(TRADES)


def test_the_form_on_the_run_page_posts_with_its_csrf_token(alice):
    import re

    from django.test import Client

    portfolio, run = portfolio_with_run(alice)
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    html = client.get(f"/portfolios/{portfolio.pk}/runs/{run.pk}/").content.decode()
    form = html[html.index('data-testid="executed-form"'):]
    assert f'action="{page_url(run)}"' in form
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
    assert client.post(page_url(run), {"trades": ["2"]}).status_code == 403
    assert not ExecutedPlan.objects.exists()
    response = client.post(page_url(run), {"trades": ["2"], "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert ExecutedPlan.objects.get().trade_indexes == [2]


def test_the_run_and_portfolio_pages_link_to_it(alice_client, alice):
    portfolio, run = portfolio_with_run(alice)
    run_page = alice_client.get(f"/portfolios/{portfolio.pk}/runs/{run.pk}/").content.decode()
    assert 'data-testid="executed-form"' in run_page
    detail = alice_client.get(f"/portfolios/{portfolio.pk}/").content.decode()
    assert f'href="{page_url(run)}"' in detail


def test_an_overdrawn_account_is_pointed_out(alice_client, alice):
    _, run = portfolio_with_run(alice)
    response = alice_client.post(page_url(run), {"trades": ["2"]}, follow=True)  # $2,000 of XLF, $1,000 cash
    assert "Taxable&#x27;s cash is now -$1,000.00" in response.content.decode()


def test_posting_updates_the_holdings_records_the_plan_and_requests_a_run(alice_client, alice):
    portfolio, run = portfolio_with_run(alice)
    response = alice_client.post(page_url(run), {"trades": ["0", "2"], "price_2": "49.75", "price_0": ""})
    assert response.status_code == 302 and response.url == f"/portfolios/{portfolio.pk}/"
    plan = ExecutedPlan.objects.get()
    assert (plan.trade_indexes, plan.run, plan.executed_by) == ([0, 2], run, alice)
    assert [t["fill_price"] for t in plan.trades] == [200.0, 49.75]
    assert shares_by_position(portfolio)[("Taxable", "XLF")] == 40
    assert RebalanceRun.objects.filter(portfolio=portfolio, status="pending", trigger="edit").exists()

    detail = alice_client.get(f"/portfolios/{portfolio.pk}/").content.decode()
    assert detail.count('data-testid="executed-plan"') == 1 and "49.75" in detail
    again = alice_client.get(page_url(run)).content.decode()
    assert again.count('name="trades"') == 2, "executed trades are shown as made, not offered again"


@pytest.mark.parametrize("data,message", [
    ({"trades": ["0"], "price_0": "-3"}, "Fill price of trade 1 (AAPL, USD): A fill price is above 0."),
    ({"trades": ["0"], "price_0": "abc"}, "Fill price of trade 1 (AAPL, USD): Enter a number"),
    ({"trades": ["7"]}, "not an open trade"),
    ({}, "Tick at least one trade"),
])
def test_bad_form_input_is_shown_and_writes_nothing(alice_client, alice, data, message):
    portfolio, run = portfolio_with_run(alice)
    before = everything(portfolio)
    response = alice_client.post(page_url(run), data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert everything(portfolio) == before


def test_a_refusal_from_the_service_is_shown_with_its_field(alice_client, alice):
    portfolio, run = portfolio_with_run(alice)
    Holding.objects.filter(account__portfolio=portfolio, security__ticker="NVDA").delete()
    before = everything(portfolio)
    response = alice_client.post(page_url(run), {"trades": ["1"]})
    assert response.status_code == 400
    assert "trades: trade 1: sells 20 NVDA in IRA, which holds 0 now" in response.content.decode()
    assert everything(portfolio) == before


def test_another_users_run_is_404_and_untouched(bob_client, alice):
    portfolio, run = portfolio_with_run(alice)
    before = everything(portfolio)
    assert bob_client.get(page_url(run)).status_code == 404
    assert bob_client.post(page_url(run), {"trades": ["0"]}).status_code == 404
    assert everything(portfolio) == before


# --- the API -----------------------------------------------------------------------------------


def api_url(run: RebalanceRun) -> str:
    return f"/api/runs/{run.pk}/executed/"


def test_the_api_executes_all_trades_and_answers_with_the_new_holdings(alice):
    portfolio, run = portfolio_with_run(alice)
    response = token_client(alice).post(api_url(run), {}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert [t["index"] for t in body["executed"]] == [0, 1, 2, 3]
    assert {(h["account"], h["ticker"]) for h in body["holdings"]} == set(shares_by_position(portfolio))
    assert body["cash"] == float(sum(cash_by_account(portfolio).values()))
    assert RebalanceRun.objects.get(pk=body["run"]).status == "pending"
    assert ExecutedPlan.objects.get().pk == body["executed_plan"]


def test_the_api_takes_indexes_and_fill_prices(alice):
    portfolio, run = portfolio_with_run(alice)
    response = token_client(alice).post(api_url(run), {"trades": [3, 1], "prices": {"3": 219.5}}, format="json")
    assert response.status_code == 200, response.content
    assert [(t["index"], t["fill_price"]) for t in response.json()["executed"]] == [(1, 100.0), (3, 219.5)]
    assert cash_by_account(portfolio)["IRA"] == Decimal("2000.00") - Decimal("1975.50")


@pytest.mark.parametrize("body,field", [
    ({"trades": [4]}, "trades"),
    ({"trades": [-1]}, "trades"),
    ({"trades": []}, "trades"),
    ({"trades": ["0"]}, "trades"),
    ({"trades": [True]}, "trades"),
    ({"trades": 0}, "trades"),
    ({"trades": [0], "prices": {"0": -1}}, "prices"),
    ({"trades": [0], "prices": {"0": 0}}, "prices"),
    ({"trades": [0], "prices": {"0": "12"}}, "prices"),
    ({"trades": [0], "prices": {"zero": 12}}, "prices"),
    ({"trades": [0], "prices": {"1": 12}}, "prices"),
    ({"prices": {"9": 12}}, "prices"),
    ({"prices": [12]}, "prices"),
])
def test_the_api_refuses_bad_input_naming_the_field_and_writes_nothing(alice, body, field):
    portfolio, run = portfolio_with_run(alice)
    before = everything(portfolio)
    response = token_client(alice).post(api_url(run), body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert everything(portfolio) == before


def test_the_api_refuses_a_run_not_done_and_a_second_execution(alice):
    portfolio, run = portfolio_with_run(alice, status="running")
    response = token_client(alice).post(api_url(run), {}, format="json")
    assert response.status_code == 400 and "run" in response.json()
    run.status = "done"
    run.save()
    assert token_client(alice).post(api_url(run), {"trades": [0]}, format="json").status_code == 200
    before = everything(portfolio)
    again = token_client(alice).post(api_url(run), {"trades": [0]}, format="json")
    assert again.status_code == 400 and "already marked executed" in again.json()["trades"][0]
    assert everything(portfolio) == before


def test_the_api_answers_404_for_another_users_run(alice, bob):
    portfolio, run = portfolio_with_run(alice)
    before = everything(portfolio)
    assert token_client(bob).post(api_url(run), {}, format="json").status_code == 404
    assert everything(portfolio) == before


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_executions_of_one_trade_write_it_once(alice):
    import threading

    from django.db import connection

    portfolio, run = portfolio_with_run(alice)
    barrier, outcomes = threading.Barrier(2), []

    def execute() -> None:
        try:
            barrier.wait(timeout=10)
            holdings_apply_executed(run=run, selections=[ExecutedSelection(2)], user=alice)
            outcomes.append("written")
        except ExecutionRefused as exc:
            outcomes.append(exc.errors["trades"][0])
        finally:
            connection.close()

    threads = [threading.Thread(target=execute) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["trade 2 is already marked executed", "written"]
    assert shares_by_position(portfolio)[("Taxable", "XLF")] == 40
    assert cash_by_account(portfolio)["Taxable"] == Decimal("-1000.00")
