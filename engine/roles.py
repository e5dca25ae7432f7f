"""The role a fund plays in a portfolio, derived from the security master (pure, no Django).

A planner buys at most one fund per role: one S&P 500 fund, one small-cap fund, one financials fund,
one core bond fund. Two funds of one role (XLF and IYF, VB and IWM, BND and AGG) are overlap, not
diversification. Roles come from the master's fields (kind, asset class, size, region), the fund's
look-through sectors and, for bonds, the words of its name; nothing is listed ticker by ticker.

`fund_role(info, sectors)` gives one role string; single stocks have the role "stock:<TICKER>".
"""

from __future__ import annotations

from collections.abc import Mapping

from engine.types import SecurityInfo

__all__ = ["BOND_ROLES", "fund_role", "fund_roles"]

# A fund this much in one GICS sector (look-through) is that sector's fund.
SECTOR_FUND_SHARE = 0.6

# Bond roles by the words of the fund's name, most specific first.
_BOND_WORDS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("tips", "inflation"), "bonds:tips"),
    (("t-bill", "1-3 month", "0-3 month", "money market"), "cash:t-bills"),
    (("1-3 year", "short-term treasury", "short treasury", "0-5 year"), "bonds:short treasury"),
    (("7-10 year", "3-7 year", "intermediate"), "bonds:intermediate treasury"),
    (("20+ year", "long-term treasury", "25+ year", "long treasury"), "bonds:long treasury"),
    (("corporate", "investment grade"), "bonds:corporate"),
    (("high yield", "junk"), "bonds:high yield"),
    (("municipal", "muni", "tax-exempt"), "bonds:municipal"),
    (("total bond", "aggregate", "core bond", "total market bond"), "bonds:core"),
)
BOND_ROLES: frozenset[str] = frozenset(role for _, role in _BOND_WORDS) | {"bonds:other"}

_STYLE_WORDS: tuple[tuple[str, str], ...] = (
    ("equal weight", "equal weight"),
    ("growth", "growth"),
    ("value", "value"),
    ("dividend", "dividend"),
    ("momentum", "momentum"),
    ("quality", "quality"),
    ("min vol", "min volatility"),
    ("minimum volatility", "min volatility"),
)


def _bond_role(name: str) -> str:
    lowered = name.lower()
    for words, role in _BOND_WORDS:
        if any(word in lowered for word in words):
            return role
    return "bonds:other"


def _equity_role(info: SecurityInfo, sectors: Mapping[str, float]) -> str:
    if sectors:
        sector, share = max(sectors.items(), key=lambda kv: kv[1])
        if share >= SECTOR_FUND_SHARE:
            return f"sector:{sector}"
    region = info.region or "us"
    if region != "us":
        return f"international:{region}"
    if info.size in ("mid", "small"):
        return info.size
    if info.size == "total":
        return "total market"
    lowered = info.name.lower()
    for word, style in _STYLE_WORDS:
        if word in lowered:
            return f"large:{style}"
    if "s&p 500" in lowered or "s&p500" in lowered:
        return "s&p 500"
    return "large:other"


def fund_role(info: SecurityInfo, sectors: Mapping[str, float] | None = None) -> str:
    """The role of one security: e.g. "s&p 500", "small", "sector:Financials", "bonds:core", "gold"."""
    asset_class = info.asset_class or "equity"
    if info.kind == "stock":
        return f"stock:{info.ticker}"
    if asset_class == "cash":
        return "cash:t-bills"
    if asset_class == "bond":
        return _bond_role(info.name)
    if asset_class == "commodity":
        return "gold" if "gold" in info.name.lower() else "commodity"
    return _equity_role(info, sectors or {})


def fund_roles(
    securities: Mapping[str, SecurityInfo], etf_sectors: Mapping[str, Mapping[str, float]] | None = None
) -> dict[str, str]:
    """{ticker: role} for every security of a master."""
    sectors = etf_sectors or {}
    return {ticker: fund_role(info, sectors.get(ticker)) for ticker, info in securities.items()}
