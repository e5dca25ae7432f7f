"""The engine's two hooks for holdings valued from a broker file: `SecurityInfo.asset_mix` (a blended fund)
and `Options.fixed` (held fixed, never sold, reported as not the person's choice)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import engine
from engine.exposures import ASSET_CLASSES, asset_exposure, snapshot
from engine.sample_data import SYNTHETIC_MENU, synthetic_market, synthetic_views
from engine.types import AccountCash, Options, Position, RebalanceRequest, SecurityInfo

MARKET = synthetic_market()
LAST = MARKET.prices.ffill().iloc[-1]


def blended_market(equity: float):
    mix = (("bond", 1 - equity), ("equity", equity))
    info = SecurityInfo("TDF", "etf", "equity", size="total", asset_mix=mix)
    prices = MARKET.prices.assign(TDF=equity * MARKET.prices["BROAD"] + (1 - equity) * MARKET.prices["BOND"])
    return replace(MARKET, prices=prices, securities={**MARKET.securities, "TDF": info},
                   etf_sectors={**MARKET.etf_sectors, "TDF": MARKET.etf_sectors["BROAD"]},
                   etf_holdings={**MARKET.etf_holdings, "TDF": {k: v * equity for k, v in
                                                                  MARKET.etf_holdings["BROAD"].items()}})


@pytest.mark.parametrize("equity", [0.0, 0.35, 0.6, 1.0])
def test_a_blended_fund_splits_its_value_by_asset_class(equity):
    exposure = asset_exposure("TDF", blended_market(equity))
    np.testing.assert_allclose(exposure.asset_class, [equity, 1 - equity, 0, 0], atol=1e-12)
    assert exposure.sectors.sum() == pytest.approx(equity)
    assert exposure.size.sum() == pytest.approx(equity)
    snap = snapshot({"TDF": 0.5, "CASH": 0.5}, blended_market(equity), volatility=0.1)
    assert snap.asset_class["bond"] == pytest.approx(0.5 * (1 - equity))
    assert dict(zip(ASSET_CLASSES, exposure.asset_class, strict=True))["equity"] == pytest.approx(equity)
    if equity:  # sectors are fractions of the equity part, as for any equity fund
        assert snap.sectors["Information Technology"] == pytest.approx(0.32 / sum(
            MARKET.etf_sectors["BROAD"].values()), rel=1e-6)


def test_fixed_holdings_are_never_sold_and_a_breach_they_cause_says_so():
    price = float(LAST["TECHF"])
    positions = [Position("TECHF", "Taxable", "taxable", 1000.0, price), Position("BANK", "Taxable", "taxable", 10.0,
                                                                                   float(LAST["BANK"]))]
    request = RebalanceRequest(positions, [AccountCash("Taxable", "taxable", 100.0)], list(SYNTHETIC_MENU), MARKET,
                               Options(fixed=frozenset({"TECHF"})), synthetic_views())
    result = engine.rebalance(request, cache=engine.ProblemCache())
    assert not [t for t in result.trades if t.ticker == "TECHF"]
    tech = [r for r in result.relaxations if r.limit == "max_sector:Information Technology"]
    assert tech and "TECHF is held fixed at the value your file gave" in tech[0].message
    assert "you asked to keep" not in tech[0].message
    free = engine.rebalance(replace(request, options=Options()), cache=engine.ProblemCache())
    assert any(t.ticker == "TECHF" and t.action == "sell" for t in free.trades)
