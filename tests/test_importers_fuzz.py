"""Property-based fuzzing of the parser: any bytes give positions or a clear ImportFailed, never a crash;
whatever it accepts is well-formed; a file it writes itself is read back exactly."""

from __future__ import annotations

import csv
import io
import os
import re
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.tickers import ticker_key
from portfolios.holdings.importers import ACCOUNT_TYPES, ImportFailed, ParsedFile, parse_positions
from portfolios.holdings.importers.securities import is_money_market

FIXTURES = sorted((Path(__file__).parent / "fixtures" / "brokers").iterdir())
FIXTURE_BYTES = [p.read_bytes() for p in FIXTURES]
TICKER = re.compile(r"^[A-Z0-9][A-Z0-9.\-]{0,23}$")
# Modest by default so the suite stays fast; FUZZ_EXAMPLES=5000 for a deeper run.
FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


def parse_or_refuse(data: bytes) -> ParsedFile | ImportFailed:
    try:
        parsed = parse_positions(data, max_bytes=64 * 1024, max_rows=500)
    except ImportFailed as exc:
        assert exc.errors, "a refusal must list at least one problem"
        for problem in exc.errors:
            assert problem.message
            assert problem.line is None or problem.line >= 1
        assert str(exc).startswith("The file was refused")
        return exc
    assert_well_formed(parsed)
    return parsed


def assert_well_formed(parsed: ParsedFile) -> None:
    names = [a.name for a in parsed.accounts]
    assert len(names) == len(set(names)), "account names are unique"
    assert all(a.account_type in ACCOUNT_TYPES for a in parsed.accounts)
    assert all(len(a.name) <= 100 and a.name for a in parsed.accounts)
    assert all(len(a.number_masked) <= 20 for a in parsed.accounts)
    for p in parsed.positions:
        assert p.account in names
        assert TICKER.match(p.ticker), p.ticker
        assert p.shares > 0 and p.shares.is_finite()
        assert p.cost_basis is None or (p.cost_basis >= 0 and p.cost_basis.is_finite())
        assert p.line >= 1
    assert parsed.positions or any(a.cash for a in parsed.accounts)


@FUZZ
@given(st.binary(max_size=3000))
def test_any_bytes_give_positions_or_a_clear_refusal(data):
    parse_or_refuse(data)


CSV_ALPHABET = st.sampled_from(list("ticker,shares;cost_basis\taccount\"\r\n 0123456789.,-+$%()=@*/ABCXYZ\u00e9\ufeff"))


@FUZZ
@given(st.text(alphabet=CSV_ALPHABET, max_size=400), st.sampled_from(["utf-8", "utf-16", "cp1252"]))
def test_csv_like_text_gives_positions_or_a_clear_refusal(text, encoding):
    parse_or_refuse(("ticker,shares,cost_basis,account\n" + text).encode(encoding, errors="replace"))


@st.composite
def mutated_fixture(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(FIXTURE_BYTES)))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        at = draw(st.integers(min_value=0, max_value=len(data)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        chunk = draw(st.binary(min_size=1, max_size=8) | st.sampled_from(
            [b",", b";", b"\t", b'"', b"\n", b"\r", b"--", b"-1", b"NaN", b"=1+1", b"1,250", b"**", b"\xff"]))
        if op == "insert":
            data[at:at] = chunk
        elif op == "delete":
            del data[at: at + len(chunk)]
        else:
            data[at: at + len(chunk)] = chunk
    return bytes(data)


@FUZZ
@given(mutated_fixture())
def test_damaged_broker_files_give_positions_or_a_clear_refusal(data):
    parse_or_refuse(data)


# --- round trip: a file written from known lots reads back exactly --------------------------------

# Money-market funds are cash, and run-together class shares (BRKB) are spelled the Yahoo way: not lots.
tickers = st.from_regex(r"[A-Z]{1,5}", fullmatch=True).filter(
    lambda t: t != "CASH" and not is_money_market(t) and ticker_key(t) == t)
share_amounts = st.decimals(min_value=Decimal("0.000001"), max_value=Decimal("9999999"), places=6)
costs = st.none() | st.decimals(min_value=Decimal("0"), max_value=Decimal("99999999"), places=2)
lots = st.lists(st.tuples(tickers, share_amounts, costs, st.sampled_from(["Brokerage", "Roth IRA", "401(k)"])),
                min_size=1, max_size=25)


@FUZZ
@given(lots, st.sampled_from([",", ";", "\t"]), st.booleans())
def test_a_written_file_reads_back_exactly(rows, delimiter, grouped):
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter)
    writer.writerow(["account", "symbol", "quantity", "cost_basis"])
    for ticker, shares, cost, account in rows:
        writer.writerow([account, ticker.lower(), _write(shares, delimiter, grouped),
                         "" if cost is None else _write(cost, delimiter, grouped)])
    parsed = parse_positions(buffer.getvalue().encode("utf-8"))
    assert [(p.account, p.ticker, p.shares, p.cost_basis) for p in parsed.positions] == [
        (account, ticker, shares, cost) for ticker, shares, cost, account in rows
    ]
    types = {a.name: a.account_type for a in parsed.accounts}
    assert {types[n] for n in types} <= {"taxable", "roth_ira", "401k"}


def _write(value: Decimal, delimiter: str, grouped: bool) -> str:
    text = f"{value:,f}" if grouped else f"{value:f}"
    if delimiter == ";":  # a semicolon file: decimal comma, dots group thousands
        text = text.replace(",", "_").replace(".", ",").replace("_", ".")
    return text
