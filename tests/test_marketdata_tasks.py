"""The scheduled refresh through a real Celery worker and the real Redis (bundled provider)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from portfolios.marketdata.services import BEAT_TASK, prices_refresh_lock
from portfolios.marketdata.tasks import prices_refresh_scheduled
from portfolios.models import Account, Holding, Portfolio, Price, PriceRefresh, RebalanceRun, Security


def test_the_beat_task_name_is_a_registered_task():
    from advisor.celery import app

    assert BEAT_TASK in app.tasks
    assert app.tasks[BEAT_TASK].name == prices_refresh_scheduled.name == BEAT_TASK


@pytest.mark.broker
def test_the_scheduled_refresh_runs_in_a_worker_writes_prices_and_queues_recomputes(celery_worker, alice):
    aapl = Security.objects.create(ticker="AAPL", kind="stock", sector="Information Technology", size="large",
                                   priced=True, last_price_date=dt.date(2025, 12, 1))
    Price.objects.create(security=aapl, date=dt.date(2025, 12, 1), close=1.0)  # a wrong stored close
    Security.objects.create(ticker="XLF", kind="etf", is_menu=True)  # on the menu, never priced
    portfolio = Portfolio.objects.create(owner=alice, name="Main")
    account = Account.objects.create(portfolio=portfolio, name="Taxable")
    Holding.objects.create(account=account, security=aapl, shares=Decimal("3"))

    outcome = prices_refresh_scheduled.delay(provider="bundled").get(timeout=90)

    refresh = PriceRefresh.objects.get(pk=outcome["refresh"])
    assert refresh.status == PriceRefresh.Status.DONE == outcome["status"]
    assert refresh.as_of == dt.date(2025, 12, 31) and refresh.tickers_updated == 2
    assert Price.objects.get(security=aapl, date=dt.date(2025, 12, 1)).close > 100  # corrected from the snapshot
    assert Price.objects.filter(security__ticker="XLF", date__gte=dt.date(2025, 12, 1)).count() > 15
    assert Security.objects.get(ticker="XLF").priced
    assert RebalanceRun.objects.filter(portfolio=portfolio, trigger=RebalanceRun.Trigger.PRICES).exists()


@pytest.mark.broker
def test_a_scheduled_refresh_is_skipped_while_another_holds_the_lock(celery_worker):
    with prices_refresh_lock() as held:
        assert held is True
        outcome = prices_refresh_scheduled.delay(provider="bundled").get(timeout=60)
    assert outcome["status"] == PriceRefresh.Status.SKIPPED
    assert PriceRefresh.objects.get(pk=outcome["refresh"]).status == PriceRefresh.Status.SKIPPED
