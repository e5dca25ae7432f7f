"""E*TRADE `PortfolioDownload.csv` (Portfolios > View: All Positions > Download).

An `Account Summary` block (`Account,Net Account Value,...`: the account's name with the last digits of its
number, and its value), then `View Summary - All Positions` and the positions header
`Symbol,Last Price $,Change $,Change %,Quantity,Price Paid $,Day's Gain $,Total Gain $,Total Gain %,Value $`.
`Price Paid $` is per share. A `CASH` row holds the cash (in `Value $`), a `TOTAL` row the account's value;
options are written `AAPL Jan 16 '26 $300 Call`. A footer (`Generated at ...`) ends the file.
"""

from __future__ import annotations

from portfolios.holdings.importers import values
from portfolios.holdings.importers.base import FileBuilder
from portfolios.holdings.importers.text import Columns, Row, header_key

FORMAT = "etrade"
BROKER = "E*TRADE"

SYMBOL = ("symbol",)
QUANTITY = ("quantity", "qty #", "qty")
VALUE = ("value $", "market value", "value")
PRICE = ("last price $", "last price", "price")
PRICE_PAID = ("price paid $", "price paid")


def header_matches(cells: list[str]) -> bool:
    keys = {header_key(c) for c in cells}
    return "symbol" in keys and bool(keys & {"price paid $", "last price $"}) and bool(keys & set(QUANTITY))


def read(rows: list[Row], header_at: int, builder: FileBuilder) -> None:
    account_key = _account(rows[:header_at], builder)
    columns = Columns(rows[header_at].cells, line=rows[header_at].line)
    col = {"symbol": columns.find(*SYMBOL), "quantity": columns.find(*QUANTITY), "value": columns.find(*VALUE),
           "price": columns.find(*PRICE), "paid": columns.find(*PRICE_PAID)}
    names = {k: (columns.name(i) if i is not None else k) for k, i in col.items()}
    for row in rows[header_at + 1:]:
        if row.blank:
            continue
        filled = row.filled()
        if len(filled) == 1:  # a footer or a section title
            if "generated at" in filled[0].lower():
                builder.as_of = values.date_in_text(filled[0]) or builder.as_of
            continue
        if header_matches(row.cells):
            continue  # the header again (another view)
        cell = {k: Columns.cell(row, i) for k, i in col.items()}
        symbol = cell["symbol"].strip()
        low = symbol.lower()
        if low == "total":
            builder.stated_total(line=row.line, amount=(cell["value"], names["value"]))
            continue
        if low in ("cash", "cash & sweep", "net cash"):
            builder.cash(account_key=account_key, line=row.line, amount=(cell["value"], names["value"]))
            continue
        if not symbol:
            builder.no_symbol(line=row.line, description="", value=cell["value"], field_name=names["symbol"])
            continue
        if message := columns.extra_values(row):
            builder.problem(row.line, "", message)
            continue
        builder.position(
            account_key=account_key, line=row.line, ticker=(symbol, names["symbol"]),
            shares=(cell["quantity"], names["quantity"]),
            price=(cell["price"], names["price"]) if col["price"] is not None else None,
            market_value=(cell["value"], names["value"]) if col["value"] is not None else None,
            cost_per_share=(cell["paid"], names["paid"]) if col["paid"] is not None else None,
        )


def _account(preamble: list[Row], builder: FileBuilder) -> tuple[str, str]:
    """The account named in the `Account Summary` block (`Individual Brokerage -1234`), else "E*TRADE"."""
    header: Columns | None = None
    for row in preamble:
        if row.blank:
            continue
        keys = {header_key(c) for c in row.cells}
        if "account" in keys and "net account value" in keys:
            header = Columns(row.cells, line=row.line)
            continue
        if header is not None:
            name = Columns.cell(row, header.find("account")).strip()
            if name:
                label, _, number = name.rpartition("-")
                if label.strip() and number.strip().isdigit():
                    return builder.account(name=name, number=number.strip())
                return builder.account(name=name)
    return builder.account(name=BROKER)
