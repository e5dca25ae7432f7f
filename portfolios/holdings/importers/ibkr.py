"""Interactive Brokers activity statement (CSV).

Every row starts with a section name and a row type (`Header`, `Data`, `Total`, `SubTotal`, ...). The
positions are the `Data` rows of `Open Positions` (or, in the older layout, `Long Open Positions`, whose
`Summary`, `Lot` and `Total` rows are told apart by `DataDiscriminator`); totals are skipped. Stocks, ETFs
and funds are positions, options and bonds too (with their market value); futures, forex and CFDs are
not positions (named, their value kept aside).

Currency: amounts are in each row's currency; the statement's base currency is in `Account Information`,
and its `Base Currency Exchange Rate` section gives the rates (units of base currency per unit). They
convert everything to USD; an amount in a currency without a rate refuses the file (never taken as
dollars). Cash comes from the `Cash Report` (`Ending Cash`), the stated total from `Net Asset Value`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from portfolios.holdings.importers import securities, values
from portfolios.holdings.importers.base import ONE, FileBuilder, mask_number
from portfolios.holdings.importers.text import Columns, Row, header_key

FORMAT = "ibkr"
BROKER = "Interactive Brokers"
ROW_TYPES = {"header", "data", "total", "subtotal", "notes", "metainfo"}
POSITION_SECTIONS = {"open positions", "long open positions"}
CATEGORY_KINDS = {
    "stocks": "", "etfs": securities.ETF, "funds": securities.FUND, "mutual funds": securities.FUND,
    "equity and index options": securities.OPTION, "options": securities.OPTION,
    "bonds": securities.BOND, "treasury bills": securities.BOND, "bills": securities.BOND,
}


@dataclass
class _Statement:
    headers: dict[str, Columns] = field(default_factory=dict)
    info: dict[str, str] = field(default_factory=dict)
    positions: list[tuple[Row, Columns]] = field(default_factory=list)
    cash_rows: list[tuple[Row, Columns]] = field(default_factory=list)
    nav_rows: list[tuple[Row, Columns]] = field(default_factory=list)
    base_rates: dict[str, str] = field(default_factory=dict)
    short_rows: int = 0


def header_matches(row: Row) -> bool:
    return len(row.cells) >= 3 and bool(row.cells[0].strip()) and header_key(row.cells[1]) == "header"


def read(rows: list[Row], builder: FileBuilder) -> None:
    statement = _collect(rows, builder)
    if not POSITION_SECTIONS & statement.headers.keys():
        builder.problem(None, "Open Positions", _no_positions_message(statement))
        return
    builder.as_of = _as_of(statement.info)
    base = statement.info.get("base currency", "USD").upper() or "USD"
    builder.rates.update(_usd_rates(statement.base_rates, base))
    account_name = statement.info.get("account type") or BROKER
    default_key = builder.account(name=account_name, number=statement.info.get("account", ""))
    _read_positions(statement.positions, builder, default_key, account_name, base)
    _read_cash(statement.cash_rows, builder, default_key, base)
    _read_total(statement.nav_rows, builder, base)
    if statement.short_rows:
        builder.warn(f"Skipped {statement.short_rows} short position(s) (the Short Open Positions section): "
                     "short positions are not supported.")


def _collect(rows: list[Row], builder: FileBuilder) -> _Statement:
    statement = _Statement()
    for row in rows:
        if row.blank:
            continue
        section = header_key(row.cells[0])
        kind = header_key(row.cells[1]) if len(row.cells) > 1 else ""
        if kind not in ROW_TYPES:
            if section in POSITION_SECTIONS:
                builder.problem(row.line, "", f"unexpected row type “{kind[:20]}” in Open Positions")
            continue
        body = Row(row.line, row.cells[2:])
        if kind == "header":
            statement.headers[section] = Columns(body.cells, line=row.line)
        elif kind == "data" and section in statement.headers:
            _collect_data(statement, section, body)
    return statement


def _collect_data(statement: _Statement, section: str, body: Row) -> None:
    columns = statement.headers[section]
    if section in POSITION_SECTIONS:
        statement.positions.append((body, columns))
    elif section == "short open positions":
        statement.short_rows += 1
    elif section == "cash report":
        statement.cash_rows.append((body, columns))
    elif section == "net asset value":
        statement.nav_rows.append((body, columns))
    elif section == "base currency exchange rate":
        currency = Columns.cell(body, columns.find("currency")).strip().upper()
        statement.base_rates[currency] = Columns.cell(body, columns.find("rate")).strip()
    elif section in ("account information", "statement"):
        name = Columns.cell(body, columns.find("field name"))
        statement.info.setdefault(header_key(name), Columns.cell(body, columns.find("field value")).strip())


def _no_positions_message(statement: _Statement) -> str:
    sections = set(statement.headers)
    if "trades" in sections:
        return ("this statement lists trades but no positions (a trades-only statement); run the Activity "
                "Statement with its Open Positions section (Performance & Reports > Statements > Activity), "
                "or a Flex Query of Open Positions, and upload that")
    return ("the statement has no Open Positions section; include positions when you run the activity statement "
            "(Performance & Reports > Statements > Activity)")


def _usd_rates(base_rates: dict[str, str], base: str) -> dict[str, Decimal]:
    """USD per unit of each currency, from the statement's rates to its base currency."""
    in_base: dict[str, Decimal] = {base: Decimal("1")}
    for currency, text in base_rates.items():
        try:
            rate = Decimal(text.replace(",", ""))
        except InvalidOperation:
            continue
        if rate.is_finite() and rate > 0:
            in_base[currency] = rate
    if base == "USD":
        return in_base
    if "USD" not in in_base:
        return {}  # no way to dollars: any foreign amount then refuses the file with a reason
    usd = in_base["USD"]
    return {currency: rate / usd for currency, rate in in_base.items()}


