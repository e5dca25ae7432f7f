"""Nothing dropped: holdings the market data cannot price keep their file value and a named proxy
(portfolios/recommendations/proxies.py, the engine feed, data/funds/mutual_funds.csv)."""

from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.types import AccountCash, MarketData, Options, SecurityInfo
from portfolios.recommendations import proxies
from portfolios.recommendations.engine_feed import Lot, build_request_valued, compute_document

ROOT = Path(__file__).resolve().parent.parent
with open(ROOT / "data" / "market" / "securities.csv", newline="") as _fh:
    BUNDLED = {row["ticker"]: row for row in csv.DictReader(_fh)}
AS_OF = dt.date(2025, 12, 31)


# --- the fund table ---------------------------------------------------------------------------------


def test_every_fund_twin_is_a_bundled_etf_and_the_asked_funds_are_there():
    funds = proxies.mutual_funds()
    for ticker in ("FXAIX", "FSKAX", "FZROX", "FSPSX", "VTSAX", "VFIAX", "VTIAX", "VBTLX", "SWPPX", "SWTSX"):
        assert ticker in funds
    for fund in funds.values():
        assert (fund.twin == "") == (fund.target_year is not None), fund.ticker
        if fund.twin:
            assert BUNDLED[fund.twin]["kind"] == "etf", fund.ticker
        assert 0 <= fund.expense_ratio_pct < 1.0
    for ticker, _ in proxies.glide_path_blend(2050, 2026):
        assert BUNDLED[ticker]["kind"] == "etf"


@settings(deadline=None)
@given(st.integers(2000, 2080), st.integers(2020, 2060))
def test_the_glide_path_is_a_mix_that_only_gets_safer_with_time(target, year):
    blend = dict(proxies.glide_path_blend(target, year))
    assert sum(blend.values()) == pytest.approx(1.0)
    assert all(w >= 0 for w in blend.values())
    stocks = proxies.glide_path_stocks(target, year)
    assert proxies.GLIDE_STOCKS_MIN <= stocks <= proxies.GLIDE_STOCKS_MAX
    assert proxies.glide_path_stocks(target, year + 1) <= stocks + 1e-12


# --- classifying and choosing ---------------------------------------------------------------------

AVAILABLE = set(BUNDLED)
INFOS = {t: SecurityInfo(ticker=t, kind=r["kind"], asset_class=r["asset_class"], sector=r["sector"], size=r["size"],
                         region=r["region"]) for t, r in BUNDLED.items()}


@pytest.mark.parametrize(("ticker", "hint", "kind"), [
    ("FXAIX", "", "fund"), ("912797KX2", "", "bond"), ("912797KX2", "bond", "bond"), ("BRK-B", "", "stock"),
    ("-AAPL260116C200", "", "option"), ("AAPL  260116C00200000", "", "option"), ("ZZZZX", "", "fund"),
    ("NEWCO", "", "stock"), ("XYZ", "option", "option"),
])
def test_it_classifies_what_the_master_does_not_know(ticker, hint, kind):
    assert proxies.classify(ticker, hint) == kind


@pytest.mark.parametrize(("ticker", "description", "proxy"), [
    ("912797KX2", "UNITED STATES TREAS BILLS 0.00000% 03/19/2026", "BIL"),
    ("912797KX2", "", "BIL"),
    ("91282CJL6", "US TREASURY NOTE 4.375% 11/30/2027", "SHY"),
    ("91282CJL6", "US TREASURY NOTE 4.000% 2032-02-15", "IEF"),
    ("912810TW8", "", "TLT"),
    ("023135BC9", "AMAZON.COM INC 3.15% 08/22/2027", "AGG"),
])
def test_a_treasury_is_modelled_by_a_treasury_fund_of_matching_maturity(ticker, description, proxy):
    item = proxies.Unpriced(ticker=ticker, shares=100_000, value_usd=99_000.0, description=description)
    chosen = proxies.choose_proxy(item, available=AVAILABLE, as_of=AS_OF)
    assert chosen.method == proxies.Method.PROXY and chosen.blend == ((proxy, 1.0),)
    assert not chosen.sellable and chosen.price == pytest.approx(0.99)


