"""Broker positions files -> `ParsedFile`. One entry point, `parse_positions`; no database access.

Formats are detected from the content: OFX/QFX statements by their header; CSV files by their header
(columns matched by name, never by position): a generic CSV, Fidelity (positions and the older statement),
Schwab, Vanguard, E*TRADE, Merrill Edge and Interactive Brokers exports. Transaction histories and lot-detail
reports are refused with the export to use instead. A file is either read completely or
refused with every problem listed (`ImportFailed.errors`: line, column, message).
"""

from __future__ import annotations

from django.conf import settings

from engine.tickers import ticker_normalize
from portfolios.holdings.importers import (
    etrade,
    fidelity,
    fidelity_statement,
    generic,
    ibkr,
    merrill,
    ofx,
    refusals,
    schwab,
    vanguard,
)
from portfolios.holdings.importers.base import (
    ACCOUNT_TYPES,
    ImportFailed,
    ImportProblem,
    ParsedAccount,
    ParsedFile,
    ParsedPosition,
    account_type_from_label,
    account_type_from_name,
    parsed_file_from_dict,
    parsed_file_to_dict,
)
from portfolios.holdings.importers.base import FileBuilder as _FileBuilder
from portfolios.holdings.importers.text import (
    DELIMITERS,
    Row,
    line_cells,
    rows_read,
    text_decode,
    text_lines,
    text_shape_check,
)

__all__ = [
    "ACCOUNT_TYPES",
    "FORMATS",
    "ImportFailed",
    "ImportProblem",
    "ParsedAccount",
    "ParsedFile",
    "ParsedPosition",
    "account_type_from_label",
    "account_type_from_name",
    "parse_positions",
    "parsed_file_from_dict",
    "parsed_file_to_dict",
    "ticker_normalize",
]

FORMATS = {
    generic.FORMAT: "Generic CSV",
    fidelity.FORMAT: "Fidelity",
    schwab.FORMAT: "Schwab",
    vanguard.FORMAT: "Vanguard",
    ibkr.FORMAT: "Interactive Brokers",
    fidelity_statement.FORMAT: "Fidelity statement",
    etrade.FORMAT: "E*TRADE",
    merrill.FORMAT: "Merrill Edge",
    ofx.FORMAT: "OFX/QFX statement",
}
HEADER_SCAN_LINES = 60
# Checked in this order: the broker formats are more specific than the generic one.
_HEADER_FORMATS = (
    (fidelity.FORMAT, fidelity.header_matches),
    (fidelity_statement.FORMAT, fidelity_statement.header_matches),
    (vanguard.FORMAT, vanguard.header_matches),
    (schwab.FORMAT, schwab.header_matches),
    (etrade.FORMAT, etrade.header_matches),
    (merrill.FORMAT, merrill.header_matches),
    (generic.FORMAT, generic.header_matches),
)
_BROKERS = {generic.FORMAT: "", fidelity.FORMAT: fidelity.BROKER, schwab.FORMAT: schwab.BROKER,
            vanguard.FORMAT: vanguard.BROKER, ibkr.FORMAT: ibkr.BROKER,
            fidelity_statement.FORMAT: fidelity_statement.BROKER, etrade.FORMAT: etrade.BROKER,
            merrill.FORMAT: merrill.BROKER, ofx.FORMAT: ofx.BROKER}
# Readers of a CSV below its header: (rows, header index, builder).
_READERS = {generic.FORMAT: generic.read, schwab.FORMAT: schwab.read, vanguard.FORMAT: vanguard.read,
            fidelity_statement.FORMAT: fidelity_statement.read, etrade.FORMAT: etrade.read,
            merrill.FORMAT: merrill.read}
# Formats that read the lines above their header themselves (no "ignored lines" warning).
_READ_PREAMBLE = {schwab.FORMAT, fidelity_statement.FORMAT, etrade.FORMAT}


