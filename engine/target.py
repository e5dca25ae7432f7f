"""The target portfolio: the profile's strategic mix, with the equity sleeve shaped by the views.

Construction (documented design):
1. Equity sleeve. Take the views' `core` mix (or `NEUTRAL_EQUITY_CORE` when views are off) and its
   look-through sector and size mix. Target sectors = core sectors + the views' sector tilts
   (clipped at 0, renormalised); target size = the views' size mix (or the core's).
2. Choose the sleeve v over the core and the views' preferred `vehicles` that are on the menu (all
   equity ETFs on the menu when the core is not, or when the core funds on it cannot hold the whole
   sleeve) (v >= 0, sum 1, a tilt fund at most MAX_NON_CORE_FUND unless the menu has too few funds) minimising
   |sectors(v) - target sectors|^2 + |size(v) - target size|^2 + ALPHA |v - core|_1 (one small QP,
   cached): the l1 term keeps the core as the core and moves weight into as few tilt funds as the
   exposures need (e.g. XLF for Financials, IJR for small caps).
3. Target weights = equity_share * v + bond_share * bond sleeve (the profile's preferred bond funds
   available in the menu, else any bond fund in the menu equally, else cash) + the rest in cash.
   A custom target (the user's own, see portfolios/targets.py) is a views document whose tilts may also
   carry `mix` {stocks, bonds, cash} (replacing the profile's shares) and `bonds` {ticker: weight}
   (replacing the profile's preferred bond funds); it takes exactly this path.
The optimizer then minimises tracking error to these weights (see engine.problem).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cvxpy as cp
import numpy as np

from engine.exposures import GICS_SECTORS, SIZES, asset_exposure
from engine.profiles import NEUTRAL_EQUITY_CORE, Profile
from engine.solve import solve_certified
from engine.types import MarketData

ALPHA_CORE = 0.002  # weight of staying close to the core mix (l1: few funds move), relative to exposure matching
MAX_NON_CORE_FUND = 0.25  # no single tilt fund above a quarter of the equity sleeve


@dataclass(frozen=True)
class Target:
    """Target weights (fractions of total value; cash = 1 - sum) and what they mean."""

    weights: Mapping[str, float]
    equity_sleeve: Mapping[str, float]  # fractions of the equity part
    sectors: Mapping[str, float]  # target look-through sectors, fractions of equity
    size: Mapping[str, float]  # target size mix, fractions of equity
    cash: float
    source: str  # e.g. "views 2026-01-rotation (as of 2026-01-15)" or "neutral market mix"
    warnings: tuple[str, ...] = field(default_factory=tuple)


def target_key(profile: Profile, views: Mapping[str, Any] | None, menu: Sequence[str]) -> str:
    """A stable cache key for a target."""
    tilts = views.get("tilts") if views else None
    label = views.get("label") if views else None  # a custom target's name is its `source`
    return json.dumps([profile.name, tilts, views.get("as_of") if views else None, label, sorted(menu)],
                      sort_keys=True)


def build_target(
    *, profile: Profile, views: Mapping[str, Any] | None, menu: Sequence[str], market: MarketData
) -> Target:
    """The target for `profile` and `views` using only funds in `menu` (see the module docstring)."""
    warnings: list[str] = []
    tilts = (views or {}).get("tilts") or {}
    core: Mapping[str, float] = tilts.get("core") or NEUTRAL_EQUITY_CORE
    source = (
        views.get("label") or f"views {views.get('id') or views.get('title')} (as of {views.get('as_of')})"
        if views
        else "neutral market mix (views off)"
    )
    target_sectors, target_size = _target_mix(core, tilts, market)
    candidates = _sleeve_candidates(menu, core, tilts, market)
    if candidates:
        sleeve = _equity_sleeve(candidates, core, target_sectors, target_size, market)
    else:
        sleeve = {}
        warnings.append("The menu has no equity funds with sector data: the equity part of the target is empty.")
    bonds = _bond_sleeve(profile, menu, market, tilts.get("bonds"))
    mix = tilts.get("mix") or {"stocks": profile.equity_share, "bonds": profile.bond_share}
    equity_share = float(mix["stocks"]) if sleeve else 0.0
    bond_share = float(mix["bonds"]) if bonds else 0.0
    if float(mix["bonds"]) > 0 and not bonds:
        warnings.append("The menu has no bond funds: the target holds the bond share in cash.")
    weights: dict[str, float] = {}
    for ticker, w in sleeve.items():
        weights[ticker] = weights.get(ticker, 0.0) + equity_share * w
    for ticker, w in bonds.items():
        weights[ticker] = weights.get(ticker, 0.0) + bond_share * w
    cash = 1.0 - sum(weights.values())
    return Target(
        weights=weights,
        equity_sleeve=sleeve,
        sectors=dict(zip(GICS_SECTORS, target_sectors.tolist(), strict=True)),
        size=dict(zip(SIZES, target_size.tolist(), strict=True)),
        cash=cash,
        source=source,
        warnings=tuple(warnings),
    )


def _target_mix(core: Mapping[str, float], tilts: Mapping[str, Any], market: MarketData
                ) -> tuple[np.ndarray, np.ndarray]:
    """(sector mix, size mix) of the equity target: the core's look-through, tilted by the views."""
    core_sectors = np.zeros(len(GICS_SECTORS))
    core_size = np.zeros(len(SIZES))
    for ticker, weight in core.items():
        exp = asset_exposure(ticker, market)
        core_sectors += weight * exp.sectors
        core_size += weight * exp.size
    target_sectors = core_sectors.copy()
    for sector, tilt in (tilts.get("sectors") or {}).items():
        if sector in GICS_SECTORS:
            target_sectors[GICS_SECTORS.index(sector)] += float(tilt)
    target_sectors = np.clip(target_sectors, 0.0, None)
    if target_sectors.sum() > 0:
        target_sectors /= target_sectors.sum()
    size_view = tilts.get("size")
    if size_view:
        target_size = np.array([float(size_view[s]) for s in SIZES])
    else:
        target_size = core_size / max(core_size.sum(), 1e-12)
    return target_sectors, target_size


