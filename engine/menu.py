"""The default menu of diversifier funds, chosen from a security master by documented rules."""

from __future__ import annotations

from collections.abc import Mapping

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
