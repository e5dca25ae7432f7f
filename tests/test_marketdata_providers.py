"""Provider contract: yfinance 1.x frames (patched, never the network), the csv and bundled providers."""

from __future__ import annotations

import datetime as dt
import gzip

import numpy as np
import pandas as pd
import pytest
import yfinance

from portfolios.marketdata import providers
from portfolios.marketdata.providers import (
    BundledProvider,
    CsvProvider,
    ProviderError,
    YFinanceProvider,
    provider_for,
    size_from_market_cap,
    yahoo_weights_to_gics,
)
from tests.marketdata_support import fake_ticker_class, yf_download_frame

DATES = pd.to_datetime(["2025-12-24", "2025-12-26", "2025-12-29", "2025-12-30", "2025-12-31"])


def series(start: float, n: int = len(DATES)) -> pd.Series:
    return pd.Series(start * (1 + 0.01 * np.arange(n)), index=DATES[:n])


class FakeDownload:
    """Records every yf.download call and answers from a list of responses (a frame, or an exception)."""

    def __init__(self, *responses):
        self.responses = list(responses)
        self.calls: list[dict] = []

    def __call__(self, tickers, **kwargs):
        self.calls.append({"tickers": list(tickers), **kwargs})
        response = self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]
        if callable(response):
            response = response(list(tickers))
        if isinstance(response, Exception):
            raise response
        return response


@pytest.fixture
def no_sleep():
    slept: list[float] = []
    return slept


def test_it_reads_adjusted_close_from_the_multiindex_frame(monkeypatch, no_sleep):
    fake = FakeDownload(yf_download_frame({"AAPL": series(270.0), "MSFT": series(480.0)}))
    monkeypatch.setattr(yfinance, "download", fake)
    result = YFinanceProvider(sleep=no_sleep.append).fetch(tickers=["AAPL", "MSFT"], start=dt.date(2025, 12, 24))

    assert result.failures == {}
    assert list(result.closes.columns) == ["AAPL", "MSFT"]
    assert result.closes.index.tz is None and result.closes.index.name == "date"
    np.testing.assert_allclose(result.closes["AAPL"].to_numpy(), series(270.0).to_numpy())  # Close, not Open/High
    call = fake.calls[0]
    assert call["start"] == "2025-12-24" and call["auto_adjust"] is True and call["group_by"] == "column"
    assert call["threads"] is True and call["progress"] is False and call["timeout"] > 0
    assert no_sleep == []


def test_it_handles_the_single_ticker_frame(monkeypatch):
    frame = yf_download_frame({"BRK-B": series(500.0)})
    assert isinstance(frame.columns, pd.MultiIndex)  # yfinance 1.x keeps (Price, Ticker) for one ticker
    monkeypatch.setattr(yfinance, "download", FakeDownload(frame))
    result = YFinanceProvider(sleep=lambda s: None).fetch(tickers=["BRK-B"], start=dt.date(2025, 12, 1))
    assert list(result.closes.columns) == ["BRK-B"]
    assert result.closes["BRK-B"].iloc[-1] == pytest.approx(series(500.0).iloc[-1])


def test_it_treats_an_empty_frame_as_failure_and_retries_with_backoff(monkeypatch, no_sleep):
    empty = yf_download_frame({"AAPL": None, "MSFT": None})  # Yahoo unreachable: empty, nothing raised
    assert empty.empty
    fake = FakeDownload(empty)
    monkeypatch.setattr(yfinance, "download", fake)
    result = YFinanceProvider(attempts=3, backoff_s=1.5, sleep=no_sleep.append).fetch(
        tickers=["AAPL", "MSFT"], start=dt.date(2025, 12, 1)
    )
    assert set(result.failures) == {"AAPL", "MSFT"}
    assert "no data" in result.failures["AAPL"]
    assert result.closes.empty
    assert len(fake.calls) == 3
    assert no_sleep == [1.5, 3.0]  # exponential


