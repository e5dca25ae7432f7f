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
    drift = _drift_after(refresh)
    return {
        "drift": drift,
        "refresh": refresh.pk, "status": refresh.status, "rows_written": refresh.rows_written,
        "as_of": refresh.as_of.isoformat() if refresh.as_of else None,
    }


CONFIRM_RETRY_S = 120


@shared_task(bind=True, acks_late=True, max_retries=5, soft_time_limit=10 * 60, time_limit=12 * 60)
def securities_confirm(self, tickers: list[str]) -> dict:
    """Confirm tickers first seen in an upload: fetch their history and classification, then recompute the
    portfolios holding them (see marketdata/onboarding.py). Retries while another price refresh holds the lock."""
    from portfolios.marketdata.onboarding import securities_confirm as confirm
    from portfolios.models import PriceRefresh
    from portfolios.recommendations.services import recompute_after_price_refresh

    try:
        refresh, changed = confirm(tickers=tickers)
        if changed:
            recompute_after_price_refresh(tickers=changed)
    except OperationalError as exc:
        raise self.retry(exc=exc, countdown=CONFIRM_RETRY_S)
    if refresh is not None and refresh.status == PriceRefresh.Status.SKIPPED:
        raise self.retry(countdown=CONFIRM_RETRY_S)
    return {"refresh": refresh.pk if refresh else None, "status": refresh.status if refresh else "nothing to confirm"}


def _drift_after(refresh) -> dict | None:
    """The drift check after a refresh that wrote prices (portfolios/drift owns it: one call)."""
    from portfolios.drift.services import drift_after_refresh

    return drift_after_refresh() if refresh.status in ("done", "partial") else None
