"""Fidelity's older statement CSV (Statements > a monthly statement > Download CSV).

An account summary (`Account Type,Account,Beginning mkt Value,Change in Investment,Ending mkt Value,...`,
one row per account: its type, number and ending value), then the holdings under one header
`Symbol/CUSIP,Description,Quantity,Price,Beginning Value,Ending Value,Cost Basis`, grouped by account (a
line holding the account number) and by category (`Stocks`, `Bonds`, `Options`, `Mutual Funds`,
`Exchange Traded Products`, `Core Account`, ...), each category closed by a `Subtotal of ...` row. The
core account (SPAXX) is cash; T-bills appear by CUSIP with a price per 100 of face value.
"""

from __future__ import annotations

import re

from portfolios.holdings.importers import securities
from portfolios.holdings.importers.base import FileBuilder
from portfolios.holdings.importers.text import Columns, Row, header_key

FORMAT = "fidelity_statement"
BROKER = "Fidelity"

CATEGORY_KINDS = {
    "stocks": securities.STOCK, "common stock": securities.STOCK, "bonds": securities.BOND,
    "options": securities.OPTION, "mutual funds": securities.FUND,
    "exchange traded products": securities.ETF, "etps": securities.ETF, "core account": securities.CASH,
    "other": "", "short-term": "",
}
_ACCOUNT_NUMBER = re.compile(r"^[A-Z]?\d{8,9}$")


def header_matches(cells: list[str]) -> bool:
    keys = {header_key(c) for c in cells}
    return {"symbol/cusip", "description", "quantity"} <= keys and bool(keys & {"ending value", "price"})


def read(rows: list[Row], header_at: int, builder: FileBuilder) -> None:
    accounts = _summary(rows[:header_at], builder)
    columns = Columns(rows[header_at].cells, line=rows[header_at].line)
    col = {"symbol": columns.find("symbol/cusip"), "description": columns.find("description"),
           "quantity": columns.find("quantity"), "price": columns.find("price"),
           "value": columns.find("ending value"), "cost": columns.find("cost basis")}
    names = {k: (columns.name(i) if i is not None else k) for k, i in col.items()}
    account_key = next(iter(accounts.values()), None)
    kind = ""
    for row in rows[header_at + 1:]:
        filled = row.filled()
        if not filled:
            continue
        if len(filled) == 1:  # a line naming the account, or the category, of the rows below
            account_key, kind = _group(filled[0].strip(), accounts, builder, account_key, kind)
            continue
        if len(filled) >= 4 and header_key(Columns.cell(row, 0)) in ("settlement date", "date", "account type"):
            break  # the activity section begins: the holdings are done
        if header_matches(row.cells):
            continue
        cell = {k: Columns.cell(row, i).strip() for k, i in col.items()}
        symbol = cell["symbol"]
        if header_key(symbol).startswith(("subtotal", "total")):
            continue
        if account_key is None:
            account_key = builder.account(name=BROKER)
        if not symbol:
            builder.no_symbol(line=row.line, description=cell["description"], value=cell["value"],
                              field_name=names["symbol"])
            continue
        builder.position(
            account_key=account_key, line=row.line, ticker=(symbol, names["symbol"]),
            shares=(cell["quantity"], names["quantity"]),
            cost_basis=(cell["cost"], names["cost"]) if col["cost"] is not None and _is_amount(cell["cost"])
            else None,
            price=(cell["price"], names["price"]) if col["price"] is not None else None,
            market_value=(cell["value"], names["value"]) if col["value"] is not None else None,
            kind=kind, description=cell["description"],
        )


def _group(text: str, accounts: dict[str, tuple[str, str]], builder: FileBuilder,
           account_key: tuple[str, str] | None, kind: str) -> tuple[tuple[str, str] | None, str]:
    """(account, category) in force after a one-cell line; other text changes neither."""
    known = next((key for number, key in accounts.items() if text.endswith(number)), None)
    if known or _ACCOUNT_NUMBER.match(text):
        return known or builder.account(name=f"{BROKER} {text[-4:]}", number=text), kind
    return account_key, CATEGORY_KINDS.get(header_key(text), kind)


def _summary(preamble: list[Row], builder: FileBuilder) -> dict[str, tuple[str, str]]:
    """Accounts by number from the summary rows; each account's ending value is a stated total."""
    header: Columns | None = None
    accounts: dict[str, tuple[str, str]] = {}
    for row in preamble:
        if row.blank:
            continue
        keys = {header_key(c) for c in row.cells}
        if {"account type", "account"} <= keys:
            header = Columns(row.cells, line=row.line)
            continue
        if header is None:
            continue
        number = Columns.cell(row, header.find("account")).strip()
        label = Columns.cell(row, header.find("account type")).strip()
        if not number:
            continue
        accounts[number] = builder.account(name=label or f"{BROKER} {number[-4:]}", number=number)
        value = header.find("ending mkt value", "ending market value", "ending net value")
        if value is not None:
            builder.stated_total(line=row.line, amount=(Columns.cell(row, value), header.name(value)))
    return accounts


def _is_amount(text: str) -> bool:
    """Fidelity writes `not applicable` or `unknown` where a statement has no cost basis."""
    return header_key(text) not in ("not applicable", "unknown", "n/a", "")