def test_funds_take_their_twin_stocks_their_sector_fund_or_the_market_options_and_unknowns_stay_fixed():
    def choose(ticker, **kw):
        item = proxies.Unpriced(ticker=ticker, shares=10, value_usd=kw.pop("value", 1000.0), **kw)
        return proxies.choose_proxy(item, available=AVAILABLE, as_of=AS_OF, securities=INFOS)

    fxaix = choose("FXAIX")
    assert fxaix.blend == (("VOO", 1.0),) and fxaix.sellable and "ETF twin VOO" in fxaix.label
    target = choose("VFIFX")  # Vanguard 2050: 24 years to go in 2026
    assert [t for t, _ in target.blend] == ["VTI", "VXUS", "BND"] and target.sellable
    assert dict(target.info.asset_mix)["equity"] == pytest.approx(proxies.glide_path_stocks(2050, 2025))
    assert choose("NEWCO", sector="Financials").blend == (("XLF", 1.0),)
    assert choose("NEWCO").blend == (("VTI", 1.0),)
    option = choose("-AAPL260116C200", kind="option")
    assert option.method == proxies.Method.FIXED and option.blend == () and not option.sellable
    unknown = choose("NEWCO", value=None)
    assert unknown.method == proxies.Method.UNKNOWN and unknown.price is None and unknown.value_usd == 0


@settings(deadline=None)
@given(st.floats(1.0, 1e4), st.lists(st.floats(-0.05, 0.05), min_size=40, max_size=80))
def test_the_proxy_series_ends_at_the_file_price_with_the_proxy_returns(price, returns):
    index = pd.bdate_range("2025-01-01", periods=len(returns) + 1)
    twin = pd.Series(100 * np.cumprod([1.0, *(1 + np.array(returns))]), index=index)
    market = MarketData(prices=pd.DataFrame({"VOO": twin}), securities={"VOO": SecurityInfo("VOO", "etf", "equity")},
                        etf_sectors={}, etf_holdings={}, as_of=index[-1].date())
    proxy = proxies.choose_proxy(proxies.Unpriced("FXAIX", 3.0, 3.0 * price), available={"VOO"}, as_of=AS_OF)
    series = proxies.extend_market(market, [proxy]).prices["FXAIX"]
    assert series.iloc[-1] == pytest.approx(price)
    np.testing.assert_allclose(series.pct_change().to_numpy()[1:], twin.pct_change().to_numpy()[1:], atol=1e-9)


# --- a Fidelity-like portfolio through the engine ---------------------------------------------------
# (the market fixture loads every bundled ETF and AAPL, MSFT, NVDA, GOOGL, AMZN, META, JPM, BRK-B)

TBILLS = [("912797KX2", 250_000, "UNITED STATES TREAS BILLS 0.00000% 03/19/2026", 248_100.0),
          ("912797LB0", 200_000, "UNITED STATES TREAS BILLS 0.00000% 04/16/2026", 197_900.0),
          ("912797MH6", 162_000, "UNITED STATES TREAS BILLS 0.00000% 06/11/2026", 159_000.0)]
FUNDS = [("FXAIX", 700.0, 160_000.0), ("FSKAX", 600.0, 100_000.0), ("FSPSX", 350.0, 19_000.0)]
STOCKS = [("AAPL", 150), ("MSFT", 80), ("NVDA", 250), ("GOOGL", 60), ("AMZN", 70), ("META", 20), ("BRK-B", 40)]


def fidelity_like_lots(*, option_value: float = 6_000.0, unknown: bool = True) -> list[Lot]:
    lot = {"account": "Individual", "account_type": "taxable"}
    lots = [Lot(**lot, ticker=t, shares=float(face), file_value=value, kind="bond", description=text)
            for t, face, text, value in TBILLS]
    lots += [Lot(**lot, ticker=t, shares=shares, file_value=value) for t, shares, value in FUNDS]
    lots += [Lot(**lot, ticker=t, shares=float(shares), cost_basis=1000.0 * shares) for t, shares in STOCKS]
    lots.append(Lot(**lot, ticker="-NVDA260116C200", shares=2.0, file_value=option_value, kind="option"))
    if unknown:
        lots.append(Lot(**lot, ticker="ZZTOP", shares=10.0))  # no price anywhere
    return lots


