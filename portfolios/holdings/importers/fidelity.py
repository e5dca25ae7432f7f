"""Fidelity `Portfolio_Positions_*.csv`.

Quirks: a byte-order mark; `$`, `+`, `,`, `%` in numbers; `--` and `n/a` for missing values; data rows
end with an extra comma; core money-market rows (`SPAXX**`) are cash, valued in `Current Value`; a
`Pending Activity` row (ignored, with a warning); a footer of blank lines, a disclaimer and
`"Date downloaded ..."` (the file's as-of date). Older files name the total `Cost Basis`.
"""

from __future__ import annotations

from portfolios.holdings.importers import securities, values
from portfolios.holdings.importers.base import FileBuilder
from portfolios.holdings.importers.text import Columns, Row, header_key

FORMAT = "fidelity"
BROKER = "Fidelity"

ACCOUNT_NUMBER = ("account number",)
ACCOUNT_NAME = ("account name", "account name/number")
SYMBOL = ("symbol",)
DESCRIPTION = ("description",)
QUANTITY = ("quantity",)
CURRENT_VALUE = ("current value",)
LAST_PRICE = ("last price",)
COST_BASIS = ("cost basis total", "cost basis")


def header_matches(cells: list[str]) -> bool:
    keys = {header_key(c) for c in cells}
    return (
        bool(keys & set(ACCOUNT_NUMBER + ACCOUNT_NAME))
        and {"symbol", "quantity", "description"} <= keys
        and bool(keys & {"current value", "last price"})
        and "investment name" not in keys
    )


def read(rows: list[Row], header_at: int, builder: FileBuilder, *, filename: str = "") -> None:
    header = rows[header_at]
    columns = Columns(header.cells, line=header.line)
    col = {
        "number": columns.find(*ACCOUNT_NUMBER), "name": columns.find(*ACCOUNT_NAME),
        "symbol": columns.find(*SYMBOL), "description": columns.find(*DESCRIPTION),
        "quantity": columns.find(*QUANTITY), "value": columns.find(*CURRENT_VALUE),
        "cost": columns.find(*COST_BASIS), "price": columns.find(*LAST_PRICE),
    }
    names = {k: (columns.name(i) if i is not None else k) for k, i in col.items()}
    pending: list[str] = []

    for row in rows[header_at + 1:]:
        if row.blank:
            continue
        filled = row.filled()
        if len(filled) <= 1 and not Columns.cell(row, col["symbol"]).strip():
            # footer: disclaimer lines and "Date downloaded ..."
            text = filled[0] if filled else ""
            if "date downloaded" in text.lower():
                builder.as_of = values.date_in_text(text) or builder.as_of
            continue
        if message := columns.extra_values(row):
            builder.problem(row.line, "", message)
            continue
        cell = {k: Columns.cell(row, i) for k, i in col.items()}
        symbol, description = cell["symbol"].strip(), cell["description"].strip()
        account_name = cell["name"].strip() or BROKER
        if "pending activity" in (symbol + " " + description).lower():
            amount = cell["value"] or "an unknown amount"
            pending.append(f"{amount} in “{account_name}” (line {row.line})")
            builder.skip(f"pending activity (line {row.line})", (cell["value"], names["value"]), line=row.line,
                         named=True)
            continue
        key = builder.account(name=account_name, number=cell["number"])
        if _is_cash(symbol, description):
            if symbol:  # the core money-market fund (SPAXX**): cash, named in the warnings
                builder.position(account_key=key, line=row.line, ticker=(symbol, names["symbol"]),
                                 shares=(cell["quantity"], names["quantity"]),
                                 market_value=(cell["value"], names["value"]), kind=securities.CASH)
            else:
                source = "value" if cell["value"].strip().lower() not in values.MISSING else "quantity"
                builder.cash(account_key=key, line=row.line, amount=(cell[source], names[source]))
            continue
        if not symbol:
            builder.no_symbol(line=row.line, description=description, value=cell["value"], field_name=names["symbol"])
            continue
        builder.position(
            account_key=key, line=row.line, ticker=(symbol, names["symbol"]),
            shares=(cell["quantity"], names["quantity"]),
            cost_basis=(cell["cost"], names["cost"]) if col["cost"] is not None else None,
            price=(cell["price"], names["price"]) if col["price"] is not None else None,
            market_value=(cell["value"], names["value"]) if col["value"] is not None else None,
            description=description,
        )
    if pending:
        builder.warn("Ignored pending activity (not settled yet): " + "; ".join(pending) + ".")
    if builder.as_of is None and filename:
        builder.as_of = values.date_in_text(filename)


def _is_cash(symbol: str, description: str) -> bool:
    upper = symbol.upper()
    return (
        upper.endswith("**")
        or upper in {"FCASH", "CORE", "CASH"}
        or "held in money market" in description.lower()
        or description.lower() in {"cash", "fdic-insured deposit sweep"}
    )
