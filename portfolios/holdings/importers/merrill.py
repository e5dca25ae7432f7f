"""Merrill Edge holdings export (Portfolio > Holdings > Download/Export, CSV).

One row per holding across accounts: `"COB Date","Security #","Symbol","CUSIP #","Security Description",
"Account Nickname","Account Registration","Account #","Quantity","Price ($)","Value ($)",...` with
`"Unit Cost ($)"` and `"Cost Basis ($)"` in most files. Quirks: every cell quoted; T-bills and CDs have no
symbol, only a CUSIP; cash is a `Money Accounts`/`Cash` row or a sweep fund (IIAXX, TTTXX); a `Total` row
and a disclaimer footer; the close-of-business date (`COB Date`) is the as-of date.
"""

from __future__ import annotations

from portfolios.holdings.importers import securities, values
from portfolios.holdings.importers.base import FileBuilder, account_type_from_name
from portfolios.holdings.importers.text import Columns, Row, header_key

FORMAT = "merrill"
BROKER = "Merrill Edge"

ALIASES = {
    "date": ("cob date",), "symbol": ("symbol",), "cusip": ("cusip #", "cusip"),
    "description": ("security description", "description"), "nickname": ("account nickname",),
    "registration": ("account registration",), "number": ("account #", "account number"),
    "quantity": ("quantity",), "price": ("price ($)", "price"), "value": ("value ($)", "value"),
    "cost": ("cost basis ($)", "cost basis"), "unit_cost": ("unit cost ($)",),
    "type": ("holding type", "product type", "security type", "asset class"),
}
_CASH_WORDS = ("money account", "bank deposit", "cash balance", "cash/money")


def header_matches(cells: list[str]) -> bool:
    keys = {header_key(c) for c in cells}
    return "symbol" in keys and "quantity" in keys and bool(keys & {"value ($)", "price ($)"}) and bool(
        keys & {"cob date", "security description", "account registration"})


def read(rows: list[Row], header_at: int, builder: FileBuilder) -> None:
    columns = Columns(rows[header_at].cells, line=rows[header_at].line)
    col = {k: columns.find(*aliases) for k, aliases in ALIASES.items()}
    names = {k: (columns.name(i) if i is not None else k) for k, i in col.items()}
    for row in rows[header_at + 1:]:
        if row.blank or len(row.filled()) <= 1:
            continue  # a disclaimer, a title
        cell = {k: Columns.cell(row, i).strip() for k, i in col.items()}
        symbol, description = cell["symbol"], cell["description"]
        if symbol.lower().startswith(("total", "subtotal")) or (not symbol and description.lower().startswith(
                ("total", "subtotal"))):
            if symbol.lower().startswith("total") or description.lower() == "total":
                builder.stated_total(line=row.line, amount=(cell["value"], names["value"]))
            continue
        if cell["date"] and builder.as_of is None:
            builder.as_of = values.date_in_text(cell["date"])
        key = _account(builder, cell)
        if symbol.lower() in ("cash", "--", "") and any(w in description.lower() for w in (*_CASH_WORDS, "cash")):
            builder.cash(account_key=key, line=row.line, amount=(cell["value"], names["value"]))
            continue
        if "#" in symbol:  # Merrill's own option spelling (AAPL#A1626C300): named and its value kept aside
            builder.skip(f"{symbol} (line {row.line})", (cell["value"], names["value"]), line=row.line, named=True)
            builder.warn(f"Skipped the option {symbol} on line {row.line}: its symbol cannot be read; value "
                         f"{cell['value'] or 'unknown'}.")
            continue
        ticker = symbol if symbol and symbol != "--" else cell["cusip"]
        if not ticker:
            builder.no_symbol(line=row.line, description=description, value=cell["value"],
                              field_name=names["symbol"])
            continue
        builder.position(
            account_key=key, line=row.line, ticker=(ticker, names["symbol" if ticker == symbol else "cusip"]),
            shares=(cell["quantity"], names["quantity"]),
            cost_basis=(cell["cost"], names["cost"]) if col["cost"] is not None else None,
            cost_per_share=(cell["unit_cost"], names["unit_cost"]) if col["unit_cost"] is not None else None,
            price=(cell["price"], names["price"]) if col["price"] is not None else None,
            market_value=(cell["value"], names["value"]) if col["value"] is not None else None,
            kind=securities.kind_from_label(cell["type"]), description=description,
        )


def _account(builder: FileBuilder, cell: dict[str, str]) -> tuple[str, str]:
    """Named by its nickname; its tax treatment read from the registration (`Roth IRA-Edge`, `CMA-Edge`)."""
    kind, assumed = account_type_from_name(cell["registration"].replace("-", " "))
    return builder.account(name=cell["nickname"] or cell["registration"] or BROKER, number=cell["number"],
                           account_type=None if assumed else kind)