def test_an_all_nan_column_fails_only_that_ticker_and_only_it_is_retried(monkeypatch, no_sleep):
    first = yf_download_frame({"AAPL": series(270.0), "ZZZZ": None})
    fake = FakeDownload(first, yf_download_frame({"ZZZZ": None, "AAPL": None}))
    monkeypatch.setattr(yfinance, "download", fake)
    result = YFinanceProvider(attempts=2, sleep=no_sleep.append).fetch(tickers=["AAPL", "ZZZZ"], start=DATES[0].date())
    assert list(result.closes.columns) == ["AAPL"]
    assert set(result.failures) == {"ZZZZ"}
    assert [c["tickers"] for c in fake.calls] == [["AAPL", "ZZZZ"], ["ZZZZ"]]


def test_a_raised_error_is_transient_and_retried(monkeypatch):
    fake = FakeDownload(ConnectionError("reset by peer"), yf_download_frame({"XLF": series(54.0)}))
    monkeypatch.setattr(yfinance, "download", fake)
    result = YFinanceProvider(sleep=lambda s: None).fetch(tickers=["XLF"], start=DATES[0].date())
    assert result.failures == {} and len(fake.calls) == 2
    assert result.closes["XLF"].notna().all()


def test_it_downloads_in_chunks_of_at_most_100(monkeypatch):
    tickers = [f"T{i:03d}" for i in range(250)]
    fake = FakeDownload(lambda chunk: yf_download_frame({t: series(10.0 + i) for i, t in enumerate(chunk)}))
    monkeypatch.setattr(yfinance, "download", fake)
    result = YFinanceProvider(sleep=lambda s: None).fetch(tickers=tickers, start=DATES[0].date())
    assert [len(c["tickers"]) for c in fake.calls] == [100, 100, 50]
    assert sorted(result.closes.columns) == tickers and result.failures == {}


def test_it_maps_yahoo_metadata_to_the_master_vocabulary(monkeypatch):
    table = {
        "SOFI": {"info": {"quoteType": "EQUITY", "longName": "SoFi Technologies", "sector": "Financial Services",
                          "marketCap": 5.2e9, "country": "United States"}},
        "AVUV": {"info": {"quoteType": "ETF", "longName": "Avantis U.S. Small Cap Value ETF",
                          "category": "Small Value"},
                 "sector_weightings": {"financial_services": 0.3, "technology": 0.1, "realestate": 0.05,
                                       "consumer_cyclical": 0.15, "industrials": 0.2, "energy": 0.2}},
    }
    monkeypatch.setattr(yfinance, "Ticker", fake_ticker_class(table))
    monkeypatch.setattr(yfinance, "download", FakeDownload(yf_download_frame({"SOFI": series(20.0),
                                                                              "AVUV": series(90.0)})))
    result = YFinanceProvider(sleep=lambda s: None).fetch(
        tickers=["SOFI", "AVUV"], start=DATES[0].date(), metadata_for=["SOFI", "AVUV", "NOPE"]
    )
    sofi, avuv = result.metadata["SOFI"], result.metadata["AVUV"]
    assert (sofi.kind, sofi.sector, sofi.size, sofi.asset_class, sofi.region) == (
        "stock", "Financials", "mid", "equity", "us")
    assert avuv.kind == "etf" and avuv.size == "small" and avuv.asset_class == "equity"
    assert avuv.etf_sectors["Financials"] == pytest.approx(0.3)
    assert avuv.etf_sectors["Real Estate"] == pytest.approx(0.05)
    assert avuv.etf_sectors["Consumer Discretionary"] == pytest.approx(0.15)
    assert sum(avuv.etf_sectors.values()) == pytest.approx(1.0)
    assert "NOPE" not in result.metadata  # quoteType NONE: nothing known


@pytest.mark.parametrize(
    ("cap", "size"),
    [(10e9, "large"), (9.99e9, "mid"), (2e9, "mid"), (1.99e9, "small"), (None, ""), ("n/a", ""), (0, "")],
)
def test_size_follows_market_cap_bands(cap, size):
    assert size_from_market_cap(cap) == size


def test_yahoo_weights_are_renormalised_and_unknown_keys_dropped():
    out = yahoo_weights_to_gics({"technology": 0.5, "healthcare": 0.25, "mystery": 0.25, "utilities": "x"})
    assert out == {"Information Technology": pytest.approx(2 / 3), "Health Care": pytest.approx(1 / 3)}


