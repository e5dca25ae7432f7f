"""The drift check on the database: one pass over every portfolio, checks recorded, alerts raised once."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.core.management import call_command

from portfolios.drift.emails import unsubscribe_token
from portfolios.drift.services import drift_check_run, portfolio_target_set
from portfolios.models import Account, DriftAlertSetting, DriftCheck, Holding, Portfolio, RebalanceRun, Security
from portfolios.recommendations.runner import rebalance_run_execute_service
from portfolios.recommendations.services import rebalance_run_request


def make_portfolio(owner, holdings: dict[str, float], *, name="Tech heavy", cash="1000", profile="moderate"):
    portfolio = Portfolio.objects.create(owner=owner, name=name, profile=profile)
    account = Account.objects.create(portfolio=portfolio, name="Taxable", account_type="taxable",
                                     cash_usd=Decimal(cash))
    for ticker, shares in holdings.items():
        Holding.objects.create(account=account, security=Security.objects.get(ticker=ticker),
                               shares=Decimal(str(shares)), cost_basis_usd=Decimal("1000"))
    return portfolio


def compute(portfolio) -> RebalanceRun:
    run = rebalance_run_request(portfolio=portfolio, trigger="manual")
    assert rebalance_run_execute_service(run_id=run.pk) == "done"
    return RebalanceRun.objects.get(pk=run.pk)


def execute_plan(portfolio, run) -> None:
    """Set the holdings to the plan's post-trade positions (what 'I made these trades' will do)."""
    account = portfolio.accounts.get()
    weights = run.result["after"]["weights"]
    value = run.result["value"]
    from portfolios.marketdata.selectors import latest_prices

    prices = latest_prices(tickers=[t for t in weights if t != "CASH"])
    Holding.objects.filter(account__portfolio=portfolio).delete()
    for ticker, w in weights.items():
        if ticker == "CASH" or w <= 0:
            continue
        Holding.objects.create(account=account, security=Security.objects.get(ticker=ticker),
                               shares=Decimal(str(round(w * value / prices[ticker][0], 6))))
    account.cash_usd = Decimal(str(round(weights.get("CASH", 0.0) * value, 2)))
    account.save()


@pytest.fixture(autouse=True)
def _mail_queue_apart(settings):
    """Alert e-mails queued by these tests go to a queue no worker reads, emptied afterwards."""
    from contextlib import suppress

    settings.DRIFT_EMAIL_QUEUE = "drift-mail-unit"
    yield
    from advisor.celery import app

    with suppress(Exception), app.connection_for_write() as conn:
        conn.default_channel.queue_purge("drift-mail-unit")


def verify(user):
    EmailAddress.objects.update_or_create(user=user, email=user.email, defaults={"verified": True, "primary": True})


@pytest.mark.django_db(transaction=True)
def test_it_reports_a_concentrated_portfolio_and_then_in_band_after_the_plan(market, alice):
    portfolio = make_portfolio(alice, {"NVDA": 300, "AAPL": 100, "QQQ": 20})
    outcome = drift_check_run()
    (check,) = outcome.checks
    assert check.status in ("drifted", "breaks_limit")
    assert check.largest > 0.05 and check.items
    run = compute(portfolio)
    execute_plan(portfolio, run)
    (check,) = drift_check_run().checks
    assert check.status == "in_band", (check.items, check.limits)
    assert check.since_plan is not None and check.since_plan < 0.01
    assert check.plan_run_id == run.pk
    assert DriftCheck.objects.filter(portfolio=portfolio).count() == 2


@pytest.mark.django_db(transaction=True)
def test_it_raises_one_alert_per_breach_per_week(market, alice):
    verify(alice)
    portfolio = make_portfolio(alice, {"NVDA": 300, "AAPL": 100})
    now = dt.datetime(2026, 1, 5, 22, 0, tzinfo=dt.UTC)
    first = drift_check_run(send=True, now=now)
    assert len(first.alerts) == 1
    assert first.alerts[0].recompute_run_id is not None
    assert RebalanceRun.objects.filter(portfolio=portfolio, status="pending").count() == 1
    second = drift_check_run(send=True, now=now + dt.timedelta(days=1))
    assert second.alerts == []
    later = drift_check_run(send=True, now=now + dt.timedelta(days=8))
    assert len(later.alerts) == 1


@pytest.mark.django_db(transaction=True)
def test_it_mails_the_verified_owner_with_a_working_unsubscribe_link(market, alice, client, settings):
    from portfolios.drift.emails import drift_alert_send

    verify(alice)
    make_portfolio(alice, {"NVDA": 300, "AAPL": 100})
    (alert,) = drift_check_run(send=True).alerts
    assert drift_alert_send(check_id=alert.pk) == "sent"
    (message,) = mail.outbox
    assert message.to == ["alice@example.com"] and "Tech heavy" in message.subject
    assert "NVDA" in message.body or "Information Technology" in message.body
    html = message.alternatives[0][0]
    token = unsubscribe_token(user_id=alice.pk)
    assert token in message.body and token in html and token in message.extra_headers["List-Unsubscribe"]
    response = client.get(f"/alerts/unsubscribe/{token}/")
    assert response.status_code == 200
    assert DriftAlertSetting.objects.get(user=alice).mode == "off"
    assert drift_alert_send(check_id=alert.pk) == "off"
    assert len(mail.outbox) == 1


