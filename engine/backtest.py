"""Hypothetical backtest of the current (``before``) and the proposed (``after``) weights.

Rules (the same for both weight sets):

- Weights are ``{ticker: fraction of total value}`` with ``CASH`` included; cash earns 0.
  They must be finite and sum to 1 within ``WEIGHT_SUM_TOLERANCE`` (rounding noise, which is
  renormalised away); anything further from 1 is refused with ``WeightsError`` rather than guessed at.
  Zero weights are dropped. Negative weights are accepted as given (a short or borrowed position).
- Window: ``end`` defaults to the last price date, ``start`` to ``end - years`` (calendar years).
  Both are moved to the last trading day on or before them; a start before the first price date
  is moved to the first price date, and the note says so.
- Prices: adjusted closes (dividends reinvested). A gap after a ticker's first price is carried
  forward (the price stays flat). A ticker with no price yet is held as cash until it has one and
  the next rebalance buys it (with ``rebalance="none"``: held as cash for the whole window); a
  ticker absent from ``prices`` is held as cash throughout. The note names every such ticker.
- Rebalancing: ``"daily"`` back to the target weights at every close, ``"monthly"`` at the last close
  of each calendar month, ``"none"`` buy-and-hold from the first close.
- Figures: ``return_annual`` is geometric, ``growth ** (365.25 / calendar days) - 1``;
  ``volatility`` is the sample standard deviation (ddof=1) of daily portfolio returns times
  ``sqrt(252)``; ``max_drawdown`` is ``min(growth / running peak - 1)`` (<= 0). All fractions
  (0.21 = 21%), rounded to 6 dp; a figure that cannot be computed is ``None`` and the note says why.

The result is hypothetical: the proposal was chosen with knowledge of this very history, and the
note says so in plain words.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from engine.types import CASH

REBALANCE_CHOICES = ("daily", "monthly", "none")
CURVE_CHOICES = {"weekly": "W", "monthly": "M"}  # curve sampling: last close of each calendar week / month
WEIGHT_SUM_TOLERANCE = 0.01  # |sum(weights) - 1| above this is refused, below it renormalised
TRADING_DAYS_PER_YEAR = 252
DAYS_PER_YEAR = 365.25


class WeightsError(ValueError):
    """Weights that cannot be used: empty, not finite, or not summing to 1."""


def weights_normalise(*, weights: Mapping[str, float], label: str) -> dict[str, float]:
    """Check and renormalise one weight set.

    weights: {ticker: fraction of total value}, ``CASH`` included. label: "before"/"after" (for messages).
    Returns {ticker: fraction} without zero entries, summing to exactly 1.
    Raises WeightsError when a weight is not a finite number, when all weights are zero, or when the
    sum differs from 1 by more than ``WEIGHT_SUM_TOLERANCE``.
    """
    cleaned: dict[str, float] = {}
    for ticker, raw in weights.items():
        if isinstance(raw, bool) or not isinstance(raw, int | float | np.floating | np.integer):
            raise WeightsError(f"{label} weights: {ticker!r} has a non-numeric weight {raw!r}")
        value = float(raw)
        if not math.isfinite(value):
            raise WeightsError(f"{label} weights: {ticker!r} has a weight that is not finite ({value})")
        if value != 0.0:
            cleaned[str(ticker)] = cleaned.get(str(ticker), 0.0) + value
    total = sum(cleaned.values())
    if not cleaned:
        raise WeightsError(f"{label} weights are empty or all zero")
    if abs(total - 1.0) > WEIGHT_SUM_TOLERANCE:
        raise WeightsError(
            f"{label} weights sum to {total:.6f}, not 1 (tolerance {WEIGHT_SUM_TOLERANCE}); "
            f"weights are fractions of total value with {CASH} included"
        )
    return {ticker: value / total for ticker, value in cleaned.items()}


def prices_prepare(prices: pd.DataFrame) -> pd.DataFrame:
    """A float copy of ``prices`` with a sorted, de-duplicated DatetimeIndex (dates at midnight); a frame
    already in that shape comes back as one float block that may share its data (callers only read it).

    prices: DataFrame indexed by date (datetime64, ``datetime.date`` or ISO strings), one column per
    ticker, adjusted closes in USD, NaN where there is no price. The input is not modified.
    """
    index = prices.index
    if (
        isinstance(index, pd.DatetimeIndex)
        and index.tz is None
        and index.is_monotonic_increasing
        and index.is_unique
        and all(dtype == np.float64 for dtype in prices.dtypes)
        and all(isinstance(c, str) for c in prices.columns)
        and (index.normalize() == index).all()
    ):
        # already in shape: one float block over the same data (no copy when it is one block already);
        # a frame of many column blocks makes every later row lookup and fill slow
        return pd.DataFrame(prices.to_numpy(dtype=float), index=index, columns=prices.columns)
    frame = prices.copy()
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame.index)).normalize()
    frame.columns = [str(c) for c in frame.columns]
    frame = frame[~frame.index.duplicated(keep="last")].sort_index()
    return frame.astype(float)


def last_trading_day(index: pd.DatetimeIndex, day: dt.date) -> pd.Timestamp | None:
    """The last date in ``index`` (sorted) on or before ``day``; None if every date is later."""
    position = index.searchsorted(pd.Timestamp(day), side="right") - 1
    return None if position < 0 else index[position]


def as_date(value: dt.date | str) -> dt.date:
    """``datetime.date`` from a date, a datetime or an ISO string (``YYYY-MM-DD``)."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))


