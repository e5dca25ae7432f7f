"""Look-through exposures (engine.exposures.snapshot) on the bundled data."""

from __future__ import annotations

import numpy as np
import pytest

from engine.exposures import GICS_SECTORS, snapshot
from engine.sample_data import load_bundled_market


@pytest.fixture(scope="module")
def market():
    return load_bundled_market(years=3)


def test_a_name_held_directly_and_inside_funds_counts_once_in_full(market):
    weights = {"NVDA": 0.10, "QQQ": 0.30, "XLK": 0.20, "SPY": 0.30, "CASH": 0.10}
    snap = snapshot(weights, market, volatility=0.2)
    h = market.etf_holdings
    expected = 0.10 + 0.30 * h["QQQ"]["NVDA"] + 0.20 * h["XLK"]["NVDA"] + 0.30 * h["SPY"]["NVDA"]
    assert snap.top_names["NVDA"] == pytest.approx(expected, rel=1e-12)
    assert next(iter(snap.top_names)) == "NVDA"
    assert len(snap.top_names) == 10


def test_sectors_and_size_are_fractions_of_the_equity_part(market):
    snap = snapshot({"SPY": 0.5, "BND": 0.4, "CASH": 0.1}, market, volatility=0.1)
    assert sum(snap.sectors.values()) == pytest.approx(1.0, abs=1e-9)
    spy = market.etf_sectors["SPY"]
    total = sum(spy.values())
    assert snap.sectors["Information Technology"] == pytest.approx(spy["Information Technology"] / total)
    assert snap.size == pytest.approx({"large": 1.0, "mid": 0.0, "small": 0.0})
    assert snap.asset_class == pytest.approx({"equity": 0.5, "bond": 0.4, "commodity": 0.0, "cash": 0.1})
    assert snap.weights["CASH"] == pytest.approx(0.1)


def test_a_total_market_fund_splits_70_20_10(market):
    snap = snapshot({"VTI": 1.0}, market, volatility=0.15)
    assert snap.size == pytest.approx({"large": 0.7, "mid": 0.2, "small": 0.1})


def test_stocks_count_in_their_gics_sector(market):
    snap = snapshot({"JPM": 0.5, "XOM": 0.5}, market, volatility=0.2)
    assert snap.sectors["Financials"] == pytest.approx(0.5)
    assert snap.sectors["Energy"] == pytest.approx(0.5)
    assert snap.largest_sector[1] == pytest.approx(0.5)
    assert set(snap.sectors) >= set(GICS_SECTORS)


def test_bonds_and_gold_only_are_not_equity(market):
    snap = snapshot({"BND": 0.6, "GLD": 0.4}, market, volatility=0.05)
    assert all(v == 0 for v in snap.sectors.values())
    assert snap.asset_class["commodity"] == pytest.approx(0.4)


def test_effective_holdings_rise_with_diversification(market):
    concentrated = snapshot({"NVDA": 0.5, "AAPL": 0.5}, market, volatility=0.3)
    broad = snapshot({"SPY": 0.5, "RSP": 0.5}, market, volatility=0.15)
    assert concentrated.effective_holdings == pytest.approx(2.0)
    assert broad.effective_holdings > 20
    assert concentrated.largest_position[1] == pytest.approx(0.5)


def test_volatility_is_estimated_when_not_given(market):
    snap = snapshot({"SPY": 1.0}, market)
    returns = market.prices["SPY"].pct_change().dropna()
    assert snap.volatility == pytest.approx(returns.std() * np.sqrt(252), rel=1e-6)


def test_unknown_tickers_are_treated_as_stocks_with_a_warning(market):
    from engine.exposures import asset_exposure

    exposure = asset_exposure("ZZZZ", market)
    assert exposure.warning and "not in the security master" in exposure.warning
    assert exposure.asset_class[0] == 1.0


def test_a_market_snapshot_gives_the_volatility_of_any_weights(market):
    from engine.market import MarketSnapshot

    weights = {"SPY": 0.5, "BND": 0.4, "CASH": 0.1}
    snap = MarketSnapshot.of(market)
    with_snapshot = snapshot(weights, market, cov=snap)
    assert with_snapshot.volatility == pytest.approx(snapshot(weights, market).volatility, rel=1e-12)
    assert snap.risk_model(["SPY", "BND"]) is snap.risk_model(("SPY", "BND"))  # sliced once per universe
