"""`MarketSnapshot`: the market data of one market-data version, and everything the engine derives from it
once, in one explicit immutable object that the caller builds and passes to `rebalance`, the stress tests
and the backtest.

One snapshot holds:
- `market`: the risk window the optimizer sees (prices, security master, ETF look-through, as-of date);
- `long`: the longer history the stress tests and the backtest read (the same object when not given);
- `last_prices`: the last price of each priced ticker (`last_prices`, the one "last price" rule);
- `risk`: the risk model of every column of the window (`engine.risk.FrameModel`); a universe's model is
  a slice of it, and so is its plain sample model (`sample_risk_model`, the second volatility estimate);
- `history`: the long frame prepared for the backtest and the stress tests (`engine.backtest.PriceHistory`);
- `catalog`: the exposure catalogue (`engine.exposures.ExposureCatalog`) of every ticker;
- `version`: what identifies the market data it was built from: the date of the last price and the
  security master's version (the caller's token; `None` for a request's own market).

Nothing outside the snapshot is cached by object identity: the worker builds one snapshot per market-data
version (before its pool forks), passes the same one to every run, and builds a new one after a refresh.
Derived tables that depend on a run's universe (a universe's risk slice and exposure models, a profile's
target) are remembered inside the snapshot, keyed by their content, and die with it.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

import pandas as pd

from engine.types import MarketData

if TYPE_CHECKING:
    from engine.backtest import PriceHistory
    from engine.exposures import ExposureCatalog, ExposureModel
    from engine.risk import FrameModel, RiskModel, SampleRisk

T = TypeVar("T")
DERIVED_KEEP = 512  # universe-level tables remembered per snapshot (risk slices, exposure models, targets)


def last_prices(prices: pd.DataFrame, as_of: dt.date | None = None) -> dict[str, float]:
    """{ticker: last positive price on or before `as_of`} (gaps carried forward; unpriced tickers left out)."""
    frame = prices
    if as_of is not None and len(frame):
        frame = frame.loc[frame.index <= pd.Timestamp(as_of)]
    last = frame.ffill().iloc[-1] if len(frame) else pd.Series(dtype=float)
    return {str(t): float(v) for t, v in last.items() if pd.notna(v) and v > 0}


def window(market: MarketData, years: float) -> MarketData:
    """`market` with only the prices of the last `years` before its as-of date."""
    prices = market.prices
    start = pd.Timestamp(market.as_of) - pd.DateOffset(days=int(365.25 * years))
    return replace(market, prices=prices.loc[prices.index >= start])


@dataclass(frozen=True, eq=False)
class MarketSnapshot:
    """The market data of one version and what the engine derives from it (module docstring)."""

    market: MarketData
    long: MarketData
    version: Hashable = None
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)
    _derived: OrderedDict[Hashable, Any] = field(default_factory=OrderedDict, repr=False, compare=False)

    @classmethod
    def build(
        cls, long: MarketData, *, risk_years: float | None = None, version: Hashable = None, warm: bool = True
    ) -> MarketSnapshot:
        """A snapshot over `long` (the optimizer sees its last `risk_years`, or all of it); `warm` builds every
        part now (risk model, price history, last prices, exposure catalogue: a worker warms one before it
        forks, so no pool process builds them), else each part on first use."""
        market = window(long, risk_years) if risk_years is not None else long
        snap = cls(market=market, long=long, version=version if version is not None else (long.as_of, None))
        if warm:
            snap.warm()
        return snap

    @classmethod
    def of(cls, market: MarketData) -> MarketSnapshot:
        """A snapshot of one request's own market (parts built on first use)."""
        return cls(market=market, long=market, version=(market.as_of, None))

    def warm(self) -> None:
        """Build every part now."""
        _ = self.last_prices, self.risk, self.history
        for ticker in self.market.prices.columns:
            self.catalog.entry(str(ticker))

    @property
    def as_of(self) -> dt.date:
        return self.market.as_of

    @cached_property
    def last_prices(self) -> Mapping[str, float]:
        return MappingProxyType(last_prices(self.market.prices, self.market.as_of))

    @cached_property
    def risk(self) -> FrameModel | None:
        """The risk model of every column of the window (None when the columns are not unique names)."""
        from engine.risk import frame_model

        columns = list(self.market.prices.columns)
        if not all(isinstance(c, str) for c in columns) or len(set(columns)) != len(columns):
            return None
        return frame_model(self.market.prices, self.market.securities)

    @cached_property
    def history(self) -> PriceHistory:
        from engine.backtest import PriceHistory

        return PriceHistory(self.long.prices)

    @cached_property
    def catalog(self) -> ExposureCatalog:
        from engine.exposures import ExposureCatalog

        return ExposureCatalog(self.market)

    def derived(self, key: Hashable, build: Callable[[], T]) -> T:
        """A table derived from this snapshot and `key` (its content), built once (the last DERIVED_KEEP kept)."""
        with self._lock:
            if key in self._derived:
                self._derived.move_to_end(key)
                return self._derived[key]
            value = build()
            self._derived[key] = value
            while len(self._derived) > DERIVED_KEEP:
                self._derived.popitem(last=False)
            return value

    def risk_model(self, universe: Sequence[str], proxies: Mapping[str, str] | None = None) -> RiskModel:
        """The risk model of `universe`: a slice of the window's model when every ticker is a column of it,
        else a model estimated on the universe alone. `proxies` ({ticker: stand-in ticker}) gives a ticker
        the returns of another (e.g. a mutual fund priced from a file, risk-modelled by its ETF twin)."""
        from engine.risk import universe_risk_model

        tickers = tuple(universe)
        stand_in = _stand_ins(tickers, proxies)

        def build() -> RiskModel:
            frame = self.risk
            if tickers and frame is not None and all(t in frame.index for t in stand_in):
                return replace(frame.slice(stand_in), tickers=tickers)
            return universe_risk_model(self.market.prices, tickers, self.market.securities)

        return self.derived(("risk", tickers, stand_in), build)

    def sample_risk_model(self, universe: Sequence[str], proxies: Mapping[str, str] | None = None) -> SampleRisk:
        """The plain estimate of `universe` (`engine.risk.sample_model`: the 3-year sample covariance), a slice of
        the window's when every ticker is a column of it."""
        from engine.risk import sample_model

        tickers = tuple(universe)
        stand_in = _stand_ins(tickers, proxies)

        def build() -> SampleRisk:
            frame = self.risk
            if tickers and frame is not None and all(t in frame.index for t in stand_in):
                return replace(frame.sample_slice(stand_in), tickers=tickers)
            return sample_model(self.market.prices, tickers, self.market.securities)

        return self.derived(("sample", tickers, stand_in), build)

    def exposure_models(
        self, universe: Sequence[str], name_threshold: float, proxies: Mapping[str, str] | None = None
    ) -> tuple[ExposureModel, ExposureModel]:
        """(optimizer rows with names at or above `name_threshold`, every look-through name) of `universe`;
        a ticker in `proxies` looks through like its stand-in."""
        tickers = tuple(universe)
        stand_in = _stand_ins(tickers, proxies)

        def build() -> tuple[ExposureModel, ExposureModel]:
            with self._lock:  # the catalogue assigns name ids as it meets tickers
                restricted, full = self.catalog.models(list(stand_in), name_threshold)
            if stand_in == tickers:
                return restricted, full
            return replace(restricted, tickers=tickers), replace(full, tickers=tickers)

        return self.derived(("exposures", tickers, stand_in, name_threshold), build)


def _stand_ins(tickers: tuple[str, ...], proxies: Mapping[str, str] | None) -> tuple[str, ...]:
    return tuple(proxies.get(t, t) for t in tickers) if proxies else tickers
