"""Number formatting for the recommendation pages: percentages, dollars, shares, changes."""

from __future__ import annotations

from django import template

register = template.Library()

DASH = "—"
MINUS = "−"  # typographic minus: reads better than a hyphen in tables


def _float(value: object) -> float | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _signed(text: str, negative: bool) -> str:
    return f"{MINUS}{text}" if negative else text


@register.filter
def pct(value: object, digits: int = 1) -> str:
    """0.1234 -> '12.3%'."""
    number = _float(value)
    if number is None:
        return DASH
    return _signed(f"{abs(number) * 100:.{int(digits)}f}%", number < 0 and round(number * 100, int(digits)) != 0)


@register.filter
def pct_short(value: object) -> str:
    """A setting as a person writes it: 0.01 -> '1%', 0.0025 -> '0.25%', 0.125 -> '12.5%'."""
    number = _float(value)
    if number is None:
        return DASH
    return _signed(f"{abs(number) * 100:.2f}".rstrip("0").rstrip(".") + "%", number < 0)


@register.filter
def pct_signed(value: object, digits: int = 1) -> str:
    """0.05 -> '+5.0%', -0.3 -> '−30.0%'."""
    number = _float(value)
    if number is None:
        return DASH
    text = f"{abs(number) * 100:.{int(digits)}f}%"
    if round(number * 100, int(digits)) == 0:
        return text
    return f"+{text}" if number > 0 else f"{MINUS}{text}"


@register.filter
def pp_change(value: object) -> str:
    """A change of weights in percentage points: 0.031 -> '+3.1 pp'."""
    number = _float(value)
    if number is None:
        return DASH
    points = number * 100
    if round(points, 1) == 0:
        return "0.0 pp"
    return f"{'+' if points > 0 else MINUS}{abs(points):.1f} pp"


@register.filter
def usd(value: object, digits: int = 0) -> str:
    """1234.5 -> '$1,235'; with digits=2 -> '$1,234.50'; negatives as '−$12'."""
    number = _float(value)
    if number is None:
        return DASH
    return _signed(f"${abs(number):,.{int(digits)}f}", number < 0 and round(number, int(digits)) != 0)


@register.filter
def shares(value: object) -> str:
    """Whole shares without decimals, fractional ones with up to 4."""
    number = _float(value)
    if number is None:
        return DASH
    if float(number).is_integer():
        return f"{int(number):,}"
    return f"{number:,.4f}".rstrip("0").rstrip(".")


@register.filter
def change_class(value: object) -> str:
    """CSS class for a change: 'up', 'down' or ''."""
    number = _float(value)
    if number is None or round(number * 100, 1) == 0:  # same rounding as pct/pp_change: no colour for "0.0"
        return ""
    return "up" if number > 0 else "down"
