"""The suggestions page served from the page cache (portfolios/recommendations/page_cache.py): the same
page as rendered in full, one user's page never another's, this session's CSRF token, a live run status,
and every change to what the page shows visible at once."""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.humanize.templatetags import humanize
from django.http import HttpResponse
from django.middleware.csrf import _unmask_cipher_token
from django.template.loader import render_to_string
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from portfolios.models import Account, DriftCheck, ExecutedPlan, Holding, Portfolio, Price, RebalanceRun, Security
from portfolios.recommendations import page_cache, views

pytestmark = pytest.mark.django_db

RESULT = json.loads((Path(__file__).parent / "fixtures" / "sample_result.json").read_text())
TOKEN = re.compile(r"\b[A-Za-z0-9]{64}\b")  # a masked CSRF token


def make_portfolio(owner, name="Retirement") -> Portfolio:
    portfolio = Portfolio.objects.create(owner=owner, name=name)
    account = Account.objects.create(portfolio=portfolio, name="Taxable", cash_usd=Decimal("1000"))
    security, _ = Security.objects.get_or_create(ticker="AAPL", defaults={"kind": "stock", "priced": True})
    Holding.objects.create(account=account, security=security, shares=Decimal("300"))
    return portfolio


def make_run(portfolio, *, status="done", hours_ago=50.5, result=RESULT) -> RebalanceRun:
    run = RebalanceRun.objects.create(portfolio=portfolio, status=status, profile=portfolio.profile,
                                      result=result if status == "done" else None,
                                      prices_as_of=dt.date(2025, 12, 31) if status == "done" else None)
    created = timezone.now() - dt.timedelta(hours=hours_ago)
    RebalanceRun.objects.filter(pk=run.pk).update(
        created_at=created, finished_at=created + dt.timedelta(seconds=3) if status in ("done", "failed") else None,
        started_at=created + dt.timedelta(seconds=1) if status != "pending" else None)
    run.refresh_from_db()
    return run


@pytest.fixture
def portfolio(alice) -> Portfolio:
    portfolio = make_portfolio(alice)
    make_run(portfolio)
    return portfolio


def url(portfolio) -> str:
    return reverse("portfolio_detail", kwargs={"portfolio_id": portfolio.pk})


@pytest.fixture
def renders(monkeypatch) -> list[str]:
    """The page renderings made for the page cache (a hit makes none)."""
    made: list[str] = []
    real = page_cache.render_to_string

    def counting(template_name, context=None, request=None):
        made.append(template_name)
        return real(template_name, context, request)

    monkeypatch.setattr(page_cache, "render_to_string", counting)
    return made


def page(client, portfolio) -> str:
    response = client.get(url(portfolio))
    assert response.status_code == 200
    return response.content.decode()


def without_tokens(html: str) -> str:
    return TOKEN.sub("TOKEN", html)


# --- the same page ------------------------------------------------------------------------------


def test_a_page_from_the_cache_is_the_page_rendered_in_full(alice_client, portfolio, renders, monkeypatch):
    make_run(portfolio, status="failed", hours_ago=1)
    ExecutedPlan.objects.create(portfolio=portfolio, run=portfolio.runs.filter(status="done").first(),
                                trades=[{"index": 0, "ticker": "AAPL", "account": "Taxable", "action": "sell",
                                         "shares": 10, "plan_price": 200.0, "fill_price": 201.0, "amount": 2010.0}])
    DriftCheck.objects.create(portfolio=portfolio, status="drifted", largest=0.12, largest_label="NVDA")
    first, second = page(alice_client, portfolio), page(alice_client, portfolio)
    assert len(renders) == 1  # the second came from the cache
    assert "The last recompute failed" in second and 'data-testid="executed-plan"' in second
    assert "Checked " in second and "alice@example.com" in second

    def render_in_full(request, *, key, template_name, live_context, full_context):  # the page before the cache
        return HttpResponse(render_to_string(template_name, live_context | full_context(), request))

    monkeypatch.setattr(views, "cached_page", render_in_full)
    full = page(alice_client, portfolio)
    assert without_tokens(second) == without_tokens(full) == without_tokens(first)


def test_the_options_form_of_a_cached_page_is_the_saved_options(alice_client, portfolio, renders):
    Portfolio.objects.filter(pk=portfolio.pk).update(max_turnover=0.25, keep_tickers="NVDA")  # no updated_at
    page(alice_client, portfolio)
    html = page(alice_client, portfolio)
    assert len(renders) == 1
    assert 'name="max_turnover_pct" value="25.0"' in html and 'value="NVDA"' in html