def round6(value: float | None) -> float | None:
    """Round to 6 dp for JSON; None for None, NaN or infinity."""
    if value is None or not math.isfinite(float(value)):
        return None
    return round(float(value), 6)


def iso(day: pd.Timestamp | dt.date) -> str:
    return (day.date() if isinstance(day, pd.Timestamp) else day).isoformat()


def _rebalance_days(dates: pd.DatetimeIndex, rebalance: str) -> np.ndarray:
    """Boolean mask, shape (T,): True at the closes where weights are reset to target (day 0 excluded)."""
    flags = np.zeros(len(dates), dtype=bool)
    if rebalance == "daily":
        flags[1:] = True
    elif rebalance == "monthly":
        months = dates.year * 12 + dates.month
        flags[:-1] = months[:-1] != months[1:]  # last close of each calendar month
        flags[0] = False
    return flags


def _growth_path(*, weights: np.ndarray, prices: np.ndarray, rebalance_days: np.ndarray) -> np.ndarray:
    """Value of a portfolio worth 1 at the first close, shape (T,).

    weights: target fractions per ticker, shape (n,); the rest (1 - sum) is cash at 0% return.
    prices: adjusted closes, shape (T, n), NaN only before a ticker's first price (gaps already filled).
    rebalance_days: shape (T,), True where holdings are reset to target at that close.

    Between two resets nothing trades, so the value at close t of the period that began at close a is
    V(a) * (1 - sum(w') + sum(w' * p(t) / p(a))) with w' the weights of the tickers priced at a (the
    others are held as cash until a reset finds a price): no loop over days, only a product over resets.
    """
    T = len(prices)
    values = np.ones(T)
    if T < 2:
        return values
    priced = ~np.isnan(prices)
    safe = np.where(priced, prices, 1.0)
    anchors = np.flatnonzero(rebalance_days[1:]) + 1  # resets after the first close
    anchors = np.concatenate([[0], anchors[anchors < T]])
    period = np.searchsorted(anchors, np.arange(1, T), side="left") - 1  # the reset each day t >= 1 grows from
    start = anchors[period]  # (T-1,)
    held = np.where(priced[anchors], weights, 0.0)  # (resets, n) weights held at each reset
    growth = 1.0 - held.sum(axis=1)[period] + np.einsum("tn,tn->t", safe[1:] / safe[start], held[period])
    # value at each reset: the product of the growth of the periods that ended there
    anchor_values = np.cumprod(np.concatenate([[1.0], growth[anchors[1:] - 1]]))
    values[1:] = anchor_values[period] * growth
    return values


