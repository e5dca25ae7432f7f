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