def parse_positions(
    data: bytes, *, filename: str = "", max_bytes: int | None = None, max_rows: int | None = None
) -> ParsedFile:
    """Read a positions file. Raises `ImportFailed` listing every problem; never returns a partial result."""
    max_bytes = settings.IMPORT_MAX_BYTES if max_bytes is None else max_bytes
    max_rows = settings.IMPORT_MAX_ROWS if max_rows is None else max_rows
    data = bytes(data)
    if len(data) > max_bytes:
        message = f"the file is {_size(len(data))}; the limit is {_size(max_bytes)}"
        raise ImportFailed([ImportProblem(None, "", message)])
    if not data.strip(b" \t\r\n\x1a\xef\xbb\xbf"):
        raise ImportFailed([ImportProblem(None, "", "the file is empty")])
    if ofx.content_matches(data):
        ofx.shape_check(data, max_positions=max_rows)
        builder = _FileBuilder(format=ofx.FORMAT, broker=ofx.BROKER, skip_shorts=True)
        ofx.read(data, builder)
        return builder.build()
    text = text_decode(data)
    if not text.strip():
        raise ImportFailed([ImportProblem(None, "", "the file is empty")])
    text_shape_check(text)

    fmt, delimiter, header_line = _detect(text)
    rows = rows_read(text, delimiter, max_rows=max_rows)
    builder = _FileBuilder(format=fmt, broker=_BROKERS[fmt], delimiter=delimiter, header_line=header_line,
                           skip_shorts=fmt != generic.FORMAT)
    if fmt == ibkr.FORMAT:
        ibkr.read(rows, builder)
    else:
        header_at = next((i for i, row in enumerate(rows) if row.line == header_line), None)
        if header_at is None:  # the header line sits inside a quoted multi-line value
            raise ImportFailed([ImportProblem(header_line, "", "the header row cannot be read (an unclosed quote?)")])
        skipped = [row for row in rows[:header_at] if not row.blank]
        if skipped and fmt not in _READ_PREAMBLE:
            builder.warn(f"Ignored {len(skipped)} line(s) above the header on line {header_line}.")
        if fmt == fidelity.FORMAT:
            fidelity.read(rows, header_at, builder, filename=filename)
        else:
            _READERS[fmt](rows, header_at, builder)
    return builder.build()


def _detect(text: str) -> tuple[str, str, int | None]:
    """(format, delimiter, header line) from the first lines of the file."""
    lines = text_lines(text, limit=HEADER_SCAN_LINES)
    numbered = [(number, line) for number, line in enumerate(lines, start=1) if line.strip()]
    if not numbered:
        raise ImportFailed([ImportProblem(None, "header", f"no header in the first {HEADER_SCAN_LINES} lines")])
    first_number, first_line = numbered[0]
    if ibkr.header_matches(Row(first_number, line_cells(first_line, ","))):
        return ibkr.FORMAT, ",", None
    for number, line in numbered:
        for delimiter in DELIMITERS:
            if delimiter not in line:
                continue
            cells = line_cells(line, delimiter)
            if refusal := refusals.refusal_for(cells):
                raise ImportFailed([ImportProblem(number, "header", refusal)])
            for fmt, matches in _HEADER_FORMATS:
                if matches(cells):
                    return fmt, delimiter, number
    raise ImportFailed(_diagnose(first_number, first_line))


def _diagnose(number: int, line: str) -> list[ImportProblem]:
    """Why the first line is not a header we know."""
    cells = max((line_cells(line, d) for d in DELIMITERS), key=len)
    keys = {generic.generic_key(c) for c in cells}
    has_ticker = bool(keys & {"ticker", "symbol"})
    has_shares = bool(keys & {"shares", "quantity", "qty"})
    shown = ", ".join(f"“{c.strip()[:30]}”" for c in cells[:8] if c.strip()) or "nothing"
    if has_ticker and not has_shares:
        return [ImportProblem(number, "header", "no shares (or quantity) column")]
    if has_shares and not has_ticker:
        return [ImportProblem(number, "header", "no ticker (or symbol) column")]
    return [ImportProblem(
        number, "header",
        f"unknown columns ({shown}): expected a CSV with columns {generic.expected_columns()}, or a positions "
        "file exported unchanged from Fidelity, Schwab, Vanguard, E*TRADE, Merrill Edge or Interactive Brokers, "
        "or an OFX/QFX statement",
    )]


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB" if n >= 1024 * 1024 else f"{n / 1024:.0f} KB"

