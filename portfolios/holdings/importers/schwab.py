"""Schwab positions export.

A preamble `"Positions for account <name> ...123 as of <time>, YYYY/MM/DD"`, a blank line, then a quoted
header (`"Symbol","Description","Qty (Quantity)",...,"Mkt Val (Market Value)",...,"Cost Basis",...`, in
any order). `Cash & Cash Investments` and money-market funds (Security Type `Cash and Money Market`) are cash; `Account
Total` is the stated total; `Futures Cash` / `Futures Positions Market Value` rows are not positions (named,
their value kept aside); options (`AAPL 01/16/2026 300.00 C`) are kept with their market value. The all-accounts export
repeats the preamble (or a bare `"<name> ...123"` line) and the header for each account.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from portfolios.holdings.importers import securities, values
from portfolios.holdings.importers.base import DEFAULT_ACCOUNT, FileBuilder
from portfolios.holdings.importers.text import Columns, Row, header_key

FORMAT = "schwab"
BROKER = "Schwab"

SYMBOL = ("symbol",)
QUANTITY = ("qty (quantity)", "quantity", "qty")
MARKET_VALUE = ("mkt val (market value)", "market value", "mkt val")
COST_BASIS = ("cost basis",)
SECURITY_TYPE = ("security type", "asset type")
DESCRIPTION = ("description",)
PRICE = ("price",)

_ACCOUNT = re.compile(
    r"^(?P<name>.+?)\s+(?P<number>(?:\.{3}|x{2,}-?|\*{2,})[0-9a-z]{2,6})\b", re.IGNORECASE
)


def header_matches(cells: list[str]) -> bool:
    keys = {header_key(c) for c in cells}
    return (
        "symbol" in keys
        and bool(keys & set(QUANTITY))
        and bool(keys & set(MARKET_VALUE))
        and "description" in keys
        and not keys & {"account number", "account name"}
    )


@dataclass
class _Table:
    """The header in force (the all-accounts export repeats it per account) and its columns."""

    columns: Columns
    col: dict[str, int | None]
    names: dict[str, str]

    @classmethod
    def of(cls, row: Row) -> _Table:
        columns = Columns(row.cells, line=row.line)
        col = {
            "symbol": columns.find(*SYMBOL), "quantity": columns.find(*QUANTITY),
            "value": columns.find(*MARKET_VALUE), "cost": columns.find(*COST_BASIS),
            "type": columns.find(*SECURITY_TYPE), "description": columns.find(*DESCRIPTION),
            "price": columns.find(*PRICE),
        }
        return cls(columns, col, {k: (columns.name(i) if i is not None else k) for k, i in col.items()})

    def pair(self, cell: dict[str, str], key: str) -> tuple[str, str] | None:
        return (cell[key], self.names[key]) if self.col[key] is not None else None


def read(rows: list[Row], header_at: int, builder: FileBuilder) -> None:
    table: _Table | None = None
    account_key: tuple[str, str] | None = None
    for row in rows:
        if row.blank:
            continue
        filled = row.filled()
        if len(filled) == 1:
            if key := _preamble(filled[0], builder):
                account_key = key
                continue
            if table is None or not Columns.cell(row, table.col["symbol"]).strip():
                continue  # other text (a title, a footer)
        if header_matches(row.cells):
            table = _Table.of(row)
        elif table is not None:  # (text above the first header is the preamble)
            account_key = _row(row, table, builder, account_key)


def _row(row: Row, table: _Table, builder: FileBuilder, account_key: tuple[str, str] | None
         ) -> tuple[str, str] | None:
    """One row under a header; returns the account key in force."""
    if message := table.columns.extra_values(row):
        builder.problem(row.line, "", message)
        return account_key
    cell = {k: Columns.cell(row, i) for k, i in table.col.items()}
    symbol = cell["symbol"].strip()
    low = symbol.lower()
    value = (cell["value"], table.names["value"])
    if low.startswith("account total"):
        builder.stated_total(line=row.line, amount=value)
        return account_key
    if account_key is None:
        account_key = builder.account(name=DEFAULT_ACCOUNT, account_type="taxable")
    if low.startswith(("cash & cash investments", "cash and cash investments", "cash & money market")):
        builder.cash(account_key=account_key, line=row.line, amount=value)
    elif low.startswith(("futures", "pending", "total", "subtotal")):  # not positions: named, value kept aside
        builder.skip(f"“{symbol[:40]}” (line {row.line})", value, line=row.line)
    elif not symbol:
        builder.no_symbol(line=row.line, description=cell["description"].strip(), value=cell["value"],
                          field_name=table.names["symbol"])
    else:
        builder.position(
            account_key=account_key, line=row.line, ticker=(symbol, table.names["symbol"]),
            shares=(cell["quantity"], table.names["quantity"]), cost_basis=table.pair(cell, "cost"),
            price=table.pair(cell, "price"), market_value=table.pair(cell, "value"),
            kind=securities.kind_from_label(cell["type"]), description=cell["description"],
        )
    return account_key


def _preamble(text: str, builder: FileBuilder) -> tuple[str, str] | None:
    """Read an account line; set the as-of date. Returns the account key, or None for other text."""
    body = text.strip()
    if body.lower().startswith("positions for"):
        when = re.search(r"\bas of\b(.*)$", body, re.IGNORECASE)
        if when and (as_of := values.date_in_text(when.group(1))):
            builder.as_of = as_of
        body = re.sub(r"^positions for\s+(account\s+)?", "", body, flags=re.IGNORECASE)
        body = re.sub(r"\s+as of\b.*$", "", body, flags=re.IGNORECASE)
    match = _ACCOUNT.match(body)
    if not match:
        return None
    return builder.account(name=match["name"], number=match["number"])