_POSITION_COLUMNS = ("datadiscriminator", "asset category", "currency", "symbol", "quantity", "cost basis",
                     "account", "close price", "value", "description")


@dataclass
class _PositionsRead:
    builder: FileBuilder
    default_key: tuple[str, str]
    account_name: str
    base: str
    use_lots: bool
    foreign: list[str] = field(default_factory=list)


def _read_positions(positions: list[tuple[Row, Columns]], builder: FileBuilder, default_key: tuple[str, str],
                    account_name: str, base: str) -> None:
    use_lots = not any(
        header_key(Columns.cell(body, columns.find("datadiscriminator"))) == "summary" for body, columns in positions
    )
    state = _PositionsRead(builder, default_key, account_name, base, use_lots)
    for body, columns in positions:
        col = {k: columns.find(k) for k in _POSITION_COLUMNS}
        missing = [name for name in ("symbol", "quantity") if col[name] is None]
        for name in missing:
            builder.problem(columns.line, name.title(), "the Open Positions header has no such column")
        if missing:
            return
        _position_row(state, body, columns, col)
    if state.foreign:
        builder.warn("Positions not in US dollars have no cost basis here (valued in USD at the statement's "
                     "rates): " + ", ".join(state.foreign[:10]) + ".")


def _position_row(state: _PositionsRead, body: Row, columns: Columns, col: dict[str, int | None]) -> None:
    builder = state.builder
    if message := columns.extra_values(body):
        builder.problem(body.line, "", message)
        return
    discriminator = header_key(Columns.cell(body, col["datadiscriminator"]))
    if discriminator and discriminator != ("lot" if state.use_lots else "summary"):
        return
    cell = {k: Columns.cell(body, i) for k, i in col.items()}
    category = cell["asset category"].strip()
    value = (cell["value"], "Value") if col["value"] is not None else None
    if category and header_key(category) not in CATEGORY_KINDS:
        builder.skip(f"{cell['symbol'] or category} ({category}, line {body.line})", value, line=body.line)
        return
    currency = cell["currency"].strip().upper() or state.base  # a row without a currency is in the base one
    amounts = value is not None or col["close price"] is not None
    rate = builder.rate_for(currency, line=body.line, field_name=columns.name(col["currency"] or 0),
                            required=amounts)
    if rate is None and amounts:
        return
    key = state.default_key
    if account := cell["account"].strip():
        key = builder.account(name=f"{state.account_name} {mask_number(account)}", number=account)
    if currency != "USD" and col["cost basis"] is not None:
        state.foreign.append(f"{cell['symbol'].strip()} ({currency})")
    builder.position(
        account_key=key, line=body.line, ticker=(cell["symbol"], "Symbol"), shares=(cell["quantity"], "Quantity"),
        cost_basis=(cell["cost basis"], "Cost Basis") if col["cost basis"] is not None and currency == "USD" else None,
        price=(cell["close price"], "Close Price") if col["close price"] is not None else None,
        market_value=value, kind=CATEGORY_KINDS.get(header_key(category), ""), description=cell["description"],
        rate=rate or ONE,
    )


def _read_cash(cash_rows: list[tuple[Row, Columns]], builder: FileBuilder, key: tuple[str, str], base: str) -> None:
    """`Ending Cash` of the base-currency summary; without one, each currency's own, at the file's rates."""
    per_currency: list[tuple[Row, str, int]] = []
    for body, columns in cash_rows:
        summary = header_key(Columns.cell(body, columns.find("currency summary")))
        currency = Columns.cell(body, columns.find("currency")).strip()
        total = columns.find("total")
        if summary != "ending cash" or total is None:
            continue
        if header_key(currency) == "base currency summary":
            rate = builder.rate_for(base, line=body.line, field_name="Currency")
            if rate is not None:
                builder.cash(account_key=key, line=body.line, amount=(Columns.cell(body, total),
                                                                      columns.name(total)), rate=rate)
            return
        per_currency.append((body, currency, total))
    for body, currency, total in per_currency:
        rate = builder.rate_for(currency, line=body.line, field_name="Currency")
        if rate is not None:
            builder.cash(account_key=key, line=body.line, amount=(Columns.cell(body, total), "Total"), rate=rate)


def _read_total(nav_rows: list[tuple[Row, Columns]], builder: FileBuilder, base: str) -> None:
    for body, columns in nav_rows:
        total = columns.find("current total")
        if header_key(Columns.cell(body, columns.find("asset class"))) == "total" and total is not None:
            rate = builder.rate_for(base, line=body.line, field_name="Current Total")
            if rate is not None:
                builder.stated_total(line=body.line, amount=(Columns.cell(body, total), "Current Total"), rate=rate)
            return


def _as_of(info: dict[str, str]) -> dt.date | None:
    period = info.get("period", "")
    if " - " in period:
        period = period.split(" - ")[-1]
    return values.date_in_text(period) or values.date_in_text(info.get("whengenerated", ""))
