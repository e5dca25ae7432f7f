"""Real portfolios as brokers export them (issue 16): money-market funds as cash, options, T-bills and funds
kept with the file's values, rows that are not positions named, currencies converted with the file's own
rates, more brokers (E*TRADE, Merrill Edge, Fidelity's statement CSV, OFX/QFX) and refusals that explain
themselves. Fixtures are written from the brokers' public descriptions of each export."""

from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from portfolios.holdings.importers import (
    FORMATS,
    ImportFailed,
    ParsedFile,
    parse_positions,
    parsed_file_from_dict,
    parsed_file_to_dict,
)
from portfolios.holdings.importers.securities import MONEY_MARKET_FILE, is_cusip, option_symbol

FIXTURES = Path(__file__).parent / "fixtures" / "brokers"
ACCEPTED = sorted(p.name for p in FIXTURES.iterdir() if not p.name.startswith("refused_"))
REFUSED = sorted(p.name for p in FIXTURES.iterdir() if p.name.startswith("refused_"))


def parse_fixture(name: str, data: bytes | None = None) -> ParsedFile:
    return parse_positions((FIXTURES / name).read_bytes() if data is None else data, filename=name)


def refused(name: str, data: bytes | None = None) -> ImportFailed:
    with pytest.raises(ImportFailed) as info:
        parse_fixture(name, data)
    return info.value


def cash(parsed: ParsedFile) -> dict[str, Decimal]:
    return {a.name: a.cash for a in parsed.accounts}


def held(parsed: ParsedFile) -> dict[str, tuple[Decimal, Decimal | None, str]]:
    """ticker -> (shares, market value USD, kind), summed over lots."""
    out: dict[str, tuple[Decimal, Decimal | None, str]] = {}
    for p in parsed.positions:
        shares, value, _ = out.get(p.ticker, (Decimal(0), Decimal(0), ""))
        value = None if value is None or p.market_value is None else value + p.market_value
        out[p.ticker] = (shares + p.shares, value, p.kind)
    return out


def value_read(parsed: ParsedFile) -> Decimal:
    return parsed.cash + sum((p.market_value for p in parsed.positions if p.market_value is not None), Decimal(0))


# --- the data file of money-market funds -----------------------------------------------------------


def test_the_money_market_file_names_each_brokers_funds():
    with MONEY_MARKET_FILE.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    tickers = [r["ticker"] for r in rows]
    assert len(tickers) == len(set(tickers)), "one row per fund"
    assert {"SPAXX", "FDRXX", "FZFXX", "SPRXX", "SWVXX", "SNSXX", "SNVXX", "VMFXX", "VMRXX", "IIAXX"} <= set(tickers)
    assert all(r["name"] and r["broker"] for r in rows)


@pytest.mark.parametrize("symbol", ["SPAXX", "SPAXX**", "spaxx", "FDRXX", "SWVXX", "VMRXX", "IIAXX"])
def test_a_money_market_fund_is_cash_however_it_is_written(symbol):
    parsed = parse_positions(f"ticker,shares,market_value\n{symbol},10,1234.56\nAAPL,1,250\n".encode())
    assert [p.ticker for p in parsed.positions] == ["AAPL"]
    assert parsed.cash == Decimal("1234.56")
    assert any("money-market funds as cash" in w for w in parsed.warnings)


# --- symbols ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["AAPL  260116C00300000", "AAPL260116C00300000", " -AAPL260116C300",
                                  "AAPL 01/16/2026 300.00 C", "AAPL 16JAN26 300 C", "AAPL Jan 16 '26 $300 Call"])
def test_each_brokers_option_spelling_gives_one_symbol(text):
    assert option_symbol(text) == "AAPL260116C00300000"


def test_cusips_are_told_by_their_check_digit():
    assert is_cusip("912797KX4") and is_cusip("037833100")
    assert not is_cusip("912797KX5") and not is_cusip("AAPL") and not is_cusip("FXAIX")


def test_class_shares_use_the_one_normaliser():
    parsed = parse_positions(b"ticker,shares\nBRKB,1\nBRK.B,2\nBRK/B,3\nbrk b,4\n")
    assert {p.ticker for p in parsed.positions} == {"BRK-B"}


