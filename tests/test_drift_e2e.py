"""End to end: a concentrated file imported and computed by a real worker, the plan executed, a CSV price
refresh in which NVDA doubles, the drift check after it, the recompute queued, and exactly one e-mail through
a real SMTP server (aiosmtpd, started here) with a working unsubscribe link; nothing on a second check, nothing
to an unsubscribed user."""

from __future__ import annotations

import datetime as dt
import email
import re
import socket
import time
import uuid
from email import policy

import pandas as pd
import pytest
from aiosmtpd.controller import Controller
from allauth.account.models import EmailAddress
from django.db import transaction

from portfolios.drift.services import drift_check_run
from portfolios.holdings.services import portfolio_import_file
from portfolios.marketdata.selectors import latest_prices
from portfolios.marketdata.tasks import prices_refresh_scheduled
from portfolios.models import DriftAlertSetting, DriftCheck, Portfolio, RebalanceRun, Security
from portfolios.recommendations.services import rebalance_run_request
from tests.test_drift_services import execute_plan
from tests.workers import Worker

pytestmark = pytest.mark.broker

CONCENTRATED = b"ticker,shares,cost_basis\nNVDA,400,20000\nAAPL,150,15000\nMSFT,40,9000\nQQQ,30,9000\n"


class Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller, inbox
    finally:
        controller.stop()


@pytest.fixture
def mail_worker(smtp, market, settings):
    """A real worker that sends mail through the test's SMTP server (drift e-mails on a queue of their own,
    so that a worker started by another test cannot take them)."""
    controller, _ = smtp
    queue = f"drift-mail-{uuid.uuid4().hex[:6]}"
    settings.DRIFT_EMAIL_QUEUE = queue
    worker = Worker(concurrency=1, queues=f"celery,{queue}", extra_env={
        "EMAIL_URL": f"smtp://127.0.0.1:{controller.port}?tls=false", "SITE_URL": "http://testserver",
    })
    try:
        worker.wait_ready()
        yield worker, queue
        worker.wait_idle(queues=("celery", queue))
    finally:
        worker.stop()


def wait_for(predicate, timeout: float = 90.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def write_prices(path, day: dt.date, closes: dict[str, float]):
    frame = pd.DataFrame([closes], index=pd.Index([day.isoformat()], name="date"))
    frame.to_csv(path)
    return path


def next_business_day(day: dt.date) -> dt.date:
    day += dt.timedelta(days=1)
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    return day


def test_drift_end_to_end(mail_worker, smtp, alice, client, tmp_path, settings):
    worker, queue = mail_worker
    _, inbox = smtp
    assert EmailAddress.objects.filter(user=alice, email=alice.email, verified=True).exists()
    portfolio = Portfolio.objects.create(owner=alice, name="All in tech", profile="moderate")
    with transaction.atomic():  # as the upload view does: write the holdings, then request the run
        portfolio_import_file(portfolio=portfolio, data=CONCENTRATED, filename="positions.csv")
        rebalance_run_request(portfolio=portfolio, trigger=RebalanceRun.Trigger.IMPORT)
    run = wait_for(lambda: RebalanceRun.objects.filter(portfolio=portfolio, status="done").first(), what="first run")
    execute_plan(portfolio, run)

    in_band = drift_check_run(send=True)
    assert [c.status for c in in_band.checks] == ["in_band"] and in_band.alerts == []

    tickers = list(Security.objects.filter(priced=True).values_list("ticker", flat=True))
    last = latest_prices(tickers=tickers)
    day = next_business_day(max(d for _, d in last.values()))
    closes = {t: p * (2.0 if t == "NVDA" else 1.0) for t, (p, _) in last.items()}
    settings.PRICE_CSV_PATH = str(write_prices(tmp_path / "prices.csv", day, closes))
    outcome = prices_refresh_scheduled.apply(kwargs={"provider": "csv"}).get()
    assert outcome["status"] == "done" and outcome["drift"] == {"checked": 1, "alerts": 1, "digests": 0}

    check = DriftCheck.objects.filter(portfolio=portfolio).latest("checked_at")
    assert check.status in ("drifted", "breaks_limit") and check.alerted_at is not None
    assert check.prices_as_of == day
    assert any("NVDA" in item["name"] or item["group"] == "sector" for item in check.items) or check.limits
    assert check.recompute_run is not None

    message = wait_for(lambda: inbox.messages, what="the alert e-mail")[0]
    worker.wait_idle(queues=("celery", queue))
    assert len(inbox.messages) == 1
    assert message["To"] == "alice@example.com" and "All in tech" in message["Subject"]
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "All in tech" in html and "/portfolios/" in text
    assert "The new suggestion:" in text or "The latest suggestion (from" in text
    assert str(message["List-Unsubscribe"]).strip().startswith("<http://testserver/alerts/unsubscribe/")
    link = re.search(r"http://testserver(/alerts/unsubscribe/\S+/)", text).group(1)
    wait_for(lambda: RebalanceRun.objects.get(pk=check.recompute_run_id).status in ("done", "failed"),
             what="the recompute")
    assert RebalanceRun.objects.get(pk=check.recompute_run_id).status == "done"

    again = drift_check_run(send=True)
    assert again.alerts == [] and again.checks[0].status == check.status
    worker.wait_idle(queues=("celery", queue))
    assert len(inbox.messages) == 1

    assert client.get(link).status_code == 200
    assert DriftAlertSetting.objects.get(user=alice).mode == "off"
    later = drift_check_run(send=True, now=dt.datetime.now(dt.UTC) + dt.timedelta(days=8))
    assert len(later.alerts) == 1  # the breach is raised again (a recompute) but not mailed
    worker.wait_idle(queues=("celery", queue))
    assert len(inbox.messages) == 1
