"""Property: no accepted file yields a value (cash + the market values the file gives) that differs from the
file's own stated total by more than 1% without a warning that explains the difference (issue 16)."""

from __future__ import annotations

import os
import re
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portfolios.holdings.importers import ImportFailed, ParsedFile, parse_positions

FIXTURES = Path(__file__).parent / "fixtures" / "brokers"
WITH_TOTALS = ["All-Accounts-Positions-2025-12-31-160512.csv", "Individual-Positions-2025-12-31-160512.csv",
               "Schwab-Positions-2026-01-15-090112.csv", "PortfolioDownload.csv",
               "Merrill_Edge_Holdings_12312025.csv", "Statement12312025.csv", "U7654321_CHF_20251231.csv",
               "U1234567_20251231.csv"]
PROPERTY = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
TOLERANCE = Decimal("0.01")


def value_read(parsed: ParsedFile) -> Decimal:
    return parsed.cash + sum((p.market_value for p in parsed.positions if p.market_value is not None), Decimal(0))


def assert_total_explained(parsed: ParsedFile) -> None:
    """The property itself, plus: the warning names what it can (positions without a value)."""
    if parsed.stated_total is None:
        return
    difference = parsed.stated_total - value_read(parsed)
    if abs(difference) <= abs(parsed.stated_total) * TOLERANCE:
        return
    warnings = [w for w in parsed.warnings if "states a total" in w]
    assert len(warnings) == 1, (parsed.stated_total, value_read(parsed), parsed.warnings)
    warning = warnings[0]
    assert f"${abs(parsed.stated_total):,.2f}" in warning and f"${abs(value_read(parsed)):,.2f}" in warning
    for position in parsed.positions:
        if position.market_value is None:
            assert position.ticker in warning or "more" in warning
    assert re.search(r": .+\.$", warning), "it gives a reason"


def parse_or_none(data: bytes) -> ParsedFile | None:
    try:
        return parse_positions(data)
    except ImportFailed as exc:
        assert exc.errors
        return None


# --- generated Schwab and E*TRADE files ---------------------------------------------------------------

_SYMBOLS = st.sampled_from(["AAPL", "MSFT", "BRK/B", "SWTSX", "SNSXX", "SWVXX", "912797KX4",
                            "AAPL 01/16/2026 300.00 C", "XLK", "VTI"])
_MONEY = st.decimals(min_value=Decimal("0"), max_value=Decimal("250000"), places=2)
_SHARES = st.decimals(min_value=Decimal("0.001"), max_value=Decimal("5000"), places=3)


@st.composite
def holdings_rows(draw) -> list[tuple[str, Decimal, Decimal | None]]:
    """(symbol, quantity, market value or None when the file gives none)."""
    rows = draw(st.lists(st.tuples(_SYMBOLS, _SHARES, st.none() | _MONEY), min_size=1, max_size=12))
    return rows


@st.composite
def schwab_file(draw) -> bytes:
    rows = draw(holdings_rows())
    cash = draw(_MONEY)
    futures = draw(st.sampled_from([Decimal(0), Decimal(0), draw(_MONEY)]))
    true_total = cash + futures + sum((v for _, _, v in rows if v is not None), Decimal(0))
    stated = draw(st.sampled_from([true_total, true_total * Decimal("1.005"), draw(_MONEY)])).quantize(
        Decimal("0.01"))
    lines = ['"Positions for account Individual ...789 as of 09:01 AM ET, 2026/01/15"', "",
             '"Symbol","Description","Qty (Quantity)","Mkt Val (Market Value)","Security Type",']
    for symbol, shares, value in rows:
        kind = "Cash and Money Market" if symbol.endswith("XX") and symbol != "SWTSX" else "Equity"
        lines.append(f'"{symbol}","A SECURITY","{shares:,}","{"--" if value is None else f"${value:,}"}","{kind}",')
    lines.append(f'"Futures Positions Market Value","--","--","${futures:,}","--",')
    lines.append(f'"Cash & Cash Investments","--","--","${cash:,}","Cash and Money Market",')
    lines.append(f'"Account Total","--","--","${stated:,}","--",')
    return "\r\n".join(lines).encode()


@st.composite
def etrade_file(draw) -> bytes:
    rows = [(s, q, v) for s, q, v in draw(holdings_rows()) if " " not in s]
    cash = draw(_MONEY)
    true_total = cash + sum((v for _, _, v in rows if v is not None), Decimal(0))
    stated = draw(st.sampled_from([true_total, true_total * Decimal("0.98"), draw(_MONEY)])).quantize(
        Decimal("0.01"))
    lines = ["Account Summary", "Account,Net Account Value", f"Individual -1234,{stated}", "",
             "Symbol,Last Price $,Quantity,Price Paid $,Value $"]
    for symbol, shares, value in rows:
        lines.append(f'{symbol},1.00,{shares},1.00,{"" if value is None else value}')
    lines += [f"CASH,,,,{cash}", f"TOTAL,,,,{stated}", "", "Generated at Jan 15 2026 09:01 AM ET"]
    return "\r\n".join(lines).encode()


