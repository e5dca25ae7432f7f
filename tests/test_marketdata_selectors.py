"""Reads: MarketData for the engine (window, look-through, unknown tickers, cache), latest prices, menu."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from engine.types import MarketData
from portfolios.marketdata.selectors import (
    latest_prices,
    market_data_for,
    menu_tickers,
    prices_are_stale,
    trading_days_between,
)
from portfolios.marketdata.services import market_data_load_bundled, prices_write
from portfolios.models import Price, Security
from tests.marketdata_support import read_small_prices, write_market_dir


@pytest.fixture
def loaded(tmp_path, settings, db):
    """A small slice of the real data: 300 trading days of 8 tickers ending 2025-12-31."""
    settings.MARKET_DATA_DIR = write_market_dir(tmp_path / "market", start="2024-10-01", days=400)
    market_data_load_bundled(data_dir=settings.MARKET_DATA_DIR)
    return read_small_prices(settings.MARKET_DATA_DIR)


def test_market_data_has_the_window_the_columns_and_the_lookthrough(loaded):
    data = market_data_for(tickers=["xlf", "AAPL", "CASH", "QQQ", "NOTREAL", "AAPL"], years=1.0)
    assert isinstance(data, MarketData)
    assert list(data.prices.columns) == ["XLF", "AAPL", "QQQ", "NOTREAL"]  # order asked, CASH/dupes dropped
    assert data.prices.index.is_monotonic_increasing and data.prices.index.name == "date"
    assert data.as_of == loaded.index[-1].date() == dt.date(2025, 12, 31)
    assert data.prices.index[0] > pd.Timestamp("2024-12-31") - pd.Timedelta(days=2)
    assert 245 <= len(data.prices) <= 255  # one year of trading days
    np.testing.assert_allclose(data.prices["AAPL"].to_numpy(), loaded["AAPL"].loc[data.prices.index].to_numpy())
    assert data.prices["NOTREAL"].isna().all() and data.securities["NOTREAL"].kind == "unknown"
    assert data.securities["AAPL"].sector == "Information Technology"
    assert set(data.etf_sectors) == {"XLF", "QQQ"} and set(data.etf_holdings) == {"XLF", "QQQ"}
    assert sum(data.etf_sectors["QQQ"].values()) == pytest.approx(1.0)
    assert data.etf_holdings["QQQ"]["NVDA"] == pytest.approx(0.09921)


def test_as_of_cuts_the_window(loaded):
    data = market_data_for(tickers=["JPM"], years=0.5, as_of=dt.date(2025, 6, 30))
    assert data.prices.index[-1] == pd.Timestamp("2025-06-30")
    assert data.as_of == dt.date(2025, 6, 30)
    assert data.prices.index[0] > pd.Timestamp("2024-12-29")


def test_reads_see_new_prices_and_new_securities(loaded):
    before = market_data_for(tickers=["AAPL", "NEWCO"])
    assert before.securities["NEWCO"].kind == "unknown"
    newco = Security.objects.create(ticker="NEWCO", kind="stock", sector="Financials", size="small")
    Price.objects.create(security=newco, date=dt.date(2025, 12, 31), close=10.0)  # written outside the services
    after = market_data_for(tickers=["AAPL", "NEWCO"])
    assert after.securities["NEWCO"].sector == "Financials"
    assert after.prices.loc["2025-12-31", "NEWCO"] == 10.0

    aapl = Security.objects.get(ticker="AAPL")
    write = prices_write(closes=pd.DataFrame({"AAPL": [300.0]}, index=pd.to_datetime(["2026-01-02"])),
                         security_ids={"AAPL": aapl.pk})
    assert write.rows == 1
    newest = market_data_for(tickers=["AAPL"])
    assert newest.as_of == dt.date(2026, 1, 2) and newest.prices["AAPL"].iloc[-1] == 300.0


def test_a_read_takes_a_few_queries_whatever_the_number_of_tickers(loaded, django_assert_max_num_queries):
    many = list(Security.objects.filter(priced=True).values_list("ticker", flat=True)[:60])
    with django_assert_max_num_queries(5):  # securities, sector weights, holdings, the as-of date, prices
        data = market_data_for(tickers=["XLF", "AAPL", *many])
    assert list(data.prices.columns)[:2] == ["XLF", "AAPL"]
    data.prices.iloc[:, :] = 0.0  # the engine may scribble on its copy
    assert market_data_for(tickers=["AAPL"]).prices["AAPL"].iloc[-1] > 0


def test_market_data_without_prices_is_empty_not_an_error(db):
    data = market_data_for(tickers=["AAPL"])
    assert data.prices.empty and list(data.prices.columns) == ["AAPL"]
    assert data.securities["AAPL"].kind == "unknown"


def test_latest_prices_are_the_newest_close_per_ticker(loaded):
    out = latest_prices(tickers=["AAPL", "brk.b", "NOPE"])
    assert out["AAPL"] == (loaded["AAPL"].iloc[-1], dt.date(2025, 12, 31))
    assert out["BRK-B"][0] == loaded["BRK-B"].iloc[-1]
    assert "NOPE" not in out


def test_the_menu_is_priced_diversifiers_only(loaded):
    assert menu_tickers() == ["BIL", "XLF"]
    Security.objects.create(ticker="IJR", kind="etf", is_menu=True, priced=False)
    assert "IJR" not in menu_tickers()


def test_staleness_counts_trading_days(settings):
    settings.PRICE_STALE_TRADING_DAYS = 5
    friday = dt.date(2025, 12, 26)
    assert trading_days_between(friday, dt.date(2025, 12, 29)) == 1  # weekend skipped
    assert not prices_are_stale(friday, today=dt.date(2026, 1, 2))  # 5 trading days
    assert prices_are_stale(friday, today=dt.date(2026, 1, 5))
    assert prices_are_stale(None)
