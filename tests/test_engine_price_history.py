"""Per-frame tables (engine.backtest.PriceHistory): the backtest and the historical stress tests of a portfolio
on a whole-market frame shared by many portfolios equal, exactly, the same computed on its own columns alone."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.backtest import (
    REBALANCE_CHOICES,
    GrowthPaths,
    PriceHistory,
    WeightsError,
    _growth_path,
    _metrics,
    _rebalance_days,
    backtest,
    weights_normalise,
)
from engine.scenarios import historical_stress, load_scenarios
from engine.types import CASH

PRICES_PATH = Path(__file__).resolve().parent.parent / "data" / "market" / "prices_daily.csv.gz"
ABSENT = "NOPRICE"  # a ticker the frame does not have


@pytest.fixture(scope="module")
def real_prices() -> pd.DataFrame:
    return pd.read_csv(PRICES_PATH, index_col="date", parse_dates=True)


def _weights(rng: np.random.Generator, tickers: list[str]) -> dict[str, float]:
    raw = rng.random(len(tickers) + 1)
    raw /= raw.sum()
    return {**dict(zip(tickers, raw[:-1].tolist(), strict=True)), CASH: float(raw[-1])}


def _portfolios(prices: pd.DataFrame, count: int, seed: int) -> list[tuple[dict[str, float], dict[str, float]]]:
    """Random before/after weights: a dozen to 60 tickers, some listed late, some absent from the frame."""
    rng = np.random.default_rng(seed)
    columns = list(prices.columns)
    late = [c for c in columns if pd.isna(prices[c].iloc[len(prices) // 2])]  # no price in mid-history
    portfolios = []
    for i in range(count):
        size = int(rng.integers(12, 61))
        picked = sorted(set(rng.choice(columns, size=size, replace=False).tolist()) | set(late[i % len(late):][:2]))
        before = _weights(rng, picked[: len(picked) // 2] + ([ABSENT] if i % 3 == 0 else []))
        after = _weights(rng, picked[len(picked) // 3 :])
        portfolios.append((before, after))
    return portfolios


def _own_columns(prices: pd.DataFrame, *weights: dict[str, float]) -> pd.DataFrame:
    """A new frame of the columns the weights hold (a history of its own)."""
    held = {t for w in weights for t in w}
    return prices[[c for c in prices.columns if c in held]].copy()


def _direct_figures(prices: pd.DataFrame, weights: dict[str, float], result: dict, rebalance: str) -> dict:
    """The figures of one weight set straight from the frame: the held columns over the result's window,
    filled forward by pandas, one growth path (the computation before per-frame tables)."""
    tickers = sorted(t for t in weights if t in prices.columns)
    window = prices.loc[: result["end"], tickers].ffill().loc[result["start"] :]
    vector = np.array([weights[t] for t in tickers]) / sum(weights.values())
    values = _growth_path(
        weights=vector, prices=window.to_numpy(), rebalance_days=_rebalance_days(window.index, rebalance)
    )
    return _metrics(values=values, days=(window.index[-1] - window.index[0]).days)[0]


@pytest.mark.parametrize("rebalance", REBALANCE_CHOICES)
def test_the_backtest_on_the_shared_frame_equals_the_frame_of_the_held_columns(real_prices, rebalance):
    assert any(pd.isna(real_prices.iloc[len(real_prices) // 2]))  # the data has late listings to exercise
    for before, after in _portfolios(real_prices, 6, seed=len(rebalance)):
        for window in ({"years": 3.0}, {"start": dt.date(2019, 6, 3), "end": dt.date(2021, 3, 31)}):
            kwargs = {"rebalance": rebalance, "curve_every": "monthly", **window}
            shared = backtest(before=before, after=after, prices=real_prices, **kwargs)
            own = backtest(before=before, after=after, prices=_own_columns(real_prices, before, after), **kwargs)
            assert shared == own
            for label, weights in (("before", before), ("after", after)):
                assert shared[label] == _direct_figures(real_prices, weights, shared, rebalance)
            assert backtest(before=before, after=after, prices=real_prices, **kwargs) == shared  # tables reused


def test_partial_histories_are_named_the_same_on_the_shared_frame(real_prices):
    before = {"SPY": 0.5, "GEV": 0.2, ABSENT: 0.1, CASH: 0.2}  # GEV lists 2024-03-27
    after = {"SPY": 1.0}
    kwargs = {"start": dt.date(2023, 1, 3), "end": dt.date(2025, 6, 30)}
    shared = backtest(before=before, after=after, prices=real_prices, **kwargs)
    assert "GEV (from 2024-03-27)" in shared["note"] and f"No prices at all for {ABSENT}" in shared["note"]
    assert shared == backtest(before=before, after=after, prices=_own_columns(real_prices, before, after), **kwargs)


def test_historical_stress_on_the_shared_frame_equals_the_frame_of_the_held_columns(real_prices):
    episodes = [
        *load_scenarios()["historical"],
        {"name": "weekend", "start": "2021-07-03", "end": "2021-09-05"},  # both dates moved to a trading day
        {"name": "too late", "start": "2025-12-01", "end": "2026-02-01"},  # not covered
    ]
    for before, after in _portfolios(real_prices, 12, seed=11):
        shared = historical_stress(before=before, after=after, prices=real_prices, episodes=episodes)
        own = historical_stress(
            before=before, after=after, prices=_own_columns(real_prices, before, after), episodes=episodes
        )
        assert shared == own
        assert any(item["missing"] for item in shared)
        assert historical_stress(before=before, after=after, prices=real_prices, episodes=episodes) == shared


@pytest.mark.parametrize("rebalance", REBALANCE_CHOICES)
def test_picked_growth_paths_equal_paths_built_on_those_columns_bit_for_bit(real_prices, rebalance):
    history = PriceHistory(real_prices)
    window = slice(800, 1400)
    prices = history.filled[window]
    flags = _rebalance_days(history.index[window], rebalance)
    paths = GrowthPaths.build(prices=prices, rebalance_days=flags)
    rng = np.random.default_rng(3)
    for _ in range(5):
        at = np.sort(rng.choice(prices.shape[1], size=40, replace=False))
        weights = rng.random(40) / 45
        picked = paths.columns(at).values(weights)
        direct = _growth_path(weights=weights, prices=np.ascontiguousarray(prices[:, at]), rebalance_days=flags)
        assert np.array_equal(picked, direct)


def test_the_forward_fill_is_the_frame_filled_by_pandas(real_prices):
    np.testing.assert_array_equal(PriceHistory(real_prices).filled, real_prices.ffill().to_numpy())


def test_a_snapshot_builds_its_history_once_and_backtests_read_it(real_prices):
    from engine.market import MarketSnapshot
    from engine.types import MarketData

    market = MarketData(prices=real_prices, securities={}, etf_sectors={}, etf_holdings={},
                        as_of=real_prices.index[-1].date())
    snapshot = MarketSnapshot.of(market)
    assert snapshot.history is snapshot.history
    assert list(snapshot.history.positions) == list(real_prices.columns)
    before, after = _portfolios(real_prices, 1, seed=3)[0]
    assert backtest(before=before, after=after, history=snapshot.history) == backtest(
        before=before, after=after, prices=real_prices)


def test_histories_answer_trading_days_and_tables_once(real_prices):
    history = PriceHistory(real_prices, keep=2)
    assert history.last_trading_day(dt.date(2021, 7, 4)) == pd.Timestamp("2021-07-02")
    assert history.last_trading_day(dt.date(2018, 1, 1)) is None
    calls = []
    assert history.memo(("a",), lambda: calls.append("a") or 1) == 1
    assert history.memo(("a",), lambda: calls.append("a") or 2) == 1
    history.memo(("b",), lambda: 2)
    history.memo(("c",), lambda: 3)  # the oldest, ("a",), goes
    assert history.memo(("a",), lambda: calls.append("a") or 4) == 4 and calls == ["a", "a"]


def test_threads_sharing_a_new_frame_get_the_sequential_figures(real_prices):
    portfolios = _portfolios(real_prices, 8, seed=5)
    frame = real_prices.copy()
    expected = [backtest(before=b, after=a, prices=real_prices) for b, a in portfolios]
    results: dict[int, dict] = {}

    def run(i: int) -> None:
        before, after = portfolios[i]
        results[i] = backtest(before=before, after=after, prices=frame)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(portfolios))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [results[i] for i in range(len(portfolios))] == expected


def test_weights_of_any_numeric_type_are_accepted_and_others_refused():
    assert weights_normalise(weights={"A": np.float32(0.5), "B": np.int64(0), CASH: 0.5}, label="before") == {
        "A": 0.5,
        CASH: 0.5,
    }
    assert weights_normalise(weights={"A": 1}, label="before") == {"A": 1.0}
    for bad in (True, "0.5", None):
        with pytest.raises(WeightsError, match="non-numeric"):
            weights_normalise(weights={"A": bad, CASH: 0.5}, label="before")