# --- csv -----------------------------------------------------------------------------------------

CSV_TEXT = "date,AAPL,BRK.B,MSFT\n2025-12-29,273.1,503.0,\n2025-12-30,272.5,503.7,487.1\n2025-12-31,271.4,,483.6\n"


@pytest.mark.parametrize("compressed", [False, True])
def test_the_csv_provider_reads_a_wide_file_plain_or_gzip(tmp_path, compressed):
    path = tmp_path / ("prices.csv.gz" if compressed else "prices.csv")
    if compressed:
        with gzip.open(path, "wt") as fh:
            fh.write(CSV_TEXT)
    else:
        path.write_text(CSV_TEXT)
    result = CsvProvider(path).fetch(tickers=["AAPL", "BRK-B", "MSFT", "NVDA"], start=dt.date(2025, 12, 30))

    assert list(result.closes.index.strftime("%Y-%m-%d")) == ["2025-12-30", "2025-12-31"]  # from start
    assert result.closes.loc["2025-12-31", "AAPL"] == 271.4
    assert np.isnan(result.closes.loc["2025-12-31", "BRK-B"])  # empty cell = no price, not zero
    assert result.failures.keys() == {"NVDA"}


def test_the_csv_provider_names_the_line_and_column_of_a_bad_value(tmp_path):
    path = tmp_path / "prices.csv"
    path.write_text("date,AAPL,MSFT\n2025-12-30,272.5,487.1\n2025-12-31,271.4,n/q\n")
    with pytest.raises(ProviderError, match=r"line 3, column 'MSFT': 'n/q' is not a number"):
        CsvProvider(path).fetch(tickers=["AAPL", "MSFT"], start=dt.date(2025, 1, 1))
    path.write_text("date,AAPL\n2025-12-30,272.5\n31/12/2025,271.4\n")
    with pytest.raises(ProviderError, match=r"line 3, column 'date'"):
        CsvProvider(path).fetch(tickers=["AAPL"], start=dt.date(2025, 1, 1))
    path.write_text("date,AAPL\n2025-12-30,-1\n")
    with pytest.raises(ProviderError, match=r"line 2, column 'AAPL'.*not a positive price"):
        CsvProvider(path).fetch(tickers=["AAPL"], start=dt.date(2025, 1, 1))
    with pytest.raises(ProviderError, match="no such file"):
        CsvProvider(tmp_path / "missing.csv").fetch(tickers=["AAPL"], start=dt.date(2025, 1, 1))


def test_provider_for_uses_settings(settings, tmp_path):
    settings.PRICE_SOURCE = "csv"
    settings.PRICE_CSV_PATH = str(tmp_path / "x.csv")
    assert isinstance(provider_for(), CsvProvider)
    assert isinstance(provider_for("yfinance"), YFinanceProvider)
    with pytest.raises(ProviderError, match="unknown price provider"):
        provider_for("bloomberg")


# --- bundled -------------------------------------------------------------------------------------


def test_the_bundled_provider_reads_only_the_asked_columns_of_the_snapshot():
    result = BundledProvider().fetch(tickers=["AAPL", "BRK-B", "NOPE"], start=dt.date(2025, 12, 1),
                                     metadata_for=["BRK-B"])
    assert list(result.closes.columns) == ["AAPL", "BRK-B"]
    assert result.closes.index[-1] == pd.Timestamp("2025-12-31")
    assert result.closes.index[0] >= pd.Timestamp("2025-12-01")
    assert result.failures == {"NOPE": "not in the bundled snapshot"}
    assert result.metadata["BRK-B"].sector == "Financials"


def test_the_snapshot_is_what_the_readme_says():
    closes = providers.read_wide_prices(providers.Path(providers.settings.MARKET_DATA_DIR) / "prices_daily.csv.gz")
    assert closes.shape == (1760, 557)
    assert closes.index[0] == pd.Timestamp("2019-01-02") and closes.index[-1] == pd.Timestamp("2025-12-31")
    assert closes.index.is_monotonic_increasing and not closes.index.duplicated().any()
