"""Reads of market data: as-of date, staleness, latest prices, return windows."""

from __future__ import annotations

import datetime as dt

import numpy as np
from django.conf import settings
from django.db.models import Max

from portfolios.models import Price


def prices_as_of() -> dt.date | None:
    """The latest date for which any price is stored, or None when there are no prices."""
    return Price.objects.aggregate(latest=Max("date"))["latest"]


def trading_days_between(start: dt.date, end: dt.date) -> int:
    """Weekdays after `start` up to and including `end` (US holidays are not subtracted)."""
    if end <= start:
        return 0
    return int(np.busday_count(start + dt.timedelta(days=1), end + dt.timedelta(days=1)))


def prices_are_stale(as_of: dt.date | None, today: dt.date | None = None) -> bool:
    if as_of is None:
        return True
    today = today or dt.date.today()
    return trading_days_between(as_of, today) > settings.PRICE_STALE_TRADING_DAYS
