"""Loading the bundled data: bulk upsert, idempotence, menu flags, look-through, the beat schedule."""

from __future__ import annotations

import gzip
import io

import numpy as np
import pandas as pd
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django_celery_beat.models import PeriodicTask

from portfolios.marketdata.providers import ProviderError
from portfolios.marketdata.selectors import market_data_for
from portfolios.marketdata.services import BEAT_TASK, market_data_ensure_loaded, market_data_load_bundled
from portfolios.models import EtfHolding, EtfSectorWeight, Price, Security
from tests.marketdata_support import SMALL_TICKERS, read_small_prices, write_market_dir


@pytest.fixture
def market_dir(tmp_path, settings):
    settings.MARKET_DATA_DIR = write_market_dir(tmp_path / "market")
    return settings.MARKET_DATA_DIR


@pytest.mark.django_db
def test_it_loads_securities_lookthrough_and_prices(market_dir):
    expected = read_small_prices(market_dir)
    summary = market_data_load_bundled(data_dir=market_dir)

    assert summary.securities == len(SMALL_TICKERS) == Security.objects.count()
    assert summary.prices_written == Price.objects.count() == int(expected.notna().sum().sum())
    assert summary.as_of == expected.index[-1].date()
    aapl = Security.objects.get(ticker="AAPL")
    assert (aapl.kind, aapl.sector, aapl.priced, aapl.source) == ("stock", "Information Technology", True, "bundled")
    assert aapl.last_price_date == expected["AAPL"].dropna().index[-1].date()
    assert Price.objects.get(security=aapl, date=expected.index[3].date()).close == expected["AAPL"].iloc[3]

    menu = set(Security.objects.filter(is_menu=True).values_list("ticker", flat=True))
    assert menu == {"XLF", "BIL"}  # not QQQ or XLK (tech concentration), not single stocks

    for etf in ("QQQ", "XLF", "XLK"):
        weights = EtfSectorWeight.objects.filter(etf__ticker=etf).values_list("weight", flat=True)
        assert sum(weights) == pytest.approx(1.0, abs=1e-9)
    xlf = dict(EtfHolding.objects.filter(etf__ticker="XLF").values_list("ticker", "weight"))
    assert xlf["BRK-B"] == pytest.approx(0.12560904)  # percent -> fraction, BRK.B -> Yahoo form
    assert not {"-", "NAN", "BRK.B", "IXAZ5"} & set(xlf)  # cash lines, disclaimers, futures dropped
    assert 0.95 < sum(xlf.values()) <= 1.0
    qqq = EtfHolding.objects.get(etf__ticker="QQQ", ticker="AAPL")
    assert qqq.sector == "Information Technology"  # QQQ's file has no sector: filled from the master
    assert PeriodicTask.objects.filter(task=BEAT_TASK).count() == 1


@pytest.mark.django_db
def test_loading_again_writes_nothing_and_a_changed_file_only_what_changed(market_dir):
    market_data_load_bundled(data_dir=market_dir)
    rows = Price.objects.count()
    again = market_data_load_bundled(data_dir=market_dir)
    assert again.prices_written == 0 and again.securities_created == 0
    assert Price.objects.count() == rows
    assert EtfHolding.objects.filter(etf__ticker="XLF", ticker="BRK-B").count() == 1

    frame = read_small_prices(market_dir)
    day = frame.index[5]
    old_msft = frame.loc[day, "MSFT"]
    frame.loc[day, "AAPL"] = 123.45  # a corrected price
    frame.loc[day, "MSFT"] = np.nan  # a hole must not delete the stored price
    frame.index = frame.index.strftime("%Y-%m-%d")
    frame.index.name = "date"
    frame.to_csv(market_dir / "prices_daily.csv.gz", compression="gzip")

    third = market_data_load_bundled(data_dir=market_dir)
    assert third.prices_written == 1
    assert Price.objects.count() == rows
    assert Price.objects.get(security__ticker="AAPL", date=day.date()).close == 123.45
    assert Price.objects.get(security__ticker="MSFT", date=day.date()).close == old_msft


