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

Many portfolios, one frame: everything that depends on the prices only (the forward fill, each window's
rebalancing dates and every ticker's price relatives, each stress episode's price moves) is computed once per
frame by ``PriceHistory`` (held by the ``engine.market.MarketSnapshot`` of that market data, also used by
``engine.scenarios``) over all its columns; a portfolio picks out the columns it holds, with the same
arithmetic as on a frame of those columns alone. Pass ``history=`` (the snapshot's) for many portfolios;
``prices=`` builds a history for one call.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from engine.types import CASH

REBALANCE_CHOICES = ("daily", "monthly", "none")
CURVE_CHOICES = {"weekly": "W", "monthly": "M"}  # curve sampling: last close of each calendar week / month
WEIGHT_SUM_TOLERANCE = 0.01  # |sum(weights) - 1| above this is refused, below it renormalised
TRADING_DAYS_PER_YEAR = 252
DAYS_PER_YEAR = 365.25
MAX_REMEMBERED_DAYS = 256  # PriceHistory.last_trading_day answers kept per frame


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
        if type(raw) is not float and (  # plain floats (the usual case) skip the slower checks
            isinstance(raw, bool) or not isinstance(raw, int | float | np.floating | np.integer)
        ):
            raise WeightsError(f"{label} weights: {ticker!r} has a non-numeric weight {raw!r}")
        value = float(raw)
        if not math.isfinite(value):
            raise WeightsError(f"{label} weights: {ticker!r} has a weight that is not finite ({value})")
        if value != 0.0:
            key = ticker if type(ticker) is str else str(ticker)
            cleaned[key] = cleaned.get(key, 0.0) + value
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


def as_date(value: object) -> dt.date:
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


def round6_all(values: np.ndarray) -> list[float | None]:
    """``round6`` of each value of a 1-d array, as a list."""
    if np.isfinite(values).all():
        return [round(v, 6) for v in values.tolist()]
    return [round6(v) for v in values.tolist()]


def iso(day: pd.Timestamp | dt.date) -> str:
    return (day.date() if isinstance(day, pd.Timestamp) else day).isoformat()


class PriceHistory:
    """One price frame prepared once for the backtest and the historical stress tests.

    Holds the frame's dates, each ticker's column position, the closes filled forward and a small memo of
    derived tables (a backtest window's growth paths, an episode's price moves), each built once over every
    column, so that a portfolio only picks out the columns it holds. It keeps no reference to the frame it
    was built from. Thread-safe.
    """

    def __init__(self, prices: pd.DataFrame, *, keep: int = 8) -> None:
        frame = prices_prepare(prices)
        self.index = pd.DatetimeIndex(frame.index)
        self.positions: dict[str, int] = {str(t): j for j, t in enumerate(frame.columns)}
        self.empty = bool(frame.empty)
        # (dates, tickers): gaps after a ticker's first price carried forward. A fill is causal, so filling
        # the whole frame once equals filling up to any window's or episode's end.
        self.filled: np.ndarray = frame.ffill().to_numpy(dtype=float)
        self._keep = keep
        self._days: dict[dt.date, pd.Timestamp | None] = {}
        self._memo: OrderedDict[tuple, Any] = OrderedDict()
        self._lock = threading.RLock()

    def last_trading_day(self, day: dt.date) -> pd.Timestamp | None:
        """``last_trading_day`` of the frame's dates (remembered per day)."""
        try:
            return self._days[day]
        except KeyError:
            found = last_trading_day(self.index, day)
        if len(self._days) >= MAX_REMEMBERED_DAYS:
            self._days.clear()
        self._days[day] = found
        return found

    def at(self, tickers: Sequence[str]) -> np.ndarray:
        """Column positions of ``tickers`` (each must be a column), shape (len(tickers),)."""
        return np.array([self.positions[t] for t in tickers], dtype=np.intp)

    def memo(self, key: tuple, build: Callable[[], Any]) -> Any:
        """The table for ``key``, built with ``build()`` on first use (the last ``keep`` are remembered)."""
        with self._lock:
            if key in self._memo:
                self._memo.move_to_end(key)
                return self._memo[key]
            value = build()
            self._memo[key] = value
            while len(self._memo) > self._keep:
                self._memo.popitem(last=False)
            return value


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


@dataclass(frozen=True)
class GrowthPaths:
    """The part of the growth paths of n tickers over T closes that does not depend on the weights.

    Between two resets nothing trades, so the value at close t of the period that began at reset a is
    V(a) * (1 - sum(w') + sum(w' * p(t) / p(a))) with w' the weights of the tickers priced at a (the
    others are held as cash until a reset finds a price): no loop over days, only a product over resets.
    What is kept per ticker (priced at each reset, price relative to the period's reset) is what a
    portfolio needs; ``columns`` picks its tickers out of paths built once for a whole frame.
    """

    closes: int  # T
    period: np.ndarray  # (T-1,) the reset (index into the resets) each close t >= 1 grows from
    ends: np.ndarray  # (resets-1,) positions in the growth (closes 1..T-1) where a period ends at a reset
    priced: np.ndarray  # (resets, n) bool: the ticker has a price at the reset
    # (n, T-1) price at close t / price at the reset of its period, 1 while unpriced: one row per ticker,
    # so that picking a portfolio's tickers out of a whole frame reads a few contiguous rows
    relatives: np.ndarray

    @classmethod
    def build(cls, *, prices: np.ndarray, rebalance_days: np.ndarray) -> GrowthPaths:
        """prices: adjusted closes, shape (T, n), NaN only before a ticker's first price (gaps already filled).
        rebalance_days: shape (T,), True where holdings are reset to target at that close."""
        T, n = prices.shape
        if T < 2:
            nothing = np.zeros(0, dtype=np.intp)
            return cls(T, nothing, nothing, np.zeros((0, n), dtype=bool), np.zeros((n, 0)))
        priced = ~np.isnan(prices)
        safe = np.where(priced, prices, 1.0)
        anchors = np.flatnonzero(rebalance_days[1:]) + 1  # resets after the first close
        anchors = np.concatenate([[0], anchors[anchors < T]])
        period = np.searchsorted(anchors, np.arange(1, T), side="left") - 1
        relatives = safe[1:] / safe[anchors[period]]
        return cls(T, period, anchors[1:] - 1, priced[anchors], np.ascontiguousarray(relatives.T))

    @cached_property
    def by_close(self) -> np.ndarray:
        """``relatives`` one row per close, shape (T-1, n), C-ordered (computed once): the einsum in ``values``
        then sums each close's row in one contiguous run, the same order whatever frame the columns came from."""
        return np.ascontiguousarray(self.relatives.T)

    def columns(self, at: np.ndarray) -> GrowthPaths:
        """The paths of the tickers at positions ``at`` (shape (k,)), in that order."""
        return replace(self, priced=self.priced.take(at, axis=1), relatives=self.relatives.take(at, axis=0))

    def values(self, weights: np.ndarray) -> np.ndarray:
        """Value of a portfolio worth 1 at the first close, shape (T,).

        weights: target fractions per ticker, shape (n,); the rest (1 - sum) is cash at 0% return.
        """
        values = np.ones(self.closes)
        if self.closes < 2:
            return values
        held = np.where(self.priced, weights, 0.0)  # (resets, n) weights held at each reset
        growth = 1.0 - held.sum(axis=1)[self.period] + np.einsum("tn,tn->t", self.by_close, held[self.period])
        # value at each reset: the product of the growth of the periods that ended there
        anchor_values = np.cumprod(np.concatenate([[1.0], growth[self.ends]]))
        values[1:] = anchor_values[self.period] * growth
        return values


def _growth_path(*, weights: np.ndarray, prices: np.ndarray, rebalance_days: np.ndarray) -> np.ndarray:
    """Value of a portfolio worth 1 at the first close, shape (T,) (``GrowthPaths`` in one go).

    weights: target fractions per ticker, shape (n,); the rest (1 - sum) is cash at 0% return.
    prices: adjusted closes, shape (T, n), NaN only before a ticker's first price (gaps already filled).
    rebalance_days: shape (T,), True where holdings are reset to target at that close.
    """
    return GrowthPaths.build(prices=prices, rebalance_days=rebalance_days).values(weights)


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


@dataclass(frozen=True)
class _Window:
    """What a backtest window holds for every column of a frame (``_window``)."""

    dates: list[str]  # the closes used (ISO)
    days: int  # calendar days from the first to the last
    samples: np.ndarray  # positions of the curve's points
    sample_dates: list[str]  # their ISO dates
    first_price: np.ndarray  # (tickers,) position of each column's first price in the window, -1 if none
    paths: GrowthPaths  # every column


def _window(
    history: PriceHistory, first_day: pd.Timestamp, last_day: pd.Timestamp, rebalance: str, curve_every: str
) -> _Window:
    first, last = history.index.get_loc(first_day), history.index.get_loc(last_day)
    dates = history.index[first : last + 1]
    prices = history.filled[first : last + 1]
    priced = ~np.isnan(prices)
    first_price = np.where(priced.any(axis=0), priced.argmax(axis=0), -1)
    samples = _curve_samples(dates, curve_every)
    days = [iso(day) for day in dates]
    return _Window(
        dates=days,
        days=(dates[-1] - dates[0]).days,
        samples=samples,
        sample_dates=[days[i] for i in samples],
        first_price=first_price,
        paths=GrowthPaths.build(prices=prices, rebalance_days=_rebalance_days(dates, rebalance)),
    )


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


def history_of(prices: pd.DataFrame | None, history: PriceHistory | None) -> PriceHistory:
    """``history`` when given, else a ``PriceHistory`` of ``prices`` built for this call."""
    if history is not None:
        return history
    if prices is None:
        raise ValueError("pass prices= or history=")
    return PriceHistory(prices)


def _check_choices(*, rebalance: str, curve_every: str, start: dt.date | None, years: float) -> None:
    if rebalance not in REBALANCE_CHOICES:
        raise ValueError(f"rebalance must be one of {', '.join(REBALANCE_CHOICES)}, not {rebalance!r}")
    if curve_every not in CURVE_CHOICES:
        raise ValueError(f"curve_every must be one of {', '.join(CURVE_CHOICES)}, not {curve_every!r}")
    if start is None and not years > 0:
        raise ValueError(f"years must be positive, not {years!r}")


@dataclass(frozen=True)
class _Span:
    """The requested window and the trading days that stand for it (``None`` when there are fewer than two)."""

    start: dt.date
    end: dt.date
    first_day: pd.Timestamp | None
    last_day: pd.Timestamp | None
    notes: tuple[str, ...]


def _span(history: PriceHistory, start: dt.date | str | None, end: dt.date | str | None, years: float) -> _Span:
    end_requested = as_date(end) if end is not None else history.index[-1].date()
    if start is not None:
        start_requested = as_date(start)
    else:
        start_requested = end_requested - dt.timedelta(days=round(years * DAYS_PER_YEAR))
    if start_requested >= end_requested:
        raise ValueError(f"backtest start {start_requested} must be before its end {end_requested}")
    notes: list[str] = []
    last_day = history.last_trading_day(end_requested)
    first_day = history.last_trading_day(start_requested)
    if first_day is None:
        first_day = history.index[0]
        notes.append(f"Prices begin on {iso(first_day)}, after the requested start {start_requested}.")
    if last_day is not None and last_day.date() < end_requested and end is not None:
        notes.append(f"Prices end on {iso(last_day)}, before the requested end {end_requested}.")
    if last_day is None or last_day <= first_day:
        return _Span(start_requested, end_requested, None, None, tuple(notes))
    return _Span(start_requested, end_requested, first_day, last_day, tuple(notes))


def _missing_notes(absent: Sequence[str], late: Mapping[str, str | None], rebalance: str) -> list[str]:
    """Notes on tickers without prices (held as cash throughout) or with a partial history."""
    notes: list[str] = []
    if absent:
        notes.append(f"No prices at all for {', '.join(absent)}: their weight is held as cash throughout.")
    if late:
        listed = ", ".join(
            f"{t} (no prices in the window)" if day is None else f"{t} (from {day})" for t, day in late.items()
        )
        when = {
            "none": "for the whole window (buy-and-hold from the first day)",
            "monthly": "until the first month-end with a price, when it is bought",
            "daily": "until its first price, when it is bought",
        }[rebalance]
        notes.append(f"Partial history for {listed}: the weight is held as cash {when}.")
    return notes


def _note(start: str, end: str, rebalance: str, notes: Sequence[str]) -> str:
    how = {
        "monthly": "rebalanced to the target weights at each month's last close",
        "daily": "rebalanced to the target weights at every close",
        "none": "bought at the first close and held without rebalancing",
    }[rebalance]
    return " ".join(
        [
            f"Hypothetical: how the current and the proposed weights would have done from {start} "
            f"to {end}, {how}. The proposal was chosen with knowledge of this history (hindsight), so "
            "these figures are not evidence that it will do better; past returns do not predict future ones. "
            "Prices are dividend-adjusted closes; cash earns 0%; trading costs and taxes are left out.",
            *notes,
        ]
    )


def backtest(
    *,
    before: Mapping[str, float],
    after: Mapping[str, float],
    prices: pd.DataFrame | None = None,
    history: PriceHistory | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    years: float = 3.0,
    rebalance: str = "monthly",
    curve_every: str = "weekly",
) -> dict[str, Any]:
    """Replay the ``before`` and ``after`` weights over past prices (see the module docstring for the rules).

    before/after: {ticker: fraction of total value}, ``CASH`` included.
    prices: DataFrame indexed by date, one column per ticker, adjusted closes in USD, NaN = no price; not
    modified. Or history: the ``PriceHistory`` of such a frame (a ``MarketSnapshot``'s), the cheap way
    for many portfolios.
    start/end: the window (default: the ``years`` calendar years up to the last price date).
    rebalance: "monthly" | "daily" | "none".
    curve_every: "weekly" | "monthly": the curve's points (first close, then each week's or month's last close).
    Returns a JSON-safe dict: ``{"start", "end", "rebalance", "before": {"return_annual", "volatility",
    "max_drawdown"}, "after": {...}, "curve": {"dates": [ISO, weekly or monthly], "before": [growth of 1],
    "after": [...]}, "note"}``; dates are the trading days actually used.
    Raises WeightsError for unusable weights, ValueError for an unknown ``rebalance``, a non-positive
    ``years`` or ``start`` not before ``end``.
    """
    _check_choices(rebalance=rebalance, curve_every=curve_every, start=start, years=years)
    weights_before = weights_normalise(weights=before, label="before")
    weights_after = weights_normalise(weights=after, label="after")
    history = history_of(prices, history)
    if history.empty:
        return _empty_result(
            start=iso(start) if start else "",
            end=iso(end) if end else "",
            rebalance=rebalance,
            note="Hypothetical backtest not computed: there are no prices.",
        )
    span = _span(history, start, end, years)
    first_day, last_day = span.first_day, span.last_day
    if first_day is None or last_day is None:
        return _empty_result(
            start=span.start.isoformat(),
            end=span.end.isoformat(),
            rebalance=rebalance,
            note="Hypothetical backtest not computed: fewer than two trading days in the window. "
            + " ".join(span.notes),
        )

    held = sorted({t for w in (weights_before, weights_after) for t in w if t != CASH})
    absent = [t for t in held if t not in history.positions]
    tickers = [t for t in held if t in history.positions]
    window: _Window = history.memo(
        ("backtest", first_day, last_day, rebalance, curve_every),
        lambda: _window(history, first_day, last_day, rebalance, curve_every),
    )
    at = history.at(tickers)
    first_price = window.first_price[at].tolist()
    late: dict[str, str | None] = {  # {ticker without a price on the first day: its first day with one}
        t: (window.dates[p] if p >= 0 else None) for t, p in zip(tickers, first_price, strict=True) if p != 0
    }
    notes = [*span.notes, *_missing_notes(absent, late, rebalance)]
    result: dict[str, Any] = {"start": window.dates[0], "end": window.dates[-1], "rebalance": rebalance}
    paths = window.paths.columns(at)
    curve: dict[str, list[Any]] = {"dates": list(window.sample_dates)}
    for label, weights in (("before", weights_before), ("after", weights_after)):
        vector = np.array([weights.get(t, 0.0) for t in tickers], dtype=float)
        values = paths.values(vector)
        figures, metric_notes = _metrics(values=values, days=window.days)
        result[label] = figures
        curve[label] = round6_all(values[window.samples])
        notes.extend(f"{label}: {n}." for n in metric_notes)
    result["curve"] = curve
    result["note"] = _note(result["start"], result["end"], rebalance, notes)
    return result
