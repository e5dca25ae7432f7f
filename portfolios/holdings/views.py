"""Holdings pages: the holdings list, upload -> preview -> confirm, manual editing, CSV export.

Views are thin: ownership through portfolios.access (another user's object answers 404), a form,
one service or selector call, render or redirect.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import TypeVar

from django.contrib import messages
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from portfolios.access import account_for_user, holding_for_user, portfolio_for_user, run_for_user
from portfolios.csv_export import csv_response
from portfolios.holdings import selectors, services
from portfolios.holdings.forms import AccountForm, ConfirmForm, ExecutedTradesForm, HoldingForm, UploadForm
from portfolios.holdings.importers import (
    FORMATS,
    ImportFailed,
    ParsedFile,
    parse_positions,
    parsed_file_from_dict,
    parsed_file_to_dict,
)
from portfolios.models import Portfolio, RebalanceRun
from portfolios.recommendations.services import rebalance_run_request

PROBLEMS_SHOWN = 100


def holdings(request: HttpRequest, portfolio_id: int) -> HttpResponse:
    portfolio = portfolio_for_user(request.user, portfolio_id)
    overview = selectors.portfolio_holdings_overview(portfolio=portfolio)
    return render(request, "portfolios/holdings/holdings.html", {"portfolio": portfolio, "overview": overview})


# --- upload -> preview -> confirm --------------------------------------------------------------


def _stash_key(portfolio: Portfolio) -> str:
    return f"holdings_import_{portfolio.pk}"


def _stash_put(request: HttpRequest, portfolio: Portfolio, parsed: ParsedFile, filename: str) -> None:
    """Keep the parsed file server-side so that confirm writes exactly what was previewed."""
    request.session[_stash_key(portfolio)] = {
        "token": uuid.uuid4().hex, "filename": filename[:200], "parsed": parsed_file_to_dict(parsed),
    }


def _stash_get(request: HttpRequest, portfolio: Portfolio) -> tuple[str, str, ParsedFile] | None:
    stash = request.session.get(_stash_key(portfolio))
    if not stash:
        return None
    return stash["token"], stash["filename"], parsed_file_from_dict(stash["parsed"])


@require_http_methods(["GET", "POST"])
def holdings_upload(request: HttpRequest, portfolio_id: int) -> HttpResponse:
    portfolio = portfolio_for_user(request.user, portfolio_id)
    form = UploadForm(request.POST or None, request.FILES or None)
    problems, problems_uncounted = [], 0
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            parsed = parse_positions(form.cleaned_data["data"], filename=upload.name or "")
        except ImportFailed as exc:
            problems, problems_uncounted = exc.errors, exc.more  # bounded: the first ones and a count
        else:
            _stash_put(request, portfolio, parsed, upload.name or "")
            return redirect("holdings_import_preview", portfolio_id=portfolio.pk)
    context = {
        "portfolio": portfolio, "form": form, "problems": problems[:PROBLEMS_SHOWN],
        "problems_more": max(0, len(problems) - PROBLEMS_SHOWN) + problems_uncounted,
        "problem_count": len(problems) + problems_uncounted,
        "formats": FORMATS.values(),
    }
    status = 400 if request.method == "POST" else 200
    return render(request, "portfolios/holdings/upload.html", context, status=status)


def holdings_import_preview(request: HttpRequest, portfolio_id: int) -> HttpResponse:
    portfolio = portfolio_for_user(request.user, portfolio_id)
    stash = _stash_get(request, portfolio)
    if stash is None:
        messages.info(request, "Upload a positions file first.")
        return redirect("holdings_upload", portfolio_id=portfolio.pk)
    token, filename, parsed = stash
    preview = selectors.import_preview(portfolio=portfolio, parsed=parsed)
    form = ConfirmForm(initial={"token": token, "mode": "replace"})
    return render(request, "portfolios/holdings/preview.html", {
        "portfolio": portfolio, "preview": preview, "form": form, "filename": filename,
        "format_label": FORMATS.get(parsed.format, parsed.format),
    })


@require_POST
def holdings_import_confirm(request: HttpRequest, portfolio_id: int) -> HttpResponse:
    portfolio = portfolio_for_user(request.user, portfolio_id)
    stash = _stash_get(request, portfolio)
    form = ConfirmForm(request.POST)
    if stash is None:
        messages.error(request, "Nothing to import: upload the file again.")
        return redirect("holdings_upload", portfolio_id=portfolio.pk)
    token, _, parsed = stash
    if not form.is_valid() or form.cleaned_data["token"] != token:
        messages.error(request, "The preview changed (another upload?). Check it and confirm again.")
        return redirect("holdings_import_preview", portfolio_id=portfolio.pk)
    outcome = _then_recompute(portfolio, RebalanceRun.Trigger.IMPORT, lambda: services.portfolio_import(
        portfolio=portfolio, parsed=parsed, mode=form.cleaned_data["mode"]))
    request.session.pop(_stash_key(portfolio), None)
    messages.success(request, f"Imported {outcome.holdings} position(s) in {outcome.accounts} account(s). "
                              "Suggestions are being recomputed.")
    for warning in outcome.warnings:
        messages.warning(request, warning)
    return redirect("holdings", portfolio_id=portfolio.pk)



EDIT = RebalanceRun.Trigger.EDIT
T = TypeVar("T")


def _then_recompute(portfolio: Portfolio, trigger: str, write: Callable[[], T]) -> T:
    """Write, then request a rebalance run, in one transaction (the run is queued once it commits)."""
    with transaction.atomic():
        result = write()
        rebalance_run_request(portfolio=portfolio, trigger=trigger)
    return result


# --- manual editing ----------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def holding_add(request: HttpRequest, portfolio_id: int) -> HttpResponse:
    portfolio = portfolio_for_user(request.user, portfolio_id)
    form = HoldingForm(request.POST or None, portfolio=portfolio)
    if request.method == "POST" and form.is_valid():
        holding = _then_recompute(portfolio, EDIT, lambda: services.holding_create(portfolio=portfolio,
                                                                                   **form.cleaned_data))
        messages.success(request, f"Added {holding.shares.normalize():f} {holding.security.ticker} to "
                                  f"{holding.account.name}.")
        _warn_unpriced(request, holding.security)
        return redirect("holdings", portfolio_id=portfolio.pk)
    return render(request, "portfolios/holdings/holding_form.html",
                  {"portfolio": portfolio, "form": form, "title": "Add a holding"},
                  status=400 if form.errors else 200)


@require_http_methods(["GET", "POST"])
def holding_edit(request: HttpRequest, holding_id: int) -> HttpResponse:
    holding = holding_for_user(request.user, holding_id)
    portfolio = holding.account.portfolio
    initial = {"account": holding.account, "ticker": holding.security.ticker, "shares": holding.shares.normalize(),
               "cost_basis_usd": holding.cost_basis_usd, "acquired_on": holding.acquired_on}
    form = HoldingForm(request.POST or None, portfolio=portfolio, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        data["account"] = data["account"] or holding.account
        holding = _then_recompute(portfolio, EDIT, lambda: services.holding_update(holding=holding, **data))
        messages.success(request, f"Saved {holding.security.ticker} in {holding.account.name}.")
        _warn_unpriced(request, holding.security)
        return redirect("holdings", portfolio_id=portfolio.pk)
    return render(request, "portfolios/holdings/holding_form.html",
                  {"portfolio": portfolio, "form": form, "holding": holding,
                   "title": f"Edit {holding.security.ticker}"},
                  status=400 if form.errors else 200)


@require_http_methods(["GET", "POST"])
def holding_delete(request: HttpRequest, holding_id: int) -> HttpResponse:
    holding = holding_for_user(request.user, holding_id)
    portfolio = holding.account.portfolio
    if request.method == "POST":
        _then_recompute(portfolio, EDIT, lambda: services.holding_delete(holding=holding))
        messages.success(request, f"Deleted {holding.security.ticker} from {holding.account.name}.")
        return redirect("holdings", portfolio_id=portfolio.pk)
    what = f"{holding.shares.normalize():f} {holding.security.ticker} in {holding.account.name}"
    return render(request, "portfolios/holdings/confirm_delete.html",
                  {"portfolio": portfolio, "what": what, "title": f"Delete {holding.security.ticker}?"})


@require_http_methods(["GET", "POST"])
def account_add(request: HttpRequest, portfolio_id: int) -> HttpResponse:
    portfolio = portfolio_for_user(request.user, portfolio_id)
    form = AccountForm(request.POST or None, portfolio=portfolio)
    if request.method == "POST" and form.is_valid():
        account = _then_recompute(portfolio, EDIT, lambda: services.account_create(portfolio=portfolio,
                                                                                   **form.cleaned_data))
        messages.success(request, f"Added the account {account.name}.")
        return redirect("holdings", portfolio_id=portfolio.pk)
    return render(request, "portfolios/holdings/account_form.html",
                  {"portfolio": portfolio, "form": form, "title": "Add an account"},
                  status=400 if form.errors else 200)


@require_http_methods(["GET", "POST"])
def account_edit(request: HttpRequest, account_id: int) -> HttpResponse:
    account = account_for_user(request.user, account_id)
    portfolio = account.portfolio
    form = AccountForm(request.POST or None, portfolio=portfolio, account=account)
    if request.method == "POST" and form.is_valid():
        _then_recompute(portfolio, EDIT, lambda: services.account_update(account=account, **form.cleaned_data))
        messages.success(request, f"Saved the account {account.name}.")
        return redirect("holdings", portfolio_id=portfolio.pk)
    return render(request, "portfolios/holdings/account_form.html",
                  {"portfolio": portfolio, "form": form, "account": account, "title": f"Edit {account.name}"},
                  status=400 if form.errors else 200)


@require_http_methods(["GET", "POST"])
def account_delete(request: HttpRequest, account_id: int) -> HttpResponse:
    account = account_for_user(request.user, account_id)
    portfolio = account.portfolio
    if request.method == "POST":
        _then_recompute(portfolio, EDIT, lambda: services.account_delete(account=account))
        messages.success(request, f"Deleted the account {account.name} and its holdings.")
        return redirect("holdings", portfolio_id=portfolio.pk)
    count = account.holdings.count()
    what = f"the account {account.name}, its {count} holding(s) and its cash"
    return render(request, "portfolios/holdings/confirm_delete.html",
                  {"portfolio": portfolio, "what": what, "title": f"Delete {account.name}?"})


def _warn_unpriced(request: HttpRequest, security) -> None:
    if not security.priced:
        messages.warning(request, f"{security.ticker} is not in the market data: suggestions keep it as it is.")


# --- export ------------------------------------------------------------------------------------

EXPORT_COLUMNS = ("account", "account_type", "ticker", "shares", "cost_basis", "acquired_on", "price", "value")


def _number(value: Decimal | None) -> float | str:
    return "" if value is None else float(value)


def holdings_export(request: HttpRequest, portfolio_id: int) -> HttpResponse:
    """The holdings as a CSV that the generic importer reads back (cash as `CASH` rows); formula-safe."""
    portfolio = portfolio_for_user(request.user, portfolio_id)
    overview = selectors.portfolio_holdings_overview(portfolio=portfolio)
    rows: list[list[object]] = []
    for group in overview.accounts:
        account = group.account
        for p in group.positions:
            rows.append([account.name, account.account_type, p.ticker, _number(p.shares), _number(p.cost_basis),
                         p.acquired_on.isoformat() if p.acquired_on else "", _number(p.price), _number(p.value)])
        if account.cash_usd or not group.positions:
            rows.append([account.name, account.account_type, "CASH", _number(account.cash_usd), "", "", 1.0,
                         _number(account.cash_usd)])
    slug = "".join(ch if ch.isalnum() else "-" for ch in portfolio.name.lower()).strip("-")[:40] or "portfolio"
    return csv_response(f"holdings-{slug}.csv", EXPORT_COLUMNS, rows)


# --- "I made these trades" ---------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def run_executed(request: HttpRequest, portfolio_id: int, run_id: int) -> HttpResponse:
    """Mark some or all of a suggestion's trades as made: the holdings follow, then a new run is requested."""
    run = run_for_user(request.user, run_id)
    if run.portfolio_id != portfolio_id:
        raise Http404("No such run for this portfolio")
    trades = selectors.run_executable_trades(run=run)
    form = ExecutedTradesForm(request.POST if request.method == "POST" else None, trades=trades)
    if request.method == "POST" and form.is_valid():
        try:
            with transaction.atomic():
                plan = services.holdings_apply_executed(run=run, selections=form.cleaned_data["selections"],
                                                        user=request.user)
                rebalance_run_request(portfolio=run.portfolio, trigger=RebalanceRun.Trigger.EDIT)
        except services.ExecutionRefused as exc:
            for field, messages_ in exc.errors.items():
                for message in messages_:
                    form.add_error(None, f"{field}: {message}")
        else:
            messages.success(request, f"Marked {len(plan.trades)} trade(s) as made: the holdings are updated. "
                                      "New suggestions are being computed.")
            for account in selectors.accounts_overdrawn(portfolio=run.portfolio):
                messages.warning(request, f"{account.name}'s cash is now -${-account.cash_usd:,.2f}. If you paid "
                                          "with money you added, edit the account's cash.")
            return redirect("portfolio_detail", portfolio_id=portfolio_id)
    context = {"portfolio": run.portfolio, "run": run, "form": form}
    status = 400 if request.method == "POST" else 200
    return render(request, "portfolios/holdings/executed.html", context, status=status)
