"""Refreshing prices: csv and yfinance providers, partial and total failure, the lock, recompute fan-out."""

from __future__ import annotations

import datetime as dt
import io
import threading
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
import yfinance
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from portfolios.marketdata import providers, services
from portfolios.marketdata.providers import ProviderResult
from portfolios.marketdata.services import market_data_load_bundled, prices_refresh, prices_refresh_lock
from portfolios.marketdata.tasks import prices_refresh_then_recompute
from portfolios.models import Account, Holding, Portfolio, Price, PriceRefresh, RebalanceRun, Security
from tests.marketdata_support import REAL_DIR, fake_ticker_class, read_small_prices, write_market_dir, yf_download_frame

NEXT_DAYS = 5


@pytest.fixture
def loaded(tmp_path, settings):
    """40 real trading days of 8 tickers from 2025-10-01, loaded; yfinance never sleeps."""
    settings.MARKET_DATA_DIR = write_market_dir(tmp_path / "market")
    market_data_load_bundled(data_dir=settings.MARKET_DATA_DIR)
    return read_small_prices(settings.MARKET_DATA_DIR)


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch):
    monkeypatch.setattr(providers, "YF_BACKOFF_S", 0.0)


def hold(owner, ticker: str, name: str = "Main") -> Portfolio:
    portfolio = Portfolio.objects.create(owner=owner, name=name)
    account = Account.objects.create(portfolio=portfolio, name="Taxable")
    Holding.objects.create(account=account, security=Security.objects.get(ticker=ticker), shares=Decimal("10"))
    return portfolio


def real_next_days(after: pd.Timestamp, tickers: list[str]) -> pd.DataFrame:
    """The real closes of the NEXT_DAYS trading days after `after`."""
    frame = pd.read_csv(REAL_DIR / "prices_daily.csv.gz", usecols=["date", *tickers], index_col="date")
    frame.index = pd.to_datetime(frame.index)
    return frame.loc[frame.index > after].head(NEXT_DAYS)[tickers]


def write_csv(path, frame: pd.DataFrame):
    out = frame.copy()
    out.index = out.index.strftime("%Y-%m-%d")
    out.index.name = "date"
    out.to_csv(path)
    return path


@pytest.fixture
def csv_update(loaded, tmp_path, settings):
    """A downloaded file: 5 new days for AAPL and XLF, one hole in AAPL's overlap, MSFT all empty."""
    last = loaded.index[-1]
    new = real_next_days(last, ["AAPL", "XLF"])
    overlap = loaded.loc[loaded.index[-3:], ["AAPL", "XLF"]].copy()
    overlap.loc[loaded.index[-2], "AAPL"] = np.nan  # a hole where a good price is stored
    frame = pd.concat([overlap, new])
    frame["MSFT"] = np.nan
    settings.PRICE_CSV_PATH = str(write_csv(tmp_path / "download.csv", frame))
    return new


@pytest.mark.django_db
def test_a_partial_refresh_writes_new_days_keeps_good_prices_and_queues_recomputes(
    loaded, csv_update, alice, bob
):
    mine, theirs = hold(alice, "AAPL"), hold(bob, "MSFT", name="Bob's")
    msft_rows = Price.objects.filter(security__ticker="MSFT").count()
    kept = Price.objects.get(security__ticker="AAPL", date=loaded.index[-2].date()).close

    refresh = prices_refresh_then_recompute(provider="csv")  # what the beat task and the command do

    assert refresh.status == PriceRefresh.Status.PARTIAL
    assert refresh.tickers_asked == 4  # held AAPL, MSFT + menu XLF, BIL
    assert set(refresh.failures) == {"MSFT", "BIL"}
    assert refresh.rows_written == 2 * NEXT_DAYS and refresh.tickers_updated == 2
    assert refresh.as_of == csv_update.index[-1].date() and refresh.finished_at is not None
    assert Price.objects.filter(security__ticker="MSFT").count() == msft_rows  # failure keeps last good prices
    assert Price.objects.get(security__ticker="AAPL", date=loaded.index[-2].date()).close == kept  # NaN ignored
    assert Security.objects.get(ticker="XLF").last_price_date == csv_update.index[-1].date()
    assert RebalanceRun.objects.filter(portfolio=mine, trigger=RebalanceRun.Trigger.PRICES).count() == 1
    assert not RebalanceRun.objects.filter(portfolio=theirs).exists()  # MSFT did not change

    again = prices_refresh_then_recompute(provider="csv")  # nothing new: no rows, no recompute
    assert again.rows_written == 0 and again.tickers_updated == 0
    assert RebalanceRun.objects.filter(portfolio=mine).count() == 1


