"""Landing page, health check and the portfolio list. Views stay thin."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

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
    return render(request, "portfolios/portfolio_list.html", {"summaries": summaries})


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