@pytest.mark.django_db(transaction=True)
def test_a_custom_target_is_what_the_check_and_the_optimizer_use(market, alice):
    portfolio = make_portfolio(alice, {"SPY": 50, "BND": 100})
    Portfolio.objects.filter(pk=portfolio.pk).update(tax_budget=None)  # the target, not the tax, is under test
    portfolio.refresh_from_db()
    target = {"kind": "custom", "mix": {"stocks": 0.3, "bonds": 0.6, "cash": 0.1},
              "funds": {"stocks": {"SPY": 1.0}, "bonds": {"BND": 1.0}}, "sectors": {}}
    portfolio_target_set(portfolio=portfolio, target=target)
    run = RebalanceRun.objects.get(portfolio=portfolio, status="pending")
    assert run.inputs["target"]["kind"] == "custom"
    assert rebalance_run_execute_service(run_id=run.pk) == "done"
    run.refresh_from_db()
    after = run.result["after"]["weights"]
    assert after.get("BND", 0) > after.get("SPY", 0)
    (check,) = drift_check_run().checks
    bonds = [i for i in check.items if i["name"] == "bonds"]
    assert not bonds or abs(bonds[0]["target"] - 0.6) < 1e-6


@pytest.mark.django_db(transaction=True)
def test_check_drift_prints_one_line_per_portfolio(market, alice, bob, capsys):
    make_portfolio(alice, {"NVDA": 300})
    make_portfolio(bob, {"SPY": 10, "BND": 10}, name="Balanced")
    call_command("check_drift")
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and "Tech heavy" in lines[0] + lines[1]
    assert mail.outbox == []


@pytest.mark.django_db(transaction=True)
def test_weekly_digest_users_get_one_digest_a_week_and_no_alert(market, alice):
    from portfolios.drift.emails import digests_send_due
    from portfolios.drift.services import alert_mode_set

    verify(alice)
    alert_mode_set(user=alice, mode="weekly")
    make_portfolio(alice, {"NVDA": 300, "AAPL": 100})
    make_portfolio(alice, {"SPY": 1}, name="Tiny", cash="0")
    outcome = drift_check_run(send=True)
    assert len(outcome.alerts) == 2  # recomputes requested ...
    now = dt.datetime.now(dt.UTC)
    assert digests_send_due(now=now) == 1  # ... but one digest instead of e-mails
    (message,) = mail.outbox
    assert "Tech heavy" in message.body and message.to == ["alice@example.com"]
    assert digests_send_due(now=now + dt.timedelta(days=3)) == 0
    assert digests_send_due(now=now + dt.timedelta(days=8)) == 1


@pytest.mark.django_db(transaction=True)
def test_a_custom_mix_sets_the_engine_targets_asset_classes(market):
    from engine.profiles import profile_get
    from engine.target import build_target
    from portfolios.marketdata.selectors import market_data_for, menu_tickers
    from portfolios.targets import target_views

    menu = menu_tickers()
    data = market_data_for(tickers=menu)
    custom = {"kind": "custom", "mix": {"stocks": 0.5, "bonds": 0.4, "cash": 0.1},
              "funds": {"stocks": {"SPY": 0.5, "XLF": 0.5}, "bonds": {"BND": 1.0}}, "sectors": {}}
    target = build_target(profile=profile_get("aggressive"), views=target_views(custom, None), menu=menu, market=data)
    assert target.weights["BND"] == pytest.approx(0.4)
    assert target.cash == pytest.approx(0.1)
    assert set(target.equity_sleeve) <= {"SPY", "XLF"}
    assert target.source == "your custom target"


@pytest.mark.django_db
def test_check_drift_refuses_an_unknown_portfolio_and_writes_nothing():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--portfolio: no portfolio with id 999"):
        call_command("check_drift", "--portfolio", "999")
    assert DriftCheck.objects.count() == 0


@pytest.mark.django_db
def test_a_new_target_recomputes_but_new_bands_alone_do_not(alice, settings):
    Security.objects.create(ticker="SPY", kind="etf", asset_class="equity", priced=True)
    portfolio = make_portfolio(alice, {"SPY": 10})
    portfolio_target_set(portfolio=portfolio, target={"kind": "thesis"}, bands={"absolute": 0.03, "relative": 0.2})
    assert not RebalanceRun.objects.filter(portfolio=portfolio).exists()
    portfolio_target_set(portfolio=portfolio, target={"kind": "neutral"})
    run = RebalanceRun.objects.get(portfolio=portfolio, status="pending")
    assert run.inputs["use_views"] is False and run.trigger == "options"
