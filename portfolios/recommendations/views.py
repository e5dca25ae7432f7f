"""The portfolio page with its recommendation: live run status, result, options, history, exports.

Views stay thin: one ownership helper, one selector or service call, render or redirect.
"""

from __future__ import annotations

from django.contrib import messages
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.text import slugify
from django.views.decorators.http import require_POST, require_safe

from portfolios.access import ID_MAX, id_parse, portfolio_for_user, run_for_user
from portfolios.context_processors import request_prices_as_of
from portfolios.csv_export import TRADE_COLUMNS, csv_response, trades_csv_rows
from portfolios.models import Portfolio, RebalanceRun
from portfolios.recommendations.forms import RebalanceOptionsForm
from portfolios.recommendations.fragments import page_fragments_prefetch
from portfolios.recommendations.page_cache import cached_page, page_key
from portfolios.recommendations.selectors import (
    portfolio_for_page,
    portfolio_page_state,
    result_display,
    run_done_for_portfolio,
    run_inputs_display,
    run_price_warnings,
)
from portfolios.recommendations.services import rebalance_run_request

TEMPLATES = "portfolios/recommendations/"
EXPORT_EXTRA_COLUMNS = ("est_cost", "est_tax", "realized_gain")


def _page_context(request: HttpRequest, portfolio: Portfolio) -> dict:
    state = portfolio_page_state(portfolio=portfolio)
    shown = state.shown_run
    # The result section itself comes from the fragment cache (partials/result.html): no display here.
    return {
        "portfolio": portfolio,
        "state": state,
        "price_warnings": (
            run_price_warnings(run=shown, latest_prices_as_of=request_prices_as_of(request)) if shown else []
        ),
    }


def _portfolio_for_page(request: HttpRequest, portfolio_id: int) -> Portfolio:
    """The portfolio with the page's other scalars in the same query (the newest price date included)."""
    # the compiled query skips the ORM's range check: an id beyond bigint answers 404 here, not a database error
    portfolio = (portfolio_for_page(portfolio_id=portfolio_id, owner_id=request.user.pk)
                 if 0 < portfolio_id <= ID_MAX else None)
    if portfolio is None:  # another user's portfolio answers as if it did not exist
        raise Http404("No Portfolio matches the given query.")
    request_prices_as_of(request, known=portfolio.page_prices_as_of)
    return portfolio


@require_safe
def portfolio_detail(request: HttpRequest, portfolio_id: int) -> HttpResponse:
    """Served from the page cache while nothing it shows has changed (recommendations/page_cache.py)."""
    portfolio = _portfolio_for_page(request, portfolio_id)
    context = _page_context(request, portfolio)

    def rest_of_context() -> dict:  # only when the page is rendered
        fragments = page_fragments_prefetch(
            portfolio=portfolio, run=context["state"].shown_run, price_warnings=context["price_warnings"]
        )
        return {"form": RebalanceOptionsForm(instance=portfolio), "fragments": fragments}

    key = page_key(request=request, portfolio=portfolio, state=context["state"])
    return cached_page(request, key=key, template_name=TEMPLATES + "portfolio_detail.html", live_context=context,
                       full_context=rest_of_context)


@require_safe
def run_status(request: HttpRequest, portfolio_id: int) -> HttpResponse:
    """The polled status fragment. Once no run is active it also swaps in the result and history."""
    portfolio = _portfolio_for_page(request, portfolio_id)
    context = _page_context(request, portfolio)
    context["oob"] = context["state"].active_run is None  # finished: swap in the result and history too
    return render(request, TEMPLATES + "partials/run_status_response.html", context)


@require_POST
def portfolio_options(request: HttpRequest, portfolio_id: int) -> HttpResponse:
    portfolio = portfolio_for_user(request.user, portfolio_id)
    form = RebalanceOptionsForm(request.POST, instance=portfolio)
    if not form.is_valid():
        portfolio.refresh_from_db()  # the bound form must not leak unsaved values into the page
        context = _page_context(request, portfolio) | {"form": form, "options_open": True}
        return render(request, TEMPLATES + "portfolio_detail.html", context, status=400)
    with transaction.atomic():
        form.save()
        rebalance_run_request(portfolio=portfolio, trigger=RebalanceRun.Trigger.OPTIONS)
    messages.success(request, "Options saved. New suggestions are being computed.")
    return redirect("portfolio_detail", portfolio_id=portfolio.pk)


@require_POST
def run_recompute(request: HttpRequest, portfolio_id: int) -> HttpResponse:
    portfolio = portfolio_for_user(request.user, portfolio_id)
    rebalance_run_request(portfolio=portfolio, trigger=RebalanceRun.Trigger.MANUAL)
    return redirect("portfolio_detail", portfolio_id=portfolio.pk)


def _run_of_portfolio(request: HttpRequest, portfolio_id: int, run_id: int) -> RebalanceRun:
    run = run_for_user(request.user, run_id)
    if run.portfolio_id != portfolio_id:
        raise Http404("No such run for this portfolio")
    return run


@require_safe
def run_detail(request: HttpRequest, portfolio_id: int, run_id: int) -> HttpResponse:
    run = _run_of_portfolio(request, portfolio_id, run_id)
    context = {
        "portfolio": run.portfolio,
        "run": run,
        "inputs": run_inputs_display(run=run),
        "price_warnings": run_price_warnings(run=run, latest_prices_as_of=request_prices_as_of(request))
        if run.status == RebalanceRun.Status.DONE else [],
    }
    return render(request, TEMPLATES + "run_detail.html", context)


@require_safe
def run_print(request: HttpRequest, portfolio_id: int, run_id: int) -> HttpResponse:
    run = _run_of_portfolio(request, portfolio_id, run_id)
    if run.status != RebalanceRun.Status.DONE:
        raise Http404("This run has no result to print")
    context = {
        "portfolio": run.portfolio,
        "run": run,
        "inputs": run_inputs_display(run=run),
        "display": result_display(result=run.result),
        "price_warnings": run_price_warnings(run=run, latest_prices_as_of=request_prices_as_of(request)),
    }
    return render(request, TEMPLATES + "run_print.html", context)


@require_safe
def trades_export(request: HttpRequest, portfolio_id: int) -> HttpResponse:
    """The trade list as CSV: the newest done run, or `?run=ID` for an earlier one."""
    portfolio = portfolio_for_user(request.user, portfolio_id)
    run_param = request.GET.get("run")
    run_id = id_parse(run_param)
    if run_param is not None and run_id is None:
        raise Http404("Unknown run")
    run = run_done_for_portfolio(portfolio=portfolio, run_id=run_id)
    if run is None:
        raise Http404("No suggestions to export yet")
    result = run.result or {}
    trades = [t for t in result.get("trades", []) if isinstance(t, dict)]
    rows = [
        base + [t.get(col, "") for col in EXPORT_EXTRA_COLUMNS]
        for base, t in zip(trades_csv_rows({"trades": trades}), trades, strict=True)
    ]
    as_of = str(result.get("as_of") or run.prices_as_of or run.created_at.date())
    filename = f"{slugify(portfolio.name) or 'portfolio'}-trades-{as_of}.csv"
    return csv_response(filename, [*TRADE_COLUMNS, *EXPORT_EXTRA_COLUMNS], rows)
