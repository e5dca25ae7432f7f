"""Holdings pages (upload -> preview -> confirm, manual editing, export). Scaffold: to be built."""

from django.shortcuts import render

from portfolios.access import portfolio_for_user


def holdings(request, portfolio_id: int):
    portfolio = portfolio_for_user(request.user, portfolio_id)
    return render(request, "portfolios/scaffold.html", {"portfolio": portfolio})