@pytest.mark.django_db
def test_the_command_prints_a_summary(loaded, csv_update, alice):
    hold(alice, "AAPL")
    out = io.StringIO()
    call_command("refresh_prices", "--provider", "csv", "--tickers", "AAPL", "XLF", stdout=out)
    text = out.getvalue()
    assert "Tickers updated: 2" in text and f"Rows written: {2 * NEXT_DAYS}" in text
    assert f"Prices as of: {csv_update.index[-1].date()}" in text and "Failures: 0" in text


@pytest.mark.django_db
def test_when_yahoo_is_unreachable_every_ticker_fails_and_the_command_exits_non_zero(loaded, monkeypatch, alice):
    hold(alice, "AAPL")
    rows = Price.objects.count()
    monkeypatch.setattr(yfinance, "download", lambda tickers, **kw: yf_download_frame(dict.fromkeys(tickers)))
    out = io.StringIO()
    with pytest.raises(CommandError, match="Every ticker failed") as excinfo:
        call_command("refresh_prices", "--provider", "yfinance", stdout=out)
    assert excinfo.value.returncode != 0
    assert "AAPL: Yahoo returned no data" in out.getvalue()
    refresh = PriceRefresh.objects.get()
    assert refresh.status == PriceRefresh.Status.FAILED and set(refresh.failures) == {"AAPL", "XLF", "BIL"}
    assert Price.objects.count() == rows and refresh.as_of == loaded.index[-1].date()


@pytest.mark.django_db
def test_an_unknown_imported_ticker_is_priced_and_described_from_yahoo(loaded, monkeypatch, alice):
    Security.objects.create(ticker="SOFI", kind=Security.Kind.UNKNOWN, source="import")
    hold(alice, "SOFI")
    history = pd.Series(np.linspace(8.0, 25.0, 60), index=pd.bdate_range(end="2025-12-31", periods=60))
    calls = []

    def download(tickers, **kwargs):
        calls.append((list(tickers), kwargs["start"]))
        return yf_download_frame({t: history if t == "SOFI" else None for t in tickers})

    monkeypatch.setattr(yfinance, "download", download)
    monkeypatch.setattr(yfinance, "Ticker", fake_ticker_class({"SOFI": {"info": {
        "quoteType": "EQUITY", "longName": "SoFi Technologies, Inc.", "sector": "Financial Services",
        "marketCap": 2.9e10, "country": "United States"}}}))

    refresh = prices_refresh(tickers=["sofi"], provider="yfinance")

    assert refresh.status == PriceRefresh.Status.DONE and refresh.rows_written == 60
    assert calls == [(["SOFI"], loaded.index[0].date().isoformat())]  # new ticker: from the first stored date
    sofi = Security.objects.get(ticker="SOFI")
    assert (sofi.kind, sofi.sector, sofi.size, sofi.priced) == ("stock", "Financials", "large", True)
    assert sofi.name == "SoFi Technologies, Inc." and sofi.last_price_date == dt.date(2025, 12, 31)


