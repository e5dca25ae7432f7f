"""Cheap recomputes: one risk model per price frame (sliced per universe), exact pruning in rounding repair."""

from __future__ import annotations

import numpy as np
import pytest

import engine
from engine import rounding
from engine.limits import FINANCIALS
from engine.market import MarketSnapshot
from engine.risk import frame_model, universe_risk_model
from engine.sample_data import load_bundled_market
from engine.types import AccountCash, Options, Position, RebalanceRequest
from tests.rounding_reference import ReferenceRepairer

HOLDINGS = {"AAPL": 120, "MSFT": 60, "NVDA": 150, "QQQ": 40, "JPM": 30, "XOM": 25, "BND": 10}
MENU = ["SPY", "RSP", "IWM", "XLF", "XLE", "XLU", "XLV", "BND", "VXUS", "GLD", "IEF", "VWO"]


@pytest.fixture(scope="module")
def market():
    return load_bundled_market(years=3)


def test_a_universe_model_is_a_slice_of_the_frame_model_psd_with_exact_variances(market, monkeypatch):
    from engine import risk as risk_module

    estimates = []
    original = risk_module.frame_model
    monkeypatch.setattr(risk_module, "frame_model", lambda *a, **k: estimates.append(1) or original(*a, **k))
    snapshot = MarketSnapshot.of(market)
    universes = [["AAPL", "MSFT", "BND", "SPY"], ["NVDA", "XLF", "GLD", "IEF", "AAPL", "VXUS"]]
    full = snapshot.risk
    returns = market.prices.ffill().pct_change(fill_method=None).iloc[-756:]
    for tickers in universes:
        risk = snapshot.risk_model(tickers)
        assert risk.tickers == tuple(tickers)
        cov = risk.covariance()
        assert np.linalg.eigvalsh(cov).min() >= -1e-10
        np.testing.assert_allclose(np.diag(cov), returns[tickers].var() * 252, rtol=1e-9)
        at = [full.index[t] for t in tickers]
        np.testing.assert_array_equal(risk.loadings, full.loadings[:, at])
    assert len(estimates) == 1  # every universe of the snapshot shares one estimate
    assert snapshot.risk_model(universes[0]) is snapshot.risk_model(list(universes[0]))  # remembered by content


def test_a_snapshot_of_other_prices_has_its_own_model(market):
    from dataclasses import replace

    first = MarketSnapshot.of(market)
    moved = market.prices.copy()
    moved.iloc[-1, moved.columns.get_loc("AAPL")] *= 1.05
    changed = MarketSnapshot.of(replace(market, prices=moved))
    assert changed.risk is not first.risk
    assert not np.allclose(changed.risk.loadings, first.risk.loadings)


def test_the_frame_model_is_close_to_a_model_of_the_universe_alone(market):
    tickers = list(HOLDINGS) + MENU[:-1]
    own = universe_risk_model(market.prices, tickers, market.securities)
    shared = frame_model(market.prices, market.securities).slice(tickers)
    rng = np.random.default_rng(7)
    for _ in range(20):
        w = rng.dirichlet(np.ones(len(tickers)))
        assert shared.volatility(w) == pytest.approx(own.volatility(w), rel=0.08)


def test_tickers_outside_the_frame_get_a_model_of_their_own(market):
    risk = engine.risk.estimate_risk_model(market.prices, ["SPY", "NOTLISTED"], market.securities)
    assert risk.loadings.shape == (2, 2)  # exact two-asset form, not a slice
    assert any("NOTLISTED" in w for w in risk.warnings)


def _request(market, profile: str, cash: float) -> RebalanceRequest:
    last = market.prices.ffill().iloc[-1]
    positions = [
        Position(t, "Taxable" if i % 2 == 0 else "Roth", "taxable" if i % 2 == 0 else "roth_ira", float(s),
                 float(last[t]), cost_basis=5000.0)
        for i, (t, s) in enumerate(HOLDINGS.items())
    ]
    return RebalanceRequest(
        positions, [AccountCash("Taxable", "taxable", 2500.0)], MENU, market,
        Options(profile=profile, cash_change=cash), engine.load_views(),
    )


@pytest.mark.parametrize(("profile", "cash"), [("conservative", -4000.0), ("aggressive", 3000.0)])
def test_pruned_pair_scores_equal_the_full_ones(market, monkeypatch, profile, cash):
    seen: list[tuple] = []
    original = rounding.Repairer.repair

    def spy(self, q, relief, q_cont, max_steps):
        seen.append((self, q.copy(), relief.copy(), q_cont.copy()))
        return original(self, q, relief, q_cont, max_steps)

    monkeypatch.setattr(rounding.Repairer, "repair", spy)
    engine.rebalance(_request(market, profile, cash))
    assert seen
    captured, q, relief, q_cont = seen[0]
    repairer = ReferenceRepairer.of(captured)
    st = repairer._state(q, relief, q_cont)
    steps = repairer.steps(q, q_cont)
    pruned = repairer.pair_scores(st, steps)
    sectors, names = repairer._open_rows(st, steps)
    assert FINANCIALS in sectors and len(names) <= repairer.exp.names_matrix.shape[0]
    monkeypatch.setattr(
        ReferenceRepairer, "_open_rows",
        lambda self, st, steps: (np.arange(self.exp.sectors.shape[0]), np.arange(self.exp.names_matrix.shape[0])),
    )
    full = repairer.pair_scores(st, steps)
    np.testing.assert_array_equal(pruned[0], full[0])
    np.testing.assert_array_equal(pruned[1], full[1])


def test_the_exposure_catalog_gives_exactly_the_uncached_models(market):
    from dataclasses import fields

    from engine.exposures import ExposureCatalog, exposure_models

    catalog = ExposureCatalog(market)
    universes = [
        [*HOLDINGS, *MENU],
        ["SPY", "IVV", "QQQ", "NVDA", "ZZZZ", "BND", "GLD", "XLK", "AAPL"],  # a proxy, an unknown, non-equity
        [*MENU[::-1], "MSFT"],
        [],
    ]
    for tickers in universes:
        for threshold in (0.05, 0.12, 1.0):
            cached = exposure_models(tickers, market, name_threshold=threshold, catalog=catalog)
            for ours, theirs in zip(cached, exposure_models(tickers, market, name_threshold=threshold), strict=True):
                for f in fields(ours):
                    a, b = getattr(ours, f.name), getattr(theirs, f.name)
                    if isinstance(a, np.ndarray):
                        assert a.shape == b.shape and np.array_equal(a, b), f.name
                    else:
                        assert a == b, f.name
    assert len(catalog._entries) == len({t for u in universes for t in u})  # each ticker classified once
