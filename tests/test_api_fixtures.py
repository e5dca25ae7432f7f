"""Shared helpers for the REST API tests (no tests here): real rows, real tokens, DRF's test client."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from portfolios.models import Account, Holding, Portfolio, Price, RebalanceRun, Security

SAMPLE_RESULT = Path(__file__).parent / "fixtures" / "sample_result.json"


@pytest.fixture(autouse=True)
def _fresh_throttle_history():
    """The per-user throttle counts requests in the cache; start every test from zero."""
    cache.clear()
    yield
    cache.clear()


def token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def security(ticker: str, price: float | None) -> Security:
    sec, _ = Security.objects.get_or_create(ticker=ticker, defaults={"kind": "stock", "priced": price is not None})
    if price is not None:
        Price.objects.update_or_create(security=sec, date=dt.date(2025, 12, 31), defaults={"close": price})
    return sec


def portfolio_with_holdings(owner, name: str = "Main") -> Portfolio:
    """Taxable: 10 AAPL @ 200 (cost 1500) + $250 cash; IRA: 4 XLF @ 50 (no cost) and 3 ZZZQ (no price)."""
    portfolio = Portfolio.objects.create(owner=owner, name=name, profile="moderate")
    taxable = Account.objects.create(portfolio=portfolio, name="Taxable", cash_usd=Decimal("250.00"))
    ira = Account.objects.create(portfolio=portfolio, name="IRA", account_type="traditional_ira")
    Holding.objects.create(account=taxable, security=security("AAPL", 200.0), shares=10, cost_basis_usd=1500)
    Holding.objects.create(account=ira, security=security("XLF", 50.0), shares=4)
    Holding.objects.create(account=ira, security=security("ZZZQ", None), shares=3)
    return portfolio


def done_run(portfolio: Portfolio, result: dict | None = None) -> RebalanceRun:
    from django.utils import timezone

    result = result if result is not None else json.loads(SAMPLE_RESULT.read_text())
    return RebalanceRun.objects.create(
        portfolio=portfolio, status=RebalanceRun.Status.DONE, profile=portfolio.profile, inputs={"profile": "moderate"},
        result=result, finished_at=timezone.now(),
    )
