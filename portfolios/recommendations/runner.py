"""Execute a rebalance run: claim the row, feed the engine, record the result or a clear failure."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import OperationalError, connection
from django.utils import timezone

from portfolios.models import RebalanceRun

logger = logging.getLogger(__name__)

RETRY_BACKOFF_S = (2, 8, 30)


@dataclass(frozen=True)
class Claimed:
    """What the runner needs of a run it claimed (returned by the claiming UPDATE itself)."""

    portfolio_id: int
    inputs: dict[str, Any]
    profile: str
    attempts: int


def run_claim(*, run_id: int, task_id: str = "") -> Claimed | None:
    """Atomically move a run from pending to running. Returns None when it is not ours to run.

    A run already `running` under the same task id is re-claimed: that is Celery redelivering the
    task of a worker that died mid-run (acks_late + reject_on_worker_lost). One UPDATE ... RETURNING:
    the claim also reads the row (no second query).
    """
    table = connection.ops.quote_name(RebalanceRun._meta.db_table)
    now = timezone.now()
    # A run left `running` longer than the hard time limit belongs to a worker that died.
    stale_before = now - dt.timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 30)
    running = RebalanceRun.Status.RUNNING.value
    sql = (
        f"UPDATE {table} SET status = %s, started_at = %s, attempts = attempts + 1, task_id = %s "  # noqa: S608
        "WHERE id = %s AND (status = %s OR (status = %s AND started_at < %s)"
        + (" OR (status = %s AND task_id = %s)" if task_id else "")
        + ") RETURNING portfolio_id, inputs, profile, attempts"
    )
    adapt = connection.ops.adapt_datetimefield_value  # the backend's own datetime format (PostgreSQL or SQLite)
    params: list[Any] = [
        running, adapt(now), task_id, run_id, RebalanceRun.Status.PENDING.value, running, adapt(stale_before)
    ]
    if task_id:
        params += [running, task_id]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    portfolio_id, inputs, profile, attempts = row
    if isinstance(inputs, str | bytes):
        inputs = json.loads(inputs)
    return Claimed(portfolio_id=portfolio_id, inputs=inputs or {}, profile=profile, attempts=attempts)


def run_fail(*, run_id: int, message: str) -> None:
    RebalanceRun.objects.filter(pk=run_id).update(
        status=RebalanceRun.Status.FAILED, error=message, finished_at=timezone.now()
    )


def rebalance_run_execute_service(*, run_id: int, task=None) -> str:
    """The body of the Celery task. Idempotent: a run that is done, failed or claimed elsewhere is skipped."""
    from engine.errors import EngineError
    from portfolios.recommendations.engine_feed import portfolio_document

    task_id = getattr(getattr(task, "request", None), "id", "") or ""
    run = run_claim(run_id=run_id, task_id=task_id)
    if run is None:
        return "skipped"
    started = time.perf_counter()
    try:
        document = portfolio_document(portfolio_id=run.portfolio_id, inputs=run.inputs)
    except EngineError as exc:
        run_fail(run_id=run_id, message=f"The optimizer could not produce a suggestion: {exc}")
        return "failed"
    except OperationalError as exc:  # database hiccup: transient, retry with backoff
        attempt = run.attempts
        if task is not None and attempt <= len(RETRY_BACKOFF_S):
            # A retry keeps the task id, so run_claim re-claims this running row.
            raise task.retry(exc=exc, countdown=RETRY_BACKOFF_S[min(attempt, len(RETRY_BACKOFF_S)) - 1])
        run_fail(run_id=run_id, message="The database was unavailable; please try again in a minute.")
        return "failed"
    except Exception as exc:
        from celery.exceptions import SoftTimeLimitExceeded

        if isinstance(exc, SoftTimeLimitExceeded):
            run_fail(run_id=run_id, message="The computation took too long and was stopped. Try fewer keep-these "
                     "tickers or a looser turnover limit, then recompute.")
            return "failed"
        logger.exception("rebalance run %s failed", run_id)
        run_fail(run_id=run_id, message=f"Unexpected error while computing the suggestion ({type(exc).__name__}). "
                 "It has been logged; recompute to try again.")
        return "failed"
    duration_ms = int((time.perf_counter() - started) * 1000)
    # one UPDATE: atomic on its own (autocommit), no transaction block round trips around it
    RebalanceRun.objects.filter(pk=run_id, status=RebalanceRun.Status.RUNNING).update(
        status=RebalanceRun.Status.DONE,
        result=document,
        error="",
        prices_as_of=document.get("as_of"),
        profile=document.get("profile", run.profile),
        finished_at=timezone.now(),
        duration_ms=duration_ms,
    )
    return "done"
