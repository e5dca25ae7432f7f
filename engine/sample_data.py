"""A small pure loader for the bundled market files (data/market/), for tests and benchmarks.

The Django side has its own loader into the database; this one reads the files with pandas directly.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from pathlib import Path

import pandas as pd

from engine.tickers import ticker_key
from engine.types import MarketData, SecurityInfo

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "data" / "market"


def load_bundled_market(directory: str | Path = BUNDLED_DIR, *, years: float | None = None) -> MarketData:
    """All bundled data as `MarketData`; `years` keeps only the last N years of prices (None: all).

    The full read is cached per directory (about 0.1 s the first time); the result shares that frame.
    """
    market = _load(str(Path(directory).resolve()))
    if years is None:
        return market
    start = pd.Timestamp(market.as_of) - pd.DateOffset(days=int(365.25 * years))
    prices = market.prices.loc[market.prices.index >= start]
    return MarketData(
        prices=prices,
        securities=market.securities,
        etf_sectors=market.etf_sectors,
        etf_holdings=market.etf_holdings,
        as_of=market.as_of,
    )


@lru_cache(maxsize=4)
def _load(directory: str) -> MarketData:
    root = Path(directory)
    prices = pd.read_csv(root / "prices_daily.csv.gz", index_col="date", parse_dates=["date"]).sort_index()
    prices.columns = [ticker_key(c) for c in prices.columns]
    prices = prices.astype(float)
    securities = _securities(root / "securities.csv")
    sectors_frame = pd.read_csv(root / "etf_sector_weights.csv")
    etf_sectors: dict[str, dict[str, float]] = {}
    for row in sectors_frame.itertuples(index=False):
        etf_sectors.setdefault(ticker_key(row.etf), {})[str(row.sector)] = float(row.weight)
    etf_holdings: dict[str, dict[str, float]] = {}
    for path in sorted((root / "etf_holdings").glob("*.csv")):
        frame = pd.read_csv(path)
        holdings: dict[str, float] = {}
        for ticker, weight in zip(frame["ticker"], frame["weight"], strict=True):
            if isinstance(ticker, str) and pd.notna(weight) and float(weight) > 0:
                key = ticker_key(ticker)
                holdings[key] = holdings.get(key, 0.0) + float(weight) / 100.0
        etf_holdings[ticker_key(path.stem)] = holdings
    as_of = prices.index[-1].date()
    return MarketData(
        prices=prices,
        securities=securities,
        etf_sectors=etf_sectors,
        etf_holdings=etf_holdings,
        as_of=as_of if isinstance(as_of, dt.date) else dt.date.fromisoformat(str(as_of)),
    )


def _securities(path: Path) -> dict[str, SecurityInfo]:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    return {
        ticker_key(row.ticker): SecurityInfo(
            ticker=ticker_key(row.ticker),
            kind=row.kind,
            asset_class=row.asset_class,
            sector=row.sector,
            size=row.size,
            region=row.region,
            name=row.name,
        )
        for row in frame.itertuples(index=False)
    }


# ---------------------------------------------------------------- a small synthetic market (tests)

SYNTHETIC_SECURITIES: tuple[SecurityInfo, ...] = (
    SecurityInfo("TECHA", "stock", "equity", "Information Technology", "large", "us", "Tech A"),
    SecurityInfo("TECHB", "stock", "equity", "Information Technology", "large", "us", "Tech B"),
    SecurityInfo("BANK", "stock", "equity", "Financials", "large", "us", "Bank"),
    SecurityInfo("HLTH", "stock", "equity", "Health Care", "large", "us", "Health"),
    SecurityInfo("ENRG", "stock", "equity", "Energy", "large", "us", "Energy"),
    SecurityInfo("BROAD", "etf", "equity", "", "total", "us", "Broad Market Fund"),
    SecurityInfo("EQW", "etf", "equity", "", "large", "us", "Equal Weight Fund"),
    SecurityInfo("SMALL", "etf", "equity", "", "small", "us", "Small Cap Fund"),
    SecurityInfo("FIN", "etf", "equity", "", "large", "us", "Financials Fund"),
    SecurityInfo("TECHF", "etf", "equity", "", "large", "us", "Tech Fund"),
    SecurityInfo("INTL", "etf", "equity", "", "total", "international", "International Fund"),
    SecurityInfo("BOND", "etf", "bond", "", "n/a", "us", "Bond Fund"),
)
_SYNTHETIC_SECTORS: dict[str, dict[str, float]] = {
    "BROAD": {"Information Technology": 0.32, "Financials": 0.13, "Health Care": 0.10, "Energy": 0.04,
              "Industrials": 0.09, "Consumer Discretionary": 0.11, "Communication Services": 0.09,
              "Consumer Staples": 0.05, "Utilities": 0.03, "Real Estate": 0.02, "Materials": 0.02},
    "EQW": {"Information Technology": 0.14, "Financials": 0.15, "Health Care": 0.12, "Energy": 0.05,
            "Industrials": 0.16, "Consumer Discretionary": 0.10, "Communication Services": 0.05,
            "Consumer Staples": 0.07, "Utilities": 0.06, "Real Estate": 0.06, "Materials": 0.04},
    "SMALL": {"Information Technology": 0.15, "Financials": 0.18, "Health Care": 0.16, "Energy": 0.05,
              "Industrials": 0.17, "Consumer Discretionary": 0.10, "Communication Services": 0.03,
              "Consumer Staples": 0.03, "Utilities": 0.03, "Real Estate": 0.06, "Materials": 0.04},
    "FIN": {"Financials": 1.0},
    "TECHF": {"Information Technology": 1.0},
    "INTL": {"Information Technology": 0.13, "Financials": 0.23, "Health Care": 0.07, "Energy": 0.05,
             "Industrials": 0.15, "Consumer Discretionary": 0.12, "Communication Services": 0.06,
             "Consumer Staples": 0.08, "Utilities": 0.03, "Real Estate": 0.02, "Materials": 0.06},
}
_SYNTHETIC_HOLDINGS: dict[str, dict[str, float]] = {
    "BROAD": {"TECHA": 0.07, "TECHB": 0.05, "BANK": 0.02, "HLTH": 0.015, "ENRG": 0.01},
    "TECHF": {"TECHA": 0.22, "TECHB": 0.18},
    "FIN": {"BANK": 0.12},
}
# daily volatility and loadings on (market, tech, rates) factors
_SYNTHETIC_RISK: dict[str, tuple[float, float, float, float]] = {
    "TECHA": (0.020, 1.2, 1.0, 0.0), "TECHB": (0.022, 1.3, 1.0, 0.0), "BANK": (0.014, 1.1, -0.3, 0.6),
    "HLTH": (0.011, 0.8, 0.0, 0.0), "ENRG": (0.016, 0.9, -0.4, 0.3), "BROAD": (0.003, 1.0, 0.3, 0.0),
    "EQW": (0.003, 1.0, 0.0, 0.1), "SMALL": (0.006, 1.2, 0.0, 0.4), "FIN": (0.004, 1.1, -0.3, 0.6),
    "TECHF": (0.004, 1.2, 1.0, 0.0), "INTL": (0.005, 0.8, 0.0, 0.1), "BOND": (0.003, 0.0, 0.0, -0.3),
}


def synthetic_market(*, seed: int = 42, days: int = 800, listed_late: dict[str, int] | None = None) -> MarketData:
    """A small deterministic market (12 tickers) with factor-structured daily prices.

    listed_late: {ticker: number of trading days it has prices for (NaN before)}.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    dates = pd.bdate_range(end="2025-12-31", periods=days)
    factors = rng.normal(0.0, [0.009, 0.007, 0.004], size=(days, 3))
    columns = {}
    for ticker, (idio, beta_m, beta_t, beta_r) in _SYNTHETIC_RISK.items():
        drift = 0.0002 if ticker != "BOND" else 0.0001
        returns = drift + factors @ np.array([beta_m, beta_t, beta_r]) + rng.normal(0.0, idio, days)
        if ticker == "BOND":
            returns = drift + factors[:, 2] * -0.3 + rng.normal(0.0, idio, days)
        prices = 50.0 * np.exp(np.cumsum(returns))
        if listed_late and ticker in listed_late:
            prices[: days - listed_late[ticker]] = np.nan
        columns[ticker] = prices
    frame = pd.DataFrame(columns, index=dates.rename("date"))
    return MarketData(
        prices=frame,
        securities={s.ticker: s for s in SYNTHETIC_SECURITIES},
        etf_sectors=_SYNTHETIC_SECTORS,
        etf_holdings=_SYNTHETIC_HOLDINGS,
        as_of=frame.index[-1].date(),
    )


SYNTHETIC_MENU: tuple[str, ...] = ("BROAD", "EQW", "SMALL", "FIN", "INTL", "BOND")


def synthetic_views() -> dict:
    """A views object for the synthetic market (same shape as data/views/*.json)."""
    return {
        "id": "synthetic",
        "as_of": "2025-12-01",
        "title": "Synthetic tilt",
        "facts": ["A made-up fact with a figure: 42%."],
        "risks": ["A made-up risk."],
        "tilts": {
            "core": {"EQW": 0.8, "INTL": 0.2},
            "sectors": {"Financials": 0.04, "Information Technology": -0.04},
            "size": {"large": 0.7, "mid": 0.15, "small": 0.15},
            "vehicles": {"Financials": ["FIN"], "small": ["SMALL"]},
        },
    }
