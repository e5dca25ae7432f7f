"""Interactive Brokers activity statement (CSV).

Every row starts with a section name and a row type (`Header`, `Data`, `Total`, `SubTotal`, ...). The
`Open Positions` section's `Data` rows hold the positions (`Symbol`, `Quantity`, `Cost Basis`); totals
are skipped. Cash comes from the `Cash Report` (`Ending Cash`, base currency), the account from
`Account Information`, the as-of date from the statement period.
"""

from __future__ import annotations

import datetime as dt

from portfolios.holdings.importers import values
from portfolios.holdings.importers.base import FileBuilder, mask_number
from portfolios.holdings.importers.text import Columns, Row, header_key

FORMAT = "ibkr"
BROKER = "Interactive Brokers"
ROW_TYPES = {"header", "data", "total", "subtotal", "notes", "metainfo"}
POSITION_CATEGORIES = {"stocks", "mutual funds", "funds", "etfs"}


def header_matches(row: Row) -> bool:
    return len(row.cells) >= 3 and bool(row.cells[0].strip()) and header_key(row.cells[1]) == "header"


def read(rows: list[Row], builder: FileBuilder) -> None:
    headers: dict[str, Columns] = {}
    info: dict[str, str] = {}
    positions: list[tuple[Row, Columns]] = []
    cash_rows: list[tuple[Row, Columns]] = []
    for row in rows:
        if row.blank:
            continue
        section = header_key(row.cells[0])
        kind = header_key(row.cells[1]) if len(row.cells) > 1 else ""
        if kind not in ROW_TYPES:
            if section == "open positions":
                builder.problem(row.line, "", f"unexpected row type “{kind[:20]}” in Open Positions")
            continue
        body = Row(row.line, row.cells[2:])
        if kind == "header":
            headers[section] = Columns(body.cells, line=row.line)
        elif kind != "data" or section not in headers:
            continue
        elif section == "open positions":
            positions.append((body, headers[section]))
        elif section == "cash report":
            cash_rows.append((body, headers[section]))
        elif section in ("account information", "statement"):
            columns = headers[section]
            name = Columns.cell(body, columns.find("field name"))
            info.setdefault(header_key(name), Columns.cell(body, columns.find("field value")).strip())

    if "open positions" not in headers:
        builder.problem(None, "Open Positions", "the statement has no Open Positions section; include positions "
                                                "when you run the activity statement")
        return
    builder.as_of = _as_of(info)
    account_name = info.get("account type") or BROKER
    default_key = builder.account(name=account_name, number=info.get("account", ""))
    _read_positions(positions, builder, default_key, account_name)
    _read_cash(cash_rows, builder, default_key)


def _read_positions(positions: list[tuple[Row, Columns]], builder: FileBuilder, default_key: tuple[str, str],
                    account_name: str) -> None:
    use_lots = not any(
        header_key(Columns.cell(body, columns.find("datadiscriminator"))) == "summary" for body, columns in positions
    )
    skipped: dict[str, int] = {}
    foreign: list[str] = []
    for body, columns in positions:
        col = {k: columns.find(k) for k in ("datadiscriminator", "asset category", "currency", "symbol",
                                            "quantity", "cost basis", "account")}
        for required in ("symbol", "quantity"):
            if col[required] is None:
                builder.problem(columns.line, required.title(), "the Open Positions header has no such column")
        if col["symbol"] is None or col["quantity"] is None:
            return
        if message := columns.extra_values(body):
            builder.problem(body.line, "", message)
            continue
        discriminator = header_key(Columns.cell(body, col["datadiscriminator"]))
        if discriminator and discriminator != ("lot" if use_lots else "summary"):
            continue
        category = Columns.cell(body, col["asset category"]).strip()
        if category and header_key(category) not in POSITION_CATEGORIES:
            skipped[category] = skipped.get(category, 0) + 1
            continue
        key = default_key
        if account := Columns.cell(body, col["account"]).strip():
            key = builder.account(name=f"{account_name} {mask_number(account)}", number=account)
        currency = Columns.cell(body, col["currency"]).strip().upper()
        keep_cost = col["cost basis"] is not None and currency in ("", "USD")
        symbol = Columns.cell(body, col["symbol"])
        if currency not in ("", "USD"):
            foreign.append(f"{symbol.strip()} ({currency})")
        builder.position(
            account_key=key, line=body.line, ticker=(symbol, columns.name(col["symbol"])),
            shares=(Columns.cell(body, col["quantity"]), columns.name(col["quantity"])),
            cost_basis=(Columns.cell(body, col["cost basis"]), columns.name(col["cost basis"])) if keep_cost else None,
        )
    for category, count in skipped.items():
        builder.warn(f"Skipped {count} position(s) in “{category}”: only stocks and funds are supported.")
    if foreign:
        builder.warn("Positions not in US dollars have no cost basis here: " + ", ".join(foreign[:10]) + ".")


def _read_cash(cash_rows: list[tuple[Row, Columns]], builder: FileBuilder, key: tuple[str, str]) -> None:
    for body, columns in cash_rows:
        summary = header_key(Columns.cell(body, columns.find("currency summary")))
        currency = header_key(Columns.cell(body, columns.find("currency")))
        total = columns.find("total")
        if summary == "ending cash" and currency == "base currency summary" and total is not None:
            builder.cash(account_key=key, line=body.line, amount=(Columns.cell(body, total), columns.name(total)))
            return


def _as_of(info: dict[str, str]) -> dt.date | None:
    period = info.get("period", "")
    if " - " in period:
        period = period.split(" - ")[-1]
    return values.date_in_text(period) or values.date_in_text(info.get("whengenerated", ""))