def _sleeve_candidates(menu: Sequence[str], core: Mapping[str, float], tilts: Mapping[str, Any],
                       market: MarketData) -> list[str]:
    """The menu's equity funds the sleeve may hold: the core and the views' vehicles, or any when needed."""
    equity_funds = [
        t for t in menu
        if (e := asset_exposure(t, market)).asset_class[0] > 0.5 and e.kind == "etf" and e.sectors.sum() > 0.5
    ]
    preferred = set(core) | {t for tickers in (tilts.get("vehicles") or {}).values() for t in tickers}
    candidates = [t for t in equity_funds if t in preferred]
    if not any(t in core for t in candidates):
        return equity_funds  # the core is not on the menu: let any equity fund stand in
    if _caps(candidates, core).sum() < 1.0:
        # part of the core is off the menu and the preferred funds on it cannot hold the whole sleeve
        # under their caps (e.g. views off: VXUS on the menu, VTI not): every equity fund may stand in
        candidates += [t for t in equity_funds if t not in candidates]
    return candidates


def _equity_sleeve(
    candidates: list[str],
    core: Mapping[str, float],
    target_sectors: np.ndarray,
    target_size: np.ndarray,
    market: MarketData,
) -> dict[str, float]:
    """Solve the small sleeve QP; weights below 0.5% are dropped and the rest renormalised."""
    exps = [asset_exposure(t, market) for t in candidates]
    sectors = np.column_stack([e.sectors for e in exps])  # (11, c)
    size = np.column_stack([e.size for e in exps])  # (3, c)
    core_vec = np.array([float(core.get(t, 0.0)) for t in candidates])
    caps = _caps(candidates, core)
    if caps.sum() < 1.0:  # too few funds on the menu to respect the tilt-fund cap: share the sleeve evenly at most
        caps = np.maximum(caps, 1.0 / len(candidates))
    v = cp.Variable(len(candidates), nonneg=True)
    objective = (
        cp.sum_squares(sectors @ v - target_sectors)
        + cp.sum_squares(size @ v - target_size)
        + ALPHA_CORE * cp.norm1(v - core_vec)
        + 1e-4 * cp.sum_squares(v)
    )
    problem = cp.Problem(cp.Minimize(objective), [cp.sum(v) == 1, v <= caps])
    solve_certified(problem)
    values = np.clip(np.asarray(v.value, dtype=float), 0.0, None)
    values[values < 0.005] = 0.0
    values /= values.sum()
    return {t: float(x) for t, x in zip(candidates, values, strict=True) if x > 0}


def _caps(candidates: Sequence[str], core: Mapping[str, float]) -> np.ndarray:
    """Upper bounds on each candidate's share of the equity sleeve: its core weight, or a tilt fund's cap."""
    return np.maximum(np.array([float(core.get(t, 0.0)) for t in candidates]), MAX_NON_CORE_FUND)


def _bond_sleeve(
    profile: Profile, menu: Sequence[str], market: MarketData, chosen: Mapping[str, float] | None = None
) -> dict[str, float]:
    menu_set = set(menu)
    preferred = {t: w for t, w in (chosen or profile.bond_sleeve).items() if t in menu_set}
    if preferred:
        total = sum(preferred.values())
        return {t: w / total for t, w in preferred.items()}
    bonds = [t for t in menu if (info := market.securities.get(t)) is not None and info.asset_class == "bond"]
    return {t: 1.0 / len(bonds) for t in bonds} if bonds else {}
