"""Types every importer shares, and the builder that validates a file's rows into a `ParsedFile`.

Format readers only locate cells; they hand raw strings to `FileBuilder`, which checks and converts
them all with one set of rules (numbers, tickers, dates) and reports every problem at once.
No database access here.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal

from portfolios.holdings.importers import values

ACCOUNT_TYPES = ("taxable", "traditional_ira", "roth_ira", "401k", "other")
DEFAULT_ACCOUNT = "Taxable"
ACCOUNT_NAME_MAX = 100
BROKER_MAX = 40


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

    @property
    def cash(self) -> Decimal:
        return sum((a.cash for a in self.accounts), Decimal("0"))


def parsed_file_to_dict(parsed: ParsedFile) -> dict:
    """A JSON-safe form (decimals as strings, dates ISO) that `parsed_file_from_dict` reads back exactly."""
    return {
        "format": parsed.format,
        "as_of": parsed.as_of.isoformat() if parsed.as_of else None,
        "warnings": list(parsed.warnings),
        "accounts": [
            {"name": a.name, "account_type": a.account_type, "broker": a.broker, "number_masked": a.number_masked,
             "cash": str(a.cash), "type_assumed": a.type_assumed}
            for a in parsed.accounts
        ],
        "positions": [
            {"account": p.account, "ticker": p.ticker, "shares": str(p.shares),
             "cost_basis": None if p.cost_basis is None else str(p.cost_basis),
             "acquired_on": p.acquired_on.isoformat() if p.acquired_on else None, "line": p.line}
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
                           line=int(p["line"]))
            for p in data["positions"]
        ],
    )


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
    if re.search(r"\b(individual|brokerage|joint|taxable|trust|custodial|utma|ugma|tod|wros)\b", low):
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


@dataclass
class _CashDraft:
    account_key: tuple[str, str]
    amount: _Cell


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
    _accounts: dict[tuple[str, str], _AccountDraft] = field(default_factory=dict)
    _positions: list[_PositionDraft] = field(default_factory=list)
    _cash: list[_CashDraft] = field(default_factory=list)
    _skipped_zero: list[str] = field(default_factory=list)

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
                 acquired_on: tuple[str, str] | None = None) -> None:
        """Add a lot from raw cells, each given as (text, column name)."""
        self._positions.append(_PositionDraft(
            account_key, line, _Cell(ticker[0], ticker[1], line), _Cell(shares[0], shares[1], line),
            _Cell(cost_basis[0], cost_basis[1], line) if cost_basis else None,
            _Cell(acquired_on[0], acquired_on[1], line) if acquired_on else None,
        ))

    def cash(self, *, account_key: tuple[str, str], line: int, amount: tuple[str, str]) -> None:
        self._cash.append(_CashDraft(account_key, _Cell(amount[0], amount[1], line)))

    @property
    def row_count(self) -> int:
        return len(self._positions) + len(self._cash)

    # -- building --

    def _numeric_cells(self) -> list[_Cell]:
        cells = [c.amount for c in self._cash]
        for p in self._positions:
            cells.append(p.shares)
            if p.cost_basis is not None:
                cells.append(p.cost_basis)
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
            if amount is not None:
                self._accounts[cash.account_key].cash += amount
        for draft in self._accounts.values():
            if abs(draft.cash) >= values.MAX_MONEY:
                self.problem(None, "", f"the cash of account “{draft.name}” adds up to more than the app can hold")

        positions: list[tuple[_PositionDraft, str, Decimal, Decimal | None, dt.date | None]] = []
        for draft in self._positions:
            ticker = self._ticker(draft.ticker)
            shares = self._number(draft.shares, style, kind="shares", required=True)
            cost = self._number(draft.cost_basis, style, kind="money") if draft.cost_basis else None
            acquired = self._date(draft.acquired_on, date_style) if draft.acquired_on else None
            if ticker is None or shares is None:
                continue
            if shares == 0:
                self._skipped_zero.append(f"{ticker} (line {draft.line})")
                continue
            positions.append((draft, ticker, shares, cost, acquired))

        if not self.problems and not positions and not any(a.cash for a in self._accounts.values()):
            if self.row_count == 0:
                self.problem(self.header_line, "", "the file has a header but no positions below it")
            else:
                self.problem(None, "", "no positions or cash found in the file")
        if self.problems:
            raise ImportFailed(sorted(self.problems, key=lambda p: (p.line or 0, p.field)), self.problems_more)

        names = self._final_names()
        used_keys = {d.account_key for d, *_ in positions} | {k for k, a in self._accounts.items() if a.cash}
        accounts = [
            ParsedAccount(name=names[key], account_type=draft.account_type, broker=self.broker[:BROKER_MAX],
                          number_masked=draft.number_masked, cash=draft.cash.quantize(values.CENT),
                          type_assumed=draft.type_assumed)
            for key, draft in self._accounts.items() if key in used_keys
        ]
        parsed_positions = [
            ParsedPosition(account=names[d.account_key], ticker=t, shares=s, cost_basis=c, acquired_on=a, line=d.line)
            for d, t, s, c, a in positions
        ]
        self._final_warnings(accounts, parsed_positions)
        return ParsedFile(format=self.format, accounts=accounts, positions=parsed_positions,
                          warnings=list(self.warnings), as_of=self.as_of)

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

    def _final_warnings(self, accounts: list[ParsedAccount], positions: list[ParsedPosition]) -> None:
        if self._skipped_zero:
            self.warn(f"Skipped {len(self._skipped_zero)} position(s) with zero shares: "
                      + ", ".join(self._skipped_zero[:10]) + ("…" if len(self._skipped_zero) > 10 else ""))
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
            return values.ticker_normalize(cell.text)
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
        return number.quantize(values.SHARE_STEP if kind == "shares" else values.CENT)

    def _date(self, cell: _Cell, style: str) -> dt.date | None:
        try:
            return values.date_parse(cell.text, style=style)
        except ValueError as exc:
            self.problem(cell.line, cell.field, str(exc))
            return None
