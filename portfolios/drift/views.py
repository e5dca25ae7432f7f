"""Drift pages: the target and bands form, the alert setting, the one-click unsubscribe. Thin views."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from engine.exposures import GICS_SECTORS
from portfolios.access import portfolio_for_user
from portfolios.drift import emails, selectors, services
from portfolios.drift.forms import AlertSettingForm, TargetForm, sector_field
from portfolios.models import Security


def menu_classes() -> dict[str, str]:
    """{ticker: asset class} of the priced menu funds (the only funds a custom target may use)."""
    menu = Security.objects.filter(is_menu=True, priced=True).order_by("ticker")
    return dict(menu.values_list("ticker", "asset_class"))


@require_http_methods(["GET", "POST"])
def target_edit(request: HttpRequest, portfolio_id: int) -> HttpResponse:
    portfolio = portfolio_for_user(request.user, portfolio_id)
    menu = menu_classes()
    initial = TargetForm.initial_for(portfolio.target or {}, portfolio.use_views, portfolio.bands or {})
    form = TargetForm(request.POST or None, initial=initial, menu=menu)
    if request.method == "POST" and form.is_valid():
        services.portfolio_target_set(portfolio=portfolio, target=form.cleaned_data["target"],
                                      bands=form.cleaned_data["bands"])
        messages.success(request, "Target saved; the suggestion is being recomputed.")
        return redirect("portfolio_detail", portfolio_id=portfolio.pk)
    context = {
        "portfolio": portfolio, "form": form,
        "sector_fields": [form[sector_field(s)] for s in GICS_SECTORS],
        "menu_stocks": ",".join(t for t, c in menu.items() if c == "equity"),
        "menu_bonds": ",".join(t for t, c in menu.items() if c == "bond"),
    }
    status = 400 if request.method == "POST" else 200
    return render(request, "portfolios/drift/target_form.html", context, status=status)


@require_http_methods(["GET", "POST"])
def alert_settings(request: HttpRequest) -> HttpResponse:
    form = AlertSettingForm(request.POST or None, initial={"mode": selectors.alert_mode_for(user=request.user)})
    if request.method == "POST" and form.is_valid():
        services.alert_mode_set(user=request.user, mode=form.cleaned_data["mode"])
        messages.success(request, "Drift e-mail setting saved.")
        return redirect("drift_alerts")
    return render(request, "portfolios/drift/alerts.html", {"form": form},
                  status=400 if request.method == "POST" else 200)


@login_not_required
@csrf_exempt  # RFC 8058 one-click POST comes from the mail client, without a CSRF token; the signed token is the proof
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    done = emails.unsubscribe(token=token)
    return render(request, "portfolios/drift/unsubscribed.html", {"done": done}, status=200 if done else 400)
