"""Backtest of before/after weights: hand-computed growth paths, rebalancing rules, partial histories, real prices."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.backtest import WeightsError, backtest
from engine.types import CASH

PRICES_PATH = Path(__file__).resolve().parent.parent / "data" / "market" / "prices_daily.csv.gz"
NAN = float("nan")
DATES = pd.to_datetime(["2024-01-29", "2024-01-30", "2024-01-31", "2024-02-01", "2024-02-02", "2024-02-05"])
A = np.array([100.0, 110.0, 99.0, 105.0, 100.0, 120.0])
B = np.array([50.0, 50.0, 55.0, 54.0, 56.0, 56.0])
C = np.array([NAN, NAN, 20.0, 22.0, 21.0, 25.0])  # lists on 01-31
WINDOW = {"start": dt.date(2024, 1, 29), "end": dt.date(2024, 2, 5)}


@pytest.fixture
def prices() -> pd.DataFrame:
    return pd.DataFrame({"A": A, "B": B, "C": C}, index=DATES)


@pytest.fixture(scope="module")
def real_prices() -> pd.DataFrame:
    return pd.read_csv(PRICES_PATH, index_col="date", parse_dates=True)


def _expected(growth: np.ndarray, days: int) -> dict[str, float]:
    """Figures computed straight from a growth path (independent of the engine)."""
    daily = [growth[t] / growth[t - 1] - 1 for t in range(1, len(growth))]
    mean = sum(daily) / len(daily)
    variance = sum((r - mean) ** 2 for r in daily) / (len(daily) - 1)
    peak, worst = growth[0], 0.0
    for value in growth:
        peak = max(peak, value)
        worst = min(worst, value / peak - 1)
    return {
        "return_annual": growth[-1] ** (365.25 / days) - 1,
        "volatility": math.sqrt(variance) * math.sqrt(252),
        "max_drawdown": worst,
    }


def _assert_figures(actual: dict, expected: dict) -> None:
    for key, value in expected.items():
        assert actual[key] == pytest.approx(value, abs=1e-6), key


def test_buy_and_hold_follows_the_price_relatives(prices):
    before = {"A": 0.5, "B": 0.3, CASH: 0.2}
    result = backtest(before=before, after={"B": 1.0}, prices=prices, rebalance="none", **WINDOW)
    growth_before = 0.5 * A / A[0] + 0.3 * B / B[0] + 0.2
    growth_after = B / B[0]
    assert (result["start"], result["end"], result["rebalance"]) == ("2024-01-29", "2024-02-05", "none")
    _assert_figures(result["before"], _expected(growth_before, days=7))
    _assert_figures(result["after"], _expected(growth_after, days=7))
    assert result["after"]["max_drawdown"] == pytest.approx(54 / 55 - 1, abs=1e-6)


def test_daily_rebalancing_compounds_the_weighted_daily_returns(prices):
    weights = {"A": 0.5, "B": 0.3, CASH: 0.2}
    result = backtest(before=weights, after=weights, prices=prices, rebalance="daily", **WINDOW)
    growth = [1.0]
    for t in range(1, len(A)):
        growth.append(growth[-1] * (1 + 0.5 * (A[t] / A[t - 1] - 1) + 0.3 * (B[t] / B[t - 1] - 1)))
    _assert_figures(result["before"], _expected(np.array(growth), days=7))
    assert result["before"] == result["after"]


def test_monthly_rebalancing_resets_weights_at_the_last_close_of_the_month(prices):
    weights = {"A": 0.5, "B": 0.3, CASH: 0.2}
    result = backtest(before=weights, after=weights, prices=prices, rebalance="monthly", **WINDOW)
    # Buy-and-hold to 01-31 (index 2), reset to 50/30/20 at that close, buy-and-hold again.
    january = 0.5 * A[:3] / A[0] + 0.3 * B[:3] / B[0] + 0.2
    february = january[-1] * (0.5 * A[3:] / A[2] + 0.3 * B[3:] / B[2] + 0.2)
    growth = np.concatenate([january, february])
    _assert_figures(result["before"], _expected(growth, days=7))
    no_rebalance = backtest(before=weights, after=weights, prices=prices, rebalance="none", **WINDOW)
    assert no_rebalance["before"]["return_annual"] != result["before"]["return_annual"]


def test_a_ticker_listed_mid_window_is_held_as_cash_until_it_has_a_price(prices):
    weights = {"A": 0.5, "C": 0.5}
    daily = backtest(before=weights, after=weights, prices=prices, rebalance="daily", **WINDOW)
    growth = [1.0]
    for t in range(1, len(A)):
        r_a = A[t] / A[t - 1] - 1
        r_c = C[t] / C[t - 1] - 1 if not math.isnan(C[t - 1]) else 0.0  # C bought at its first close
        growth.append(growth[-1] * (1 + 0.5 * r_a + 0.5 * r_c))
    _assert_figures(daily["before"], _expected(np.array(growth), days=7))
    assert "C (from 2024-01-31)" in daily["note"] and "held as cash" in daily["note"]

    held = backtest(before=weights, after=weights, prices=prices, rebalance="none", **WINDOW)
    _assert_figures(held["before"], _expected(0.5 * A / A[0] + 0.5, days=7))
    assert "for the whole window" in held["note"]


def test_a_ticker_without_any_prices_is_held_as_cash_and_named(prices):
    result = backtest(before={"A": 0.6, "NOPE": 0.4}, after={CASH: 1.0}, prices=prices, rebalance="none", **WINDOW)
    _assert_figures(result["before"], _expected(0.6 * A / A[0] + 0.4, days=7))
    assert "No prices at all for NOPE" in result["note"]


def test_cash_only_is_flat(prices):
    result = backtest(before={CASH: 1.0}, after={CASH: 1.0}, prices=prices, **WINDOW)
    assert result["before"] == {"return_annual": 0.0, "volatility": 0.0, "max_drawdown": 0.0}
    assert set(result["curve"]["before"]) == {1.0}


def test_the_curve_samples_weekly_closes_and_the_note_says_hypothetical(prices):
    result = backtest(before={"A": 1.0}, after={"B": 1.0}, prices=prices, rebalance="none", **WINDOW)
    curve = result["curve"]
    # First close, then the last close of each calendar week: Fri 02-02 and Mon 02-05.
    assert curve["dates"] == ["2024-01-29", "2024-02-02", "2024-02-05"]
    assert curve["before"] == pytest.approx([1.0, 1.0, 1.2], abs=1e-9)
    assert curve["after"] == pytest.approx([1.0, 1.12, 1.12], abs=1e-9)
    assert result["note"].startswith("Hypothetical")
    assert "knowledge of this history" in result["note"]
    json.dumps(result, allow_nan=False)


def test_bad_arguments_are_refused(prices):
    with pytest.raises(ValueError, match="rebalance must be one of"):
        backtest(before={"A": 1.0}, after={"A": 1.0}, prices=prices, rebalance="weekly")
    with pytest.raises(ValueError, match="must be before its end"):
        backtest(before={"A": 1.0}, after={"A": 1.0}, prices=prices, start=dt.date(2024, 2, 5), end=dt.date(2024, 2, 1))
    with pytest.raises(WeightsError, match=r"before weights sum to 1\.500000"):
        backtest(before={"A": 1.0, "B": 0.5}, after={"A": 1.0}, prices=prices)


def test_too_short_or_uncovered_windows_are_reported_not_crashed(prices):
    short = backtest(
        before={"A": 1.0}, after={"A": 1.0}, prices=prices, start=dt.date(2024, 1, 1), end=dt.date(2024, 1, 20)
    )
    assert short["before"] == {"return_annual": None, "volatility": None, "max_drawdown": None}
    assert "not computed" in short["note"]
    json.dumps(short, allow_nan=False)
    early = backtest(before={"A": 1.0}, after={"A": 1.0}, prices=prices, start=dt.date(2023, 6, 1))
    assert early["start"] == "2024-01-29" and "Prices begin on 2024-01-29" in early["note"]


def test_the_default_window_is_the_last_three_years():
    dates = pd.bdate_range("2019-06-03", "2023-12-29")
    growth = np.linspace(100.0, 200.0, len(dates))
    result = backtest(before={"X": 1.0}, after={CASH: 1.0}, prices=pd.DataFrame({"X": growth}, index=dates))
    start = dt.date.fromisoformat(result["start"])
    assert result["end"] == "2023-12-29"
    assert 1093 <= (dt.date(2023, 12, 29) - start).days <= 1098
    first = growth[list(dates).index(pd.Timestamp(start))]
    assert result["before"]["return_annual"] == pytest.approx(
        (200.0 / first) ** (365.25 / (dt.date(2023, 12, 29) - start).days) - 1, abs=1e-6
    )
    assert result["before"]["max_drawdown"] == 0.0


def test_spy_on_the_bundled_prices_matches_its_own_figures(real_prices):
    spy = real_prices["SPY"]
    result = backtest(before={"SPY": 1.0}, after={"SPY": 0.6, "BND": 0.4}, prices=real_prices, rebalance="daily")
    start, end = pd.Timestamp(result["start"]), pd.Timestamp(result["end"])
    window = spy.loc[start:end]
    days = (end - start).days
    assert result["end"] == "2025-12-31"
    assert result["before"]["return_annual"] == pytest.approx(
        (window.iloc[-1] / window.iloc[0]) ** (365.25 / days) - 1, abs=1e-6
    )
    assert result["before"]["volatility"] == pytest.approx(
        window.pct_change().dropna().std() * math.sqrt(252), abs=1e-6
    )
    assert 0.10 < result["before"]["return_annual"] < 0.35
    assert result["after"]["volatility"] < result["before"]["volatility"]


def test_partial_histories_and_gaps_on_the_bundled_prices_stay_json_safe(real_prices):
    before = {"QQQ": 0.5, "NVDA": 0.2, "FISV": 0.1, CASH: 0.2}  # FISV has a one-day gap in 2025-11
    after = {"RSP": 0.4, "XLF": 0.2, "IWM": 0.2, "GEV": 0.1, CASH: 0.1}  # GEV lists 2024-03-27
    result = backtest(before=before, after=after, prices=real_prices)
    for side in ("before", "after"):
        assert all(v is not None and math.isfinite(v) for v in result[side].values())
    assert "GEV (from 2024-03-27)" in result["note"]
    assert 150 <= len(result["curve"]["dates"]) <= 160
    assert result["curve"]["dates"][0] == result["start"] and result["curve"]["dates"][-1] == result["end"]
    json.dumps(result, allow_nan=False)


def _growth_by_day(weights: np.ndarray, prices: np.ndarray, rebalance_days: np.ndarray) -> np.ndarray:
    """Reference growth path, one close at a time (the rules of the module docstring, written as a loop)."""
    priced = ~np.isnan(prices)
    holdings = np.where(priced[0], weights, 0.0)
    cash = 1.0 - holdings.sum()
    values = [1.0]
    for t in range(1, len(prices)):
        holdings = np.where(priced[t - 1], holdings * prices[t] / np.where(priced[t - 1], prices[t - 1], 1.0), 0.0)
        total = holdings.sum() + cash
        values.append(total)
        if rebalance_days[t]:
            holdings = np.where(priced[t], weights * total, 0.0)
            cash = total - holdings.sum()
    return np.array(values)


@pytest.mark.parametrize("rebalance", ["daily", "monthly", "none"])
def test_the_growth_path_matches_a_day_by_day_replay_with_late_listings(rebalance):
    from engine.backtest import _growth_path, _rebalance_days

    rng = np.random.default_rng(7)
    dates = pd.bdate_range("2023-01-02", periods=180)
    prices = np.exp(np.cumsum(rng.normal(0.0, 0.02, (len(dates), 5)), axis=0))
    prices[:40, 1] = NAN  # lists mid-February
    prices[:150, 3] = NAN  # lists in late July
    weights = np.array([0.3, 0.2, 0.1, 0.25, 0.05])  # 10% cash
    flags = _rebalance_days(dates, rebalance)
    expected = _growth_by_day(weights, prices, flags)
    assert _growth_path(weights=weights, prices=prices, rebalance_days=flags) == pytest.approx(expected, rel=1e-12)


def test_a_monthly_curve_samples_month_ends_of_the_same_path(real_prices):
    weights = {"SPY": 0.6, "BND": 0.3, CASH: 0.1}
    weekly = backtest(before=weights, after=weights, prices=real_prices)
    monthly = backtest(before=weights, after=weights, prices=real_prices, curve_every="monthly")
    assert monthly["after"] == weekly["after"]  # figures use every close either way
    dates = pd.DatetimeIndex(monthly["curve"]["dates"])
    assert dates[0].isoformat()[:10] == monthly["start"] and monthly["curve"]["dates"][-1] == monthly["end"]
    assert 35 <= len(dates) <= 39  # first close + 36 or 37 month-ends over 3 years
    assert len(set(dates[1:].to_period("M"))) == len(dates) - 1  # one point per month after the first close
    shared = dict(zip(weekly["curve"]["dates"], weekly["curve"]["before"], strict=True))
    common = [(d, v) for d, v in zip(monthly["curve"]["dates"], monthly["curve"]["before"], strict=True) if d in shared]
    assert len(common) >= 10 and all(shared[d] == v for d, v in common)
    with pytest.raises(ValueError, match="curve_every"):
        backtest(before=weights, after=weights, prices=real_prices, curve_every="daily")
