"""Types every importer shares, and the builder that validates a file's rows into a `ParsedFile`.

Format readers only locate cells; they hand raw strings to `FileBuilder`, which checks and converts
them all with one set of rules (numbers, tickers, dates) and reports every problem at once.
No database access here.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field, replace
from decimal import Decimal

from engine.tickers import ticker_normalize
from portfolios.holdings.importers import securities, values

ACCOUNT_TYPES = ("taxable", "traditional_ira", "roth_ira", "401k", "other")
DEFAULT_ACCOUNT = "Taxable"
ACCOUNT_NAME_MAX = 100
BROKER_MAX = 40
ONE = Decimal("1")
OPTION_MULTIPLIER = Decimal("100")  # shares per US equity option contract


@dataclass(frozen=True)
class ImportProblem:
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line is not None else "file"
        return f"{where}, {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


MAX_PROBLEMS = 100  # problems kept (and answered) per refused file; the rest are only counted


class ImportFailed(Exception):
    """The whole file is refused (nothing was written).

    `errors` lists the first `MAX_PROBLEMS` problems found; `more` counts the others, so that a file of
    any shape answers with a bounded list ("… and N more").
    """

    def __init__(self, errors: list[ImportProblem], more: int = 0):
        errors = list(errors)
        self.errors = errors[:MAX_PROBLEMS]
        self.more = more + len(errors) - len(self.errors)
        super().__init__(self.summary())

    def __reduce__(self):
        return (type(self), (self.errors, self.more))

    @property
    def total(self) -> int:
        return len(self.errors) + self.more

    def summary(self) -> str:
        count = self.total
        head = f"The file was refused ({count:,} problem{'s' if count != 1 else ''}); nothing was imported:"
        tail = [f"  … and {self.more:,} more"] if self.more else []
        return "\n".join([head, *(f"  {problem}" for problem in self.errors), *tail])

    def __str__(self) -> str:
        return self.summary()


@dataclass(frozen=True)
class ParsedAccount:
    name: str
    account_type: str
    broker: str
    number_masked: str
    cash: Decimal
    # True when the file gave no clue to the tax treatment and "taxable" is a default: an existing
    # account of the same name then keeps the type the user gave it.
    type_assumed: bool = False


@dataclass(frozen=True)
class ParsedPosition:
    account: str
    ticker: str
    shares: Decimal
    cost_basis: Decimal | None
    acquired_on: dt.date | None
    line: int
    # What the file itself says of the position, in USD (converted with the file's own rates when the
    # file is in another currency): the price per share or contract, the lot's market value, the
    # security kind when the file names one (one of Security.Kind's values: stock, etf, fund, option,
    # bond; "" = not said) and its description. Used to value and model holdings the security master
    # cannot price (never dropped: see DESIGN.md, "nothing dropped").
    price: Decimal | None = None
    market_value: Decimal | None = None
    kind: str = ""
    description: str = ""


@dataclass(frozen=True)
class ParsedFile:
    format: str
    accounts: list[ParsedAccount]
    positions: list[ParsedPosition]
    warnings: list[str]
    as_of: dt.date | None
    # The total value the file itself states (USD), when it states one; see `FileBuilder._reconcile`.
    stated_total: Decimal | None = None

    @property
    def cash(self) -> Decimal:
        return sum((a.cash for a in self.accounts), Decimal("0"))


def parsed_file_to_dict(parsed: ParsedFile) -> dict:
    """A JSON-safe form (decimals as strings, dates ISO) that `parsed_file_from_dict` reads back exactly."""
    return {
        "format": parsed.format,
        "as_of": parsed.as_of.isoformat() if parsed.as_of else None,
        "stated_total": None if parsed.stated_total is None else str(parsed.stated_total),
        "warnings": list(parsed.warnings),
        "accounts": [
            {"name": a.name, "account_type": a.account_type, "broker": a.broker, "number_masked": a.number_masked,
             "cash": str(a.cash), "type_assumed": a.type_assumed}
            for a in parsed.accounts
        ],
        "positions": [
            {"account": p.account, "ticker": p.ticker, "shares": str(p.shares),
             "cost_basis": None if p.cost_basis is None else str(p.cost_basis),
             "acquired_on": p.acquired_on.isoformat() if p.acquired_on else None, "line": p.line,
             "price": _str_or_none(p.price), "market_value": _str_or_none(p.market_value), "kind": p.kind,
             "description": p.description}
            for p in parsed.positions
        ],
    }


def parsed_file_from_dict(data: dict) -> ParsedFile:
    return ParsedFile(
        format=data["format"],
        as_of=dt.date.fromisoformat(data["as_of"]) if data.get("as_of") else None,
        warnings=list(data.get("warnings", [])),
        accounts=[
            ParsedAccount(name=a["name"], account_type=a["account_type"], broker=a["broker"],
                          number_masked=a["number_masked"], cash=Decimal(a["cash"]),
                          type_assumed=bool(a.get("type_assumed", False)))
            for a in data["accounts"]
        ],
        positions=[
            ParsedPosition(account=p["account"], ticker=p["ticker"], shares=Decimal(p["shares"]),
                           cost_basis=None if p["cost_basis"] is None else Decimal(p["cost_basis"]),
                           acquired_on=dt.date.fromisoformat(p["acquired_on"]) if p["acquired_on"] else None,
                           line=int(p["line"]), price=_decimal_or_none(p.get("price")),
                           market_value=_decimal_or_none(p.get("market_value")), kind=p.get("kind", ""),
                           description=p.get("description", ""))
            for p in data["positions"]
        ],
        stated_total=_decimal_or_none(data.get("stated_total")),
    )


def _str_or_none(number: Decimal | None) -> str | None:
    return None if number is None else str(number)


def _decimal_or_none(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


# --- account names and types ---------------------------------------------------------------------

_TYPE_WORDS = {
    "taxable": "taxable", "traditional_ira": "traditional_ira", "traditional ira": "traditional_ira",
    "traditional": "traditional_ira", "ira": "traditional_ira", "rollover ira": "traditional_ira",
    "roth_ira": "roth_ira", "roth ira": "roth_ira", "roth": "roth_ira", "401k": "401k", "401(k)": "401k",
    "other": "other", "individual": "taxable", "brokerage": "taxable", "joint": "taxable",
}


def account_type_from_name(name: str) -> tuple[str, bool]:
    """Infer the tax treatment from an account's name. Returns (type, assumed)."""
    low = name.lower()
    compact = re.sub(r"[^a-z0-9]", "", low)
    if any(k in compact for k in ("401k", "403b", "457b", "brokeragelink", "thriftsavings")):
        return "401k", False
    if "roth" in compact:
        return "roth_ira", False
    if re.search(r"\b(ira|sep|simple|keogh|rollover|contributory)\b", low):
        return "traditional_ira", False
    if re.search(r"\b(individual|brokerage|joint|taxable|trust|custodial|utma|ugma|tod|wros|cma)\b", low):
        return "taxable", False
    if re.search(r"\b(hsa|health savings|529|coverdell|esa)\b", low):
        return "other", False
    return "taxable", True


