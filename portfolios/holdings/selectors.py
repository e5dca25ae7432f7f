"""Reads of holdings: portfolio summaries and valued positions."""

from __future__ import annotations

from dataclasses import dataclass

from portfolios.models import Portfolio


@dataclass(frozen=True)
class PortfolioSummary:
    portfolio: Portfolio
    accounts: int
    positions: int


def portfolio_summaries(*, owner) -> list[PortfolioSummary]:
    from django.db.models import Count

    rows = (
        Portfolio.objects.filter(owner=owner)
        .annotate(n_accounts=Count("accounts", distinct=True), n_positions=Count("accounts__holdings"))
        .order_by("name", "id")
    )
    return [PortfolioSummary(p, p.n_accounts, p.n_positions) for p in rows]
