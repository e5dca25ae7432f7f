"""Vanguard `OfxDownload.csv`.

A holdings section `Account Number,Investment Name,Symbol,Shares,Share Price,Total Value,` (trailing
comma, no cost basis, blank lines between accounts), then a transactions section with its own header,
which is ignored. Settlement funds (VMFXX and the other money-market funds of `data/funds/money_market.csv`) are cash.
"""

from __future__ import annotations

from portfolios.holdings.importers import securities
from portfolios.holdings.importers.base import FileBuilder, mask_number
from portfolios.holdings.importers.text import Columns, Row, header_key

FORMAT = "vanguard"
BROKER = "Vanguard"



def header_matches(cells: list[str]) -> bool:
    keys = {header_key(c) for c in cells}
    return {"account number", "investment name", "symbol", "shares"} <= keys and "trade date" not in keys


def read(rows: list[Row], header_at: int, builder: FileBuilder) -> None:
    header = rows[header_at]
    columns = Columns(header.cells, line=header.line)
    col = {
        "number": columns.find("account number"), "name": columns.find("investment name"),
        "symbol": columns.find("symbol"), "shares": columns.find("shares"), "value": columns.find("total value"),
        "price": columns.find("share price"),
    }
    names = {k: (columns.name(i) if i is not None else k) for k, i in col.items()}
    for row in rows[header_at + 1:]:
        if row.blank:
            continue
        first = header_key(row.cells[0]) if row.cells else ""
        if first == "account number":  # the transactions section starts: the holdings are done
            break
        if message := columns.extra_values(row):
            builder.problem(row.line, "", message)
            continue
        cell = {k: Columns.cell(row, i) for k, i in col.items()}
        number = cell["number"].strip()
        masked = mask_number(number)
        key = builder.account(name=f"{BROKER} {masked}" if masked else BROKER, number=number)
        symbol, fund = cell["symbol"].strip(), cell["name"].strip()
        if securities.is_money_market(symbol) or "money market" in fund.lower() or "money mkt" in fund.lower():
            source = "value" if col["value"] is not None and cell["value"].strip() else "shares"
            builder.cash(account_key=key, line=row.line, amount=(cell[source], names[source]))
            continue
        if not symbol:
            builder.no_symbol(line=row.line, description=fund, value=cell["value"], field_name=names["symbol"])
            continue
        builder.position(account_key=key, line=row.line, ticker=(symbol, names["symbol"]),
                         shares=(cell["shares"], names["shares"]),
                         price=(cell["price"], names["price"]) if col["price"] is not None else None,
                         market_value=(cell["value"], names["value"]) if col["value"] is not None else None,
                         description=fund)
