"""Requests whose menu holds only part of the target's core (views off, or narrow menus) still solve.

Regression: with views off the equity core is VTI/VXUS; a menu with VXUS but not VTI left the target's
sleeve QP with VXUS alone (capped at its core weight) and no stand-ins, so the target was infeasible and
`engine.rebalance` raised OptimizationError instead of relaxing and reporting.
"""

from __future__ import annotations

import pytest

import engine
from engine.profiles import NEUTRAL_EQUITY_CORE, PROFILES
from engine.sample_data import load_bundled_market
from engine.target import MAX_NON_CORE_FUND, build_target
from engine.types import AccountCash, Options, Position, RebalanceRequest
from tests.test_engine_rebalance import check_invariants

MENU = ["SPY", "RSP", "IWM", "XLF", "XLE", "XLU", "XLV", "BND", "VXUS", "GLD", "IEF", "VWO"]
CACHE = engine.ProblemCache()


@pytest.fixture(scope="module")
def market():
    return load_bundled_market(years=3)


def positions(market) -> list[Position]:
    last = market.prices.ffill().iloc[-1]
    book = [("AAPL", "Taxable", 40), ("MSFT", "Taxable", 20), ("NVDA", "Taxable", 30), ("QQQ", "Taxable", 15),
            ("JPM", "Roth", 20), ("XOM", "Roth", 25), ("BND", "Roth", 60)]
    types = {"Taxable": "taxable", "Roth": "roth_ira"}
    return [Position(t, a, types[a], float(n), float(last[t]), cost_basis=0.7 * n * float(last[t]))
            for t, a, n in book]


def solve(market, menu: list[str], *, views=None, **options) -> tuple[RebalanceRequest, engine.types.RebalanceResult]:
    cash = [AccountCash("Taxable", "taxable", 2500.0), AccountCash("Roth", "roth_ira", 0.0)]
    req = RebalanceRequest(positions(market), cash, list(menu), market, Options(**options), views)
    result = engine.rebalance(req, cache=CACHE)
    check_invariants(req, result)
    return req, result


@pytest.mark.parametrize("options", [{}, {"use_views": False}])
def test_views_off_with_part_of_the_core_on_the_menu_solves(market, options):
    assert "VXUS" in MENU and "VTI" not in MENU and set(NEUTRAL_EQUITY_CORE) == {"VTI", "VXUS"}
    _, result = solve(market, MENU, views=None, **options)
    assert result.status in ("optimal", "relaxed")
    if result.status == "relaxed":
        assert result.relaxations and all(r.message for r in result.relaxations)
    # the target is a full sleeve made of funds on the menu: stand-ins carry VTI's part
    target = build_target(profile=PROFILES["moderate"], views=None, menu=MENU, market=market)
    assert set(target.weights) <= set(MENU)
    assert sum(target.equity_sleeve.values()) == pytest.approx(1.0)
    assert len(target.equity_sleeve) >= 2
    assert target.equity_sleeve.get("VXUS", 0.0) <= max(NEUTRAL_EQUITY_CORE["VXUS"], MAX_NON_CORE_FUND) + 1e-6
    assert all(w <= MAX_NON_CORE_FUND + 1e-6 for t, w in target.equity_sleeve.items() if t not in NEUTRAL_EQUITY_CORE)


@pytest.mark.parametrize("menu", [["SPY", "BND"], ["VXUS"], ["VXUS", "BND"], ["XLF", "XLE", "IEF"], ["RSP", "BND"],
                                  ["BND"], ["VWO", "VXUS", "GLD"], MENU[:6], MENU[6:]])
def test_narrow_menus_solve_with_views_on_and_off(market, menu):
    views = engine.load_views()
    for v in (None, views):
        _, result = solve(market, menu, views=v)
        assert result.status in ("optimal", "relaxed"), (menu, v is not None)
        target = build_target(profile=PROFILES["moderate"], views=v, menu=menu, market=market)
        if target.equity_sleeve:
            assert sum(target.equity_sleeve.values()) == pytest.approx(1.0)
            assert set(target.equity_sleeve) <= set(menu)
