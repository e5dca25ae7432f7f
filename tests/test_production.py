"""The documented deploy, end to end: collectstatic into a fresh folder, then the Procfile's `web` line
(gunicorn, `gunicorn.conf.py`) with DJANGO_DEBUG=false behind `X-Forwarded-Proto: https`, on this
test run's PostgreSQL database and Redis. A person signs in with headless Chromium and opens every kind
of page; each answers 200 with no console error and no failed asset. Then the login rate limit holds
across the gunicorn workers and across a restart (the counters live in Redis), and the admin has no
login form of its own to guess passwords at.
"""

from __future__ import annotations

import http.client
import os
import re
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.contrib.auth.hashers import Argon2PasswordHasher

from tests.conftest import ARTIFACTS, MARKET_STOCKS
from tests.production import collectstatic, free_port, get, portfolio_with_done_run, procfile_web, production_env
from tests.workers import LOG_DIR, database_url_for_worker

pytestmark = [pytest.mark.browser, pytest.mark.broker]

PASSWORD = "correct horse battery"
PAGES = ("landing", "portfolio list", "holdings", "suggestions", "print view", "API docs")


@pytest.fixture(scope="module")
def static_root(tmp_path_factory):
    """`manage.py collectstatic` with production settings, into a temporary folder."""
    root = tmp_path_factory.mktemp("staticfiles")
    env = production_env(database_url=os.environ.get("DATABASE_URL", ""), redis_url=os.environ["REDIS_URL"],
                         static_root=root)
    result = collectstatic(env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert (root / "staticfiles.json").exists()
    return root


@pytest.fixture
def production(market, static_root, django_user_model):
    """A user with a priced portfolio and a done run, and the environment the Procfile's web runs in."""
    from allauth.account.models import EmailAddress

    # hashed as production hashes (the tests' fast MD5 hasher is not among its PASSWORD_HASHERS)
    hashed = Argon2PasswordHasher().encode(PASSWORD, Argon2PasswordHasher().salt())
    user = django_user_model.objects.create(username="pat", email="pat@example.com", password=hashed)
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    django_user_model.objects.create(username="admin", email="admin@example.com", password=hashed,
                                     is_staff=True, is_superuser=True)
    portfolio, run = portfolio_with_done_run(owner=user, tickers=[*MARKET_STOCKS, "SPY", "QQQ"])
    port = free_port()
    env = production_env(
        database_url=database_url_for_worker(), redis_url=os.environ["REDIS_URL"], static_root=static_root,
        CACHE_KEY_PREFIX=f"{os.environ['CACHE_KEY_PREFIX']}-prod-{port}",
        # the browser talks plain HTTP to 127.0.0.1; the proxy it stands for would send the https origin
        DJANGO_CSRF_TRUSTED_ORIGINS=f"http://127.0.0.1:{port}",
    )
    return {"env": env, "port": port, "portfolio": portfolio, "run": run,
            "log": LOG_DIR / f"gunicorn-production-{port}.log"}


def test_the_documented_deploy_serves_every_page_signed_in(production, browser):
    env, port, portfolio, run = production["env"], production["port"], production["portfolio"], production["run"]
    with procfile_web(env, log_path=production["log"], port=port):
        _static_files_are_compressed_and_cached_forever(port)
        problems = _browse_every_page(browser, port, portfolio.pk, run.pk)
    assert not problems, "\n".join(problems) + "\n" + production["log"].read_text()[-3000:]


def test_login_limits_hold_across_workers_and_restarts_and_the_admin_has_no_login_form(production):
    env, port = production["env"], production["port"]
    with procfile_web(env, log_path=production["log"], port=port):
        outcomes = "".join(_login_attempt(port, "pat@example.com", "wrong password") for _ in range(8))
        admin = [_admin_login_attempt(port, "admin", f"guess-{i}") for i in range(15)]
    # allauth allows 5 failures per account in 5 minutes: shared by every worker through Redis
    assert outcomes == "FFFFF" + "LLL", outcomes
    # /admin/login/ checks no password at all: it sends everyone to the rate-limited sign-in page
    assert all(status == 302 and location.startswith("/accounts/login/") for status, location in admin), admin
    with procfile_web(env, log_path=production["log"], port=port):
        assert _login_attempt(port, "pat@example.com", PASSWORD) == "L"  # still locked after a restart


# --- helpers -----------------------------------------------------------------------------------


def _static_files_are_compressed_and_cached_forever(port: int) -> None:
    status, headers, body = get(port, "/accounts/login/")
    assert status == 200
    css = re.search(rb'href="(/static/vendor/pico/pico\.min\.[0-9a-f]{12}\.css)"', body)
    assert css, "the login page links no hashed pico.min.css"
    status, headers, _ = get(port, css.group(1).decode(), headers={"Accept-Encoding": "gzip"})
    assert status == 200
    assert headers["Content-Encoding"] == "gzip"
    assert "immutable" in headers["Cache-Control"] and "max-age=315360000" in headers["Cache-Control"]


def _browse_every_page(browser, port: int, portfolio_id: int, run_id: int) -> list[str]:
    base = f"http://127.0.0.1:{port}"
    context = browser.new_context(base_url=base, extra_http_headers={"X-Forwarded-Proto": "https"})
    page = context.new_page()
    page.set_default_timeout(20_000)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    # A request the browser itself cancels because the page navigated on (net::ERR_ABORTED, e.g. the favicon
    # of a page just left) is no failure of the deploy; a missing file answers 404 (below) and a blocked one
    # logs a console error (above).
    page.on("requestfailed", lambda r: problems.append(f"failed request: {r.url} ({r.failure})")
            if "ERR_ABORTED" not in (r.failure or "") else None)
    page.on("response", lambda r: problems.append(f"{r.status} for {r.url}") if r.status >= 400 else None)
    try:
        response = page.goto("/")
        assert response.status == 200, "landing page"
        page.wait_for_load_state("networkidle")
        page.goto("/accounts/login/")
        page.wait_for_load_state("networkidle")
        page.fill("input[name=login]", "pat@example.com")
        page.fill("input[name=password]", PASSWORD)
        page.click("form button[type=submit]")
        page.wait_for_url(f"{base}/portfolios/")
        visits = {
            "landing": "/",  # signed in, it forwards to the portfolio list
            "portfolio list": "/portfolios/",
            "holdings": f"/portfolios/{portfolio_id}/holdings/",
            "suggestions": f"/portfolios/{portfolio_id}/",
            "print view": f"/portfolios/{portfolio_id}/runs/{run_id}/print/",
            "API docs": "/api/docs/",
        }
        for name, path in visits.items():
            response = page.goto(path)
            page.wait_for_load_state("networkidle")
            if response.status != 200:
                problems.append(f"{name} {path} answered {response.status}")
            if name == "suggestions":
                assert page.evaluate("typeof window.Chart") == "function"  # vendored script ran under the CSP
                assert page.locator("[data-testid=summary]").count() == 1
                page.locator("canvas[data-chart]").first.wait_for()
            if name == "API docs":
                page.locator(".swagger-ui .opblock").first.wait_for()
            _screenshot(page, name)
    finally:
        context.close()
    return problems


def _screenshot(page, name: str) -> None:
    os.makedirs(ARTIFACTS, exist_ok=True)
    page.screenshot(path=str(Path(ARTIFACTS) / f"production-{name.replace(' ', '-')}.png"))


def _login_attempt(port: int, email: str, password: str) -> str:
    """One sign-in through the login form: 'F' refused password, 'L' locked out, 'S' signed in."""
    status, headers, body = get(port, "/accounts/login/")
    assert status == 200
    csrf = re.search(r"csrftoken=([^;]+)", headers.get("Set-Cookie", "")).group(1)
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', body).group(1).decode()
    status, headers, body = _post(port, "/accounts/login/", {"login": email, "password": password,
                                                              "csrfmiddlewaretoken": token}, csrf)
    if status == 302:
        return "S"
    text = body.decode()
    if "Too many failed login attempts" in text:
        return "L"
    assert "not correct" in text, text[:2000]
    return "F"


def _admin_login_attempt(port: int, username: str, password: str) -> tuple[int, str]:
    status, headers, _ = get(port, "/admin/login/")
    if status != 200:
        return status, headers.get("Location", "")
    status, headers, _ = _post(port, "/admin/login/", {"username": username, "password": password}, "")
    return status, headers.get("Location", "")


def _post(port: int, path: str, data: dict, csrf: str):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", path, body=urlencode(data), headers={
            "Content-Type": "application/x-www-form-urlencoded", "X-Forwarded-Proto": "https",
            "Cookie": f"csrftoken={csrf}", "Origin": f"http://127.0.0.1:{port}",
        })
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()

