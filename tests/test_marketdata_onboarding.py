"""Unknown tickers stay with the user's holding until a provider confirms them (issue 13 item 9, issue 16
item 7): typos never grow the shared refresh list; confirmations are rate-limited per user and fetched
with yfinance 1.x (faked, never the network)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
import redis
import yfinance
from django.conf import settings as django_settings

from portfolios.holdings.importers import ParsedAccount, ParsedFile, ParsedPosition
from portfolios.holdings.services import portfolio_import
from portfolios.marketdata import onboarding, providers
from portfolios.marketdata.onboarding import confirmable, confirmations_allow
from portfolios.marketdata.services import market_data_load_bundled, refresh_tickers
from portfolios.marketdata.tasks import securities_confirm
from portfolios.models import EtfHolding, EtfSectorWeight, Portfolio, Price, RebalanceRun, Security
from tests.marketdata_support import FakeFundsData, FakeTicker, write_market_dir, yf_download_frame


@pytest.fixture
def loaded(tmp_path, settings, monkeypatch):
    settings.MARKET_DATA_DIR = write_market_dir(tmp_path / "market")
    market_data_load_bundled(data_dir=settings.MARKET_DATA_DIR)
    monkeypatch.setattr(providers, "YF_BACKOFF_S", 0.0)


@pytest.fixture
def rate_keys():
    """The rate-limit counters of this test's users start empty (only those keys are touched)."""
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    seen: list[str] = []

    def forget(user_id: int) -> None:
        for key in client.scan_iter(match=onboarding.RATE_KEY.format(user_id=user_id, hour="*")):
            client.delete(key)
            seen.append(key)

    yield forget
    client.close()


def parsed(tickers: list[str], *, account: str = "Brokerage") -> ParsedFile:
    positions = [ParsedPosition(account=account, ticker=t, shares=Decimal("10"), cost_basis=None, acquired_on=None,
                                line=i + 2, price=Decimal("12.5"), market_value=Decimal("125")) for i, t in
                 enumerate(tickers)]
    return ParsedFile(format="generic", accounts=[ParsedAccount(account, "taxable", "", "", Decimal("0"))],
                      positions=positions, warnings=[], as_of=None)


@pytest.mark.parametrize(("ticker", "ok"), [("SOFI", True), ("BRK-B", True), ("FXAIX", True), ("^GSPC", False),
                                            ("912797KX2", False), ("-AAPL260116C200", False), ("", False)])
def test_only_ticker_shaped_symbols_are_sent_to_the_provider(ticker, ok):
    assert confirmable(ticker) is ok


@pytest.mark.django_db
def test_a_file_of_5000_typos_adds_nothing_to_the_refresh_list_or_anyone_elses_universe(
    loaded, alice, settings, django_capture_on_commit_callbacks, rate_keys, monkeypatch
):
    settings.PRICE_SOURCE = "yfinance"
    settings.TICKER_CONFIRMATIONS_PER_HOUR = 20
    rate_keys(alice.pk)
    queued: list[list[str]] = []
    monkeypatch.setattr(onboarding, "_enqueue", queued.append)
    before = refresh_tickers()
    typos = [f"Q{i:04d}X" for i in range(5000)]
    portfolio = Portfolio.objects.create(owner=alice, name="Typos")
    with django_capture_on_commit_callbacks(execute=True):
        outcome = portfolio_import(portfolio=portfolio, parsed=parsed(typos))

    assert outcome.holdings == 5000
    assert refresh_tickers() == before
    assert not Security.objects.filter(ticker__in=typos, priced=True).exists()
    assert Security.objects.filter(onboarding.UNCONFIRMED, ticker__in=typos).count() == 5000
    assert [len(batch) for batch in queued] == [20]  # the rate limit: 20 confirmations, not 5,000
    assert any("Looking up" in w for w in outcome.warnings)


@pytest.mark.django_db
def test_confirmations_are_rate_limited_per_user(alice, bob, settings, rate_keys):
    settings.TICKER_CONFIRMATIONS_PER_HOUR = 20
    rate_keys(alice.pk)
    rate_keys(bob.pk)
    now = dt.datetime(2026, 12, 6, 17, 5, tzinfo=dt.UTC)
    assert confirmations_allow(user_id=alice.pk, count=15, now=now) == 15
    assert confirmations_allow(user_id=alice.pk, count=15, now=now) == 5
    assert confirmations_allow(user_id=alice.pk, count=3, now=now) == 0
    assert confirmations_allow(user_id=bob.pk, count=30, now=now) == 20  # another user's budget is their own
    assert confirmations_allow(user_id=alice.pk, count=3, now=now + dt.timedelta(hours=1)) == 3  # a new hour


