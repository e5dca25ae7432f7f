"""A slice of the bundled market data (every ETF + chosen stocks, full history) for tests that run
the real engine. Loading the whole snapshot (about a million rows) in each such test would be slow."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from tests.marketdata_support import REAL_DIR, write_market_dir


def write_market_slice(folder: Path, stocks: Iterable[str]) -> Path:
    securities = pd.read_csv(REAL_DIR / "securities.csv", keep_default_na=False)
    etfs = securities.loc[securities["kind"] == "etf", "ticker"].tolist()
    holdings_for = tuple(p.stem for p in (REAL_DIR / "etf_holdings").glob("*.csv"))
    return write_market_dir(
        folder, tickers=[*etfs, *stocks], start="2019-01-01", days=None, holdings_for=holdings_for
    )
