"""Shared fixtures: named users, a real Celery worker, real headless Chromium."""

from __future__ import annotations

import os
import uuid

import pytest
from django.conf import settings as django_settings

BROKER = os.environ.get("TEST_BROKER", "1") == "1"
BROWSER = os.environ.get("TEST_BROWSER", "1" if os.path.exists("/usr/bin/chromium") else "0") == "1"
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "test-artifacts")

# The cache is the shared Redis: keys of this test session (rate-limit counters, fragments, the worker
# heartbeat) get a prefix of their own, so nothing carries over from another session or worktree.
# Worker and server subprocesses inherit it through the environment.
os.environ.setdefault("CACHE_KEY_PREFIX", f"test-{os.getpid()}-{uuid.uuid4().hex[:8]}")
if django_settings.configured:  # settings already loaded: the cache itself is still created lazily
    django_settings.CACHES["default"]["KEY_PREFIX"] = os.environ["CACHE_KEY_PREFIX"]

# Playwright's sync API runs an event loop in the test thread; Django's ORM calls from the
# test body are still synchronous, so allow them.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def pytest_collection_modifyitems(config, items):
    skip_broker = pytest.mark.skip(reason="Redis does not answer: broker test skipped")
    skip_browser = pytest.mark.skip(reason=f"no Chromium at {CHROMIUM}: browser test skipped")
    for item in items:
        if "broker" in item.keywords and not BROKER:
            item.add_marker(skip_broker)
        if "browser" in item.keywords and not BROWSER:
            item.add_marker(skip_browser)


@pytest.fixture(autouse=True)
def _fast_hashing_and_mail(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.ACCOUNT_RATE_LIMITS = False


PASSWORD = "correct horse battery"


def verified_user(username: str, email: str, password: str = PASSWORD):
    """A user as sign-up leaves one after the emailed link was followed (email verification is mandatory)."""
    from allauth.account.models import EmailAddress
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user(username=username, email=email, password=password)
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    return user


def confirm_email_in_browser(page, email: str) -> None:
    """After sign-up: open the verification link mailed to `email` (the locmem outbox) and confirm it."""
    import re

    from django.core import mail

    page.wait_for_url("**/accounts/confirm-email/")
    [message] = [m for m in mail.outbox if m.to == [email]]
    page.goto(re.search(r"https?://[^/]+(/accounts/confirm-email/\S+)", message.body).group(1))
    page.locator("form button[type=submit]").click()


@pytest.fixture
def alice(db):
    return verified_user("alice", "alice@example.com")


@pytest.fixture
def bob(db):
    return verified_user("bob", "bob@example.com")


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


@pytest.fixture
def bob_client(bob):
    from django.test import Client

    c = Client()
    c.force_login(bob)
    return c


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker):
    """One real Celery worker process for the session, on the test database and test Redis."""
    from tests.workers import Worker

    worker = Worker(concurrency=1)
    try:
        worker.wait_ready()
        yield worker
    finally:
        worker.stop()


@pytest.fixture
def celery_worker(celery_worker_process, transactional_db):
    """A real worker; the test runs in a transactional DB so the worker sees committed rows.

    On the way out it waits for the worker to finish what the test queued, before the database is
    flushed under it.
    """
    yield celery_worker_process
    celery_worker_process.wait_idle()


MARKET_STOCKS = ["AAPL", "MSFT", "NVDA", "GOOGL", "AMZN", "META", "JPM", "BRK-B"]


@pytest.fixture
def market(tmp_path_factory, settings, transactional_db):
    """The real bundled prices for every ETF and a few stocks, loaded into the (transactional) test DB."""
    from portfolios.marketdata.services import market_data_load_bundled
    from tests.market import write_market_slice

    folder = write_market_slice(tmp_path_factory.mktemp("market"), MARKET_STOCKS)
    settings.MARKET_DATA_DIR = folder
    market_data_load_bundled()
    return folder


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        yield b
        b.close()


@pytest.fixture
def page(browser, live_server, settings):
    settings.ACCOUNT_RATE_LIMITS = False
    context = browser.new_context(base_url=live_server.url)
    pg = context.new_page()
    pg.set_default_timeout(20_000)
    os.makedirs(ARTIFACTS, exist_ok=True)
    yield pg
    context.close()