def test_numbers_with_a_leading_dot_are_read():
    parsed = parse_positions(b"ticker,shares,price\nNVDA,.1250,$135.00\n")
    assert parsed.positions[0].shares == Decimal("0.125")
    assert parsed.positions[0].market_value == Decimal("16.88")


# --- Fidelity: what used to vanish ------------------------------------------------------------------


def test_fidelity_keeps_t_bills_index_funds_class_shares_and_options_with_their_values():
    parsed = parse_fixture("Portfolio_Positions_Jan-15-2026.csv")
    positions = held(parsed)
    assert positions["912797KX4"] == (Decimal("300000"), Decimal("296736.00"), "bond")
    assert positions["912797LB1"] == (Decimal("315000"), Decimal("311062.50"), "bond")
    assert {t: positions[t][2] for t in ("FXAIX", "FSKAX", "FSPSX")} == dict.fromkeys(("FXAIX", "FSKAX", "FSPSX"),
                                                                                      "fund")
    assert positions["BRK-B"][:2] == (Decimal("30"), Decimal("14403.00"))
    assert positions["AAPL260116C00300000"] == (Decimal("2"), Decimal("220.00"), "option")
    assert positions["NVDA"][0] == Decimal("0.125")  # `.1250`
    t_bill = next(p for p in parsed.positions if p.ticker == "912797KX4")
    assert t_bill.price * t_bill.shares == t_bill.market_value  # priced per unit of face value
    # SPAXX without `**` and without a quantity is cash (it used to refuse the file: "Quantity is missing").
    assert cash(parsed) == {"Individual": Decimal("41250.18"), "ROTH IRA": Decimal("812.40")}
    warnings = " ".join(parsed.warnings)
    assert "SPY260116P00500000" in warnings and "-$300.00" in warnings  # the written option is named
    assert "pending activity" in warnings.lower() and "-$1,500.00" in warnings
    assert "AAPL260116C00300000" in warnings  # options held fixed, named


def test_fidelitys_older_statement_csv_reads_subtotals_bonds_options_and_the_core_account():
    parsed = parse_fixture("Statement12312025.csv")
    assert parsed.format == "fidelity_statement"
    assert cash(parsed) == {"Individual - TOD": Decimal("15954.24"), "ROTH IRA": Decimal("0.00")}
    assert {a.name: a.account_type for a in parsed.accounts} == {"Individual - TOD": "taxable",
                                                                  "ROTH IRA": "roth_ira"}
    positions = held(parsed)
    assert set(positions) == {"AAPL", "BRK-B", "912797KX4", "AAPL260116C00300000", "FXAIX", "FSKAX"}
    assert positions["912797KX4"][2] == "bond" and positions["FXAIX"][2] == "fund"
    assert positions["AAPL260116C00300000"][2] == "option"
    assert parsed.stated_total == Decimal("173965.74") == value_read(parsed)
    assert not any("states a total" in w for w in parsed.warnings)


# --- Schwab -------------------------------------------------------------------------------------------


def test_schwab_money_funds_are_cash_futures_rows_are_skipped_and_options_kept():
    parsed = parse_fixture("Schwab-Positions-2026-01-15-090112.csv")
    assert cash(parsed) == {"Individual": Decimal("17500.50")}  # SNSXX + Cash & Cash Investments
    positions = held(parsed)
    assert {t: k for t, (_, _, k) in positions.items()} == {
        "SCHB": "etf", "SWTSX": "fund", "GOOGL": "stock", "912797LB1": "bond", "AAPL260116C00300000": "option"}
    assert positions["GOOGL"][0] == Decimal("0.5")  # `.5000`
    assert parsed.stated_total == Decimal("124694.55") == value_read(parsed)


