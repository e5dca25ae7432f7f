"""Helpers for the market data tests: a small slice of the real bundled data, and frames shaped
exactly as yfinance 1.x returns them (built with yfinance's own helpers from multi.py/utils.py)."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from django.conf import settings

REAL_DIR = Path(settings.BASE_DIR) / "data" / "market"
SMALL_TICKERS = ["AAPL", "MSFT", "JPM", "BRK-B", "QQQ", "XLF", "XLK", "BIL"]


def write_market_dir(path: Path, *, tickers: list[str] = SMALL_TICKERS, start: str = "2025-10-01",
                     days: int | None = 40, holdings_for: tuple[str, ...] = ("QQQ", "XLF")) -> Path:
    """A MARKET_DATA_DIR holding `days` real trading days (None: all) from `start` for `tickers` (gzip),
    their master rows, sector weights, and the real holdings files of the `holdings_for` funds."""
    path.mkdir(parents=True, exist_ok=True)
    prices = pd.read_csv(REAL_DIR / "prices_daily.csv.gz", usecols=["date", *tickers], index_col="date")
    prices = prices.loc[prices.index >= start]
    prices = (prices if days is None else prices.head(days))[tickers]
    prices.to_csv(path / "prices_daily.csv.gz", compression="gzip")
    for name, key in (("securities.csv", "ticker"), ("etf_sector_weights.csv", "etf")):
        with open(REAL_DIR / name, newline="") as src, open(path / name, "w", newline="") as dst:
            reader = csv.DictReader(src)
            writer = csv.DictWriter(dst, fieldnames=reader.fieldnames)
            writer.writeheader()
            writer.writerows(row for row in reader if row[key] in tickers)
    (path / "etf_holdings").mkdir(exist_ok=True)
    for etf in holdings_for:
        if etf in tickers:
            shutil.copy(REAL_DIR / "etf_holdings" / f"{etf}.csv", path / "etf_holdings" / f"{etf}.csv")
    return path


def read_small_prices(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path / "prices_daily.csv.gz", index_col="date")
    frame.index = pd.to_datetime(frame.index)
    return frame


def yf_history(close: pd.Series) -> pd.DataFrame:
    """One ticker's `Ticker.history(auto_adjust=True)` frame: Open, High, Low, Close, Volume; the
    index is named "Date" and carries the exchange time zone."""
    index = pd.DatetimeIndex(pd.to_datetime(close.index), name="Date").tz_localize("America/New_York")
    values = close.to_numpy(dtype=float)
    return pd.DataFrame(
        {"Open": values * 0.995, "High": values * 1.01, "Low": values * 0.99, "Close": values,
         "Volume": np.full(len(values), 1_000_000)},
        index=index,
    )


def yf_download_frame(closes: dict[str, pd.Series | None]) -> pd.DataFrame:
    """What `yf.download(tickers, auto_adjust=True, group_by="column")` returns in yfinance 1.x.

    Mirrors `yfinance.multi._download_impl` for daily data (ignore_tz=True): a ticker that failed
    contributes `utils.empty_df()` (with an "Adj Close" column); frames are re-indexed to the union of
    dates, concatenated with keys (names Ticker, Price), then the levels are swapped to (Price, Ticker)
    and sorted. When every ticker fails the result is an EMPTY frame with those columns.
    """
    from yfinance.multi import reindex_dfs
    from yfinance.utils import empty_df

    dfs = {t.upper(): (yf_history(s) if s is not None else empty_df()) for t, s in closes.items()}
    dfs = reindex_dfs(dfs, True)  # tz_localize(None) + union of dates, as download() does
    data = pd.concat(dfs.values(), axis=1, sort=True, keys=dfs.keys(), names=["Ticker", "Price"])
    data.columns = data.columns.swaplevel(0, 1)
    return data.sort_index(level=0, axis=1)


class FakeFundsData:
    def __init__(self, sector_weightings: dict[str, float]):
        self.sector_weightings = sector_weightings


class FakeTicker:
    """Stands in for `yfinance.Ticker`: `info` and `funds_data.sector_weightings` from a table."""

    table: dict[str, dict] = {}

    def __init__(self, symbol: str, session=None):
        self.ticker = symbol.upper()
        entry = self.table.get(self.ticker, {})
        self.info = entry.get("info", {"quoteType": "NONE", "trailingPegRatio": None})
        self.funds_data = FakeFundsData(entry.get("sector_weightings", {}))


def fake_ticker_class(table: dict[str, dict]) -> type[FakeTicker]:
    return type("FakeTickerForTest", (FakeTicker,), {"table": table})