def run(lots: list[Lot], cash: float = 10_000.0, **options) -> tuple[dict, object]:
    request, market_long, valued = build_request_valued(
        lots=lots, cash=[AccountCash("Individual", "taxable", cash)], options=Options(**options))
    return compute_document(request, market_long, valued), request


def direct_value(request, tickers) -> float:
    return sum(p.shares * p.price for p in request.positions if p.ticker in tickers)


def test_a_fidelity_like_portfolio_keeps_its_whole_value(market):
    doc, request = run(fidelity_like_lots())
    stocks = direct_value(request, {t for t, _ in STOCKS})
    file_values = sum(v for *_, v in TBILLS) + sum(v for *_, v in FUNDS) + 6_000.0
    assert doc["value"] == pytest.approx(stocks + file_values + 10_000.0, abs=0.01)
    assert file_values / doc["value"] > 0.5  # not a 15% slice: the unpriced part is most of it
    weights = doc["before"]["weights"]
    assert weights["912797KX2"] == pytest.approx(248_100.0 / doc["value"], abs=1e-6)
    assert weights["FXAIX"] == pytest.approx(160_000.0 / doc["value"], abs=1e-6)
    cover = doc["coverage"]
    assert cover["direct_usd"] + cover["proxy_usd"] + cover["fixed_usd"] == pytest.approx(doc["value"], abs=0.05)
    assert cover["fixed_usd"] == pytest.approx(6_000.0)
    assert cover["modelled"] >= proxies.MODELLED_MIN and doc["status"] in ("optimal", "relaxed")
    by_ticker = {h["ticker"]: h for h in cover["holdings"]}
    assert by_ticker["FXAIX"]["proxy"] == ["VOO"] and by_ticker["912797KX2"]["proxy"] == ["BIL"]
    assert by_ticker["ZZTOP"]["method"] == "unknown" and by_ticker["ZZTOP"]["value"] == 0
    assert any("ZZTOP" in w and "$0" in w for w in doc["warnings"])
    assert any("-NVDA260116C200" in w and "held fixed" in w for w in doc["warnings"])
    assert doc["unpriced"] == ["ZZTOP"]


def test_held_fixed_holdings_are_never_traded_and_funds_are_only_sold(market):
    doc, _ = run(fidelity_like_lots())
    traded = {(t["ticker"], t["action"]) for t in doc["trades"]}
    fixed = {t for t, *_ in TBILLS} | {"-NVDA260116C200", "ZZTOP"}
    assert not {t for t, _ in traded} & fixed
    assert not {t for t, a in traded if a == "buy"} & {t for t, *_ in FUNDS}


def test_the_tech_share_looks_through_the_index_funds(market):
    from portfolios.models import EtfSectorWeight

    doc, request = run(fidelity_like_lots(unknown=False))
    it = dict(EtfSectorWeight.objects.filter(sector="Information Technology").values_list("etf__ticker", "weight"))
    stocks_it = direct_value(request, {"AAPL", "MSFT", "NVDA"})
    stocks_all = direct_value(request, {t for t, _ in STOCKS})
    funds_it = 160_000.0 * it["VOO"] + 100_000.0 * it["VTI"] + 19_000.0 * it["EFA"]
    option = 6_000.0  # an NVDA option counts with its underlying's sector
    equity = stocks_all + 279_000.0 + option
    expected = (stocks_it + funds_it + option) / equity
    assert doc["before"]["sectors"]["Information Technology"] == pytest.approx(expected, abs=0.01)
    assert expected < stocks_it / stocks_all - 0.1  # the funds dilute the stocks' tech share


def test_below_ninety_percent_modelled_the_status_is_partial_and_leads_the_warnings(market):
    doc, _ = run(fidelity_like_lots(option_value=400_000.0))
    assert doc["coverage"]["modelled"] < proxies.MODELLED_MIN
    assert doc["status"] == "partial"
    assert doc["warnings"][0].startswith("Only ") and "partial" in doc["summary"]


