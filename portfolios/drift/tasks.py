"""Celery tasks for drift (thin: take an id, call a service)."""

from __future__ import annotations

from celery import shared_task


@shared_task(acks_late=True, max_retries=3, default_retry_delay=60, autoretry_for=(ConnectionError, OSError))
def drift_alert_email(check_id: int) -> str:
    from portfolios.drift.emails import drift_alert_send

    return drift_alert_send(check_id=check_id)
