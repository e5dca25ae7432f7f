"""engine.drift: known answers on a tiny universe, and properties over random portfolios."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import drift as d
from engine.exposures import exposure_model
from engine.types import MarketData, SecurityInfo

TICKERS = ("NVDA", "JPM", "SPY", "BND")


@pytest.fixture(scope="module")
def feats() -> d.Features:
    securities = {
        "NVDA": SecurityInfo("NVDA", "stock", "equity", "Information Technology", "large"),
        "JPM": SecurityInfo("JPM", "stock", "equity", "Financials", "large"),
        "SPY": SecurityInfo("SPY", "etf", "equity", "", "large"),
        "BND": SecurityInfo("BND", "etf", "bond", "", ""),
    }
    market = MarketData(
        prices=pd.DataFrame(), securities=securities,
        etf_sectors={"SPY": {"Information Technology": 0.3, "Financials": 0.2, "Health Care": 0.5}},
        etf_holdings={"SPY": {"NVDA": 0.08, "JPM": 0.02, "LLY": 0.01}}, as_of=pd.Timestamp("2026-01-02").date(),
    )
    model = exposure_model(TICKERS, market, name_threshold=d.NAME_THRESHOLD)
    return d.features(model)


def limits(p: int, **over) -> d.LimitArrays:
    base = {"max_single_stock": 0.08, "max_sector": 0.60, "min_small_cap": 0.0, "min_financials": 0.0,
            "vol_cap": 0.16}
    base.update(over)
    return d.LimitArrays(**{k: np.full(p, v) for k, v in base.items()})


def inputs(weights, cash, *, plan=None, plan_cash=None, target=(0.0, 0.0, 0.6, 0.35), target_cash=0.05, **lim):
    p = len(weights)
    w = sp.csr_matrix(np.array(weights, dtype=float))
    has_plan = np.array([plan is not None] * p)
    a = sp.csr_matrix(np.array(plan if plan is not None else np.zeros((p, len(TICKERS))), dtype=float))
    return d.DriftInputs(
        weights=w, cash=np.array(cash, dtype=float), targets=np.array([target]), target_cash=np.array([target_cash]),
        target_of=np.zeros(p, dtype=int), plan=a,
        plan_cash=np.array(plan_cash if plan_cash is not None else [0.0] * p, dtype=float), has_plan=has_plan,
        absolute=np.full(p, 0.05), relative=np.full(p, 0.25), limits=limits(p, **lim),
    )


def test_a_portfolio_at_its_target_is_in_band(feats):
    report = d.drift_check(inputs([[0, 0, 0.6, 0.35]], [0.05]), feats)
    assert report.status == ["in_band"] and report.items == [[]] and report.limits == [[]]
    assert report.largest[0] == pytest.approx(0.0, abs=1e-12)


def test_a_concentrated_portfolio_drifts_and_breaks_the_single_stock_limit(feats):
    report = d.drift_check(inputs([[0.5, 0, 0.45, 0.0]], [0.05]), feats)
    assert report.status == ["breaks_limit"]
    names = {item["name"] for item in report.items[0]}
    assert {"bonds", "NVDA"} <= names
    single = next(x for x in report.limits[0] if x["limit"] == "single stock")
    # NVDA: 50% direct + 8% of 45% through SPY = 53.6% of value, 45.6 points above the 8% cap
    assert single["excess"] == pytest.approx(0.536 - 0.08, abs=1e-4)


def test_the_band_is_the_tighter_of_absolute_and_relative_never_below_a_point():
    band = d.bands(np.array([[0.6, 0.1, 0.0]]), np.array([0.05]), np.array([0.25]))
    np.testing.assert_allclose(band, [[0.05, 0.025, d.MIN_BAND]])


def test_where_the_plan_left_the_portfolio_is_not_drift(feats):
    concentrated = [[0.5, 0, 0.45, 0.0]]
    report = d.drift_check(inputs(concentrated, [0.05], plan=concentrated, plan_cash=[0.05]), feats)
    assert report.status == ["in_band"]
    assert report.since_plan[0] == pytest.approx(0.0, abs=1e-12)
    assert report.largest[0] > 0.3  # still far from the target: reported, not counted as drift


def test_a_move_away_from_the_plan_is_drift(feats):
    plan = [[0.05, 0.0, 0.55, 0.35]]
    moved = [[0.15, 0.0, 0.5, 0.32]]  # NVDA doubled, the rest diluted
    report = d.drift_check(inputs(moved, [0.03], plan=plan, plan_cash=[0.05]), feats)
    assert report.status == ["breaks_limit"]
    assert report.since_plan[0] > 0.09


def test_sectors_and_size_are_fractions_of_equity(feats):
    x = d.exposures(sp.csr_matrix(np.array([[0.0, 0.25, 0.25, 0.5]])), np.array([0.0]), feats)
    labels = list(feats.labels)
    assert x[0, labels.index(("asset class", "stocks"))] == pytest.approx(0.5)
    assert x[0, labels.index(("sector", "Financials"))] == pytest.approx((0.25 + 0.25 * 0.2) / 0.5)
    assert x[0, labels.index(("name", "JPM"))] == pytest.approx(0.25 + 0.25 * 0.02)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.floats(0, 1), min_size=5, max_size=5), min_size=1, max_size=8))
def test_rows_are_independent_and_statuses_are_valid(rows):
    raw = np.array(rows) + 1e-6
    raw /= raw.sum(axis=1, keepdims=True)
    securities = {t: SecurityInfo(t, "stock", "equity", "Financials", "large") for t in TICKERS}
    market = MarketData(prices=pd.DataFrame(), securities=securities, etf_sectors={}, etf_holdings={},
                        as_of=pd.Timestamp("2026-01-02").date())
    feats = d.features(exposure_model(TICKERS, market, name_threshold=d.NAME_THRESHOLD))
    everything = d.drift_check(inputs(raw[:, :4].tolist(), raw[:, 4].tolist()), feats)
    for i in range(len(raw)):
        one = d.drift_check(inputs(raw[i:i + 1, :4].tolist(), raw[i:i + 1, 4].tolist()), feats)
        assert one.status[0] == everything.status[i]
        assert one.largest[0] == pytest.approx(everything.largest[i])
    assert set(everything.status) <= {d.IN_BAND, d.DRIFTED, d.BREAKS_LIMIT}


def test_volatility_of_rows_matches_the_quadratic_form():
    rng = np.random.default_rng(42)
    a = rng.normal(size=(4, 4))
    cov = a @ a.T / 10
    w = rng.random((3, 4))
    expected = np.sqrt(np.einsum("ij,jk,ik->i", w, cov, w))
    np.testing.assert_allclose(d.volatility(sp.csr_matrix(w), cov), expected)
