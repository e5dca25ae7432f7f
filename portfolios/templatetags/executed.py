"""Template tags for "I made these trades": the form on a run's page, the panel and audit trail on the portfolio page.

Each is a one-line include in a page template, so the pages' own views need no change.
"""

from __future__ import annotations

from django import template

from portfolios.holdings.forms import ExecutedTradesForm
from portfolios.holdings.selectors import executed_plans_for_portfolio, run_executable_trades
from portfolios.models import Portfolio, RebalanceRun

register = template.Library()


@register.inclusion_tag("portfolios/holdings/partials/executed_form.html", takes_context=True)
def executed_trades_form(context: template.Context, run: RebalanceRun) -> dict:
    form = ExecutedTradesForm(trades=run_executable_trades(run=run))
    return {"portfolio": run.portfolio, "run": run, "form": form, "csrf_token": context.get("csrf_token")}


@register.inclusion_tag("portfolios/holdings/partials/executed_panel.html")
def executed_panel(portfolio: Portfolio, run: RebalanceRun | None) -> dict:
    trades = run_executable_trades(run=run) if run is not None else []
    return {
        "portfolio": portfolio,
        "run": run,
        "open_trades": sum(1 for t in trades if t.executed_at is None),
        "plans": executed_plans_for_portfolio(portfolio=portfolio),
    }
