"""Onboarding tickers the security master lacks: unconfirmed until a provider confirms them.

A ticker first seen in a user's upload or form gets a `Security` row with `source="import"` and no
prices: it is *unconfirmed*. Unconfirmed securities serve only the holdings that name them: they are
left out of the price-refresh list (`refresh_tickers`), and, having no prices, out of the shared
market frames and the menu, so a file of 5,000 typos adds nothing anyone else's runs or the nightly
refresh touch. Meanwhile the run values such a holding at its file price with a named proxy
(portfolios/recommendations/proxies.py).

With PRICE_SOURCE=yfinance, an import asks a Celery task to confirm the user's unconfirmed tickers:
the provider fetches history and classification (quote type, sector, fund sector weights and top
holdings), writes them (the row becomes priced, hence confirmed) and the portfolios holding them are
recomputed. Confirmations are rate-limited per user (settings.TICKER_CONFIRMATIONS_PER_HOUR, counted
in Redis); tickers over the limit, or shaped like no Yahoo ticker (CUSIPs, option symbols), stay
unconfirmed, and a later import asks again.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from portfolios.models import Security

if TYPE_CHECKING:
    from portfolios.models import PriceRefresh

logger = logging.getLogger(__name__)

IMPORT_SOURCE = "import"
UNCONFIRMED = Q(source=IMPORT_SOURCE, priced=False)
RATE_KEY = "onboarding:confirmations:{user_id}:{hour}"
# a Yahoo ticker: letters, digits, dash, dot, caret, equals; not a CUSIP (9 characters with digits inside)
_YAHOO_TICKER_RE = re.compile(r"^[A-Z][A-Z0-9.\-=^]{0,11}$")
_CUSIP_RE = re.compile(r"^[0-9A-Z]{8}[0-9]$")


def confirmable(ticker: str) -> bool:
    """Could a quote provider know `ticker`? (Not a CUSIP, an option symbol or a blank.)"""
    return bool(_YAHOO_TICKER_RE.match(ticker)) and not (_CUSIP_RE.match(ticker) and any(c.isdigit() for c in ticker))


def unconfirmed_tickers(tickers: Iterable[str]) -> list[str]:
    """Those of `tickers` whose securities are unconfirmed, sorted."""
    return sorted(Security.objects.filter(UNCONFIRMED, ticker__in=set(tickers)).values_list("ticker", flat=True))


def confirmations_allow(*, user_id: int, count: int, now: dt.datetime | None = None) -> int:
    """How many of `count` confirmations `user_id` may ask for this hour (counted atomically in Redis);
    0 when Redis does not answer (nothing is asked then: a later import asks again)."""
    import redis

    limit = int(settings.TICKER_CONFIRMATIONS_PER_HOUR)
    if count <= 0 or limit <= 0:
        return 0
    hour = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%d%H")
    key = RATE_KEY.format(user_id=user_id, hour=hour)
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        used = int(client.incrby(key, count))
        client.expire(key, 3600)
    except redis.RedisError as exc:
        logger.warning("ticker confirmations not asked (Redis: %s)", exc)
        return 0
    finally:
        client.close()
    return max(0, min(count, limit - (used - count)))


def ticker_confirmations_request(*, user_id: int, tickers: Iterable[str]) -> list[str]:
    """Ask the provider to confirm `user_id`'s unconfirmed, confirmable tickers, within the user's rate limit.

    Only with PRICE_SOURCE=yfinance (the offline sources know no more than the master). Queues the task once
    the surrounding transaction commits. Returns the tickers asked for.
    """
    if settings.PRICE_SOURCE != "yfinance":
        return []
    candidates = [t for t in unconfirmed_tickers(tickers) if confirmable(t)]
    allowed = candidates[:confirmations_allow(user_id=user_id, count=len(candidates))]
    if allowed:
        transaction.on_commit(lambda: _enqueue(allowed))
    return allowed


def _enqueue(tickers: list[str]) -> None:
    from portfolios.marketdata.tasks import securities_confirm

    try:
        securities_confirm.delay(tickers)
    except Exception:  # broker down: they stay unconfirmed; the next import asks again
        logger.warning("could not queue the confirmation of %s: broker unavailable", tickers)


def securities_confirm(*, tickers: list[str]) -> tuple[PriceRefresh | None, list[str]]:
    """Fetch history and classification of still-unconfirmed `tickers` from the configured provider and
    write them (a price refresh of just those tickers). Returns the PriceRefresh (None when there was
    nothing left to confirm) and the tickers whose prices changed: the caller requests the recomputes."""
    from portfolios.marketdata.services import prices_refresh_changes

    wanted = unconfirmed_tickers(tickers)
    if not wanted:
        return None, []
    return prices_refresh_changes(tickers=wanted, provider=settings.PRICE_SOURCE)
