"""Celery tasks for recommendations (thin: take an id, claim the row, call a service)."""

from __future__ import annotations

from celery import shared_task


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=3)
def rebalance_run_execute(self, run_id: int) -> str:
    from portfolios.recommendations.runner import rebalance_run_execute_service

    return rebalance_run_execute_service(run_id=run_id, task=self)
