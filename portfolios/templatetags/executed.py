"""Template tags for "I made these trades": the form on a run's page, the panel and audit trail on the portfolio page.

Each is a one-line include in a page template, so the pages' own views need no change.
"""

from __future__ import annotations

from django import template

from portfolios.holdings.forms import ExecutedTradesForm
from portfolios.holdings.selectors import executed_plans_for_portfolio, run_executable_trades, run_open_trade_count
from portfolios.models import Portfolio, RebalanceRun

register = template.Library()


@register.inclusion_tag("portfolios/holdings/partials/executed_form.html", takes_context=True)
def executed_trades_form(context: template.Context, run: RebalanceRun) -> dict:
    form = ExecutedTradesForm(trades=run_executable_trades(run=run))
    return {"portfolio": run.portfolio, "run": run, "form": form, "csrf_token": context.get("csrf_token")}


@register.inclusion_tag("portfolios/holdings/partials/executed_panel.html")
def executed_panel(portfolio: Portfolio, run: RebalanceRun | None) -> dict:
    plans = executed_plans_for_portfolio(portfolio=portfolio)
    return {"portfolio": portfolio, "run": run, "open_trades": run_open_trade_count(run=run, plans=plans),
            "plans": plans}
