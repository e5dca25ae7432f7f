"""A slice of the bundled market data (all ETFs + chosen stocks), written to a temporary folder.

Loading the whole snapshot (about a million rows) in every test that needs prices would be slow;
a slice keeps the same real figures for the tickers a test uses.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
from django.conf import settings

BUNDLED = Path(settings.BASE_DIR) / "data" / "market"


def write_market_slice(folder: Path, stocks: Iterable[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    securities = pd.read_csv(BUNDLED / "securities.csv", keep_default_na=False)
    wanted = set(stocks) | set(securities.loc[securities["kind"] == "etf", "ticker"])
    securities[securities["ticker"].isin(wanted)].to_csv(folder / "securities.csv", index=False)
    prices = pd.read_csv(BUNDLED / "prices_daily.csv.gz")
    prices[["date", *[c for c in prices.columns if c in wanted]]].to_csv(
        folder / "prices_daily.csv.gz", index=False, compression="gzip"
    )
    shutil.copy(BUNDLED / "etf_sector_weights.csv", folder / "etf_sector_weights.csv")
    shutil.copytree(BUNDLED / "etf_holdings", folder / "etf_holdings", dirs_exist_ok=True)
    return folder
