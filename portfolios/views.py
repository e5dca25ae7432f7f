"""Landing page, health check and the portfolio list. Views stay thin."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from portfolios.drift.selectors import drift_latest_by_portfolio
from portfolios.forms import PortfolioForm
from portfolios.health import health_report
from portfolios.holdings.selectors import portfolio_summaries


@login_not_required
def landing(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("portfolio_list")
    return render(request, "landing.html")


@login_not_required
def health(request: HttpRequest) -> JsonResponse:
    """For a load balancer: JSON, no sign-in; 503 only when the database does not answer."""
    report = health_report()
    return JsonResponse(report, status=200 if report["ok"] else 503)


def portfolio_list(request: HttpRequest) -> HttpResponse:
    summaries = portfolio_summaries(owner=request.user)
    checks = drift_latest_by_portfolio(portfolio_ids=[s.portfolio.pk for s in summaries])  # one query for all
    rows = [(s, checks.get(s.portfolio.pk)) for s in summaries]
    return render(request, "portfolios/portfolio_list.html", {"summaries": summaries, "rows": rows})


@require_http_methods(["GET", "POST"])
def portfolio_create(request: HttpRequest) -> HttpResponse:
    form = PortfolioForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        portfolio = form.save(commit=False)
        portfolio.owner = request.user
        portfolio.save()
        messages.success(request, f"Created portfolio “{portfolio.name}”. Now add your holdings.")
        return redirect("holdings", portfolio_id=portfolio.pk)
    return render(request, "portfolios/portfolio_form.html", {"form": form})
