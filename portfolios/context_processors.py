from __future__ import annotations

from django.http import HttpRequest

from portfolios.marketdata.selectors import prices_are_stale, prices_as_of

_UNSET = object()


def request_prices_as_of(request: HttpRequest, known=_UNSET):
    """The newest price date, looked up once per request (views and the context processor share it).

    A view that already read it with another query passes it as `known`."""
    if known is not _UNSET:
        request._prices_as_of = known
    if not hasattr(request, "_prices_as_of"):
        request._prices_as_of = prices_as_of()
    return request._prices_as_of


def market(request: HttpRequest) -> dict[str, object]:
    """'Prices as of DATE' for every signed-in page, with the stale flag."""
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    as_of = request_prices_as_of(request)
    return {"prices_as_of": as_of, "prices_stale": prices_are_stale(as_of)}