@PROPERTY
@given(schwab_file() | etrade_file())
def test_a_generated_broker_file_never_hides_a_difference_from_its_total(data):
    parsed = parse_or_none(data)
    if parsed is not None:
        assert parsed.stated_total is not None
        assert_total_explained(parsed)


# --- real layouts with rows taken out -----------------------------------------------------------------


@st.composite
def fixture_without_rows(draw) -> bytes:
    name = draw(st.sampled_from(WITH_TOTALS))
    lines = (FIXTURES / name).read_bytes().split(b"\n")
    keep = [line for line in lines if not draw(st.booleans()) or b"Total" in line or b"Header" in line]
    if draw(st.booleans()):  # or a number changed
        at = draw(st.integers(min_value=0, max_value=len(keep) - 1))
        keep[at] = re.sub(rb"\d", b"7", keep[at], count=draw(st.integers(min_value=1, max_value=3)))
    return b"\n".join(keep)


@PROPERTY
@given(fixture_without_rows())
def test_a_broker_file_with_rows_missing_never_hides_a_difference_from_its_total(data):
    parsed = parse_or_none(data)
    if parsed is not None:
        assert_total_explained(parsed)


def test_each_fixture_with_a_total_agrees_with_it_or_says_why():
    for name in WITH_TOTALS:
        parsed = parse_positions((FIXTURES / name).read_bytes())
        assert parsed.stated_total is not None, name
        assert_total_explained(parsed)


def test_an_unexplained_difference_is_still_a_warning():
    data = (FIXTURES / "PortfolioDownload.csv").read_bytes().replace(b'TOTAL,,,,,,182.00,"13,054.19",,"58,725.74"',
                                                                     b'TOTAL,,,,,,182.00,"13,054.19",,"90,000.00"')
    parsed = parse_positions(data)
    warning = next(w for w in parsed.warnings if "states a total" in w)
    assert "$90,000.00" in warning and "$58,725.74" in warning and "no row of the file explains it" in warning


# --- currencies: no foreign amount is ever taken as dollars -------------------------------------------

_CURRENCIES = ["USD", "CHF", "EUR", "GBP", "JPY"]


@st.composite
def ibkr_statement(draw) -> tuple[bytes, str, dict[str, Decimal], list[tuple[str, str, Decimal]]]:
    """An IBKR statement: base currency, rates to base (some may be missing), positions in several currencies."""
    base = draw(st.sampled_from(_CURRENCIES))
    rates = {c: draw(st.decimals(min_value=Decimal("0.005"), max_value=Decimal("2"), places=4))
             for c in _CURRENCIES if c != base and draw(st.integers(0, 5)) > 0}
    rows = [(f"T{i}", draw(st.sampled_from(_CURRENCIES)), draw(_MONEY)) for i in range(draw(st.integers(1, 6)))]
    lines = ["Account Information,Header,Field Name,Field Value",
             f"Account Information,Data,Base Currency,{base}",
             "Open Positions,Header,DataDiscriminator,Asset Category,Currency,Symbol,Quantity,Close Price,Value"]
    lines += [f"Open Positions,Data,Summary,Stocks,{cur},{sym},10,{value / 10},{value}" for sym, cur, value in rows]
    lines += ["Base Currency Exchange Rate,Header,Currency,Rate"]
    lines += [f"Base Currency Exchange Rate,Data,{c},{r}" for c, r in rates.items()]
    return "\n".join(lines).encode(), base, rates, rows


@PROPERTY
@given(ibkr_statement())
def test_an_amount_in_another_currency_is_converted_with_the_files_rates_or_the_file_is_refused(statement):
    data, base, rates, rows = statement
    in_base = {**rates, base: Decimal(1)}
    # A dollar amount needs no rate; any other needs its own rate and the dollar's (both to the base).
    convertible = all(cur == "USD" or (cur in in_base and "USD" in in_base) for _, cur, _ in rows)
    try:
        parsed = parse_positions(data)
    except ImportFailed as exc:
        assert not convertible, exc.errors
        assert any("never taken as dollars" in p.message for p in exc.errors)
        return
    assert convertible
    values = {p.ticker: p.market_value for p in parsed.positions}
    for symbol, currency, value in rows:
        if value == 0:
            continue
        expected = value if currency == "USD" else (value * in_base[currency] / in_base["USD"]).quantize(
            Decimal("0.01"))
        assert values[symbol] == expected, (symbol, currency, base)