def test_schwab_non_zero_futures_are_named_in_the_difference_from_the_total():
    data = (FIXTURES / "Schwab-Positions-2026-01-15-090112.csv").read_bytes().replace(
        b'"Futures Positions Market Value","--","--","--","--","--","$0.00"',
        b'"Futures Positions Market Value","--","--","--","--","--","$9,000.00"').replace(
        b"$124,694.55", b"$133,694.55")
    parsed = parse_fixture("Schwab-Positions-2026-01-15-090112.csv", data)
    warning = next(w for w in parsed.warnings if "states a total" in w)
    assert "Futures Positions Market Value" in warning and "$9,000.00" in warning


def test_a_short_position_in_a_broker_export_is_skipped_and_named_not_fatal():
    data = (FIXTURES / "Schwab-Positions-2026-01-15-090112.csv").read_bytes().replace(
        b'"GOOGL","ALPHABET INC CLASS A",".5000","$190.00"', b'"GOOGL","ALPHABET INC CLASS A","-.5000","$190.00"'
    ).replace(b'"$95.00","1.1%"', b'"-$95.00","1.1%"')
    parsed = parse_fixture("Schwab-Positions-2026-01-15-090112.csv", data)
    assert "GOOGL" not in held(parsed)
    assert any("GOOGL (line 7, value -$95.00)" in w and "short" in w for w in parsed.warnings)
    # A hand-written file with a negative quantity is still refused (a typo, not a broker's short).
    assert "negative quantity" in str(refused("mine.csv", b"ticker,shares\nGOOGL,-1\n"))


# --- Interactive Brokers: sections and currencies -------------------------------------------------------


def test_an_ibkr_statement_in_chf_converts_with_its_own_rates():
    parsed = parse_fixture("U7654321_CHF_20251231.csv")
    usd_per_chf = 1 / Decimal("0.7950")
    # Cash: the base-currency summary (seven currencies), converted to USD; never taken as dollars.
    assert cash(parsed) == {"Individual": (Decimal("11305.50") * usd_per_chf).quantize(Decimal("0.01"))}
    positions = held(parsed)
    assert positions["NESN"][:2] == (Decimal("100"), (Decimal("8050") * usd_per_chf).quantize(Decimal("0.01")))
    assert positions["AAPL"][:2] == (Decimal("50"), Decimal("12521.00"))  # a USD row stays in dollars
    assert positions["SAP"][1] == (Decimal("7200") * Decimal("0.9350") * usd_per_chf).quantize(Decimal("0.01"))
    assert "ESH6" not in positions and any("Futures" in w for w in parsed.warnings)
    assert parsed.stated_total == (Decimal("36041.70") * usd_per_chf).quantize(Decimal("0.01"))
    assert abs(value_read(parsed) - parsed.stated_total) <= Decimal("0.05")


def test_ibkr_cash_in_each_currency_adds_up_to_the_base_summary():
    data = (FIXTURES / "U7654321_CHF_20251231.csv").read_text()
    without_summary = "\n".join(line for line in data.splitlines()
                                if not line.startswith("Cash Report,Data,Ending Cash,Base Currency Summary"))
    per_currency = parse_fixture("U7654321_CHF_20251231.csv", without_summary.encode())
    summary = parse_fixture("U7654321_CHF_20251231.csv")
    assert abs(per_currency.cash - summary.cash) <= Decimal("0.05")


def test_an_ibkr_statement_without_rates_is_refused_never_read_as_dollars():
    data = (FIXTURES / "U7654321_CHF_20251231.csv").read_text()
    no_rates = "\n".join(line for line in data.splitlines() if not line.startswith("Base Currency Exchange Rate"))
    error = refused("U7654321_CHF_20251231.csv", no_rates.encode())
    assert any("CHF" in p.message and "never taken as dollars" in p.message for p in error.errors)


def test_an_ibkr_row_without_a_currency_is_in_the_base_currency():
    data = (FIXTURES / "U7654321_CHF_20251231.csv").read_bytes().replace(
        b"Long Open Positions,Data,Summary,Stocks,CHF,NESN", b"Long Open Positions,Data,Summary,Stocks,,NESN")
    parsed = parse_fixture("U7654321_CHF_20251231.csv", data)
    nesn = next(p for p in parsed.positions if p.ticker == "NESN")
    assert nesn.market_value == (Decimal("8050") / Decimal("0.7950")).quantize(Decimal("0.01"))
    assert nesn.cost_basis is None  # a CHF cost is no USD cost basis


