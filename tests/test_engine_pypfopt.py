"""Cross-check: our problem (the compact conic form, as in production) against PyPortfolioOpt's
minimum-volatility portfolio, same inputs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from engine.risk import estimate_risk_model
from engine.sample_data import load_bundled_market
from tests.test_engine_problem import solve, two_asset_data

TICKERS = ["SPY", "IWM", "XLF", "XLK", "XLE", "BND", "GLD", "VXUS", "AAPL", "JPM"]


@pytest.fixture(scope="module")
def covariance() -> np.ndarray:
    market = load_bundled_market(years=3)
    risk = estimate_risk_model(market.prices, TICKERS, market.securities)
    return risk.covariance()


def ours_min_volatility(cov: np.ndarray) -> np.ndarray:
    data = two_asset_data(cash_max=0.0)  # then widen it to n assets
    n = cov.shape[0]
    from engine.risk import risk_model_from_covariance

    risk = risk_model_from_covariance(TICKERS, cov, n_factors=n)
    data.loadings, data.specific, data.target = risk.loadings, risk.specific, np.zeros(n)
    for name in ("base",):
        setattr(data, name, np.zeros((getattr(data, name).shape[0], n)))
    data.name_matrix = np.zeros((0, n))
    data.name_rhs = data.name_penalty = np.zeros(0)
    for name in ("x0", "sell_max", "cost_rate", "trade_cost", "holding_drag"):
        setattr(data, name, np.zeros((n, 1)))
    data.buy_max = np.full((n, 1), 2.0)
    data.tax_slopes = data.tax_intercepts = np.zeros((4, n, 1))
    from engine.problem import solve_problem

    return solve_problem(data).w


def test_min_volatility_matches_pypfopt_on_the_same_covariance(covariance):
    from pypfopt import EfficientFrontier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ef = EfficientFrontier(None, covariance, weight_bounds=(0, 1))
        theirs = ef.min_volatility()
    theirs = np.array([theirs[i] for i in range(len(TICKERS))])
    ours = ours_min_volatility(covariance)
    np.testing.assert_allclose(ours, theirs, atol=2e-4)
    vol_ours = float(np.sqrt(ours @ covariance @ ours))
    vol_theirs = float(np.sqrt(theirs @ covariance @ theirs))
    assert vol_ours == pytest.approx(vol_theirs, rel=1e-6)
    assert ours.sum() == pytest.approx(1.0, abs=1e-7)
    assert ours[TICKERS.index("BND")] > 0.5  # the bond fund dominates a minimum-volatility mix


def test_two_assets_agree_with_pypfopt_too():
    from pypfopt import EfficientFrontier

    cov = np.array([[0.04, 0.006], [0.006, 0.01]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = EfficientFrontier(None, cov, weight_bounds=(0, 1)).min_volatility()
    ours = solve(two_asset_data(vols=(0.2, 0.1), corr=0.3, cash_max=0.0)).w
    np.testing.assert_allclose(ours, [theirs[0], theirs[1]], atol=1e-5)
