"""Risk model: shrunk covariance in factor form; short histories."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import DataError
from engine.risk import covariance_estimate, estimate_risk_model, factor_form
from engine.sample_data import load_bundled_market, synthetic_market

TICKERS = ["SPY", "IWM", "XLF", "XLK", "BND", "GLD", "NVDA", "JPM", "AAPL", "VXUS", "XLE", "XLU"]


@pytest.fixture(scope="module")
def market():
    return load_bundled_market(years=3)


def test_the_covariance_is_psd_and_keeps_each_variance_exact(market):
    cov, warnings, shrinkage = covariance_estimate(market.prices, TICKERS, market.securities)
    assert np.linalg.eigvalsh(cov).min() >= -1e-12
    returns = market.prices[TICKERS].pct_change().iloc[1:]
    np.testing.assert_allclose(np.diag(cov), returns.var() * 252, rtol=1e-9)
    assert 0 < shrinkage < 1
    assert warnings == ()


def test_factor_form_keeps_variances_and_is_exact_for_few_assets(market):
    cov, _, _ = covariance_estimate(market.prices, TICKERS, market.securities)
    loadings, specific = factor_form(cov, n_factors=5)
    approx = loadings.T @ loadings + np.diag(specific**2)
    np.testing.assert_allclose(np.diag(approx), np.diag(cov), rtol=1e-9)
    exact_loadings, exact_specific = factor_form(cov, n_factors=len(TICKERS))
    np.testing.assert_allclose(exact_loadings.T @ exact_loadings, cov, atol=1e-12)
    assert not exact_specific.any()


def test_bond_volatility_is_not_inflated_by_shrinkage(market):
    risk = estimate_risk_model(market.prices, TICKERS, market.securities)
    w = np.zeros(len(TICKERS))
    w[TICKERS.index("BND")] = 1.0
    assert 0.04 < risk.volatility(w) < 0.08  # BND's own 3-year volatility is about 6%


def test_a_recent_listing_is_filled_from_its_proxy_and_said():
    market = synthetic_market(listed_late={"SMALL": 120, "FIN": 10})
    risk = estimate_risk_model(market.prices, ["BROAD", "SMALL", "FIN", "BOND"], market.securities)
    text = " ".join(risk.warnings)
    assert "SMALL has only 119 days of returns" in text
    assert "FIN has no usable price history" in text
    cov = risk.covariance()
    assert np.linalg.eigvalsh(cov).min() >= -1e-12
    assert np.all(np.isfinite(cov))


def test_a_ticker_without_any_prices_uses_the_market_proxy(market):
    risk = estimate_risk_model(market.prices, ["SPY", "NOTLISTED"], market.securities)
    assert any("NOTLISTED" in w for w in risk.warnings)
    cov = risk.covariance()
    assert cov[1, 1] == pytest.approx(cov[0, 0], rel=1e-9)  # SPY's own volatility
    correlation = cov[0, 1] / cov[0, 0]
    assert correlation == pytest.approx(1.0 - risk.shrinkage, rel=1e-6)  # SPY's returns, then shrunk


def test_too_little_history_is_a_data_error(market):
    with pytest.raises(DataError, match="at least"):
        covariance_estimate(market.prices.iloc[-10:], ["SPY"], market.securities)


def test_the_plain_estimate_is_the_sample_covariance_of_daily_returns():
    from engine.market import MarketSnapshot
    from engine.risk import DEFAULT_WINDOW, returns_window
    from engine.sample_data import load_bundled_market

    market = load_bundled_market(years=3)
    tickers = ["SPY", "BND", "XLK", "NVDA"]
    sample = MarketSnapshot.of(market).sample_risk_model(tickers)
    returns = returns_window(market.prices, DEFAULT_WINDOW)[tickers]
    np.testing.assert_allclose(sample.covariance, returns.cov().to_numpy() * 252, rtol=1e-9)
    np.testing.assert_allclose(sample.factor.T @ sample.factor, sample.covariance, rtol=1e-6, atol=1e-12)
    w = np.array([0.4, 0.3, 0.2, 0.1])
    assert sample.volatility(w) == pytest.approx(np.sqrt(w @ sample.covariance @ w))
    assert sample.model().volatility(w) == pytest.approx(sample.volatility(w), rel=1e-6)
