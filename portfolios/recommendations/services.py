"""Rebalance runs: request (create or supersede the pending run), queue, sweep.

Call points for other areas (they write first, then request the runs, in the same transaction):
- `rebalance_run_request(portfolio=..., trigger=...)` after an import is confirmed, holdings or cash
  are edited, or options change. Queues the task with `transaction.on_commit`.
- `recompute_after_price_refresh(tickers=...)` after a price refresh changed those tickers' prices.
- `rebalance_runs_sweep()` (beat, every RUN_SWEEP_SECONDS): no run is lost when Redis or a worker dies.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from portfolios.holdings.selectors import executed_tax_this_year
from portfolios.models import Portfolio, RebalanceRun

logger = logging.getLogger(__name__)
REQUEST_TRIES = 3
SWEEP_LIMIT = 1000  # runs re-queued per sweep at most; the next sweep takes the rest
QUEUE_BATCH = 25  # runs per task message in a fan-out: one process solves them in a row, caches warm


def run_inputs_for(portfolio: Portfolio, *, tax_spent_usd: float | None = None) -> dict:
    """The options a run will use, taken from the portfolio's current settings (a custom target included).

    `tax_spent_usd` is the estimated tax the plans marked executed this calendar year realised (taken off the
    tax budget); a caller that read it for many portfolios at once passes it in.
    """
    if tax_spent_usd is None:
        tax_spent_usd = executed_tax_this_year(portfolio_ids=[portfolio.pk]).get(portfolio.pk, 0.0)
    inputs = {
        "profile": portfolio.profile,
        "cash": float(portfolio.cash_change_usd),
        "buy_only": portfolio.buy_only,
        "keep": portfolio.keep_list,
        "fractional": portfolio.fractional,
        "max_turnover": portfolio.max_turnover,
        "use_views": portfolio.use_views,
        "tax_budget": portfolio.tax_budget,
        "tax_spent_usd": tax_spent_usd,
        "max_funds": portfolio.max_funds,
        "min_trade_usd": portfolio.min_trade_usd,
        "min_trade_fraction": portfolio.min_trade_fraction,
    }
    if (portfolio.target or {}).get("kind") == "custom":
        inputs.update(target=portfolio.target, use_views=True)
    return inputs


def rebalance_run_request(
    *, portfolio: Portfolio, trigger: str = RebalanceRun.Trigger.MANUAL, inputs: dict | None = None
) -> RebalanceRun:
    """Create the pending run for `portfolio`, or supersede the one already pending.

    At most one pending run exists per portfolio (a database constraint); a newer trigger updates
    its inputs. The task is queued once the surrounding transaction commits.
    """
    inputs = inputs if inputs is not None else run_inputs_for(portfolio)
    fields = {"inputs": inputs, "trigger": trigger, "profile": inputs.get("profile", portfolio.profile)}
    with transaction.atomic():
        run = _pending_run_upsert(portfolio=portfolio, fields=fields)
        run_id = run.pk
        transaction.on_commit(lambda: _enqueue([run_id]))
    return run


def _pending_run_upsert(*, portfolio: Portfolio, fields: dict) -> RebalanceRun:
    """Update the pending run or insert one; a concurrent insert (user or fan-out) is taken over."""
    for _ in range(REQUEST_TRIES):
        pending = RebalanceRun.objects.filter(portfolio=portfolio, status=RebalanceRun.Status.PENDING)
        if pending.update(**fields):  # the row stays locked (and pending) until this transaction ends
            return pending.get()
        try:
            with transaction.atomic():
                return RebalanceRun.objects.create(portfolio=portfolio, **fields)
        except IntegrityError:  # a concurrent request or fan-out created it first: update that one
            continue
    raise IntegrityError(f"could not create or update the pending run of portfolio {portfolio.pk}")


def _enqueue(run_ids: Sequence[int], batch_size: int = QUEUE_BATCH) -> int:
    """Queue the runs over one broker connection: one task for a single run, batches of `batch_size`
    runs for a fan-out or a sweep (each run in a batch still retries alone). Records which runs
    reached the broker.

    Redis down: the first send fails within the broker timeouts (settings), the rest are not tried,
    and the unsent runs get `queue_failed_at`, so the page says so; the sweep queues them later.
    Returns how many runs were sent.
    """
    from portfolios.recommendations.tasks import rebalance_run_execute, rebalance_runs_execute

    run_ids = list(run_ids)
    sent = 0
    if not run_ids:
        return 0
    try:
        with rebalance_run_execute.app.producer_or_acquire() as producer:
            if len(run_ids) == 1:
                rebalance_run_execute.apply_async((run_ids[0],), producer=producer)
                sent = 1
            for start in range(sent, len(run_ids), batch_size):
                batch = run_ids[start : start + batch_size]
                rebalance_runs_execute.apply_async((batch,), producer=producer)
                sent += len(batch)
    except Exception as exc:  # broker unreachable: the sweep re-queues what was not sent
        logger.warning("could not queue %s of %s runs, the task queue is unreachable: %s",
                       len(run_ids) - sent, len(run_ids), exc)
    now = timezone.now()
    if sent:
        RebalanceRun.objects.filter(pk__in=run_ids[:sent]).update(queued_at=now, queue_failed_at=None)
    if sent < len(run_ids):
        RebalanceRun.objects.filter(pk__in=run_ids[sent:]).update(queue_failed_at=now)
    return sent


def recompute_after_price_refresh(*, tickers: Iterable[str], batch_size: int = 1000) -> int:
    """Queue a run for every portfolio holding any of `tickers`. Returns how many portfolios.

    Pending runs are created (or kept: a pending run keeps the options it was asked with and will
    simply see the new prices) in batches of `batch_size` portfolios, one transaction each. The insert
    is idempotent (ON CONFLICT DO NOTHING on the one-pending-run constraint, then the pending runs are
    read back), so a user's request creating a pending run at the same moment neither fails the batch
    nor gets a twin. As each batch commits its runs are queued (`_enqueue`), and each retries alone.
    """
    tickers = list(tickers)
    if not tickers:
        return 0
    portfolio_ids = list(
        Portfolio.objects.filter(accounts__holdings__security__ticker__in=tickers)
        .values_list("id", flat=True)
        .distinct()
        .order_by("id")
    )
    for start in range(0, len(portfolio_ids), batch_size):
        with transaction.atomic():
            recompute_request_bulk(portfolio_ids=portfolio_ids[start : start + batch_size])
    return len(portfolio_ids)


def recompute_request_bulk(*, portfolio_ids: list[int]) -> dict[int, int]:
    """A pending price-triggered run for each portfolio (a pending run is kept), queued once the surrounding
    transaction commits (call it inside one). Returns {portfolio id: run id}."""
    runs = _pending_runs_ensure(portfolio_ids=portfolio_ids)
    run_ids = list(runs.values())
    transaction.on_commit(functools.partial(_enqueue, run_ids))
    return runs


def _pending_runs_ensure(*, portfolio_ids: list[int]) -> dict[int, int]:
    """One pending price-triggered run per portfolio (existing pending runs kept): {portfolio id: run id}."""
    pending = RebalanceRun.objects.filter(portfolio_id__in=portfolio_ids, status=RebalanceRun.Status.PENDING)
    pending.update(trigger=RebalanceRun.Trigger.PRICES)
    spent = executed_tax_this_year(portfolio_ids=portfolio_ids)  # one query for the batch (two with any)
    RebalanceRun.objects.bulk_create(
        [
            RebalanceRun(portfolio=p, trigger=RebalanceRun.Trigger.PRICES, profile=p.profile,
                         inputs=run_inputs_for(p, tax_spent_usd=spent.get(p.pk, 0.0)))
            for p in Portfolio.objects.filter(id__in=portfolio_ids).exclude(
                Exists(pending.filter(portfolio=OuterRef("pk")))
            )
        ],
        ignore_conflicts=True,
    )
    return dict(pending.order_by("portfolio_id").values_list("portfolio_id", "id"))


# --- the sweep: no run lost, none stuck -------------------------------------------------------


@dataclass(frozen=True)
class SweepOutcome:
    requeued: int
    superseded: int
    failed: int
    broker_backlog: int | None  # messages waiting in the queue; None when the broker did not answer


def rebalance_runs_sweep(*, limit: int = SWEEP_LIMIT) -> SweepOutcome:
    """Recover runs a dead broker or worker left behind.

    - A running run whose lease lapsed (its worker died) and that a newer done run replaced: failed
      with a message saying so. One that was claimed RUN_MAX_ATTEMPTS times: failed with a message.
      Any other: queued again (the claim accepts a lapsed lease).
    - A pending run the broker refused, or that never reached it, or (when the queue is empty, so its
      message was lost with a Redis restart) whose message went out more than RUN_REQUEUE_AFTER_SECONDS
      ago: queued again.
    """
    now = timezone.now()
    superseded = _runs_fail(_lapsed(now).filter(_newer_done()), RUN_SUPERSEDED_MESSAGE, now)
    failed = _runs_fail(
        _lapsed(now).filter(attempts__gte=settings.RUN_MAX_ATTEMPTS),
        RUN_EXHAUSTED_MESSAGE.format(n=settings.RUN_MAX_ATTEMPTS), now,
    )
    backlog = broker_backlog()
    requeued = 0
    if backlog is not None:
        settle = now - dt.timedelta(seconds=settings.RUN_REQUEUE_AFTER_SECONDS)
        waiting = Q(status=RebalanceRun.Status.PENDING) & (
            Q(queue_failed_at__isnull=False) | Q(queued_at__isnull=True, created_at__lt=settle)
        )
        if backlog == 0:
            waiting |= Q(status=RebalanceRun.Status.PENDING, queued_at__lt=settle)
        # not queued since the lease lapsed (or that message was lost too: a minute ago)
        lapsed = _lapsed(now).filter(
            Q(queued_at__isnull=True) | Q(queued_at__lt=F("lease_until")) | Q(queued_at__lt=settle)
        )
        ids = list(lapsed.values_list("id", flat=True)[:limit])
        ids += RebalanceRun.objects.filter(waiting).order_by("created_at").values_list("id", flat=True)[
            : max(limit - len(ids), 0)
        ]
        requeued = _enqueue(ids)
    outcome = SweepOutcome(requeued=requeued, superseded=superseded, failed=failed, broker_backlog=backlog)
    if requeued or superseded or failed:
        logger.info("rebalance runs sweep: %s", outcome)
    return outcome


RUN_SUPERSEDED_MESSAGE = "Stopped before it finished (its worker went away); a newer recompute has replaced it."
RUN_EXHAUSTED_MESSAGE = (
    "The background worker stopped {n} times while computing this suggestion (it may have been restarted "
    "or run out of memory). Recompute to try again; if it keeps failing, try fewer keep-these tickers."
)


def _lapsed(now: dt.datetime):
    """Running runs whose worker stopped renewing the lease (a run from before leases: its time limit)."""
    stale = now - dt.timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 30)
    return RebalanceRun.objects.filter(status=RebalanceRun.Status.RUNNING).filter(
        Q(lease_until__lt=now) | Q(lease_until__isnull=True, started_at__lt=stale)
    )


def _newer_done() -> Exists:
    return Exists(
        RebalanceRun.objects.filter(
            portfolio=OuterRef("portfolio"), status=RebalanceRun.Status.DONE, pk__gt=OuterRef("pk")
        )
    )


def _runs_fail(runs, message: str, now: dt.datetime) -> int:
    return runs.update(status=RebalanceRun.Status.FAILED, error=message, finished_at=now, lease_until=None)


def broker_backlog() -> int | None:
    """Messages waiting in the default queue, or None when the broker does not answer (in ~2 s)."""
    from amqp.exceptions import ChannelError

    from advisor.celery import app

    try:
        with app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1)
            try:
                declared = conn.default_channel.queue_declare(queue=app.conf.task_default_queue, passive=True)
            except ChannelError:  # no such queue yet (a fresh or restarted Redis): nothing waits
                return 0
            return int(declared.message_count)
    except Exception as exc:
        logger.warning("the task queue does not answer: %s", exc)
        return None
