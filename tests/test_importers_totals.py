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