def test_the_long_open_positions_section_takes_summaries_not_lots():
    parsed = parse_fixture("U7654321_CHF_20251231.csv")
    assert [p.shares for p in parsed.positions if p.ticker == "NESN"] == [Decimal("100")]


# --- E*TRADE, Merrill Edge --------------------------------------------------------------------------


def test_etrade_portfolio_download():
    parsed = parse_fixture("PortfolioDownload.csv")
    assert parsed.format == "etrade" and FORMATS["etrade"] == "E*TRADE"
    assert cash(parsed) == {"Individual Brokerage -5678": Decimal("4210.55")}
    assert parsed.accounts[0].number_masked == "...5678"
    positions = held(parsed)
    assert positions["BRK-B"][:2] == (Decimal("20"), Decimal("9602.00"))
    assert positions["MSFT260116C00450000"] == (Decimal("2"), Decimal("620.00"), "option")
    aapl = next(p for p in parsed.positions if p.ticker == "AAPL")
    assert aapl.cost_basis == Decimal("18000.00")  # Price Paid is per share
    option = next(p for p in parsed.positions if p.kind == "option")
    assert option.cost_basis == Decimal("500.00")  # 2 contracts x 100 shares x $2.50
    assert parsed.as_of == dt.date(2025, 12, 31)
    assert parsed.stated_total == Decimal("58725.74") == value_read(parsed)


def test_merrill_edge_holdings():
    parsed = parse_fixture("Merrill_Edge_Holdings_12312025.csv")
    assert parsed.format == "merrill"
    assert cash(parsed) == {"Main CMA": Decimal("3150.75"), "Roth": Decimal("412.10")}  # IIAXX, Money Accounts
    assert {a.name: a.account_type for a in parsed.accounts} == {"Main CMA": "taxable", "Roth": "roth_ira"}
    positions = held(parsed)
    assert positions["912797LB1"] == (Decimal("25000"), Decimal("24687.50"), "bond")  # CUSIP only
    assert positions["VTSAX"][2] == "fund"
    assert parsed.as_of == dt.date(2025, 12, 31)
    assert parsed.stated_total == Decimal("66145.55") == value_read(parsed)


# --- OFX/QFX -----------------------------------------------------------------------------------------


def test_an_ofx_statement_reads_positions_balances_and_the_securities_list():
    parsed = parse_fixture("Fidelity_X12345678.qfx")
    assert parsed.format == "ofx"
    assert cash(parsed) == {"fidelity.com ...5678": Decimal("4012.59")}  # AVAILCASH + SPAXX
    positions = held(parsed)
    assert positions["AAPL"][:2] == (Decimal("100"), Decimal("25042.00"))  # CUSIP 037833100 -> AAPL
    assert positions["BRK-B"][0] == Decimal("15")
    assert positions["FXAIX"][2] == "fund"
    assert positions["912797KX4"] == (Decimal("50000"), Decimal("49456.00"), "bond")  # no ticker: the CUSIP
    assert positions["AAPL260116C00300000"][2] == "option"
    assert parsed.as_of == dt.date(2025, 12, 31)
    assert all(p.description for p in parsed.positions)


def test_an_ofx_statement_in_another_currency_converts_with_the_rate_it_gives():
    parsed = parse_fixture("Questrade_51234567_CAD.ofx")
    assert parsed.cash == Decimal("1000.00")  # 1,250 CAD at 1.25 CAD per USD
    positions = held(parsed)
    assert positions["XIC.TO"][1] == Decimal("6400.00")
    assert positions["AAPL"][1] == Decimal("2500.00")  # already in USD


def test_an_ofx_statement_without_a_usd_rate_is_refused():
    data = (FIXTURES / "Questrade_51234567_CAD.ofx").read_bytes().replace(
        b"<CURRENCY><CURRATE>1.25</CURRATE><CURSYM>USD</CURSYM></CURRENCY>", b"")
    error = refused("x.ofx", data)
    assert "CAD" in error.errors[0].message and "never taken as dollars" in error.errors[0].message


