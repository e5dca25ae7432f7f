"""Celery tasks for recommendations (thin: take an id, claim the row, call one service, retry transient
faults, record failure)."""

from __future__ import annotations

from celery import Task, shared_task
from django.db import OperationalError

RETRY_BACKOFF_S = (2, 8, 30)


class RunTask(Task):
    """Records a failure the runner could not (the hard time limit kills the process computing)."""

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        from portfolios.recommendations.runner import run_failure_record

        run_id = args[0] if args else kwargs.get("run_id")
        run_failure_record(run_id=run_id, task_id=task_id or "", exc=exc)


@shared_task(bind=True, base=RunTask, acks_late=True, reject_on_worker_lost=True, ignore_result=True,
             max_retries=len(RETRY_BACKOFF_S))
def rebalance_run_execute(self, run_id: int) -> str:
    from portfolios.recommendations.runner import DATABASE_DOWN_MESSAGE, rebalance_run_execute_service, run_fail

    task_id = self.request.id or ""
    try:
        return rebalance_run_execute_service(run_id=run_id, task_id=task_id)
    except OperationalError as exc:  # a database fault: retry with backoff, same task id (it re-claims the run)
        if self.request.retries >= len(RETRY_BACKOFF_S):
            run_fail(run_id=run_id, message=DATABASE_DOWN_MESSAGE, task_id=task_id)
            return "failed"
        raise self.retry(exc=exc, countdown=RETRY_BACKOFF_S[self.request.retries]) from exc


@shared_task(ignore_result=True)
def rebalance_runs_sweep() -> dict:
    """Beat, every RUN_SWEEP_SECONDS: re-queue runs a dead broker or worker left, fail the hopeless."""
    from dataclasses import asdict

    from portfolios.recommendations.services import rebalance_runs_sweep as sweep

    return asdict(sweep())