@pytest.mark.django_db
def test_a_bad_line_names_file_line_and_column_and_writes_nothing(market_dir):
    text = (market_dir / "securities.csv").read_text().replace("Apple Inc.,stock", "Apple Inc.,share")
    (market_dir / "securities.csv").write_text(text)
    with pytest.raises(ProviderError, match=r"securities.csv line \d+, column 'kind': 'share'"):
        market_data_load_bundled(data_dir=market_dir)
    assert Security.objects.count() == 0


@pytest.mark.django_db
def test_a_bad_price_cell_writes_nothing(market_dir):
    with gzip.open(market_dir / "prices_daily.csv.gz", "rt") as fh:
        lines = fh.read().splitlines()
    cells = lines[4].split(",")
    cells[2] = "12;5"  # column MSFT
    lines[4] = ",".join(cells)
    with gzip.open(market_dir / "prices_daily.csv.gz", "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    with pytest.raises(ProviderError, match=r"line 5, column 'MSFT': '12;5' is not a number"):
        market_data_load_bundled(data_dir=market_dir)
    assert Security.objects.count() == 0 and Price.objects.count() == 0


@pytest.mark.django_db
def test_ensure_loaded_loads_only_the_first_time(market_dir):
    assert market_data_ensure_loaded() is True
    assert Price.objects.exists()
    assert market_data_ensure_loaded() is False


@pytest.mark.django_db
def test_the_command_shows_progress_and_if_empty_is_fast_when_loaded(market_dir):
    out = io.StringIO()
    call_command("load_market_data", stdout=out)
    assert "writing" in out.getvalue() and "prices as of" in out.getvalue()
    out = io.StringIO()
    call_command("load_market_data", "--if-empty", stdout=out)
    assert "already loaded" in out.getvalue()


@pytest.mark.django_db
def test_the_command_fails_plainly_on_bad_data(settings, tmp_path):
    settings.MARKET_DATA_DIR = tmp_path / "nothing-here"
    with pytest.raises(CommandError, match=r"Nothing was loaded: .*no such file"):
        call_command("load_market_data", stdout=io.StringIO())


@pytest.mark.django_db
def test_the_beat_schedule_is_created_once_and_admin_edits_survive(market_dir):
    call_command("load_market_data", "--if-empty", stdout=io.StringIO())
    task = PeriodicTask.objects.get(task=BEAT_TASK)
    assert (task.crontab.hour, task.crontab.minute, task.crontab.day_of_week) == ("17", "30", "1-5")
    assert str(task.crontab.timezone) == "America/New_York"
    task.crontab.hour = "18"
    task.crontab.save()
    call_command("load_market_data", stdout=io.StringIO())
    assert PeriodicTask.objects.filter(task=BEAT_TASK).count() == 1
    assert PeriodicTask.objects.get(task=BEAT_TASK).crontab.hour == "18"


@pytest.mark.django_db
def test_it_loads_the_whole_bundled_snapshot():
    """The one test that loads the real million-row snapshot (into the test database)."""
    summary = market_data_load_bundled()
    assert summary.securities == 557
    assert summary.prices_written == Price.objects.count()
    assert 900_000 < summary.prices_written < 1_000_000
    assert summary.as_of.isoformat() == "2025-12-31"
    assert Security.objects.filter(priced=True).count() == 557

    data = market_data_for(tickers=["NVDA", "QQQ", "XLF", "RSP", "UNKNOWN1"])
    assert data.prices.index[-1] == pd.Timestamp("2025-12-31")
    assert 745 <= len(data.prices) <= 760  # about 3 years of trading days
    assert data.etf_holdings["QQQ"]["NVDA"] == pytest.approx(0.09921)
    assert data.securities["UNKNOWN1"].kind == "unknown"
    assert data.prices["UNKNOWN1"].isna().all()
