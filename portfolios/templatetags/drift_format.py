"""Words for drift: one line per out-of-band sleeve or broken limit, the status badge."""

from __future__ import annotations

from django import template

register = template.Library()

_SHARE_OF = {"sector": "of stocks", "size": "of stocks", "asset class": "of value", "name": "of value"}
_LIMIT_WORDS = {
    "single stock": ("largest single name", "above the cap of"),
    "sector": ("largest sector", "above the cap of"),
    "small caps": ("small caps", "below the floor of"),
    "financials": ("financials", "below the floor of"),
    "volatility": ("volatility", "above the cap of"),
}


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


@register.filter
def drift_item(item: dict) -> str:
    """'Information Technology: 41.0% of stocks, target 25.0% (+16.0 points; band 5.0)'."""
    try:
        return (
            f"{item['name']}: {_pct(item['current'])} {_SHARE_OF.get(item['group'], '')}, "
            f"target {_pct(item['target'])} "
            f"({item['drift'] * 100:+.1f} points; band {item['band'] * 100:.1f})"
        )
    except (KeyError, TypeError):
        return str(item)


@register.filter
def drift_limit(limit: dict) -> str:
    """'Breaks a limit: largest single name 4.0 points above the cap of 8.0%'."""
    try:
        what, side = _LIMIT_WORDS.get(limit["limit"], (limit["limit"], "beyond"))
        return f"Breaks a limit: {what} {limit['excess'] * 100:.1f} points {side} {_pct(limit['value'])}"
    except (KeyError, TypeError):
        return str(limit)


@register.filter
def drift_largest(check) -> str:
    return f"{check.largest * 100:.1f} points ({check.largest_label})" if check.largest_label else _pct(check.largest)


@register.inclusion_tag("portfolios/drift/badge.html")
def drift_badge(check) -> dict:
    return {"check": check}


@register.filter
def pct_points(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f} points"


@register.inclusion_tag("portfolios/drift/panel.html")
def drift_panel(portfolio) -> dict:
    """The target, the latest drift and the chart of drift over time, for the portfolio page."""
    import json

    from portfolios.drift.selectors import drift_chart, drift_history
    from portfolios.targets import target_describe, target_effective

    checks = drift_history(portfolio=portfolio)  # oldest first: the last one is the latest check
    chart = drift_chart(portfolio=portfolio, checks=checks)
    target = target_effective(target=portfolio.target, use_views=portfolio.use_views)
    return {
        "portfolio": portfolio, "check": checks[-1] if checks else None, "chart": chart,
        "chart_json": json.dumps(chart), "target_lines": target_describe(target),
        "bands": portfolio.bands or {},
    }
