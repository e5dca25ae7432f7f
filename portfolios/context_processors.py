from __future__ import annotations

from django.http import HttpRequest

from portfolios.marketdata.selectors import prices_are_stale, prices_as_of


def market(request: HttpRequest) -> dict[str, object]:
    """'Prices as of DATE' for every signed-in page, with the stale flag."""
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    as_of = prices_as_of()
    return {"prices_as_of": as_of, "prices_stale": prices_are_stale(as_of)}
