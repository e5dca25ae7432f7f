"""Celery tasks for recommendations (thin: take ids, claim the row, call one service, retry transient
faults, record failure)."""

from __future__ import annotations

import logging

from celery import Task, shared_task
from django.db import OperationalError

RETRY_BACKOFF_S = (2, 8, 30)
logger = logging.getLogger(__name__)


class RunTask(Task):
    """Records a failure the runner could not (the hard time limit kills the process computing)."""

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        from portfolios.recommendations.runner import run_failure_record

        ids = args[0] if args else kwargs.get("run_id", kwargs.get("run_ids"))
        run_failure_record(run_ids=ids if isinstance(ids, list) else [ids], task_id=task_id or "", exc=exc)


@shared_task(bind=True, base=RunTask, acks_late=True, reject_on_worker_lost=True, ignore_result=True,
             max_retries=len(RETRY_BACKOFF_S))
def rebalance_run_execute(self, run_id: int) -> str:
    """One run. A database fault is retried with backoff under the same task id (it re-claims the run)."""
    from portfolios.recommendations.runner import DATABASE_DOWN_MESSAGE, rebalance_run_execute_service, run_fail

    task_id = self.request.id or ""
    try:
        return rebalance_run_execute_service(run_id=run_id, task_id=task_id)
    except OperationalError as exc:
        if self.request.retries >= len(RETRY_BACKOFF_S):
            run_fail(run_id=run_id, message=DATABASE_DOWN_MESSAGE, task_id=task_id)
            return "failed"
        raise self.retry(exc=exc, countdown=RETRY_BACKOFF_S[self.request.retries]) from exc


@shared_task(bind=True, base=RunTask, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def rebalance_runs_execute(self, run_ids: list[int]) -> dict[str, int]:
    """A batch of runs from a fan-out, one after the other in this process (its compiled problems and
    market caches stay warm; one message instead of one per run).

    Each run stands alone: a database fault on one run hands that run to its own `rebalance_run_execute`
    task (a real Celery retry, with backoff, under this task id so it re-claims the run) and the batch
    goes on with the next.
    """
    from portfolios.recommendations.runner import rebalance_run_execute_service

    task_id = self.request.id or ""
    outcomes: dict[str, int] = {}
    for run_id in run_ids:
        try:
            outcome = rebalance_run_execute_service(run_id=run_id, task_id=task_id)
        except OperationalError as exc:
            outcome = _retry_alone(run_id=run_id, task_id=task_id, exc=exc)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        if outcome == "too_long":  # the soft time limit: the hard one follows; the sweep takes the rest
            break
    return outcomes


def _retry_alone(*, run_id: int, task_id: str, exc: Exception) -> str:
    logger.warning("run %s: %s; retrying it alone in %s s", run_id, exc, RETRY_BACKOFF_S[0])
    try:
        rebalance_run_execute.apply_async((run_id,), task_id=task_id, countdown=RETRY_BACKOFF_S[0])
    except Exception:  # broker down too: the run's lease lapses and the sweep queues it again
        logger.warning("run %s: could not queue its retry; the sweep will", run_id, exc_info=True)
    return "retry"


@shared_task(ignore_result=True)
def rebalance_runs_sweep() -> dict:
    """Beat, every RUN_SWEEP_SECONDS: re-queue runs a dead broker or worker left, fail the hopeless."""
    from dataclasses import asdict

    from portfolios.recommendations.services import rebalance_runs_sweep as sweep

    return asdict(sweep())
