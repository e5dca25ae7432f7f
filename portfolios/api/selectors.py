"""Reads for the REST API: the portfolio detail document."""

from __future__ import annotations

from portfolios.holdings.selectors import portfolio_positions
from portfolios.models import Portfolio
from portfolios.targets import target_effective


def portfolio_detail_document(*, portfolio: Portfolio) -> dict:
    """`{id, name, profile, value, cash, holdings: [{ticker, account, shares, cost_basis, price, value}], target,
    bands, tax_budget, max_funds, min_trade_usd, min_trade_fraction}`.

    `value` is the priced positions plus the accounts' cash, in USD. A position the market data cannot price
    is valued at the broker file's price or market value; one with no price at all has null price and value
    and does not count towards it.
    """
    positions = portfolio_positions(portfolio=portfolio)
    holdings = [
        {
            "ticker": p.ticker,
            "account": p.account,
            "shares": float(p.shares),
            "cost_basis": _float_or_none(p.cost_basis),
            "price": _float_or_none(p.price),
            "value": _float_or_none(p.value),
        }
        for p in positions
    ]
    cash = sum(float(c) for c in portfolio.accounts.values_list("cash_usd", flat=True))
    value = cash + sum(float(v) for h in holdings if (v := h["value"]) is not None)
    return {
        "id": portfolio.pk,
        "name": portfolio.name,
        "profile": portfolio.profile,
        "value": round(value, 2),
        "cash": round(cash, 2),
        "holdings": holdings,
        "target": target_effective(target=portfolio.target, use_views=portfolio.use_views),
        "bands": portfolio.bands,
        "tax_budget": portfolio.tax_budget,
        "max_funds": portfolio.max_funds,
        "min_trade_usd": portfolio.min_trade_usd,
        "min_trade_fraction": portfolio.min_trade_fraction,
    }


def _float_or_none(value) -> float | None:
    return None if value is None else float(value)