# --- one user's page is never another's ---------------------------------------------------------


def test_each_user_sees_only_their_own_page(alice_client, bob_client, alice, bob, portfolio, renders):
    alices = page(alice_client, portfolio)
    assert bob_client.get(url(portfolio)).status_code == 404  # cached or not, not bob's
    bobs_portfolio = make_portfolio(bob)  # the same name and holdings
    make_run(bobs_portfolio)
    bobs = page(bob_client, bobs_portfolio)
    assert "bob@example.com" in bobs and "alice@example.com" not in bobs
    assert "alice@example.com" in alices and "bob@example.com" not in alices
    assert f'data-run="{bobs_portfolio.runs.get().pk}"' in bobs
    assert alice_client.get(url(bobs_portfolio)).status_code == 404
    assert len(renders) == 2


def test_a_staff_user_sees_the_admin_link_and_others_do_not(alice_client, alice, portfolio):
    assert "Admin</a>" not in page(alice_client, portfolio)
    type(alice).objects.filter(pk=alice.pk).update(is_staff=True)
    assert "Admin</a>" in page(alice_client, portfolio)


# --- this session's CSRF token ------------------------------------------------------------------


def test_a_cached_page_carries_this_sessions_csrf_token(alice, portfolio, renders):
    first, second = Client(enforce_csrf_checks=True), Client(enforce_csrf_checks=True)
    first.force_login(alice)
    second.force_login(alice)
    page(first, portfolio)
    response = second.get(url(portfolio))
    assert len(renders) == 1  # the second session got the page from the cache
    assert settings.CSRF_COOKIE_NAME in response.cookies  # and its CSRF cookie, as a rendered page sets it
    html = response.content.decode()
    tokens = set(re.findall(r'name="csrfmiddlewaretoken" value="([^"]+)"', html))
    tokens |= set(re.findall(r'"X-CSRFToken": "([^"]+)"', html))
    assert len(tokens) == 1  # one token for the whole page
    (token,) = tokens
    secret = second.cookies[settings.CSRF_COOKIE_NAME].value
    assert _unmask_cipher_token(token) == secret != first.cookies[settings.CSRF_COOKIE_NAME].value
    recompute = reverse("run_recompute", kwargs={"portfolio_id": portfolio.pk})
    assert second.post(recompute, {"csrfmiddlewaretoken": token}).status_code == 302
    assert first.post(recompute, {"csrfmiddlewaretoken": token}).status_code == 403  # not the other session's


# --- live parts ---------------------------------------------------------------------------------


