"""Production pieces checked in process: headers, the health endpoint, the cache with Redis down, the
cached result fragments and the constant number of queries per page, the admin login, vendored files."""

from __future__ import annotations

import datetime as dt
import re
import time
from pathlib import Path

import pytest
from django.core.cache import caches
from django.urls import reverse
from django.utils import timezone

from advisor.cache import ResilientRedisCache
from portfolios.models import Account, Holding, Portfolio, RebalanceRun, Security

ROOT = Path(__file__).resolve().parent.parent
def _closed_port_url() -> str:
    import socket

    with socket.socket() as s:  # a port that was free a moment ago: connecting is refused
        s.bind(("127.0.0.1", 0))
        return f"redis://127.0.0.1:{s.getsockname()[1]}/0"


def _down_cache_settings(url: str) -> dict:
    return {"default": {
        "BACKEND": "advisor.cache.ResilientRedisCache", "LOCATION": url, "KEY_PREFIX": "down",
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5, "retry_on_timeout": False},
    }}


RESULT = {
    "as_of": "2025-12-31", "profile": "moderate", "status": "optimal", "value": 123456.0,
    "summary": "Sell some tech, buy financials.",
    "trades": [
        {"action": "sell", "ticker": "AAPL", "account": "Taxable", "shares": 10, "price": 200.0, "amount": 2000.0,
         "reason": "over the single-stock cap"},
        {"action": "buy", "ticker": "XLF", "account": "Taxable", "shares": 40, "price": 50.0, "amount": 2000.0,
         "reason": "financials tilt"},
    ],
    "before": {"sectors": {"Information Technology": 0.6, "Financials": 0.1}},
    "after": {"sectors": {"Information Technology": 0.4, "Financials": 0.2}},
    "warnings": ["Cost basis missing for AAPL."],
}


@pytest.fixture
def portfolio(alice):
    portfolio = Portfolio.objects.create(owner=alice, name="Mine")
    account = Account.objects.create(portfolio=portfolio, name="Taxable")
    Holding.objects.create(account=account, security=Security.objects.create(ticker="AAPL"), shares=10)
    return portfolio


def _done_run(portfolio, **fields) -> RebalanceRun:
    return RebalanceRun.objects.create(
        portfolio=portfolio, status=RebalanceRun.Status.DONE, profile="moderate", result=RESULT,
        finished_at=timezone.now(), **fields,
    )


# --- headers ---------------------------------------------------------------------------------