@pytest.mark.django_db
def test_a_re_adjusted_history_is_read_again_from_the_first_date(loaded, monkeypatch):
    """A dividend rescales Yahoo's whole adjusted history: the overlap shows it, so all of it is re-read."""
    adjusted = pd.concat([loaded["AAPL"], real_next_days(loaded.index[-1], ["AAPL"])["AAPL"]]) * 0.99
    starts = []

    def download(tickers, **kwargs):
        starts.append(kwargs["start"])
        since = adjusted.loc[adjusted.index >= pd.Timestamp(kwargs["start"])]
        return yf_download_frame({"AAPL": since})

    monkeypatch.setattr(yfinance, "download", download)
    refresh = prices_refresh(tickers=["AAPL"], provider="yfinance")

    first_overlap = loaded.index[-1].date() - dt.timedelta(days=services.OVERLAP_DAYS)
    assert starts == [first_overlap.isoformat(), loaded.index[0].date().isoformat()]
    assert refresh.rows_written == len(adjusted)
    stored = pd.Series(dict(Price.objects.filter(security__ticker="AAPL").values_list("date", "close")))
    np.testing.assert_allclose(stored.sort_index().to_numpy(), adjusted.to_numpy())


@pytest.mark.django_db
def test_a_refresh_is_skipped_while_another_holds_the_lock(loaded, csv_update):
    with prices_refresh_lock() as held:
        assert held is True
        refresh = prices_refresh(provider="csv")
        assert refresh.status == PriceRefresh.Status.SKIPPED and refresh.rows_written == 0
        with pytest.raises(CommandError, match="Another price refresh is running"):
            call_command("refresh_prices", "--provider", "csv", stdout=io.StringIO())
    assert prices_refresh(provider="csv", tickers=["AAPL"]).status == PriceRefresh.Status.DONE


@pytest.mark.django_db
def test_without_redis_the_refresh_runs_unlocked_and_says_so(loaded, csv_update, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/3"  # nothing listens there
    refresh = prices_refresh(provider="csv", tickers=["AAPL"])
    assert refresh.status == PriceRefresh.Status.DONE and refresh.rows_written == NEXT_DAYS
    assert "without the Redis lock" in refresh.message


class BlockingProvider:
    """A provider that waits inside fetch until released, so two refreshes really overlap."""

    name = "csv"

    def __init__(self):
        self.entered, self.release = threading.Event(), threading.Event()

    def fetch(self, *, tickers, start, metadata_for=()):
        self.entered.set()
        assert self.release.wait(30)
        return ProviderResult(closes=pd.DataFrame({t: [100.0] for t in tickers}, index=pd.to_datetime(["2026-01-05"])))


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_refreshes_never_overlap_one_is_skipped(tmp_path, settings, monkeypatch):
    settings.MARKET_DATA_DIR = write_market_dir(tmp_path / "market", tickers=["AAPL", "XLF"], days=5)
    market_data_load_bundled(data_dir=settings.MARKET_DATA_DIR)
    blocking = BlockingProvider()
    monkeypatch.setattr(services, "provider_for", lambda name=None: blocking)
    results = {}

    def first():
        try:
            results["first"] = prices_refresh(tickers=["AAPL"], provider="csv")
        finally:
            connection.close()

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert blocking.entered.wait(30)
        results["second"] = prices_refresh(tickers=["AAPL"], provider="csv")
    finally:
        blocking.release.set()
        thread.join(30)
    assert results["second"].status == PriceRefresh.Status.SKIPPED
    assert results["first"].status == PriceRefresh.Status.DONE and results["first"].rows_written == 1
    assert sorted(PriceRefresh.objects.values_list("status", flat=True)) == ["done", "skipped"]


@pytest.mark.django_db
def test_a_missing_csv_file_fails_the_refresh_plainly(loaded, settings, tmp_path):
    settings.PRICE_CSV_PATH = str(tmp_path / "not-downloaded.csv")
    rows = Price.objects.count()
    with pytest.raises(CommandError, match=r"Every ticker failed.*no such file"):
        call_command("refresh_prices", "--provider", "csv", "--tickers", "AAPL,XLF", stdout=io.StringIO())
    refresh = PriceRefresh.objects.get()
    assert refresh.status == PriceRefresh.Status.FAILED and set(refresh.failures) == {"AAPL", "XLF"}
    assert Price.objects.count() == rows
