"""engine.market.MarketSnapshot: one market-data version, built once, and what the engine derives from it."""

from __future__ import annotations

import datetime as dt
from dataclasses import FrozenInstanceError, replace

import numpy as np
import pandas as pd
import pytest

from engine.market import MarketSnapshot, last_prices, window
from engine.sample_data import SYNTHETIC_MENU, synthetic_market


@pytest.fixture(scope="module")
def market():
    return synthetic_market(listed_late={"SMALL": 300})


def test_a_built_snapshot_has_every_part_before_any_run(market):
    snap = MarketSnapshot.build(market, risk_years=1.0, version=("2025-12-31", 7))
    for part in ("last_prices", "risk", "history", "catalog"):
        assert part in vars(snap), part  # built now, not on first use
    assert snap.version == ("2025-12-31", 7)
    assert snap.long is market and snap.market.prices.index[0] >= pd.Timestamp(market.as_of) - pd.DateOffset(years=1)
    assert list(snap.history.positions) == list(market.prices.columns)  # the stress tests see the long history
    with pytest.raises(FrozenInstanceError):
        snap.version = "other"  # type: ignore[misc]


def test_a_request_snapshot_builds_its_parts_on_first_use(market):
    snap = MarketSnapshot.of(market)
    assert "risk" not in vars(snap)
    assert snap.risk is snap.risk and snap.version == (market.as_of, None)


def test_last_prices_are_the_last_positive_price_on_or_before_the_as_of_date():
    index = pd.to_datetime(["2025-01-02", "2025-01-03", "2025-01-06"])
    prices = pd.DataFrame({"A": [1.0, np.nan, np.nan], "B": [2.0, 3.0, 4.0], "C": [np.nan] * 3, "D": [1.0, 0.0, 0.0]},
                          index=index)
    assert last_prices(prices) == {"A": 1.0, "B": 4.0}
    assert last_prices(prices, dt.date(2025, 1, 3)) == {"A": 1.0, "B": 3.0}


def test_a_window_keeps_the_last_years(market):
    short = window(market, 0.5)
    assert short.as_of == market.as_of and short.securities is market.securities
    assert short.prices.index[-1] == market.prices.index[-1]
    assert (short.prices.index[-1] - short.prices.index[0]).days <= 183


def test_a_universe_model_is_a_slice_of_the_frame_and_remembered_by_content(market):
    snap = MarketSnapshot.of(market)
    universe = ["TECHA", *SYNTHETIC_MENU]
    model = snap.risk_model(universe)
    at = [snap.risk.index[t] for t in universe]
    np.testing.assert_array_equal(model.loadings, snap.risk.loadings[:, at])
    assert snap.risk_model(tuple(universe)) is model
    _, full = snap.exposure_models(universe, 0.08)
    assert full.tickers == tuple(universe) and snap.exposure_models(list(universe), 0.08)[1] is full


def test_a_proxy_lends_a_ticker_its_returns_and_look_through(market):
    snap = MarketSnapshot.of(market)
    model = snap.risk_model(["FUNDX", "BANK"], proxies={"FUNDX": "BROAD"})
    broad = snap.risk_model(["BROAD", "BANK"])
    assert model.tickers == ("FUNDX", "BANK")
    np.testing.assert_array_equal(model.loadings, broad.loadings)
    np.testing.assert_array_equal(model.specific, broad.specific)
    _, full = snap.exposure_models(["FUNDX"], 0.08, proxies={"FUNDX": "BROAD"})
    _, own = snap.exposure_models(["BROAD"], 0.08)
    assert full.tickers == ("FUNDX",)
    np.testing.assert_array_equal(full.sectors, own.sectors)
    assert full.names == own.names


def test_a_ticker_outside_the_frame_gets_a_model_of_its_own(market):
    moved = replace(market, prices=market.prices.drop(columns=["HLTH"]))
    snap = MarketSnapshot.of(moved)
    model = snap.risk_model(["BROAD", "HLTH"])
    assert model.loadings.shape[1] == 2 and any("HLTH" in w for w in model.warnings)
