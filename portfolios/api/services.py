"""Writes behind the REST API: portfolios (create, update, delete) and a user's own API token."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from rest_framework.authtoken.models import Token

from portfolios.drift.services import portfolio_target_set
from portfolios.models import Holding, Portfolio, Profile, RebalanceRun
from portfolios.recommendations.services import rebalance_run_request
from portfolios.targets import target_effective

PLAN_LIMITS = ("tax_budget", "max_funds", "min_trade_usd", "min_trade_fraction")


def portfolio_create(
    *, owner, name: str, profile: str = Profile.MODERATE, target: dict | None = None, bands: dict | None = None,
    **limits: Any,
) -> Portfolio:
    """A new portfolio; `limits` may set any of PLAN_LIMITS (tax_budget, max_funds, min_trade_usd,
    min_trade_fraction), the rest take the model's defaults."""
    portfolio = Portfolio.objects.create(owner=owner, name=name, profile=profile, **_plan_limits(limits))
    if target is not None or bands is not None:
        portfolio_target_set(portfolio=portfolio, target=target or portfolio.target, bands=bands)
    return portfolio


def portfolio_update(
    *, portfolio: Portfolio, name: str | None = None, profile: str | None = None,
    target: dict | None = None, bands: dict | None = None, **limits: Any,
) -> Portfolio:
    """Rename and/or change the risk profile, the target, the drift bands or the plan limits (`limits`: any of
    PLAN_LIMITS; None is a value there: no limit). A new profile, target or limit recomputes the suggestion
    (if there is anything to rebalance), as changing it on the web page does."""
    limits = _plan_limits(limits)
    with transaction.atomic():
        if target is not None or bands is not None:
            current = target_effective(target=portfolio.target, use_views=portfolio.use_views)
            portfolio_target_set(portfolio=portfolio, target=target or current, bands=bands)
        changed = (profile is not None and profile != portfolio.profile) or any(
            getattr(portfolio, key) != value for key, value in limits.items()
        )
        if name is not None:
            portfolio.name = name
        if profile is not None:
            portfolio.profile = profile
        for key, value in limits.items():
            setattr(portfolio, key, value)
        portfolio.save(update_fields=["name", "profile", *limits, "updated_at"])
        if changed and Holding.objects.filter(account__portfolio=portfolio).exists():
            rebalance_run_request(portfolio=portfolio, trigger=RebalanceRun.Trigger.OPTIONS)
    return portfolio


def _plan_limits(limits: dict[str, Any]) -> dict[str, Any]:
    unknown = set(limits) - set(PLAN_LIMITS)
    if unknown:
        raise TypeError(f"not a plan limit: {', '.join(sorted(unknown))}")
    return limits


def portfolio_delete(*, portfolio: Portfolio) -> None:
    """Delete the portfolio with its accounts, holdings and runs."""
    portfolio.delete()


def api_token_create(*, user) -> Token:
    """Issue a new token for `user`; any token they had stops working at once."""
    with transaction.atomic():
        Token.objects.filter(user=user).delete()
        return Token.objects.create(user=user)


def api_token_revoke(*, user) -> bool:
    """Delete `user`'s token. Returns whether there was one."""
    deleted, _ = Token.objects.filter(user=user).delete()
    return deleted > 0