def test_pages_exports_and_api_answers_are_private_with_a_csp_and_a_permissions_policy(alice_client, portfolio):
    run = _done_run(portfolio)
    urls = [
        reverse("portfolio_list"), reverse("portfolio_detail", args=[portfolio.pk]),
        reverse("holdings", args=[portfolio.pk]), reverse("run_print", args=[portfolio.pk, run.pk]),
        reverse("trades_export", args=[portfolio.pk]), "/api/portfolios/", f"/api/runs/{run.pk}/",
        f"/api/portfolios/{portfolio.pk}/trades.csv",
    ]
    for url in urls:
        response = alice_client.get(url)
        assert response.status_code == 200, url
        cache_control = response["Cache-Control"]
        assert "private" in cache_control and "no-store" in cache_control, (url, cache_control)
        assert "camera=()" in response["Permissions-Policy"], url
        csp = response["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]


def test_no_template_carries_an_inline_script_or_event_handler():
    offenders = []
    for path in (ROOT / "templates").rglob("*.html"):
        text = path.read_text()
        for match in re.finditer(r"<script\b[^>]*>", text):
            if "src=" not in match.group(0) and 'type="application/json"' not in match.group(0):
                offenders.append(f"{path}: {match.group(0)}")
        offenders += [f"{path}: {m.group(0)}" for m in re.finditer(r"\s(on[a-z]+|hx-on[:\w-]*)=", text)]
    assert not offenders, offenders


def test_every_vendored_file_names_only_files_that_exist():
    """collectstatic's manifest fails on a sourceMappingURL or url() to a missing file (issue 12)."""
    missing = []
    for path in (ROOT / "static").rglob("*"):
        if path.suffix not in {".js", ".css"}:
            continue
        text = path.read_text(errors="replace")
        refs = re.findall(r"sourceMappingURL=([^\s*]+)", text)
        refs += [r for r in re.findall(r"url\(['\"]?([^'\")]+)", text) if not r.startswith(("data:", "#", "http"))]
        missing += [f"{path.relative_to(ROOT)} -> {ref}" for ref in refs if not (path.parent / ref).exists()]
    assert not missing, missing


# --- health ------------------------------------------------------------------------------------


def test_health_reports_database_redis_and_worker_without_sign_in(client, db, settings,
                                                                   django_assert_max_num_queries):
    from advisor.heartbeat import heartbeat_write

    # a key space of its own: the session's real worker, if one runs, writes the shared heartbeat
    settings.CACHES = {"default": {**settings.CACHES["default"], "KEY_PREFIX": f"health-{time.time_ns()}"}}

    heartbeat_write(time.time() - 5)
    with django_assert_max_num_queries(1):
        body = client.get("/health/").json()
    assert body["ok"] is True and body["database"] == "ok" and body["redis"] == "ok"
    assert body["worker"] == "ok" and 4 <= body["worker_seen_seconds_ago"] < 60
    heartbeat_write(time.time() - 600)
    assert client.get("/health/").json()["worker"] == "stale"
    caches["default"].delete("worker:heartbeat")
    assert client.get("/health/").json() == body | {"status": "degraded", "worker": "missing",
                                                   "worker_seen_seconds_ago": None}


def test_health_answers_quickly_with_redis_down(client, db, settings):
    settings.REDIS_URL = _closed_port_url()
    settings.CACHES = _down_cache_settings(settings.REDIS_URL)
    from portfolios.health import _redis

    _redis.cache_clear()
    try:
        started = time.monotonic()
        response = client.get("/health/")
        assert time.monotonic() - started < 3
    finally:
        _redis.cache_clear()
    assert response.status_code == 200  # reads still work: the load balancer keeps this instance
    assert response.json() == {"ok": True, "status": "degraded", "database": "ok", "redis": "down",
                                    "worker": "unknown", "worker_seen_seconds_ago": None}


@pytest.mark.broker
def test_a_running_worker_writes_the_heartbeat_health_reads(celery_worker, client):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        body = client.get("/health/").json()
        if body["worker"] == "ok":
            break
        time.sleep(0.5)
    assert body["worker"] == "ok", body
    assert body["status"] == "ok"


# --- the cache with Redis down -----------------------------------------------------------------


def test_the_cache_answers_as_a_miss_at_once_when_redis_is_down():
    cache = ResilientRedisCache(_closed_port_url(), _down_cache_settings("x")["default"])
    started = time.monotonic()
    assert cache.get("k", "default") == "default"
    assert cache.add("lock", True) is True  # a lock "taken", so callers go on unguarded
    cache.set("k", 1)
    assert cache.get_many(["a", "b"]) == {}
    assert cache.breaker.open()  # the next calls skip Redis altogether
    assert cache.get("k") is None
    assert time.monotonic() - started < 1.5


def test_the_suggestions_page_renders_without_the_cache_when_redis_is_down(alice_client, portfolio, settings):
    run = _done_run(portfolio)
    settings.CACHES = _down_cache_settings(_closed_port_url())
    started = time.monotonic()
    for _ in range(3):
        response = alice_client.get(reverse("portfolio_detail", args=[portfolio.pk]))
        assert response.status_code == 200
        body = response.content.decode()
        assert "Sell some tech, buy financials." in body and f'data-run="{run.pk}"' in body
        assert 'name="profile"' in body  # the options form, rendered without its fragment cache
    assert time.monotonic() - started < 3


# --- the suggestions page: rendered once per done run, constant queries -------------------------


def test_a_done_runs_result_section_is_rendered_once(alice_client, portfolio, monkeypatch):
    from portfolios.recommendations import fragments

    run = _done_run(portfolio)
    calls = []
    real = fragments.result_display
    monkeypatch.setattr(fragments, "result_display", lambda **kw: calls.append(1) or real(**kw))
    url = reverse("portfolio_detail", args=[portfolio.pk])
    first = alice_client.get(url).content.decode()
    second = alice_client.get(url).content.decode()
    detail = alice_client.get(reverse("run_detail", args=[portfolio.pk, run.pk])).content.decode()
    assert len(calls) == 1
    section = re.search(r'<section id="run-result".*?</section>', first, re.S).group(0)
    assert section in second and section in detail
    assert "$123,456" in first  # the header's value comes from the same cache entry


def test_the_result_section_is_rendered_anew_when_the_price_warnings_change(alice_client, portfolio):
    _done_run(portfolio, prices_as_of=timezone.now().date())
    url = reverse("portfolio_detail", args=[portfolio.pk])
    assert "Newer prices exist" not in alice_client.get(url).content.decode()
    from portfolios.models import Price

    security = Security.objects.get(ticker="AAPL")
    Price.objects.create(security=security, date=timezone.now().date() + dt.timedelta(days=1), close=1)
    assert "Newer prices exist" in alice_client.get(url).content.decode()


def test_the_suggestions_page_makes_a_constant_number_of_queries(alice_client, portfolio,
                                                                  django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    # Served from the page cache: user, portfolio (with the versions of its holdings, plans and drift), runs.
    # Rendered (the page's state changed): also executed plans ("I made these trades") and drift checks.
    cached_queries, rendered_queries = 3, 5
    url = reverse("portfolio_detail", args=[portfolio.pk])
    _done_run(portfolio)
    alice_client.get(url)  # fills the fragment and page caches
    with django_assert_max_num_queries(cached_queries), CaptureQueriesContext(connection) as one_run:
        assert alice_client.get(url).status_code == 200
    Portfolio.objects.filter(pk=portfolio.pk).update(name="Renamed")  # a new state: rendered again
    with django_assert_max_num_queries(rendered_queries):
        assert "Renamed" in alice_client.get(url).content.decode()
    for i in range(15):
        RebalanceRun.objects.create(portfolio=portfolio, status=RebalanceRun.Status.FAILED, profile="moderate",
                                    error=f"failure {i}")
        _done_run(portfolio)
    alice_client.get(url)  # the newest done run's section is rendered once (one more query: its document)
    with django_assert_max_num_queries(cached_queries), CaptureQueriesContext(connection) as many_runs:
        response = alice_client.get(url)
    assert response.content.decode().count('data-testid="history-row"') == 20
    assert len(many_runs.captured_queries) == len(one_run.captured_queries)
    Portfolio.objects.filter(pk=portfolio.pk).update(name="Renamed again")
    with django_assert_max_num_queries(rendered_queries):
        assert alice_client.get(url).status_code == 200


def test_the_history_shows_each_runs_trade_count_and_as_of_without_loading_results(alice_client, portfolio):
    _done_run(portfolio)
    body = alice_client.get(reverse("portfolio_detail", args=[portfolio.pk])).content.decode()
    row = re.search(r'<tr[^>]*data-testid="history-row">.*?</tr>', body, re.S).group(0)
    assert "2025-12-31" in row and '<td class="num inline" data-label="Trades">2</td>' in row


# --- admin login --------------------------------------------------------------------------------


def test_the_admin_login_sends_everyone_to_the_rate_limited_sign_in(client, db, django_user_model):
    django_user_model.objects.create_user(username="root", email="root@example.com", password="pw-12345-x",
                                          is_staff=True, is_superuser=True)
    for password in ("guess", "pw-12345-x"):
        response = client.post("/admin/login/", {"username": "root", "password": password})
        assert response.status_code == 302 and response.url.startswith(reverse("account_login"))
    assert client.get("/admin/").status_code == 302  # still signed out
