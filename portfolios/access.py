"""The one place that enforces ownership (another user's object answers 404), and reads ids from query strings."""

from __future__ import annotations

from django.shortcuts import get_object_or_404

from portfolios.models import Account, Holding, Portfolio, RebalanceRun

ID_MAX = 2**63 - 1  # PostgreSQL bigint


def id_parse(raw: str | None) -> int | None:
    """A positive id written in ASCII digits, or None (signs, spaces, `²`, other scripts' digits, overflow).

    `str.isdigit` alone is not enough: `"²".isdigit()` is true and `int("²")` raises.
    """
    if not raw or len(raw) > len(str(ID_MAX)) or not (raw.isascii() and raw.isdigit()):
        return None
    value = int(raw)
    return value if 0 < value <= ID_MAX else None


def portfolio_for_user(user, portfolio_id: int, queryset=None) -> Portfolio:
    """`queryset` (of Portfolio) lets a page read what it needs with the same row, e.g. annotations."""
    return get_object_or_404(Portfolio if queryset is None else queryset, pk=portfolio_id, owner=user)


def account_for_user(user, account_id: int) -> Account:
    return get_object_or_404(
        Account.objects.select_related("portfolio"), pk=account_id, portfolio__owner=user
    )


def holding_for_user(user, holding_id: int) -> Holding:
    return get_object_or_404(
        Holding.objects.select_related("account__portfolio", "security"),
        pk=holding_id,
        account__portfolio__owner=user,
    )


def run_for_user(user, run_id: int) -> RebalanceRun:
    return get_object_or_404(
        RebalanceRun.objects.select_related("portfolio"), pk=run_id, portfolio__owner=user
    )
