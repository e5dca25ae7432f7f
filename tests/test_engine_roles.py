"""engine.roles: one role per fund, derived from the security master (overlap = same role)."""

from __future__ import annotations

import pytest

from engine.roles import BOND_ROLES, fund_role, fund_roles
from engine.sample_data import load_bundled_market
from engine.types import SecurityInfo


@pytest.fixture(scope="module")
def roles():
    market = load_bundled_market(years=1)
    return fund_roles(market.securities, market.etf_sectors)


@pytest.mark.parametrize("group", [
    ("SPY", "IVV", "VOO"), ("VTI", "ITOT"), ("MDY", "IJH", "VO"), ("IWM", "IJR", "VB"), ("XLF", "IYF"),
    ("XLRE", "VNQ"), ("BND", "AGG"), ("GLD", "IAU"), ("VWO", "IEMG"),
])
def test_it_gives_funds_that_overlap_one_role(roles, group):
    assert len({roles[t] for t in group}) == 1


@pytest.mark.parametrize("a, b", [
    ("SPY", "RSP"), ("SPY", "VTI"), ("IWM", "MDY"), ("XLF", "XLV"), ("BND", "SHY"), ("SHY", "TIP"),
    ("TLT", "IEF"), ("BIL", "SHY"), ("VXUS", "VWO"), ("VNQ", "XLU"),
])
def test_it_keeps_funds_of_different_jobs_apart(roles, a, b):
    assert roles[a] != roles[b]


def test_bond_funds_have_bond_roles_and_stocks_their_own(roles):
    for ticker in ("BND", "AGG", "SHY", "TIP", "TLT", "IEF", "LQD"):
        assert roles[ticker] in BOND_ROLES
    assert roles["AAPL"] == "stock:AAPL" and roles["MSFT"] == "stock:MSFT"


def test_it_reads_sector_funds_from_the_look_through_not_the_ticker():
    info = SecurityInfo("NEWF", "etf", "equity", "", "large", "us", "Some New Fund")
    assert fund_role(info, {"Financials": 0.9, "Industrials": 0.1}) == "sector:Financials"
    assert fund_role(info, {"Financials": 0.3, "Industrials": 0.3, "Energy": 0.4}) == "large:other"


def test_the_menu_keeps_one_fund_per_role_preferring_held_then_the_views():
    from engine.menu import default_menu, one_fund_per_role

    market = load_bundled_market(years=1)
    menu = default_menu(market.securities, market.etf_sectors)
    roles = fund_roles(market.securities, market.etf_sectors)
    kept = one_fund_per_role(menu, held=["VB"], roles=roles, preferred=["RSP", "XLF", "IJR", "IWM"])
    kept_roles = [roles[t] for t in kept]
    assert len(kept_roles) == len(set(kept_roles))
    assert set(kept_roles) == {roles[t] for t in menu}  # every role still has a fund
    assert "VB" in kept and "IJR" not in kept and "IWM" not in kept  # the held small-cap fund, not a twin
    assert "XLF" in kept and "IYF" not in kept  # the views' financials fund
    assert kept == [t for t in menu if t in kept]  # the menu's order is kept


def test_a_plan_never_buys_two_funds_of_one_role():
    import engine

    market = load_bundled_market(years=3)
    roles = fund_roles(market.securities, market.etf_sectors)
    import bench.advice as advice

    for case in advice.corpus(market, variants=1, seed=3):
        doc = advice.plan(case, market, advice.default_menu(market.securities, market.etf_sectors),
                          engine.load_views(), engine.ProblemCache())
        bought = {t["ticker"] for t in doc["trades"] if t["action"] == "buy"}
        assert len({roles[t] for t in bought}) == len(bought), (case.name, sorted(bought))


def test_a_custom_targets_bond_fund_is_the_one_kept_for_its_role():
    from engine.menu import one_fund_per_role, views_vehicles

    market = load_bundled_market(years=1)
    views = {"tilts": {"core": {"VTI": 1.0}, "bonds": {"AGG": 1.0}}}
    kept = one_fund_per_role(["BND", "AGG", "VTI"], held=[], roles=fund_roles(market.securities, market.etf_sectors),
                             preferred=views_vehicles(views))
    assert kept == ["AGG", "VTI"]