def test_a_stored_portfolio_is_valued_from_the_file_values_of_its_holdings(market, alice):
    from portfolios.models import Account, Holding, Portfolio, Security
    from portfolios.recommendations.engine_feed import portfolio_document

    portfolio = Portfolio.objects.create(owner=alice, name="Fidelity")
    account = Account.objects.create(portfolio=portfolio, name="Individual", cash_usd=Decimal("1000"))
    fxaix = Security.objects.create(ticker="FXAIX", kind=Security.Kind.FUND, source="import")
    bill = Security.objects.create(ticker="912797KX2", kind=Security.Kind.BOND, source="import",
                                   name="UNITED STATES TREAS BILLS 0.00000% 03/19/2026")
    Holding.objects.create(account=account, security=fxaix, shares=Decimal("100"), file_price_usd=Decimal("230.5"))
    Holding.objects.create(account=account, security=bill, shares=Decimal("50000"), file_value_usd=Decimal("49600"))
    doc = portfolio_document(portfolio_id=portfolio.pk, inputs={"profile": "moderate"})
    assert doc["value"] == pytest.approx(1000 + 23_050 + 49_600, abs=0.01)
    assert doc["coverage"]["proxy_usd"] == pytest.approx(23_050 + 49_600, abs=0.01)
    assert doc["before"]["asset_class"]["cash"] == pytest.approx((1000 + 49_600) / doc["value"], abs=1e-4)


# --- the page ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_page_leads_with_a_partial_status(alice, alice_client):
    import json

    from django.urls import reverse

    from tests.test_recommendations_views import FIXTURE, make_portfolio, make_run

    result = json.loads(FIXTURE.read_text())
    portfolio = make_portfolio(alice)
    make_run(portfolio, result=result)
    html = alice_client.get(reverse("portfolio_detail", kwargs={"portfolio_id": portfolio.pk})).content.decode()
    assert 'data-testid="partial-status"' not in html and 'data-testid="coverage"' not in html

    result = proxies.apply_coverage(result, [proxies.Proxy(
        "-NVDA260116C200", "option", proxies.Method.FIXED, (), 5_000.0, 10.0, False, "an option, held fixed")])
    assert result["status"] == "partial"  # $50,000 of the sample's value is held fixed
    make_run(portfolio, result=result)
    html = alice_client.get(reverse("portfolio_detail", kwargs={"portfolio_id": portfolio.pk})).content.decode()
    banner = html.index('data-testid="partial-status"')
    assert banner < html.index('data-testid="summary"') < html.index('data-testid="trades"')
    assert "Partial suggestion: only" in html and "-NVDA260116C200" in html
    assert 'data-testid="coverage"' in html


@pytest.mark.django_db
def test_the_holdings_page_and_the_api_count_file_values(alice, alice_client):
    from django.urls import reverse

    from portfolios.api.selectors import portfolio_detail_document
    from portfolios.models import Account, Holding, Portfolio, Security

    portfolio = Portfolio.objects.create(owner=alice, name="Fidelity")
    account = Account.objects.create(portfolio=portfolio, name="Individual", cash_usd=Decimal("100"))
    for ticker, price, value in (("FXAIX", None, "23050"), ("912797KX2", "0.992", None), ("ZZTOP", None, None)):
        Holding.objects.create(account=account, security=Security.objects.create(ticker=ticker, source="import"),
                               shares=Decimal("100"), file_price_usd=price and Decimal(price),
                               file_value_usd=value and Decimal(value))
    document = portfolio_detail_document(portfolio=portfolio)
    assert document["value"] == pytest.approx(100 + 23_050 + 99.2)
    rows = {h["ticker"]: h for h in document["holdings"]}
    assert rows["FXAIX"]["price"] == pytest.approx(230.5) and rows["FXAIX"]["value"] == pytest.approx(23_050)
    assert rows["ZZTOP"]["value"] is None and rows["ZZTOP"]["price"] is None
    html = alice_client.get(reverse("holdings", kwargs={"portfolio_id": portfolio.pk})).content.decode()
    assert "23,249.20" in html and 'data-testid="file-valued"' in html and "No price for ZZTOP" in html