def account_type_from_label(label: str) -> str | None:
    """An explicit account-type cell: the model's values or their usual spellings; None if unknown."""
    low = re.sub(r"\s+", " ", label.strip().lower())
    if low in _TYPE_WORDS:
        return _TYPE_WORDS[low]
    kind, assumed = account_type_from_name(low)
    return None if assumed else kind


def mask_number(number: str) -> str:
    """Keep only the last four characters of an account number (never store the whole number)."""
    number = number.strip()
    if not number:
        return ""
    if number.startswith("..."):
        return number[:20]
    chars = re.sub(r"[^0-9A-Za-z]", "", number)
    if not chars:
        return ""
    return "..." + chars[-4:]


# --- the builder -------------------------------------------------------------------------------


@dataclass
class _AccountDraft:
    name: str
    number_masked: str
    account_type: str
    type_assumed: bool
    explicit: bool = False
    cash: Decimal = Decimal("0")


@dataclass
class _Cell:
    """A raw cell with where it came from, for messages."""

    text: str
    field: str
    line: int


@dataclass
class _PositionDraft:
    account_key: tuple[str, str]
    line: int
    ticker: _Cell
    shares: _Cell
    cost_basis: _Cell | None
    acquired_on: _Cell | None
    price: _Cell | None = None
    market_value: _Cell | None = None
    kind: str = ""
    description: str = ""
    rate: Decimal = ONE  # USD per unit of the row's currency
    cost_per_share: _Cell | None = None


