"""Rebalance runs: request/supersede, execution through a real worker, failures, a killed worker, fan-out."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from django.conf import settings

from portfolios.models import Account, Holding, Portfolio, RebalanceRun, Security
from portfolios.recommendations.runner import rebalance_run_execute_service
from portfolios.recommendations.services import rebalance_run_request, recompute_after_price_refresh
from tests.workers import Worker


def make_portfolio(owner, *, name="Tech heavy", holdings=None, cash="2500") -> Portfolio:
    portfolio = Portfolio.objects.create(owner=owner, name=name, profile="moderate")
    taxable = Account.objects.create(
        portfolio=portfolio, name="Taxable", account_type="taxable", cash_usd=Decimal(cash)
    )
    roth = Account.objects.create(portfolio=portfolio, name="Roth", account_type="roth_ira")
    holdings = holdings or {"AAPL": 120, "MSFT": 60, "NVDA": 150, "QQQ": 40}
    for i, (ticker, shares) in enumerate(holdings.items()):
        security = Security.objects.get(ticker=ticker)
        Holding.objects.create(
            account=taxable if i % 2 == 0 else roth,
            security=security,
            shares=Decimal(shares),
            cost_basis_usd=Decimal("10000"),
        )
    return portfolio


def wait_for_status(run_id: int, statuses: set[str], timeout: float = 90.0) -> RebalanceRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = RebalanceRun.objects.get(pk=run_id)
        if run.status in statuses:
            return run
        time.sleep(0.01)
    raise AssertionError(f"run {run_id} still {RebalanceRun.objects.get(pk=run_id).status} after {timeout}s")


@pytest.mark.django_db
def test_a_newer_trigger_supersedes_the_pending_run(alice):
    portfolio = Portfolio.objects.create(owner=alice, name="P")
    first = rebalance_run_request(portfolio=portfolio, trigger="import")
    portfolio.profile = "aggressive"
    portfolio.buy_only = True
    portfolio.save()
    second = rebalance_run_request(portfolio=portfolio, trigger="options")
    assert first.pk == second.pk
    run = RebalanceRun.objects.get(portfolio=portfolio)
    assert run.status == "pending"
    assert run.trigger == "options"
    assert run.profile == "aggressive"
    assert run.inputs["buy_only"] is True


@pytest.fixture
def queued(monkeypatch):
    """Record the runs the service would queue instead of sending them.

    These tests call the runner in-process; the session's real worker (alive once any broker test
    has run) would otherwise race them for the same run.
    """
    from portfolios.recommendations import services

    sent: list[int] = []
    monkeypatch.setattr(services, "_enqueue", sent.extend)
    return sent


def test_the_service_computes_a_run_and_skips_it_the_second_time(alice, market, queued):
    portfolio = make_portfolio(alice)
    run = rebalance_run_request(portfolio=portfolio, trigger="manual")
    assert queued == [run.pk]  # queued once the request committed
    assert rebalance_run_execute_service(run_id=run.pk) == "done"
    run.refresh_from_db()
    assert run.status == "done"
    assert run.result["status"] in ("optimal", "relaxed")
    assert run.prices_as_of.isoformat() == "2025-12-31"
    assert abs(sum(run.result["after"]["weights"].values()) - 1) < 1e-6
    assert run.result["trades"], "a tech-heavy portfolio should get trades"
    assert run.duration_ms is not None and run.duration_ms > 0
    # Idempotent: the done run is not computed again.
    assert rebalance_run_execute_service(run_id=run.pk) == "skipped"


def test_an_engine_failure_is_recorded_with_a_clear_message(alice, market, queued):
    portfolio = Portfolio.objects.create(owner=alice, name="Empty")
    Account.objects.create(portfolio=portfolio, name="Taxable", account_type="taxable")
    run = rebalance_run_request(portfolio=portfolio)
    assert rebalance_run_execute_service(run_id=run.pk) == "failed"
    run.refresh_from_db()
    assert run.status == "failed"
    assert run.error.startswith("The optimizer could not produce a suggestion")
    assert run.result is None


@pytest.mark.broker
def test_a_run_completes_through_a_real_worker(alice, market, celery_worker):
    portfolio = make_portfolio(alice)
    run = rebalance_run_request(portfolio=portfolio, trigger="import")
    run = wait_for_status(run.pk, {"done", "failed"})
    assert run.status == "done", run.error
    assert run.task_id
    tickers = {t["ticker"] for t in run.result["trades"]}
    assert tickers, "expected trades"
    assert {"stress", "backtest"} <= set(run.result)


@pytest.mark.broker
def test_a_run_survives_its_worker_being_killed(alice, market):
    """SIGKILL the worker while it computes; a restarted worker completes the same run."""
    fast_restore = {
        "CELERY_VISIBILITY_TIMEOUT": "2",
        "CELERY_UNACKED_RESTORE_INTERVAL": "1",
        "CELERY_UNACKED_RESTORE_THROTTLE": "1",
    }
    # Its own workers on a private queue, so the session's worker cannot take the task instead.
    first = Worker(concurrency=1, extra_env=fast_restore, queues="kill-test")
    first.wait_ready()
    portfolio = make_portfolio(alice)
    from portfolios.recommendations.tasks import rebalance_run_execute

    run = RebalanceRun.objects.create(portfolio=portfolio, profile="moderate", inputs={"profile": "moderate"})
    rebalance_run_execute.apply_async((run.pk,), queue="kill-test")
    try:
        wait_for_status(run.pk, {"running", "done"}, timeout=60)
    finally:  # a worker left behind would take the next test's messages
        first.kill()
    run.refresh_from_db()
    assert run.status == "running", "the worker finished before it could be killed; the test proves nothing"
    second = Worker(concurrency=1, extra_env=fast_restore, queues="kill-test")
    try:
        second.wait_ready()
        run = wait_for_status(run.pk, {"done", "failed"}, timeout=90)
        assert run.status == "done", run.error + second.log()
        assert run.attempts == 2
    finally:
        second.stop()


@pytest.mark.broker
def test_a_price_refresh_fans_out_to_the_portfolios_holding_those_tickers(alice, bob, market, celery_worker):
    holds_jpm = make_portfolio(alice, name="Has JPM", holdings={"JPM": 50, "AAPL": 30})
    also_jpm = make_portfolio(bob, name="Bob JPM", holdings={"JPM": 10, "MSFT": 20})
    no_jpm = make_portfolio(alice, name="No JPM", holdings={"NVDA": 100})
    assert recompute_after_price_refresh(tickers=["JPM"]) == 2
    runs = list(RebalanceRun.objects.filter(trigger="prices"))
    assert {r.portfolio_id for r in runs} == {holds_jpm.pk, also_jpm.pk}
    assert not RebalanceRun.objects.filter(portfolio=no_jpm).exists()
    for r in runs:
        done = wait_for_status(r.pk, {"done", "failed"})
        assert done.status == "done", done.error


@pytest.mark.django_db(transaction=True)
def test_a_fan_out_queues_each_batch_as_soon_as_it_commits(alice, monkeypatch):
    from portfolios.recommendations import services

    jpm = Security.objects.create(ticker="JPM", kind="stock", priced=True)
    portfolios = []
    for i in range(3):
        portfolio = Portfolio.objects.create(owner=alice, name=f"P{i}")
        account = Account.objects.create(portfolio=portfolio, name="Taxable")
        Holding.objects.create(account=account, security=jpm, shares=Decimal("5"))
        portfolios.append(portfolio)
    sent: list[tuple[list[int], int]] = []

    def record(run_ids):  # what each commit hands to Celery, and how many runs exist by then
        sent.append((list(run_ids), RebalanceRun.objects.count()))

    monkeypatch.setattr(services, "_enqueue", record)
    assert recompute_after_price_refresh(tickers=["JPM"], batch_size=2) == 3
    assert [len(ids) for ids, _ in sent] == [2, 1]
    assert [existing for _, existing in sent] == [2, 3], "the first batch is queued before the second is written"
    assert {i for ids, _ in sent for i in ids} == set(RebalanceRun.objects.values_list("id", flat=True))


@pytest.mark.django_db
def test_claim_rules(alice):
    """Pending runs are claimed once; a running run only by the same task (a redelivery) or when stale."""
    import datetime as dt

    from django.utils import timezone

    from portfolios.recommendations.runner import run_claim

    portfolio = Portfolio.objects.create(owner=alice, name="P")
    run = RebalanceRun.objects.create(portfolio=portfolio, profile="moderate", inputs={"profile": "moderate"})
    claimed = run_claim(run_id=run.pk, task_id="task-1")
    assert claimed is not None and claimed.attempts == 1 and claimed.inputs == {"profile": "moderate"}
    run.refresh_from_db()
    assert run.status == "running" and run.task_id == "task-1" and run.started_at is not None
    assert run_claim(run_id=run.pk, task_id="task-2") is None, "another task may not take a running run"
    assert run_claim(run_id=run.pk, task_id="task-1").attempts == 2, "a redelivered task re-claims its run"
    RebalanceRun.objects.filter(pk=run.pk).update(lease_until=timezone.now() - dt.timedelta(seconds=1))
    assert run_claim(run_id=run.pk, task_id="task-3").attempts == 3, "a run whose lease lapsed is anyone's"
    run.refresh_from_db()
    assert run.lease_until > timezone.now() + dt.timedelta(seconds=settings.RUN_LEASE_SECONDS - 5), "a claim leases"
    assert run_claim(run_id=run.pk, task_id="task-4") is None, "a leased run is not"
    RebalanceRun.objects.filter(pk=run.pk).update(status="done")
    assert run_claim(run_id=run.pk, task_id="task-3") is None, "a done run is never computed again"
