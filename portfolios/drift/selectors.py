"""Reads for the drift check: every portfolio's holdings, cash, target, bands and last plan, in a few
queries (no per-portfolio query), and the history shown on the pages."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db.models import OuterRef, Subquery, Sum
from django.db.models.fields.json import KT
from django.utils import timezone

from portfolios.models import Account, DriftAlertSetting, DriftCheck, Holding, Portfolio, RebalanceRun
from portfolios.recommendations.selectors import LATEST_DONE_ORDER


@dataclass
class PortfolioRows:
    """The drift check's inputs for a set of portfolios, as plain Python (parallel lists, one per portfolio)."""

    ids: list[int] = field(default_factory=list)
    owners: list[int] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    profiles: list[str] = field(default_factory=list)
    targets: list[dict] = field(default_factory=list)  # stored target JSON
    use_views: list[bool] = field(default_factory=list)
    bands: list[dict] = field(default_factory=list)
    shares: list[dict[str, float]] = field(default_factory=list)  # {ticker: shares}
    cash: list[float] = field(default_factory=list)  # USD
    plan_run: list[int | None] = field(default_factory=list)
    plan_weights: list[dict[str, float]] = field(default_factory=list)  # the last suggestion's after weights


def drift_portfolio_rows(*, portfolio_ids: Iterable[int] | None = None) -> PortfolioRows:
    """Load the drift check's inputs in four queries (portfolios, holdings, cash, plans)."""
    portfolios = Portfolio.objects.all() if portfolio_ids is None else Portfolio.objects.filter(id__in=portfolio_ids)
    latest_done = RebalanceRun.objects.filter(portfolio=OuterRef("pk"), status=RebalanceRun.Status.DONE).order_by(
        *LATEST_DONE_ORDER  # the drift is measured since the run the page shows
    )
    rows = list(
        portfolios.annotate(plan_run=Subquery(latest_done.values("id")[:1]))
        .order_by("id")
        .values_list("id", "owner_id", "name", "profile", "target", "use_views", "bands", "plan_run")
    )
    out = PortfolioRows()
    position: dict[int, int] = {}
    for i, (pk, owner, name, profile, target, use_views, bands, plan_run) in enumerate(rows):
        position[pk] = i
        out.ids.append(pk)
        out.owners.append(owner)
        out.names.append(name)
        out.profiles.append(profile)
        out.targets.append(target or {})
        out.use_views.append(use_views)
        out.bands.append(bands or {})
        out.plan_run.append(plan_run)
    out.shares = [{} for _ in rows]
    out.cash = [0.0] * len(rows)
    out.plan_weights = [{} for _ in rows]
    ids = out.ids if portfolio_ids is not None else None
    holdings = Holding.objects.all() if ids is None else Holding.objects.filter(account__portfolio_id__in=ids)
    for pk, ticker, shares in (
        holdings.values("account__portfolio_id", "security__ticker").annotate(total=Sum("shares"))
        .values_list("account__portfolio_id", "security__ticker", "total")
    ):
        if pk in position:
            out.shares[position[pk]][ticker] = float(shares)
    accounts = Account.objects.all() if ids is None else Account.objects.filter(portfolio_id__in=ids)
    cash_rows = accounts.values("portfolio_id").annotate(total=Sum("cash_usd")).values_list("portfolio_id", "total")
    for pk, cash in cash_rows:
        if pk in position:
            out.cash[position[pk]] = float(cash or 0)
    plan_ids = [r for r in out.plan_run if r is not None]
    for start in range(0, len(plan_ids), 5000):
        chunk = plan_ids[start:start + 5000]
        for pk, weights in (
            RebalanceRun.objects.filter(id__in=chunk).annotate(w=KT("result__after__weights"))
            .values_list("portfolio_id", "w")
        ):
            if pk in position and weights:
                out.plan_weights[position[pk]] = json.loads(weights) if isinstance(weights, str) else dict(weights)
    return out


def drift_last_alerts(*, portfolio_ids: Iterable[int], since) -> dict[int, DriftCheck]:
    """The latest check each portfolio was mailed about since `since`."""
    found: dict[int, DriftCheck] = {}
    checks = DriftCheck.objects.filter(portfolio_id__in=list(portfolio_ids), alerted_at__gte=since).only(
        "portfolio_id", "status", "largest", "alerted_at"
    )
    for check in checks.order_by("portfolio_id", "-alerted_at", "-id"):
        found.setdefault(check.portfolio_id, check)
    return found


def alert_modes(*, user_ids: Iterable[int]) -> dict[int, str]:
    """{user id: mode} for the given users (the default `drift` when they never chose)."""
    modes: dict[int, str] = defaultdict(lambda: DriftAlertSetting.Mode.DRIFT.value)
    modes.update(DriftAlertSetting.objects.filter(user_id__in=list(user_ids)).values_list("user_id", "mode"))
    return modes


def alert_mode_for(*, user) -> str:
    return alert_modes(user_ids=[user.pk])[user.pk]


def drift_latest_by_portfolio(*, portfolio_ids: Iterable[int]) -> dict[int, DriftCheck]:
    """The newest check of each portfolio (one query)."""
    newest = DriftCheck.objects.filter(portfolio=OuterRef("portfolio")).order_by("-checked_at", "-id")
    checks = DriftCheck.objects.filter(portfolio_id__in=list(portfolio_ids), id=Subquery(newest.values("id")[:1]))
    return {c.portfolio_id: c for c in checks}


def drift_history(*, portfolio: Portfolio, limit: int = 120) -> list[DriftCheck]:
    """The portfolio's checks, oldest first (at most `limit`, the newest ones)."""
    checks = list(DriftCheck.objects.filter(portfolio=portfolio).order_by("-checked_at", "-id")[:limit])
    return checks[::-1]


def drift_chart(*, portfolio: Portfolio, checks: list[DriftCheck] | None = None) -> dict:
    """Chart data: per check, the largest drift from target and since the last suggestion, in points
    (`checks`: the portfolio's `drift_history`, when the caller has read it already)."""
    checks = drift_history(portfolio=portfolio) if checks is None else checks
    return {
        "labels": [timezone.localtime(c.checked_at).strftime("%Y-%m-%d %H:%M") for c in checks],
        "largest": [round(c.largest * 100, 2) for c in checks],
        "since_plan": [None if c.since_plan is None else round(c.since_plan * 100, 2) for c in checks],
        "status": [c.status for c in checks],
    }
