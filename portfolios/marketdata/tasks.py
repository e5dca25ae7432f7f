"""Celery tasks for market data (thin: call a service, retry transient faults) and their orchestration."""

from __future__ import annotations

from typing import TYPE_CHECKING

from celery import shared_task
from django.db import OperationalError

if TYPE_CHECKING:
    from portfolios.models import PriceRefresh

RETRY_BACKOFF_S = (60, 300, 900)


def prices_refresh_then_recompute(*, tickers: list[str] | None = None, provider: str | None = None) -> PriceRefresh:
    """Refresh prices (market data), then request a run for every portfolio whose prices changed."""
    from portfolios.marketdata.services import prices_refresh_changes
    from portfolios.recommendations.services import recompute_after_price_refresh

    refresh, changed = prices_refresh_changes(tickers=tickers, provider=provider)
    if changed:
        recompute_after_price_refresh(tickers=changed)
    return refresh


@shared_task(bind=True, acks_late=True, max_retries=len(RETRY_BACKOFF_S), soft_time_limit=25 * 60, time_limit=30 * 60)
def prices_refresh_scheduled(self, tickers: list[str] | None = None, provider: str | None = None) -> dict:
    """Beat, weekdays after the US close: refresh held and menu prices, then queue the recomputes.

    Holds a Redis lock so two refreshes never overlap (the second records a "skipped" PriceRefresh).
    """
    try:
        refresh = prices_refresh_then_recompute(tickers=tickers, provider=provider)
    except OperationalError as exc:  # the database went away: try again later
        retry = min(self.request.retries, len(RETRY_BACKOFF_S) - 1)
        raise self.retry(exc=exc, countdown=RETRY_BACKOFF_S[retry])
    return {
        "refresh": refresh.pk, "status": refresh.status, "rows_written": refresh.rows_written,
        "as_of": refresh.as_of.isoformat() if refresh.as_of else None,
    }
