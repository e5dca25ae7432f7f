"""Generic CSV: `ticker|symbol`, `shares|quantity`, optional `cost_basis`, `account`, `account_type`, `acquired_on`.

A `CASH` ticker row is cash (its shares column holds dollars). Unknown columns are refused.
"""

from __future__ import annotations

import re

from portfolios.holdings.importers.base import DEFAULT_ACCOUNT, FileBuilder, account_type_from_label
from portfolios.holdings.importers.text import Columns, Row, header_key

FORMAT = "generic"

ALIASES = {
    "ticker": ("ticker", "symbol"),
    "shares": ("shares", "quantity", "qty"),
    "cost_basis": ("cost basis", "cost basis total", "total cost", "cost basis usd"),
    "account": ("account", "account name"),
    "account_type": ("account type",),
    "acquired_on": ("acquired on", "acquired", "date acquired", "acquisition date", "open date"),
    "price": ("price", "last price", "price usd"),
    "market_value": ("market value", "value", "current value", "market value usd", "value usd"),
}
DESCRIPTION = ("description", "name")  # read when present (the first of them), never required
# Columns a person or a spreadsheet commonly adds, read by no one here (never guessed at).
IGNORED = ("notes", "note", *DESCRIPTION)
CASH_TICKERS = {"CASH"}


def generic_key(name: str) -> str:
    return re.sub(r"[\s_\-]+", " ", header_key(name)).strip()


def _known() -> set[str]:
    return {generic_key(a) for aliases in ALIASES.values() for a in aliases} | {generic_key(a) for a in IGNORED}


def header_matches(cells: list[str]) -> bool:
    keys = {generic_key(c) for c in cells}
    return bool(keys & set(ALIASES["ticker"])) and bool(keys & {generic_key(a) for a in ALIASES["shares"]})


def expected_columns() -> str:
    return ("ticker (or symbol), shares (or quantity), and optionally cost_basis, account, account_type, "
            "acquired_on, price, market_value, description")


def read(rows: list[Row], header_at: int, builder: FileBuilder) -> None:
    header = rows[header_at]
    columns = Columns(header.cells, line=header.line, key=generic_key)
    known = _known()
    for name in header.cells:
        if generic_key(name) and generic_key(name) not in known:
            builder.problem(header.line, name.strip(), f"unknown column; expected {expected_columns()}")
    for name in columns.duplicates:
        builder.problem(header.line, name.strip(), "this column appears twice")
    found = {field: [a for a in aliases if columns.has(a)] for field, aliases in ALIASES.items()}
    for field, present in found.items():
        if len(present) > 1:
            builder.problem(header.line, field, f"the columns {' and '.join(present)} mean the same; keep one")
    col = {field: columns.find(*aliases) for field, aliases in ALIASES.items()}
    names = {field: columns.name(i) if i is not None else field for field, i in col.items()}
    description = columns.find(*DESCRIPTION)

    for row in rows[header_at + 1:]:
        if row.blank:
            continue
        if message := columns.extra_values(row):
            builder.problem(row.line, "", message)
            continue
        ticker = Columns.cell(row, col["ticker"])
        account_key = _account(builder, row, col, names)
        if ticker.strip().upper() in CASH_TICKERS:
            builder.cash(account_key=account_key, line=row.line, amount=(Columns.cell(row, col["shares"]),
                                                                          names["shares"]))
            continue
        builder.position(
            account_key=account_key, line=row.line,
            ticker=(ticker, names["ticker"]),
            shares=(Columns.cell(row, col["shares"]), names["shares"]),
            cost_basis=(Columns.cell(row, col["cost_basis"]), names["cost_basis"]) if col["cost_basis"] is not None
            else None,
            acquired_on=(Columns.cell(row, col["acquired_on"]), names["acquired_on"])
            if col["acquired_on"] is not None else None,
            price=(Columns.cell(row, col["price"]), names["price"]) if col["price"] is not None else None,
            market_value=(Columns.cell(row, col["market_value"]), names["market_value"])
            if col["market_value"] is not None else None,
            description=Columns.cell(row, description),
        )


def _account(builder: FileBuilder, row: Row, col: dict, names: dict) -> tuple[str, str]:
    name = Columns.cell(row, col["account"]).strip()
    if not name:
        key = builder.account(name=DEFAULT_ACCOUNT, account_type="taxable" if col["account_type"] is None else None)
    else:
        key = builder.account(name=name)
    label = Columns.cell(row, col["account_type"]).strip()
    if label:
        kind = account_type_from_label(label)
        if kind is None:
            builder.problem(row.line, names["account_type"], f"unknown account type “{label[:40]}”; use taxable, "
                                                             "traditional_ira, roth_ira, 401k or other")
        else:
            builder.set_account_type(key, kind, line=row.line, field_name=names["account_type"])
    return key