def _metrics(*, values: np.ndarray, days: int) -> tuple[dict[str, float | None], list[str]]:
    """Annual return (geometric), annualised volatility and max drawdown of a growth path, shape (T,)."""
    notes: list[str] = []
    final = float(values[-1])
    if final > 0 and days > 0:
        return_annual: float | None = final ** (DAYS_PER_YEAR / days) - 1.0
    else:
        return_annual = None
        notes.append("the annual return is undefined because the portfolio value fell to zero or below")
    daily = values[1:] / values[:-1] - 1.0
    volatility = float(np.std(daily, ddof=1)) * math.sqrt(TRADING_DAYS_PER_YEAR) if len(daily) >= 2 else None
    if volatility is None:
        notes.append("volatility needs at least two daily returns")
    peaks = np.maximum.accumulate(values)
    max_drawdown = float(np.min(values / peaks - 1.0))
    figures = {
        "return_annual": round6(return_annual),
        "volatility": round6(volatility),
        "max_drawdown": round6(max_drawdown),
    }
    return figures, notes


def _curve_samples(dates: pd.DatetimeIndex, every: str = "weekly") -> np.ndarray:
    """Positions of the first close and of the last close of every calendar week (or month), ascending."""
    periods = dates.to_period(CURVE_CHOICES[every])
    last_of_period = np.flatnonzero(np.append(periods[1:] != periods[:-1], True))
    return np.unique(np.concatenate([[0], last_of_period]))


def _empty_result(*, start: str, end: str, rebalance: str, note: str) -> dict[str, Any]:
    blank = {"return_annual": None, "volatility": None, "max_drawdown": None}
    return {
        "start": start,
        "end": end,
        "rebalance": rebalance,
        "before": dict(blank),
        "after": dict(blank),
        "curve": {"dates": [], "before": [], "after": []},
        "note": note,
    }


