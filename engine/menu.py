"""The default menu of diversifier funds, chosen from a security master by documented rules."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from engine.types import SecurityInfo

# Same index (or near-identical) as a fund already on the menu: keep one of each pair.
DUPLICATES: frozenset[str] = frozenset({"IVV", "VOO", "ITOT", "IXUS", "IEMG", "IAU", "IJH", "AGG"})
# Concentrated in the very exposure the menu exists to diversify away from (mega-cap tech, semis).
CONCENTRATED: frozenset[str] = frozenset({"QQQ", "XLK", "VGT", "SMH", "SOXX"})
# Single-industry funds (regional banks, banks, biotech): too narrow to be a diversifier; without this
# rule the optimizer likes KRE as a two-in-one "small cap + financials" fund, a concentrated bet.
NARROW: frozenset[str] = frozenset({"KRE", "KBE", "XBI"})
EXCLUDED: frozenset[str] = DUPLICATES | CONCENTRATED | NARROW
# Any other fund at least this much Information Technology (look-through) is a tech bet too (VUG, IWF, MTUM).
MAX_TECH_WEIGHT = 0.45


def is_diversifier(ticker: str, kind: str, tech_weight: float = 0.0) -> bool:
    """True for a fund the optimizer may offer as a diversifier (the one rule for the whole app)."""
    return kind == "etf" and ticker not in EXCLUDED and tech_weight < MAX_TECH_WEIGHT


def default_menu(
    securities: Mapping[str, SecurityInfo], etf_sectors: Mapping[str, Mapping[str, float]] | None = None
) -> list[str]:
    """Every ETF in `securities` except near-duplicates, tech-concentrated and single-industry funds
    (sorted). `etf_sectors` (look-through) also leaves out funds that are mostly Information Technology."""
    sectors = etf_sectors or {}
    return sorted(
        t
        for t, info in securities.items()
        if is_diversifier(t, info.kind, sectors.get(t, {}).get("Information Technology", 0.0))
    )


def one_fund_per_role(
    menu: Sequence[str],
    *,
    held: Sequence[str],
    roles: Mapping[str, str],
    preferred: Sequence[str] = (),
) -> list[str]:
    """The menu with at most one fund to buy per role (`roles`: engine.roles.fund_roles of the security master;
    a ticker without one is its own role): two funds of one role are overlap.

    Within a role the fund kept is, in order: one the portfolio already holds (buying more of it adds
    no new position and selling it to buy its twin would only churn), one the views name (`preferred`,
    in their order), else the first in the menu's order. Order of the menu is kept.
    """
    held_set, rank = set(held), {t: i for i, t in enumerate(preferred)}
    chosen: dict[str, str] = {}
    for ticker in menu:
        r = roles.get(ticker, f"unknown:{ticker}")
        best = chosen.get(r)
        if best is None or _fund_preference(ticker, held_set, rank) < _fund_preference(best, held_set, rank):
            chosen[r] = ticker
    keep = set(chosen.values())
    return [t for t in menu if t in keep]


def _fund_preference(ticker: str, held: set[str], rank: Mapping[str, int]) -> tuple[int, int]:
    return (0 if ticker in held else 1, rank.get(ticker, len(rank)))


def views_vehicles(views: Mapping[str, object] | None) -> list[str]:
    """The funds the views name, core first, then the tilt vehicles, then a custom target's bond funds."""
    tilts = (views or {}).get("tilts") or {}
    if not isinstance(tilts, Mapping):
        return []
    named = list(tilts.get("core") or {})
    for tickers in (tilts.get("vehicles") or {}).values():
        named += [t for t in tickers if t not in named]
    named += [t for t in (tilts.get("bonds") or {}) if t not in named]  # a custom target's bond funds
    return named