@pytest.mark.django_db
def test_offline_price_sources_ask_nothing(loaded, alice, settings, rate_keys, monkeypatch):
    settings.PRICE_SOURCE = "bundled"
    rate_keys(alice.pk)
    monkeypatch.setattr(onboarding, "_enqueue", lambda tickers: pytest.fail("nothing to ask offline"))
    outcome = portfolio_import(portfolio=Portfolio.objects.create(owner=alice, name="P"), parsed=parsed(["SOFI"]))
    assert not any("Looking up" in w for w in outcome.warnings)


class FundsData(FakeFundsData):
    """`Ticker.funds_data` of yfinance 1.x: sector weightings and top holdings (a frame indexed by Symbol)."""

    def __init__(self, sector_weightings: dict[str, float], holdings: list[tuple[str, str, float]]):
        super().__init__(sector_weightings)
        self.top_holdings = pd.DataFrame({"Symbol": [h[0] for h in holdings], "Name": [h[1] for h in holdings],
                                          "Holding Percent": [h[2] for h in holdings]}).set_index("Symbol")


class YahooTicker(FakeTicker):
    table = {
        "SOFI": {"info": {"quoteType": "EQUITY", "longName": "SoFi Technologies, Inc.", "sector": "Financial Services",
                          "marketCap": 2.9e10, "country": "United States"}},
        "FXAIX": {"info": {"quoteType": "MUTUALFUND", "longName": "Fidelity 500 Index Fund",
                           "category": "Large Blend"}},
    }

    def __init__(self, symbol: str, session=None):
        super().__init__(symbol, session)
        if self.ticker == "FXAIX":
            self.funds_data = FundsData({"technology": 0.33, "financial_services": 0.13, "healthcare": 0.10,
                                         "consumer_cyclical": 0.44},
                                        [("NVDA", "NVIDIA Corp", 0.078), ("AAPL", "Apple Inc", 0.069),
                                         ("BRK.B", "Berkshire Hathaway Inc Class B", 0.016)])


@pytest.mark.django_db
def test_the_task_confirms_what_yahoo_knows_and_recomputes_the_holders(loaded, alice, monkeypatch, settings):
    settings.PRICE_SOURCE = "yfinance"
    history = pd.Series(np.linspace(180.0, 230.0, 80), index=pd.bdate_range(end="2025-12-31", periods=80))
    monkeypatch.setattr(yfinance, "download", lambda tickers, **kw: yf_download_frame(
        {t: (history if t == "FXAIX" else history / 10 if t == "SOFI" else None) for t in tickers}))
    monkeypatch.setattr(yfinance, "Ticker", YahooTicker)
    portfolio = Portfolio.objects.create(owner=alice, name="Fidelity")
    portfolio_import(portfolio=portfolio, parsed=parsed(["FXAIX", "SOFI", "QWERTZ"]))
    RebalanceRun.objects.filter(portfolio=portfolio).update(status=RebalanceRun.Status.DONE)

    result = securities_confirm.apply(args=[["FXAIX", "SOFI", "QWERTZ"]]).get()

    assert result["status"] == "partial"  # QWERTZ: Yahoo has nothing
    fxaix, sofi, typo = (Security.objects.get(ticker=t) for t in ("FXAIX", "SOFI", "QWERTZ"))
    assert fxaix.priced and fxaix.kind == Security.Kind.FUND and fxaix.name == "Fidelity 500 Index Fund"
    assert Price.objects.filter(security=fxaix).count() > 0
    sectors = dict(EtfSectorWeight.objects.filter(etf=fxaix).values_list("sector", "weight"))
    assert sectors["Information Technology"] == pytest.approx(0.33)
    assert dict(EtfHolding.objects.filter(etf=fxaix).values_list("ticker", "weight")) == {
        "NVDA": pytest.approx(0.078), "AAPL": pytest.approx(0.069), "BRK-B": pytest.approx(0.016)}
    assert sofi.priced and sofi.sector == "Financials" and sofi.kind == Security.Kind.STOCK
    assert not typo.priced and Security.objects.filter(onboarding.UNCONFIRMED, ticker="QWERTZ").exists()
    assert "FXAIX" in refresh_tickers() and "QWERTZ" not in refresh_tickers()
    assert RebalanceRun.objects.filter(portfolio=portfolio, status=RebalanceRun.Status.PENDING,
                                       trigger=RebalanceRun.Trigger.PRICES).count() == 1
    assert securities_confirm.apply(args=[["FXAIX", "SOFI"]]).get()["status"] == "nothing to confirm"