def test_the_table_format_states_the_coverage():
    from portfolios.management.commands.rebalance import render_table

    doc = json_fixture()
    doc = proxies.apply_coverage(doc, [proxies.Proxy("FXAIX", "fund", proxies.Method.PROXY, (("VOO", 1.0),), 200.0,
                                                     100.0, True, "its ETF twin VOO")])
    text = render_table(doc)
    assert "Value modelled directly" in text and "by a proxy 6.3%" in text and "held fixed 0.0%" in text


def json_fixture() -> dict:
    import json

    return json.loads((ROOT / "tests" / "fixtures" / "sample_result.json").read_text())


UNPRICED_KINDS = st.sampled_from([("FXAIX", ""), ("VFIFX", ""), ("912797KX2", "bond"), ("NEWCO", ""),
                                  ("-AAPL260116C200", "option"), ("ZZZZX", ""), ("91282CJL6", "bond")])


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(UNPRICED_KINDS, st.floats(100.0, 500_000.0), st.floats(1.0, 1000.0)), min_size=1,
                max_size=5, unique_by=lambda x: x[0][0]),
       st.lists(st.tuples(st.sampled_from([t for t, _ in STOCKS]), st.integers(1, 200)), max_size=4,
                unique_by=lambda x: x[0]),
       st.floats(0.0, 50_000.0))
def test_every_holding_counts_in_the_value_and_coverage_adds_up(market, unpriced, stocks, cash):
    lots = [Lot("Taxable", "taxable", t, shares, file_value=value, kind=kind) for (t, kind), value, shares in unpriced]
    lots += [Lot("Taxable", "taxable", t, float(n)) for t, n in stocks]
    request, market_long, valued = build_request_valued(
        lots=lots, cash=[AccountCash("Taxable", "taxable", cash)], options=Options())
    doc = compute_document(request, market_long, valued)
    expected = direct_value(request, {t for t, _ in stocks}) + sum(v for _, v, _ in unpriced) + cash
    assert doc["value"] == pytest.approx(expected, abs=0.02)
    cover = doc["coverage"]
    assert cover["direct"] + cover["proxy"] + cover["fixed"] == pytest.approx(1.0, abs=1e-5)
    assert sum(doc["before"]["weights"].values()) == pytest.approx(1.0, abs=1e-5)
    assert (doc["status"] == "partial") == (cover["modelled"] < proxies.MODELLED_MIN)
    fixed = {p.ticker for p in valued if not p.sellable}
    assert not {t["ticker"] for t in doc["trades"]} & fixed


def test_thousands_of_unknown_tickers_cost_one_asset_and_keep_their_value(market, monkeypatch):
    monkeypatch.setattr(proxies, "MAX_MODELLED", 5)
    lots = [Lot("Taxable", "taxable", f"Q{i:03d}X", 10.0, file_value=1000.0 + i) for i in range(40)]
    lots += [Lot("Roth", "roth_ira", f"R{i:03d}X", 10.0, file_value=500.0) for i in range(10)]
    lots += [Lot("Taxable", "taxable", f"Z{i:03d}X", 10.0) for i in range(10)]  # no price anywhere
    lots.append(Lot("Taxable", "taxable", "AAPL", 100.0))
    doc, request = run(lots, cash=0.0)
    held = {p.ticker for p in request.positions}
    assert len(held) == 5 + 2  # the 5 largest one by one, AAPL, and one OTHER-UNPRICED asset
    assert proxies.OVERFLOW_TICKER in held
    expected = direct_value(request, {"AAPL"}) + sum(1000.0 + i for i in range(40)) + 10 * 500.0
    assert doc["value"] == pytest.approx(expected, abs=0.01)
    assert len(doc["coverage"]["holdings"]) == 6
    assert any("55 more holdings without a market price" in w and "10 of them have no price" in w
               for w in doc["warnings"])
    assert proxies.OVERFLOW_TICKER not in {t["ticker"] for t in doc["trades"]}