def test_the_run_status_tells_the_time_of_each_request(alice_client, portfolio, renders, monkeypatch):
    assert "Computed 2\xa0days, 2\xa0hours ago" in page(alice_client, portfolio)

    class Later(dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return dt.datetime.now(tz) + dt.timedelta(hours=3)

    monkeypatch.setattr(humanize, "datetime", Later)
    assert "Computed 2\xa0days, 5\xa0hours ago" in page(alice_client, portfolio)
    assert len(renders) == 1


def test_a_run_in_progress_shows_progress(alice_client, portfolio):
    page(alice_client, portfolio)
    run = make_run(portfolio, status="pending", hours_ago=0)
    html = page(alice_client, portfolio)
    assert 'data-status="pending"' in html and "Recompute pending" in html and 'hx-trigger="every 2s"' in html
    RebalanceRun.objects.filter(pk=run.pk).update(status="running", started_at=timezone.now())
    html = page(alice_client, portfolio)
    assert 'data-status="running"' in html and "Computing new suggestions" in html
    RebalanceRun.objects.filter(pk=run.pk).update(status="done", result=RESULT, finished_at=timezone.now())
    html = page(alice_client, portfolio)
    assert 'data-status="done"' in html and f'data-run="{run.pk}"' in html and "hx-trigger" not in html


def test_messages_are_shown_once_and_never_cached(alice_client, portfolio, renders):
    page(alice_client, portfolio)
    options = reverse("portfolio_options", kwargs={"portfolio_id": portfolio.pk})
    response = alice_client.post(options, {"profile": "moderate", "cash_change_usd": "0", "use_views": "on"})
    assert response.status_code == 302
    assert "Options saved" in page(alice_client, portfolio)
    assert "Options saved" not in page(alice_client, portfolio)
    assert "Options saved" not in page(alice_client, portfolio)
    assert len(renders) == 3  # the first view, the page with the message (not stored), the new state once


# --- every change shows at once -----------------------------------------------------------------


def _new_run(portfolio):
    make_run(portfolio, status="pending", hours_ago=0)
    return "Recompute pending"


def _run_failed(portfolio):
    make_run(portfolio, status="failed", hours_ago=0)
    return "The last recompute failed"


def _run_done(portfolio):
    return f'data-run="{make_run(portfolio, hours_ago=0).pk}"'


def _options(portfolio):
    Portfolio.objects.filter(pk=portfolio.pk).update(profile="aggressive")
    return "Options: aggressive profile"


def _holdings_removed(portfolio):
    Holding.objects.filter(account__portfolio=portfolio).delete()
    return 'data-testid="empty-holdings"'


def _executed(portfolio):
    ExecutedPlan.objects.create(portfolio=portfolio, run=portfolio.runs.first(), trades=[
        {"index": 0, "ticker": "AAPL", "account": "Taxable", "action": "sell", "shares": 10, "plan_price": 200.0,
         "fill_price": 201.0, "amount": 2010.0}])
    return 'data-testid="executed-plan"'


def _drift(portfolio):
    DriftCheck.objects.create(portfolio=portfolio, status="drifted", largest=0.12, largest_label="NVDA")
    return "largest drift 12.0 points (NVDA)"


def _newer_prices(portfolio):
    Price.objects.create(security=Security.objects.get(ticker="AAPL"), date=dt.date(2026, 1, 5), close=1)
    return "Newer prices exist"


def _email(portfolio):
    type(portfolio.owner).objects.filter(pk=portfolio.owner_id).update(email="alice.new@example.com")
    return "alice.new@example.com"


def _renamed(portfolio):
    Portfolio.objects.filter(pk=portfolio.pk).update(name="Renamed")
    return "<h1>Renamed</h1>"


@pytest.mark.parametrize("change", [_new_run, _run_failed, _run_done, _options, _holdings_removed, _executed,
                                    _drift, _newer_prices, _email, _renamed])
def test_a_change_shows_at_once(alice_client, portfolio, renders, change):
    before = page(alice_client, portfolio)
    shown = change(portfolio)
    assert shown not in before
    assert shown in page(alice_client, portfolio)
    assert len(renders) == 2


@pytest.mark.parametrize("change", [
    lambda p: Holding.objects.filter(account__portfolio=p).update(shares=Decimal("301")),
    lambda p: Account.objects.filter(portfolio=p).update(cash_usd=Decimal("1001")),
    lambda p: Holding.objects.create(account=p.accounts.get(), security=Security.objects.create(ticker="MSFT"),
                                     shares=Decimal("1")),
    lambda p: ExecutedPlan.objects.filter(portfolio=p).update(run=None),
    lambda p: RebalanceRun.objects.filter(portfolio=p).update(error="a new reason"),
    lambda p: RebalanceRun.objects.filter(portfolio=p).update(profile="aggressive"),
], ids=["shares", "cash", "new-lot", "plan-run-deleted", "run-error", "run-profile"])
def test_a_change_of_holdings_plans_or_runs_renders_the_page_anew(alice_client, portfolio, renders, change):
    ExecutedPlan.objects.create(portfolio=portfolio, run=portfolio.runs.first(), trades=[])
    page(alice_client, portfolio)
    page(alice_client, portfolio)
    change(portfolio)
    page(alice_client, portfolio)
    assert len(renders) == 2


def test_a_deploy_that_changes_a_template_or_code_renders_anew(settings, tmp_path):
    (tmp_path / "templates").mkdir()
    template = tmp_path / "templates" / "page.html"
    template.write_text("one")
    settings.BASE_DIR = tmp_path
    page_cache.code_version.cache_clear()
    try:
        before = page_cache.code_version()
        template.write_text("two")
        page_cache.code_version.cache_clear()
        assert page_cache.code_version() != before
    finally:
        page_cache.code_version.cache_clear()


def test_the_key_names_the_code_version_the_user_and_the_portfolio(rf, alice, portfolio):
    from portfolios.recommendations.selectors import portfolio_for_page, portfolio_page_state

    request = rf.get(url(portfolio))
    request.user = alice
    loaded = portfolio_for_page(portfolio_id=portfolio.pk, owner_id=alice.pk)
    key = page_cache.page_key(request=request, portfolio=loaded, state=portfolio_page_state(portfolio=loaded))
    assert key.startswith(f"page:{page_cache.code_version()}:{alice.pk}:{portfolio.pk}:")
