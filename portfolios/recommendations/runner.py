"""Execute a rebalance run: claim the row, feed the engine, record the result or a clear failure."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import OperationalError, connection
from django.utils import timezone

from portfolios.models import RebalanceRun

logger = logging.getLogger(__name__)



@dataclass(frozen=True)
class Claimed:
    """What the runner needs of a run it claimed (returned by the claiming UPDATE itself)."""

    portfolio_id: int
    inputs: dict[str, Any]
    profile: str
    attempts: int


def run_claim(*, run_id: int, task_id: str = "") -> Claimed | None:
    """Atomically move a run from pending to running, with a lease. Returns None when it is not ours.

    A running run is re-claimed by the same task id (Celery's retry of a transient fault, or the
    redelivery of a task whose worker died), or by any task once its lease lapsed (the sweep re-queued
    it). One UPDATE ... RETURNING: the claim also reads the row (no second query).
    """
    table = connection.ops.quote_name(RebalanceRun._meta.db_table)
    now = timezone.now()
    # A run from before leases (no lease_until) is stale once it ran longer than the hard time limit.
    stale_before = now - dt.timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 30)
    running = RebalanceRun.Status.RUNNING.value
    sql = (
        f"UPDATE {table} SET status = %s, started_at = %s, attempts = attempts + 1, task_id = %s, "  # noqa: S608
        "lease_until = %s WHERE id = %s AND (status = %s OR (status = %s AND (lease_until < %s OR "
        "(lease_until IS NULL AND started_at < %s)))"
        + (" OR (status = %s AND task_id = %s)" if task_id else "")
        + ") RETURNING portfolio_id, inputs, profile, attempts"
    )
    adapt = connection.ops.adapt_datetimefield_value  # the backend's own datetime format (PostgreSQL or SQLite)
    params: list[Any] = [
        running, adapt(now), task_id, adapt(now + _lease()), run_id, RebalanceRun.Status.PENDING.value,
        running, adapt(now), adapt(stale_before),
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


def _lease() -> dt.timedelta:
    return dt.timedelta(seconds=settings.RUN_LEASE_SECONDS)


@contextlib.contextmanager
def run_lease_kept(*, run_id: int, task_id: str) -> Iterator[None]:
    """Renew the run's lease every third of RUN_LEASE_SECONDS while the body computes.

    A thread with its own database connection; it dies with the process, so a killed worker's lease
    lapses and the sweep re-queues the run.
    """
    stop = threading.Event()

    def renew() -> None:
        try:
            while not stop.wait(settings.RUN_LEASE_SECONDS / 3):
                RebalanceRun.objects.filter(pk=run_id, status=RebalanceRun.Status.RUNNING, task_id=task_id).update(
                    lease_until=timezone.now() + _lease()
                )
        except Exception:  # the database went away: the lease lapses and the sweep takes over
            logger.warning("could not renew the lease of run %s", run_id, exc_info=True)
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=renew, name=f"run-{run_id}-lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


def run_fail(*, run_id: int, message: str, task_id: str | None = None) -> int:
    """Record a failure of a run still in progress (by `task_id`, when given). Returns rows changed."""
    runs = RebalanceRun.objects.filter(
        pk=run_id, status__in=(RebalanceRun.Status.PENDING, RebalanceRun.Status.RUNNING)
    )
    if task_id is not None:
        runs = runs.filter(task_id=task_id)
    return runs.update(status=RebalanceRun.Status.FAILED, error=message, finished_at=timezone.now(), lease_until=None)


TOO_LONG_MESSAGE = (
    "The computation took too long and was stopped. Try fewer keep-these tickers or a looser turnover limit, "
    "then recompute."
)


def run_failure_record(*, run_ids: list[int], task_id: str, exc: BaseException) -> None:
    """The tasks' `on_failure`: the hard time limit (the worker killed the computation) or an error that
    escaped the runner; it fails the run the task was computing. A lost worker, or a retry the broker
    could not take, is not a failure: the run keeps its lease, which lapses, and the sweep queues it again."""
    from billiard.exceptions import TimeLimitExceeded, WorkerLostError
    from kombu.exceptions import OperationalError as BrokerUnreachable

    if isinstance(exc, WorkerLostError | BrokerUnreachable):
        return
    if isinstance(exc, TimeLimitExceeded):
        message = TOO_LONG_MESSAGE
    else:
        message = (f"Unexpected error while computing the suggestion ({type(exc).__name__}). "
                   "It has been logged; recompute to try again.")
    for run_id in run_ids:
        run_fail(run_id=run_id, message=message, task_id=task_id)


def rebalance_run_execute_service(*, run_id: int, task_id: str = "") -> str:
    """The body of the Celery task. Idempotent: a run that is done, failed or claimed elsewhere is skipped.

    A database fault (OperationalError) propagates: the task retries it. Any other error fails the run
    with a message the user can read.
    """
    from celery.exceptions import SoftTimeLimitExceeded

    from engine.errors import EngineError
    from portfolios.recommendations.engine_feed import portfolio_document

    run = run_claim(run_id=run_id, task_id=task_id)
    if run is None:
        return "skipped"
    started = time.perf_counter()
    try:
        with run_lease_kept(run_id=run_id, task_id=task_id):
            document = portfolio_document(portfolio_id=run.portfolio_id, inputs=run.inputs)
    except EngineError as exc:
        run_fail(run_id=run_id, message=f"The optimizer could not produce a suggestion: {exc}")
        return "failed"
    except SoftTimeLimitExceeded:  # a batch stops here; its other runs stay pending for the sweep
        run_fail(run_id=run_id, message=TOO_LONG_MESSAGE)
        return "too_long"
    except OperationalError:
        raise
    except Exception as exc:
        logger.exception("rebalance run %s failed", run_id)
        run_failure_record(run_ids=[run_id], task_id=task_id, exc=exc)
        return "failed"
    run_done_record(run_id=run_id, task_id=task_id, document=document, profile=run.profile,
                    duration_ms=int((time.perf_counter() - started) * 1000))
    return "done"


def run_done_record(*, run_id: int, task_id: str, document: dict, profile: str, duration_ms: int) -> None:
    """One UPDATE (atomic on its own): the result, if the run is still ours."""
    RebalanceRun.objects.filter(pk=run_id, status=RebalanceRun.Status.RUNNING, task_id=task_id).update(
        status=RebalanceRun.Status.DONE,
        result=document,
        error="",
        prices_as_of=document.get("as_of"),
        profile=document.get("profile", profile),
        finished_at=timezone.now(),
        duration_ms=duration_ms,
        lease_until=None,
    )


DATABASE_DOWN_MESSAGE = "The database was unavailable; please try again in a minute."