def backtest(
    *,
    before: Mapping[str, float],
    after: Mapping[str, float],
    prices: pd.DataFrame,
    start: dt.date | None = None,
    end: dt.date | None = None,
    years: float = 3.0,
    rebalance: str = "monthly",
    curve_every: str = "weekly",
) -> dict[str, Any]:
    """Replay the ``before`` and ``after`` weights over past prices (see the module docstring for the rules).

    before/after: {ticker: fraction of total value}, ``CASH`` included.
    prices: DataFrame indexed by date, one column per ticker, adjusted closes in USD, NaN = no price.
    start/end: the window (default: the ``years`` calendar years up to the last price date).
    rebalance: "monthly" | "daily" | "none".
    curve_every: "weekly" | "monthly": the curve's points (first close, then each week's or month's last close).
    Returns a JSON-safe dict: ``{"start", "end", "rebalance", "before": {"return_annual", "volatility",
    "max_drawdown"}, "after": {...}, "curve": {"dates": [ISO, weekly or monthly], "before": [growth of 1],
    "after": [...]}, "note"}``; dates are the trading days actually used.
    Raises WeightsError for unusable weights, ValueError for an unknown ``rebalance``, a non-positive
    ``years`` or ``start`` not before ``end``.
    """
    if rebalance not in REBALANCE_CHOICES:
        raise ValueError(f"rebalance must be one of {', '.join(REBALANCE_CHOICES)}, not {rebalance!r}")
    if curve_every not in CURVE_CHOICES:
        raise ValueError(f"curve_every must be one of {', '.join(CURVE_CHOICES)}, not {curve_every!r}")
    if start is None and not years > 0:
        raise ValueError(f"years must be positive, not {years!r}")
    weights_before = weights_normalise(weights=before, label="before")
    weights_after = weights_normalise(weights=after, label="after")
    frame = prices_prepare(prices)
    if frame.empty:
        return _empty_result(
            start=iso(start) if start else "",
            end=iso(end) if end else "",
            rebalance=rebalance,
            note="Hypothetical backtest not computed: there are no prices.",
        )

    end_requested = as_date(end) if end is not None else frame.index[-1].date()
    if start is not None:
        start_requested = as_date(start)
    else:
        start_requested = end_requested - dt.timedelta(days=round(years * DAYS_PER_YEAR))
    if start_requested >= end_requested:
        raise ValueError(f"backtest start {start_requested} must be before its end {end_requested}")

    notes: list[str] = []
    last_day = last_trading_day(frame.index, end_requested)
    first_day = last_trading_day(frame.index, start_requested)
    if first_day is None:
        first_day = frame.index[0]
        notes.append(f"Prices begin on {iso(first_day)}, after the requested start {start_requested}.")
    if last_day is not None and last_day.date() < end_requested and end is not None:
        notes.append(f"Prices end on {iso(last_day)}, before the requested end {end_requested}.")
    if last_day is None or last_day <= first_day:
        return _empty_result(
            start=start_requested.isoformat(),
            end=end_requested.isoformat(),
            rebalance=rebalance,
            note="Hypothetical backtest not computed: fewer than two trading days in the window. " + " ".join(notes),
        )

    held = sorted({t for w in (weights_before, weights_after) for t in w if t != CASH})
    absent = [t for t in held if t not in frame.columns]
    tickers = [t for t in held if t in frame.columns]
    window = frame.loc[:last_day, tickers].ffill().loc[first_day:]
    dates = pd.DatetimeIndex(window.index)
    price_matrix = window.to_numpy(dtype=float)

    first_missing = np.isnan(price_matrix[0]) if len(price_matrix) else np.zeros(len(tickers), dtype=bool)
    late: dict[str, pd.Timestamp | None] = {}
    for i in np.flatnonzero(first_missing):
        valid = np.flatnonzero(~np.isnan(price_matrix[:, i]))
        late[tickers[i]] = dates[valid[0]] if len(valid) else None
    if absent:
        notes.append(f"No prices at all for {', '.join(absent)}: their weight is held as cash throughout.")
    if late:
        listed = ", ".join(
            f"{t} (no prices in the window)" if day is None else f"{t} (from {iso(day)})" for t, day in late.items()
        )
        when = {
            "none": "for the whole window (buy-and-hold from the first day)",
            "monthly": "until the first month-end with a price, when it is bought",
            "daily": "until its first price, when it is bought",
        }[rebalance]
        notes.append(f"Partial history for {listed}: the weight is held as cash {when}.")

    flags = _rebalance_days(dates, rebalance)
    days = (dates[-1] - dates[0]).days
    result: dict[str, Any] = {
        "start": iso(dates[0]),
        "end": iso(dates[-1]),
        "rebalance": rebalance,
    }
    samples = _curve_samples(dates, curve_every)
    curve: dict[str, list[Any]] = {"dates": [iso(dates[i]) for i in samples]}
    for label, weights in (("before", weights_before), ("after", weights_after)):
        vector = np.array([weights.get(t, 0.0) for t in tickers], dtype=float)
        values = _growth_path(weights=vector, prices=price_matrix, rebalance_days=flags)
        figures, metric_notes = _metrics(values=values, days=days)
        result[label] = figures
        curve[label] = [round6(values[i]) for i in samples]
        notes.extend(f"{label}: {n}." for n in metric_notes)

    how = {
        "monthly": "rebalanced to the target weights at each month's last close",
        "daily": "rebalanced to the target weights at every close",
        "none": "bought at the first close and held without rebalancing",
    }[rebalance]
    result["curve"] = curve
    result["note"] = " ".join(
        [
            f"Hypothetical: how the current and the proposed weights would have done from {result['start']} "
            f"to {result['end']}, {how}. The proposal was chosen with knowledge of this history (hindsight), so "
            "these figures are not evidence that it will do better; past returns do not predict future ones. "
            "Prices are dividend-adjusted closes; cash earns 0%; trading costs and taxes are left out.",
            *notes,
        ]
    )
    return result
