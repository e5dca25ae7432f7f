"""The positions-file parser: each broker format, the reading rules, and refusing bad input."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from portfolios.holdings.importers import ImportFailed, ParsedFile, parse_positions

FIXTURES = Path(__file__).parent / "fixtures" / "brokers"


def parse_fixture(name: str) -> ParsedFile:
    return parse_positions((FIXTURES / name).read_bytes(), filename=name)


def parse_text(text: str, **kwargs) -> ParsedFile:
    return parse_positions(text.encode("utf-8"), **kwargs)


def refused(data: bytes | str, **kwargs) -> ImportFailed:
    if isinstance(data, str):
        data = data.encode("utf-8")
    with pytest.raises(ImportFailed) as info:
        parse_positions(data, **kwargs)
    return info.value


def positions(parsed: ParsedFile) -> list[tuple[str, str, Decimal, Decimal | None]]:
    return [(p.account, p.ticker, p.shares, p.cost_basis) for p in parsed.positions]


def accounts(parsed: ParsedFile) -> dict[str, tuple[str, str, Decimal]]:
    return {a.name: (a.account_type, a.number_masked, a.cash) for a in parsed.accounts}


# --- broker formats ----------------------------------------------------------------------------


def test_it_reads_a_fidelity_positions_file():
    parsed = parse_fixture("Portfolio_Positions_Dec-31-2025.csv")
    assert parsed.format == "fidelity"
    assert parsed.as_of == dt.date(2025, 12, 31)  # from the "Date downloaded" footer
    assert accounts(parsed) == {
        "Individual": ("taxable", "...6789", Decimal("2512.34")),  # SPAXX** is cash
        "ROTH IRA": ("roth_ira", "...4567", Decimal("800.00")),  # FZFXX** is cash
        "Traditional IRA": ("traditional_ira", "...5432", Decimal("0")),
    }
    assert positions(parsed) == [
        ("Individual", "AAPL", Decimal("120"), Decimal("18000.00")),
        ("Individual", "BRK-B", Decimal("15.5"), Decimal("6200.00")),
        ("Individual", "QQQ", Decimal("20"), Decimal("8000.00")),
        ("Individual", "XLK", Decimal("25"), None),  # "--"
        ("ROTH IRA", "NVDA", Decimal("40"), Decimal("2000.00")),
        ("ROTH IRA", "FXAIX", Decimal("1002.613"), None),  # "1,002.613" and "n/a"
        ("Traditional IRA", "VTI", Decimal("30.125"), Decimal("7000.00")),
    ]
    assert [p.line for p in parsed.positions] == [3, 4, 5, 6, 9, 10, 11]
    assert all(a.broker == "Fidelity" for a in parsed.accounts)
    warnings = " ".join(parsed.warnings)
    assert "pending activity" in warnings.lower() and "-$150.00" in warnings and "line 7" in warnings
    assert "No cost basis" in warnings and "XLK" in warnings and "tax estimates are off" in warnings


def test_it_never_keeps_a_whole_account_number():
    parsed = parse_fixture("Portfolio_Positions_Dec-31-2025.csv")
    for account in parsed.accounts:
        assert len(account.number_masked.lstrip(".")) <= 4
    assert "Z23456789" not in repr(parsed)


def test_it_reads_an_older_fidelity_file_in_cp1252():
    parsed = parse_fixture("Portfolio_Positions_Mar-05-2021_old.csv")
    assert parsed.format == "fidelity"
    assert parsed.as_of == dt.date(2021, 3, 5)  # "Date downloaded Mar-05-2021 9:12 a.m ET"
    assert accounts(parsed) == {"Rollover IRA": ("traditional_ira", "...2222", Decimal("1000.00"))}
    assert positions(parsed) == [
        ("Rollover IRA", "SCHD", Decimal("100"), Decimal("2500.00")),  # "Cost Basis" is the total
        ("Rollover IRA", "MSFT", Decimal("15"), Decimal("4500.00")),
    ]


def test_it_reads_a_schwab_positions_file():
    parsed = parse_fixture("Individual-Positions-2025-12-31-160512.csv")
    assert parsed.format == "schwab"
    assert parsed.as_of == dt.date(2025, 12, 31)
    assert accounts(parsed) == {"Individual": ("taxable", "...123", Decimal("50000.00"))}
    assert positions(parsed) == [
        ("Individual", "MSFT", Decimal("1250.5"), Decimal("300000.00")),  # "1,250.5"
        ("Individual", "BRK-B", Decimal("10"), Decimal("4000.00")),  # BRK/B
        ("Individual", "SWPPX", Decimal("300.123"), None),  # "N/A"
    ]  # "Account Total" is not a position


def test_it_reads_schwabs_all_accounts_export_with_columns_in_another_order():
    parsed = parse_fixture("All-Accounts-Positions-2025-12-31-160512.csv")
    assert parsed.format == "schwab"
    assert accounts(parsed) == {
        "Individual": ("taxable", "...123", Decimal("50000.00")),
        "Roth Contributory IRA": ("roth_ira", "...456", Decimal("312.40")),
    }
    assert positions(parsed) == [
        ("Individual", "MSFT", Decimal("1250.5"), Decimal("300000.00")),
        ("Individual", "BRK-B", Decimal("10"), Decimal("4000.00")),
        ("Roth Contributory IRA", "SCHD", Decimal("2000"), Decimal("48000.00")),
        ("Roth Contributory IRA", "AAPL", Decimal("7.5"), None),
    ]


def test_it_reads_a_vanguard_download_and_ignores_its_transactions():
    parsed = parse_fixture("OfxDownload.csv")
    assert parsed.format == "vanguard"
    assert accounts(parsed) == {
        "Vanguard ...5678": ("taxable", "...5678", Decimal("1520.33")),  # VMFXX settlement fund is cash
        "Vanguard ...4321": ("taxable", "...4321", Decimal("200.00")),
    }
    assert all(a.type_assumed for a in parsed.accounts)
    assert positions(parsed) == [
        ("Vanguard ...5678", "VTI", Decimal("50"), None),
        ("Vanguard ...5678", "QQQ", Decimal("12"), None),  # the 2-share buy in the transactions is not a lot
        ("Vanguard ...4321", "VFIAX", Decimal("30.512"), None),
    ]
    warnings = " ".join(parsed.warnings)
    assert "assumed taxable" in warnings and "No cost basis" in warnings


def test_it_reads_the_open_positions_of_an_interactive_brokers_statement():
    parsed = parse_fixture("U1234567_20251231.csv")
    assert parsed.format == "ibkr"
    assert parsed.as_of == dt.date(2025, 12, 31)  # end of the statement period
    assert accounts(parsed) == {"Individual": ("taxable", "...4567", Decimal("3120.55"))}
    assert positions(parsed) == [
        ("Individual", "AAPL", Decimal("100"), Decimal("15025.00")),
        ("Individual", "BRK-B", Decimal("20"), Decimal("8010.00")),  # "BRK B"
        ("Individual", "IWM", Decimal("40"), Decimal("8000.00")),
        ("Individual", "AAPL260116C00300000", Decimal("1"), Decimal("520.00")),
    ]  # totals skipped; the option is kept at its market value, named in a warning
    option = parsed.positions[-1]
    assert (option.kind, option.market_value, option.price) == ("option", Decimal("110.00"), Decimal("110"))
    assert any("AAPL260116C00300000" in w and "held fixed" in w for w in parsed.warnings)
    assert parsed.stated_total == Decimal("46290.95")


def test_it_reads_a_generic_csv_with_lots_accounts_and_cash():
    parsed = parse_fixture("generic.csv")
    assert parsed.format == "generic"
    assert accounts(parsed) == {
        "Brokerage": ("taxable", "", Decimal("1000.00")),
        "Roth": ("roth_ira", "", Decimal("250.50")),
    }
    assert positions(parsed) == [
        ("Brokerage", "AAPL", Decimal("10"), Decimal("1500.00")),
        ("Brokerage", "BRK-B", Decimal("5"), Decimal("2000.00")),  # " brk.b " and a quoted "2,000.00"
        ("Brokerage", "AAPL", Decimal("5"), Decimal("900.00")),  # a second lot of AAPL
        ("Roth", "VTI", Decimal("20.5"), None),
    ]
    assert [p.acquired_on for p in parsed.positions] == [dt.date(2021, 3, 15), None, dt.date(2019, 3, 1), None]


def test_a_file_without_an_account_column_is_one_taxable_account():
    parsed = parse_fixture("generic_minimal.csv")
    assert accounts(parsed) == {"Taxable": ("taxable", "", Decimal("0"))}
    assert positions(parsed) == [("Taxable", "MSFT", Decimal("3"), None), ("Taxable", "QQQ", Decimal("2.5"), None)]


def test_it_reads_decimal_commas_in_a_semicolon_file():
    parsed = parse_fixture("generic_semicolon.csv")
    assert accounts(parsed)["Depot"][2] == Decimal("2000.75")  # "2.000,75"
    assert positions(parsed) == [
        ("Depot", "AAPL", Decimal("10.5"), Decimal("1500.00")),  # "10,5" and "1.500,00"
        ("Depot", "MSFT", Decimal("1250"), Decimal("300000.00")),  # "1.250" groups thousands here
    ]


def test_it_reads_a_tab_separated_file_with_a_bom():
    parsed = parse_fixture("generic_tab.tsv")
    assert positions(parsed) == [("Taxable", "XLF", Decimal("100"), Decimal("4800.00")),
                                 ("Taxable", "IWM", Decimal("12.25"), None)]


# --- reading rules -----------------------------------------------------------------------------


def test_columns_are_matched_by_name_not_position():
    a = parse_text("ticker,shares,cost_basis\nAAPL,10,1500\n")
    b = parse_text("Cost Basis,Quantity,Symbol\n1500,10,AAPL\n")
    assert positions(a) == positions(b) == [("Taxable", "AAPL", Decimal("10"), Decimal("1500.00"))]


def test_encodings_give_the_same_result():
    text = "ticker,shares,account\nAAPL,10,Caf\u00e9 Brokerage\n"
    expected = positions(parse_positions(text.encode("utf-8")))
    assert positions(parse_positions(b"\xef\xbb\xbf" + text.encode("utf-8"))) == expected
    assert positions(parse_positions(text.encode("cp1252"))) == expected
    assert positions(parse_positions(text.encode("utf-16"))) == expected
    assert expected[0][0] == "Caf\u00e9 Brokerage"
    latin1 = parse_positions(b"ticker,shares,account\nAAPL,10,X\x81Y\n")  # 0x81 is not cp1252
    assert latin1.positions[0].account == "X\x81Y"


@pytest.mark.parametrize("raw,expected", [
    ("brk.b", "BRK-B"), (" aapl ", "AAPL"), ("BRK/B", "BRK-B"), ("BF B", "BF-B"), ("shop.to", "SHOP.TO"),
])
def test_tickers_are_normalised(raw, expected):
    assert parse_text(f"ticker,shares\n{raw},1\n").positions[0].ticker == expected


@pytest.mark.parametrize("raw", ["=HYPERLINK(\"http://x\")", "+AAPL", "-AAPL", "@SUM(A1)", "AA PL X",
                                 "ÄPFEL", "A" * 25, "AAPL;DROP"])
def test_a_value_that_cannot_be_a_ticker_is_refused(raw):
    error = refused(f"ticker,shares\n\"{raw}\",1\n")
    assert error.errors[0].line == 2
    assert error.errors[0].field == "ticker"
    assert "ticker" in error.errors[0].message


def test_a_decimal_comma_outside_a_semicolon_file_is_refused_not_guessed():
    error = refused('ticker,shares\nAAPL,"12,5"\n')
    assert [(e.line, e.field) for e in error.errors] == [(2, "shares")]
    assert "decimal comma" in error.errors[0].message
    error = refused("ticker\tshares\nAAPL\t12,5\n")
    assert "decimal comma" in error.errors[0].message


def test_an_unquoted_thousands_separator_shifting_a_row_is_refused():
    error = refused("ticker,shares,cost_basis\nAAPL,1,250,1000\n")
    assert error.errors[0].line == 2
    assert "must be quoted" in error.errors[0].message


def test_a_semicolon_file_mixing_decimal_marks_is_refused():
    error = refused("ticker;shares\nAAPL;12,5\nMSFT;3.25\n")
    assert "mixes decimal marks" in error.errors[0].message


def test_a_semicolon_file_with_decimal_points_only_reads_them_as_points():
    assert positions(parse_text("ticker;shares\nAAPL;12.5\nMSFT;3\n"))[0][2] == Decimal("12.5")


def test_money_quirks_are_read():
    parsed = parse_text('ticker,shares,cost basis\nAAPL,+10,"$1,234.56"\nMSFT,2,($0.00)\nXLF,1,USD 12\n')
    assert [p.cost_basis for p in parsed.positions] == [Decimal("1234.56"), Decimal("0.00"), Decimal("12.00")]


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("data,message", [
    (b"", "empty"),
    (b"  \r\n\r\n", "empty"),
    (b"\xef\xbb\xbf", "empty"),
    (b"ticker,shares\n", "header but no positions"),
    (b"ticker,shares\n\n\n", "header but no positions"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "image"),
    (b"PK\x03\x04rest-of-a-zip", "Excel"),
    (b"ticker,shares\nAAPL,1\x00\n", "binary"),
    (b"ticker,shares\nAAPL,\x07\n", "control character"),
    (b"hello,world\n1,2\n", "unknown columns"),
    (b"ticker,price\nAAPL,1\n", "no shares"),
])
def test_bad_files_are_refused_with_a_reason(data, message):
    error = refused(data)
    assert message in str(error), str(error)


def test_unknown_columns_in_a_generic_file_are_each_named():
    error = refused("ticker,shares,colour,mood\nAAPL,1,red,happy\n")
    assert [(e.line, e.field) for e in error.errors] == [(1, "colour"), (1, "mood")]
    assert all("unknown column" in e.message for e in error.errors)


@pytest.mark.parametrize("shares,message", [
    ("-5", "negative"), ("abc", "not a number"), ("NaN", "not a finite number"), ("inf", "not a finite number"),
    ("-Infinity", "not a finite number"), ("1e5", "scientific notation"), ("", "missing"), ("1.2.3", "not a number"),
    ("99999999999999999", "too large"),
])
def test_bad_quantities_are_refused(shares, message):
    error = refused(f"ticker,shares\nAAPL,{shares}\n")
    assert [(e.line, e.field) for e in error.errors] == [(2, "shares")]
    assert message in error.errors[0].message


def test_every_problem_is_listed_with_its_line_and_column():
    error = refused("symbol,quantity,cost_basis\nAAPL,10,100\n=cmd(),5,1\nMSFT,-3,1\nXLF,2,abc\n")
    assert [(e.line, e.field) for e in error.errors] == [(3, "symbol"), (4, "quantity"), (5, "cost_basis")]
    text = str(error)
    assert text.splitlines()[0].startswith("The file was refused (3 problems)")
    assert "line 4, quantity: negative quantity" in text


def test_size_and_row_limits_come_from_settings(settings):
    settings.IMPORT_MAX_ROWS = 3
    text = "ticker,shares\n" + "".join(f"T{i},1\n" for i in range(4))
    assert "the limit is 3" in str(refused(text))
    assert len(parse_text(text, max_rows=4).positions) == 4
    settings.IMPORT_MAX_BYTES = 1024
    assert "the limit is 1 KB" in str(refused("ticker,shares\n" + "AAPL,1\n" * 200, max_rows=1000))


def test_a_fidelity_options_row_is_kept_as_an_option_at_its_market_value_not_misread():
    data = (FIXTURES / "Portfolio_Positions_Dec-31-2025.csv").read_bytes().replace(
        b"Z23456789,Individual,QQQ,", b"Z23456789,Individual, -QQQ260116C500,")
    parsed = parse_positions(data)
    option = next(p for p in parsed.positions if p.line == 5)
    assert (option.ticker, option.kind, option.shares) == ("QQQ260116C00500000", "option", Decimal("20"))
    assert option.market_value == Decimal("10200.00") and option.price == Decimal("510")
    assert any("QQQ260116C00500000" in w and "held fixed" in w for w in parsed.warnings)


def test_a_bad_row_in_a_broker_file_names_the_brokers_column():
    data = (FIXTURES / "Individual-Positions-2025-12-31-160512.csv").read_bytes().replace(b'"1,250.5"', b'"lots"')
    error = refused(data)
    assert [(e.line, e.field) for e in error.errors] == [(4, "Qty (Quantity)")]


def test_an_interactive_brokers_statement_without_positions_is_refused():
    error = refused("Statement,Header,Field Name,Field Value\nStatement,Data,Title,Activity Statement\n")
    assert "Open Positions" in str(error)


def test_a_header_far_below_blank_lines_is_refused_not_searched_forever():
    error = refused("\n" * 80 + "ticker,shares\nAAPL,1\n")
    assert "no header" in str(error)


def test_lines_above_the_header_are_reported_as_ignored():
    parsed = parse_text("My holdings export\n\nticker,shares\nAAPL,1\n")
    assert positions(parsed) == [("Taxable", "AAPL", Decimal("1"), None)]
    assert any("above the header" in w for w in parsed.warnings)


def test_two_accounts_with_the_same_name_stay_apart():
    header = (FIXTURES / "Portfolio_Positions_Dec-31-2025.csv").read_text(encoding="utf-8-sig").splitlines()[0]
    text = "\n".join([header,
                      "Z11111234,Individual,AAPL,APPLE INC,1,$1,,$1,,,,,,$1,$1,Cash,",
                      "Z22221234,Individual,AAPL,APPLE INC,2,$1,,$2,,,,,,$2,$1,Cash,",
                      "Z22221234,Individual,MSFT,MICROSOFT,3,$1,,$3,,,,,,$3,$1,Cash,"])
    parsed = parse_text(text)
    assert [a.name for a in parsed.accounts] == ["Individual ...1234", "Individual ...1234 (2)"]
    assert [(p.account, p.ticker) for p in parsed.positions] == [
        ("Individual ...1234", "AAPL"), ("Individual ...1234 (2)", "AAPL"), ("Individual ...1234 (2)", "MSFT")]


def test_interactive_brokers_lot_rows_are_not_counted_twice():
    text = "\n".join([
        "Statement,Header,Field Name,Field Value",
        "Open Positions,Header,DataDiscriminator,Asset Category,Currency,Symbol,Quantity,Cost Basis",
        "Open Positions,Data,Summary,Stocks,USD,AAPL,30,4500",
        "Open Positions,Data,Lot,Stocks,USD,AAPL,10,1000",
        "Open Positions,Data,Lot,Stocks,USD,AAPL,20,3500",
        "Open Positions,Data,Summary,Stocks,EUR,SAP,5,900",
        "Open Positions,Total,,Stocks,USD,,35,5400",
    ])
    parsed = parse_text(text)
    assert positions(parsed) == [("Interactive Brokers", "AAPL", Decimal("30"), Decimal("4500.00")),
                                 ("Interactive Brokers", "SAP", Decimal("5"), None)]  # no EUR cost basis
    assert any("SAP (EUR)" in w for w in parsed.warnings)


def test_a_bom_on_a_file_that_is_not_utf8_is_still_dropped():
    parsed = parse_positions(b"\xef\xbb\xbfticker,shares,account\nAAPL,1,Caf\xe9\n")
    assert positions(parsed) == [("Caf\u00e9", "AAPL", Decimal("1"), None)]


def test_a_refusal_survives_pickling():
    import pickle

    error = refused("ticker,shares\nAAPL,-1\n")
    assert pickle.loads(pickle.dumps(error)).errors == error.errors  # noqa: S301 (our own bytes)


def test_a_row_without_a_symbol_is_skipped_with_a_warning_or_refused():
    from portfolios.holdings.importers import ImportFailed, parse_positions

    header = (
        "Account Number,Account Name,Symbol,Description,Quantity,Last Price,Current Value,"
        "Cost Basis Total,Type\n"
    )
    described = header + (
        "Z1,Individual,AAPL,APPLE INC,10,$250.00,$2500.00,$1000.00,Cash\n"
        "Z1,Individual,,US TREASURY 4% 2030,5000,$99.00,$4950.00,$4900.00,Cash\n"
    )
    parsed = parse_positions(described.encode(), filename="Portfolio_Positions_Jan-02-2026.csv")
    assert [p.ticker for p in parsed.positions] == ["AAPL"]
    assert any("US TREASURY 4% 2030" in w and "line 3" in w for w in parsed.warnings)

    bare = header + "Z1,Individual,,,10,$1.00,$10.00,,Cash\n"
    try:
        parse_positions(bare.encode(), filename="Portfolio_Positions_Jan-02-2026.csv")
    except ImportFailed as exc:
        assert [(e.line, e.field) for e in exc.errors] == [(2, "Symbol")]
    else:
        raise AssertionError("a row with neither symbol nor description must refuse the file")