@dataclass
class _CashDraft:
    account_key: tuple[str, str] | None  # None: a total the file states, not cash
    amount: _Cell
    rate: Decimal = ONE


@dataclass(frozen=True)
class _Skipped:
    """A row that is not a position (pending activity, futures, a short option): named, its value kept."""

    label: str
    amount: _Cell | None
    rate: Decimal = ONE


@dataclass
class FileBuilder:
    """Collects raw rows from a format reader, then validates and converts them in `build()`."""

    format: str
    broker: str
    delimiter: str = ","
    as_of: dt.date | None = None
    header_line: int | None = None
    warnings: list[str] = field(default_factory=list)
    problems: list[ImportProblem] = field(default_factory=list)
    problems_more: int = 0
    # A broker's export may list short positions: skipped and named (a hand-written file is refused instead).
    skip_shorts: bool = False
    # USD per unit of each currency the file gives a rate for (readers fill it from the file itself).
    rates: dict[str, Decimal] = field(default_factory=dict)
    _accounts: dict[tuple[str, str], _AccountDraft] = field(default_factory=dict)
    _positions: list[_PositionDraft] = field(default_factory=list)
    _cash: list[_CashDraft] = field(default_factory=list)
    _stated: list[_CashDraft] = field(default_factory=list)
    _skipped: list[_Skipped] = field(default_factory=list)
    _skipped_zero: list[str] = field(default_factory=list)
    _money_market: list[str] = field(default_factory=list)
    _options: list[str] = field(default_factory=list)
    _short_options: list[tuple[str, Decimal | None, int]] = field(default_factory=list)
    _unnamed_skips: list[_Skipped] = field(default_factory=list)

    # -- collecting --

    def problem(self, line: int | None, field_name: str, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(ImportProblem(line, field_name, message))
        else:
            self.problems_more += 1  # counted, not kept: memory stays flat whatever the file

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def no_symbol(self, *, line: int, description: str, value: str, field_name: str) -> None:
        """A row without a symbol: skipped with a warning when it describes something (a bond, say),
        otherwise a problem that refuses the file."""
        if description:
            self.warn(f"Skipped “{description[:60]}” on line {line}: it has no symbol (value {value or 'unknown'}).")
            self.skip(f"“{description[:40]}” (line {line}, no symbol)", (value, "value"), line=line, named=True)
        else:
            self.problem(line, field_name, "the symbol is missing")

    def account(self, *, name: str, number: str = "", account_type: str | None = None) -> tuple[str, str]:
        """Register (or find) an account; returns its key. Type inferred from the name unless given."""
        name = re.sub(r"\s+", " ", name).strip()[:ACCOUNT_NAME_MAX] or DEFAULT_ACCOUNT
        masked = mask_number(number)
        key = (name, re.sub(r"\s+", "", number))  # the whole number tells accounts apart; only `masked` is kept
        if key not in self._accounts:
            if account_type is not None:
                self._accounts[key] = _AccountDraft(name, masked, account_type, False, explicit=True)
            else:
                kind, assumed = account_type_from_name(name)
                self._accounts[key] = _AccountDraft(name, masked, kind, assumed)
        return key

    def set_account_type(self, key: tuple[str, str], account_type: str, *, line: int, field_name: str) -> None:
        """An explicit type (a file's type column) wins over one inferred from the name, once per account."""
        draft = self._accounts[key]
        if not draft.explicit:
            draft.account_type, draft.type_assumed, draft.explicit = account_type, False, True
        elif draft.account_type != account_type:
            self.problem(line, field_name, f"account “{draft.name}” is given two types "
                                           f"({draft.account_type} and {account_type})")

    def position(self, *, account_key: tuple[str, str], line: int, ticker: tuple[str, str],
                 shares: tuple[str, str], cost_basis: tuple[str, str] | None = None,
                 acquired_on: tuple[str, str] | None = None, price: tuple[str, str] | None = None,
                 market_value: tuple[str, str] | None = None, kind: str = "", description: str = "",
                 rate: Decimal = ONE, cost_per_share: tuple[str, str] | None = None) -> None:
        """Add a lot from raw cells, each given as (text, column name). `kind` is what the file says the
        security is (stock/etf/fund/option/bond, "cash" for a money-market row, "" = not said); `rate`
        converts the row's price and market value to USD."""
        def cell(pair: tuple[str, str] | None) -> _Cell | None:
            return _Cell(pair[0], pair[1], line) if pair else None

        self._positions.append(_PositionDraft(
            account_key, line, _Cell(ticker[0], ticker[1], line), _Cell(shares[0], shares[1], line),
            cell(cost_basis), cell(acquired_on), cell(price), cell(market_value), kind, description.strip()[:200],
            rate, cell(cost_per_share),
        ))

    def cash(self, *, account_key: tuple[str, str], line: int, amount: tuple[str, str], rate: Decimal = ONE) -> None:
        self._cash.append(_CashDraft(account_key, _Cell(amount[0], amount[1], line), rate))

    def stated_total(self, *, line: int, amount: tuple[str, str], rate: Decimal = ONE) -> None:
        """A total value the file states (an account total): checked against what was read."""
        self._stated.append(_CashDraft(None, _Cell(amount[0], amount[1], line), rate))

    def skip(self, label: str, amount: tuple[str, str] | None, *, line: int, rate: Decimal = ONE,
             named: bool = False) -> None:
        """A row that is not a position, kept aside with its value (to explain a difference from the total)
        and named in a warning, unless the reader names it in its own (`named`)."""
        self._skipped.append(_Skipped(label, _Cell(amount[0], amount[1], line) if amount else None, rate))
        if not named:
            self._unnamed_skips.append(self._skipped[-1])

    def rate_for(self, currency: str, *, line: int | None, field_name: str, required: bool = True
                 ) -> Decimal | None:
        """USD per unit of `currency`, from the rates the file gives; when it gives none, a problem (None),
        or just None when the row has no amount to convert (`required=False`)."""
        code = currency.strip().upper()
        if code in ("", "USD"):
            return ONE
        if code in self.rates:
            return self.rates[code]
        if not required:
            return None
        self.problem(line, field_name, f"amounts in {code[:10]}, and the file gives no {code[:10]}/USD exchange "
                                       "rate: never taken as dollars. Export the statement in US dollars, or "
                                       "with its exchange rates")
        return None

    @property
    def row_count(self) -> int:
        return len(self._positions) + len(self._cash)

    # -- building --

    def _numeric_cells(self) -> list[_Cell]:
        cells = [c.amount for c in self._cash]
        for p in self._positions:
            cells.extend(c for c in (p.shares, p.cost_basis, p.price, p.market_value) if c is not None)
        return cells

    def _number_style(self) -> str:
        if self.delimiter != ";":
            return values.DOT
        style, clash = values.decimal_style([(c.text, c.line) for c in self._numeric_cells()])
        if clash is not None:
            (comma_text, comma_line), (dot_text, dot_line) = clash
            self.problem(dot_line, "", f"the file mixes decimal marks: “{values.short(comma_text)}” on line "
                                       f"{comma_line} uses a decimal comma but “{values.short(dot_text)}” uses a "
                                       "decimal point; refusing to guess")
        return style

    def build(self) -> ParsedFile:
        style = self._number_style()
        date_style = "dmy" if self.delimiter == ";" else "mdy"

        for cash in self._cash:
            amount = self._number(cash.amount, style, kind="money", allow_negative=True)
            if amount is not None and cash.account_key is not None:
                self._accounts[cash.account_key].cash += amount * cash.rate
        positions = [p for d in self._positions if (p := self._position(d, style, date_style)) is not None]
        for draft in self._accounts.values():
            if abs(draft.cash) >= values.MAX_MONEY:
                self.problem(None, "", f"the cash of account “{draft.name}” adds up to more than the app can hold")

        if not self.problems and not positions and not any(a.cash for a in self._accounts.values()):
            if self.row_count == 0:
                self.problem(self.header_line, "", "the file has a header but no positions below it")
            else:
                self.problem(None, "", "no positions or cash found in the file")
        if self.problems:
            raise ImportFailed(sorted(self.problems, key=lambda p: (p.line or 0, p.field)), self.problems_more)

        names = self._final_names()
        used_keys = {d.account_key for d, _ in positions} | {k for k, a in self._accounts.items() if a.cash}
        accounts = [
            ParsedAccount(name=names[key], account_type=draft.account_type, broker=self.broker[:BROKER_MAX],
                          number_masked=draft.number_masked, cash=draft.cash.quantize(values.CENT),
                          type_assumed=draft.type_assumed)
            for key, draft in self._accounts.items() if key in used_keys
        ]
        parsed_positions = [replace(p, account=names[d.account_key]) for d, p in positions]
        self._final_warnings(accounts, parsed_positions, style)
        stated = self._reconcile(style, accounts, parsed_positions)
        return ParsedFile(format=self.format, accounts=accounts, positions=parsed_positions,
                          warnings=list(self.warnings), as_of=self.as_of, stated_total=stated)

    def _position(self, draft: _PositionDraft, style: str, date_style: str
                  ) -> tuple[_PositionDraft, ParsedPosition] | None:
        """One row -> a position (account left blank), or cash for a money-market row, or None."""
        kind, text = draft.kind, securities.symbol_clean(draft.ticker.text)
        occ = securities.option_symbol(text)  # whatever the type column says: no ticker looks like one
        if occ:
            kind = securities.OPTION
        ticker = occ or self._ticker(_Cell(text, draft.ticker.field, draft.line))
        if ticker is not None and (kind == securities.CASH or securities.is_money_market(ticker)):
            self._money_market_cash(draft, ticker, style)
            return None
        option = kind == securities.OPTION
        shares = self._number(draft.shares, style, kind="shares", required=True,
                              allow_negative=option or self.skip_shorts)
        short = option or (shares is not None and shares < 0)  # a short's amounts may be negative too
        cost = self._number(draft.cost_basis, style, kind="money", allow_negative=short)
        if cost is None and draft.cost_per_share is not None and shares is not None:
            per_share = self._number(draft.cost_per_share, style, kind="price", allow_negative=short)
            multiplier = OPTION_MULTIPLIER if option else ONE  # an option's price is per underlying share
            cost = None if per_share is None else (per_share * shares * multiplier).quantize(values.CENT)
        cost = None if cost is not None and cost < 0 else cost  # a written option's credit is no cost basis
        acquired = self._date(draft.acquired_on, date_style) if draft.acquired_on else None
        price = self._number(draft.price, style, kind="price", allow_negative=short)
        value = self._number(draft.market_value, style, kind="money", allow_negative=short)
        if ticker is None or shares is None:
            return None
        price = None if price is None else (price * draft.rate).quantize(values.SHARE_STEP)
        value = None if value is None else (value * draft.rate).quantize(values.CENT)
        if shares < 0:
            what = "written option" if option else "short position"
            self._skipped.append(_Skipped(f"{ticker} ({what}, line {draft.line})", draft.market_value, draft.rate))
            self._short_options.append((ticker, value, draft.line))
            return None
        if shares == 0:
            self._skipped_zero.append(f"{ticker} (line {draft.line})")
            if value:
                self._skipped.append(_Skipped(f"{ticker} with zero shares (line {draft.line})", draft.market_value,
                                              draft.rate))
            return None
        kind = kind or _kind_from_symbol(ticker)
        price, value = _price_and_value(kind, shares, price, value)
        if option:
            self._options.append(f"{ticker} ({_usd(value) if value is not None else 'no value given'})")
        return draft, ParsedPosition(account="", ticker=ticker, shares=shares, cost_basis=cost, acquired_on=acquired,
                                     line=draft.line, price=price, market_value=value, kind=kind,
                                     description=draft.description)

    def _money_market_cash(self, draft: _PositionDraft, ticker: str, style: str) -> None:
        """A money-market fund (or a row the broker marks as cash) is cash: its market value, else its shares
        at the file's price (a dollar when none is given)."""
        if draft.market_value is not None and values.MISSING.isdisjoint({draft.market_value.text.strip().lower()}):
            amount = self._number(draft.market_value, style, kind="money", allow_negative=True)
        else:
            shares = self._number(draft.shares, style, kind="money", required=True, allow_negative=True)
            price = self._number(draft.price, style, kind="price")
            amount = None if shares is None else shares * (ONE if price is None else price)
        if amount is None:
            return
        amount = (amount * draft.rate).quantize(values.CENT)
        self._accounts[draft.account_key].cash += amount
        self._money_market.append(f"{ticker} ({_usd(amount)})")

    def _reconcile(self, style: str, accounts: list[ParsedAccount], positions: list[ParsedPosition]
                   ) -> Decimal | None:
        """Compare what was read with the total the file states; a warning explains a difference over 1%."""
        if not self._stated:
            return None
        stated = sum((self._lenient(c.amount, style) * c.rate for c in self._stated), Decimal("0")).quantize(
            values.CENT)
        read = sum((a.cash for a in accounts), Decimal("0")) + sum(
            (p.market_value for p in positions if p.market_value is not None), Decimal("0"))
        difference = stated - read
        if abs(difference) <= abs(stated) * TOTAL_TOLERANCE or abs(difference) < values.CENT:
            return stated
        reasons = []
        unvalued = [p.ticker for p in positions if p.market_value is None]
        if unvalued:
            reasons.append(f"{len(unvalued)} position(s) the file gives no market value for ({_list(unvalued)})")
        skipped = [f"{s.label}: {_usd(self._lenient(s.amount, style) * s.rate)}" if s.amount else s.label
                   for s in self._skipped]
        if skipped:
            reasons.append(f"rows that are not positions were left out ({_list(skipped, 6)})")
        if not reasons:
            reasons.append("no row of the file explains it (is the file complete, or the total from another day?)")
        self.warn(f"The file states a total value of {_usd(stated)}, but the cash and positions read add up to "
                  f"{_usd(read)} (a difference of {_usd(difference)}): " + "; ".join(reasons) + ".")
        return stated

    def _lenient(self, cell: _Cell | None, style: str) -> Decimal:
        """A number for an explanation: unreadable or missing counts as zero (never a problem)."""
        try:
            number = values.number_parse(cell.text, style=style) if cell is not None else None
        except ValueError:
            return Decimal("0")
        if number is None or abs(number) >= values.MAX_MONEY:
            return Decimal("0")
        return number

    def _final_names(self) -> dict[tuple[str, str], str]:
        by_name: dict[str, list[tuple[str, str]]] = {}
        for key in self._accounts:
            by_name.setdefault(key[0], []).append(key)
        names: dict[tuple[str, str], str] = {}
        taken: set[str] = set()
        for name, keys in by_name.items():
            for key in keys:
                base = name
                masked = self._accounts[key].number_masked
                if len(keys) > 1 and masked:
                    base = name[: ACCOUNT_NAME_MAX - len(masked) - 1] + " " + masked
                final, counter = base, 2
                while final in taken:
                    suffix = f" ({counter})"
                    final = base[: ACCOUNT_NAME_MAX - len(suffix)] + suffix
                    counter += 1
                taken.add(final)
                names[key] = final
        return names

    def _final_warnings(self, accounts: list[ParsedAccount], positions: list[ParsedPosition], style: str) -> None:
        if self._unnamed_skips:
            shown = [f"{s.label}: {_usd(self._lenient(s.amount, style) * s.rate)}" if s.amount else s.label
                     for s in self._unnamed_skips]
            self.warn("Skipped rows that are not positions (left out of the holdings): " + _list(shown) + ".")
        if self._skipped_zero:
            self.warn(f"Skipped {len(self._skipped_zero)} position(s) with zero shares: "
                      + ", ".join(self._skipped_zero[:10]) + ("…" if len(self._skipped_zero) > 10 else ""))
        if self._money_market:
            self.warn("Counted money-market funds as cash: " + _list(self._money_market) + ".")
        if self._options:
            self.warn("Options are held fixed at the file's market value (never traded by the suggestions): "
                      + _list(self._options) + ".")
        if self._short_options:
            shorts = [f"{t} (line {line}, value {_usd(v) if v is not None else 'not given'})"
                      for t, v, line in self._short_options]
            self.warn("Skipped short positions (written options, shares sold short), which cannot be held here: "
                      + _list(shorts) + ".")
        assumed = [a.name for a in accounts if a.type_assumed]
        if assumed:
            self.warn("Could not tell the tax treatment of " + ", ".join(f"“{n}”" for n in assumed)
                      + " from the file; assumed taxable. Change the account type on the holdings page if wrong.")
        for account in accounts:
            if account.cash < 0:
                self.warn(f"Account “{account.name}” has a negative cash balance ({account.cash}), e.g. a margin "
                          "debit; suggestions will try to bring it back to zero.")
        taxable = {a.name for a in accounts if a.account_type == "taxable"}
        missing = sorted({p.ticker for p in positions if p.cost_basis is None and p.account in taxable})
        if missing:
            shown = ", ".join(missing[:12]) + ("…" if len(missing) > 12 else "")
            self.warn(f"No cost basis for {len(missing)} ticker(s) in taxable accounts ({shown}): "
                      "tax estimates are off for them.")

    def _ticker(self, cell: _Cell) -> str | None:
        try:
            return ticker_normalize(cell.text)
        except ValueError as exc:
            self.problem(cell.line, cell.field, str(exc))
            return None

    def _number(self, cell: _Cell | None, style: str, *, kind: str, required: bool = False,
                allow_negative: bool = False) -> Decimal | None:
        if cell is None:
            return None
        try:
            number = values.number_parse(cell.text, style=style)
        except ValueError as exc:
            self.problem(cell.line, cell.field, str(exc))
            return None
        if number is None:
            if required:
                self.problem(cell.line, cell.field, "is missing")
            return None
        if number < 0 and not allow_negative:
            text = values.short(cell.text)
            self.problem(cell.line, cell.field, f"negative quantity “{text}” (short positions are not supported)"
                         if kind == "shares" else f"negative amount “{text}”")
            return None
        limit = values.MAX_SHARES if kind == "shares" else values.MAX_MONEY
        if abs(number) >= limit:
            self.problem(cell.line, cell.field, f"“{values.short(cell.text)}” is too large")
            return None
        return number.quantize(values.SHARE_STEP if kind in ("shares", "price") else values.CENT)

    def _date(self, cell: _Cell, style: str) -> dt.date | None:
        try:
            return values.date_parse(cell.text, style=style)
        except ValueError as exc:
            self.problem(cell.line, cell.field, str(exc))
            return None


TOTAL_TOLERANCE = Decimal("0.01")  # a difference from the file's stated total above 1% is explained


def _kind_from_symbol(ticker: str) -> str:
    """What the symbol itself says when the file names no kind: a CUSIP is a bond or bill, and five letters
    ending in X a mutual fund (the Nasdaq convention); otherwise "" (not said)."""
    if securities.is_cusip(ticker):
        return securities.BOND
    if securities.fund_by_symbol(ticker):
        return securities.FUND
    return ""


def _price_and_value(kind: str, shares: Decimal, price: Decimal | None, value: Decimal | None
                     ) -> tuple[Decimal | None, Decimal | None]:
    """Fill the one the file left out. Options and bonds are priced per contract/unit from their market
    value (their quoted prices are per underlying share and per 100 of face value)."""
    if value is None and price is not None:
        if kind == securities.BOND:
            value = (price / 100 * shares).quantize(values.CENT)
        elif kind != securities.OPTION:
            value = (price * shares).quantize(values.CENT)
    if value is not None and (price is None or kind in (securities.OPTION, securities.BOND)):
        price = (value / shares).quantize(values.SHARE_STEP)
    return price, value


def _usd(amount: Decimal) -> str:
    return f"-${-amount:,.2f}" if amount < 0 else f"${amount:,.2f}"


def _list(items: list[str], limit: int = 10) -> str:
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")