def test_an_ofx_file_that_is_not_an_investment_statement_is_refused_with_a_reason():
    error = refused("x.ofx", b"OFXHEADER:100\r\nDATA:OFXSGML\r\n\r\n<OFX><BROKEN")
    assert "OFX" in error.errors[0].message


# --- refusals -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,says", [
    ("refused_History_for_Account_Z23456789.csv", "transaction history"),
    ("refused_Individual_XXX789_Realized_Lot_Details.csv", "lot-detail"),
    ("refused_U1234567_trades_only.csv", "trades-only"),
])
def test_a_file_that_forms_no_portfolio_is_refused_saying_what_it_is_and_what_to_export(name, says):
    assert name in REFUSED
    error = refused(name)
    assert len(error.errors) == 1
    message = error.errors[0].message
    assert says in message
    assert "Positions" in message or "positions" in message  # which export to use instead


# --- every accepted fixture ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ACCEPTED)
def test_every_accepted_fixture_is_well_formed_and_survives_the_preview_stash(name):
    parsed = parse_fixture(name)
    assert parsed.positions or parsed.cash
    assert parsed_file_from_dict(parsed_file_to_dict(parsed)) == parsed
    for p in parsed.positions:
        assert p.kind in ("", "stock", "etf", "fund", "option", "bond")
        if p.market_value is not None and p.price is not None and p.kind not in ("option", "bond"):
            assert abs(p.price * p.shares - p.market_value) <= max(Decimal("0.01") * p.shares, Decimal("0.02"))
    if parsed.stated_total is not None and not any("states a total" in w for w in parsed.warnings):
        assert abs(value_read(parsed) - parsed.stated_total) <= abs(parsed.stated_total) / 100


# --- what the import stores -------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_import_keeps_the_files_price_and_value_on_each_holding(alice):
    from portfolios.holdings.services import portfolio_import_file
    from portfolios.models import Holding, Portfolio

    portfolio = Portfolio.objects.create(owner=alice, name="Fidelity")
    name = "Portfolio_Positions_Jan-15-2026.csv"
    outcome = portfolio_import_file(portfolio=portfolio, data=(FIXTURES / name).read_bytes(), filename=name)
    assert outcome.holdings == 9
    stored = {h.security.ticker: (h.file_price_usd, h.file_value_usd)
              for h in Holding.objects.filter(account__portfolio=portfolio).select_related("security")}
    assert stored["912797KX4"] == (Decimal("0.989120"), Decimal("296736.00"))
    assert stored["FXAIX"] == (Decimal("210.500000"), Decimal("126326.31"))
    assert stored["AAPL260116C00300000"][1] == Decimal("220.00")
    assert sum(a.cash_usd for a in portfolio.accounts.all()) == Decimal("42062.58")


@pytest.mark.parametrize("name,section,column", [
    ("Portfolio_Positions_Jan-15-2026.csv", None, 2), ("Schwab-Positions-2026-01-15-090112.csv", None, 0),
    ("Merrill_Edge_Holdings_12312025.csv", None, 2), ("U7654321_CHF_20251231.csv", "Long Open Positions", 5),
])
def test_every_row_with_a_symbol_is_a_position_cash_or_named(name, section, column):
    """Nothing silently dropped: each symbol in the file is held, counted as cash, or named in a warning."""
    parsed = parse_fixture(name)
    warnings = " ".join(parsed.warnings).lower()
    held_symbols = {p.ticker for p in parsed.positions}
    rows = list(csv.reader((FIXTURES / name).read_text(encoding="utf-8-sig").splitlines()))
    if section:
        rows = [r for r in rows if r[:2] == [section, "Data"]]
    symbols = {r[column].strip() for r in rows[1 if not section else 0:] if len(r) > column}
    checked = 0
    for symbol in symbols - {"", "--", "Symbol", "Total", "Account Total", "Cash & Cash Investments"}:
        spelled = option_symbol(symbol) or symbol.strip(" *").replace("BRKB", "BRK-B").replace("/", "-")
        assert spelled in held_symbols or spelled.lower() in warnings or symbol.lower() in warnings, (name, symbol)
        checked += 1
    assert checked >= 4
