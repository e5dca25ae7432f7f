"""Cell values: numbers (with the file's decimal mark) and dates. Raise ValueError with a message.

Tickers are read with `engine.tickers.ticker_normalize`, the project's one normaliser."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation

DOT = "dot"  # 1,234.56
COMMA = "comma"  # 1.234,56 (semicolon-delimited files only)

CENT = Decimal("0.01")
SHARE_STEP = Decimal("0.000001")
MAX_SHARES = Decimal("1e13")  # Holding.shares: 20 digits, 6 decimal places
MAX_MONEY = Decimal("1e15")  # 18 digits, 2 decimal places

MISSING = {"", "--", "-", "—", "n/a", "na", "n.a.", "none", "null"}
_NOT_FINITE = {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}

_NUMBER = re.compile(
    r"""^(?P<open>\()?\s*(?P<sign>[+\-−])?\s*(?:\$|USD\s?)?\s*(?P<sign2>[+\-−])?\s*
        (?P<body>[0-9][0-9.,]*|\.[0-9]+)\s*(?P<close>\))?$""",
    re.VERBOSE | re.IGNORECASE,
)
_DOT_PLAIN = re.compile(r"^(\d+(\.\d+)?|\.\d+)$")  # `.1250` too
_DOT_GROUPED = re.compile(r"^[1-9]\d{0,2}(,\d{3})+(\.\d+)?$")
_COMMA_PLAIN = re.compile(r"^\d+(,\d+)?$")
_COMMA_GROUPED = re.compile(r"^[1-9]\d{0,2}(\.\d{3})+(,\d+)?$")


def _split(text: str) -> tuple[bool, str] | None:
    """(negative, digits-and-separators) or None when the cell is empty/missing."""
    s = text.strip().replace("\u00a0", " ")
    if s.lower() in MISSING:
        return None
    if s.lower() in _NOT_FINITE:
        raise ValueError(f"“{text}” is not a finite number")
    match = _NUMBER.match(s)
    if not match or bool(match["open"]) != bool(match["close"]) or (match["sign"] and match["sign2"]):
        if re.search(r"\d[eE][+\-]?\d", s):
            raise ValueError(f"“{short(text)}” is in scientific notation; write the number out in full")
        raise ValueError(f"“{short(text)}” is not a number")
    sign = match["sign"] or match["sign2"] or ""
    negative = bool(match["open"]) or sign in ("-", "−")
    return negative, match["body"]


def _fits(body: str, style: str) -> bool:
    if style == DOT:
        return bool(_DOT_PLAIN.match(body) or _DOT_GROUPED.match(body))
    return bool(_COMMA_PLAIN.match(body) or _COMMA_GROUPED.match(body))


def number_parse(text: str, *, style: str = DOT) -> Decimal | None:
    """Parse a money or quantity cell: `$`, `+`, `-`, parentheses and thousands separators allowed.

    In DOT style a comma is only a thousands separator (`1,250.5`); a decimal comma (`12,5`) is refused
    rather than guessed. COMMA style (semicolon-delimited files) reads `1.234,56`.
    Returns None for an empty or "missing" cell (`--`, `n/a`).
    """
    split = _split(text)
    if split is None:
        return None
    negative, body = split
    if not _fits(body, style):
        if style == DOT and _fits(body, COMMA):
            raise ValueError(f"“{short(text)}” looks like a decimal comma, which is only accepted in "
                             "semicolon-delimited files; use a decimal point")
        raise ValueError(f"“{short(text)}” is not a number")
    plain = body.replace(",", "") if style == DOT else body.replace(".", "").replace(",", ".")
    try:
        number = Decimal(plain)
    except InvalidOperation:  # pragma: no cover - the patterns above only let digits through
        raise ValueError(f"“{short(text)}” is not a number")
    return -number if negative else number


def decimal_style(cells: list[tuple[str, int]]) -> tuple[str, tuple[tuple[str, int], tuple[str, int]] | None]:
    """The decimal mark of a semicolon-delimited file, from the evidence in its number cells.

    A decimal comma is the default; a decimal point is used when some cell can only be read that way
    (`12.5`) and none only with a comma (`12,5`). Both kinds present: returns the clash to report.
    """
    comma_only: tuple[str, int] | None = None
    dot_only: tuple[str, int] | None = None
    for text, line in cells:
        try:
            split = _split(text)
        except ValueError:
            continue
        if split is None:
            continue
        fits_dot, fits_comma = _fits(split[1], DOT), _fits(split[1], COMMA)
        if fits_comma and not fits_dot and comma_only is None:
            comma_only = (text, line)
        elif fits_dot and not fits_comma and dot_only is None:
            dot_only = (text, line)
    if comma_only and dot_only:
        return COMMA, (comma_only, dot_only)
    return (DOT if dot_only else COMMA), None


# --- tickers: one normaliser for the whole project, `engine.tickers.ticker_normalize` ---------------


# --- dates -------------------------------------------------------------------------------------

_MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1)}


def date_parse(text: str, *, style: str = "mdy") -> dt.date | None:
    """ISO `2024-01-15` always; `01/15/2024` (mdy, comma files) or `15.01.2024` (dmy, semicolon files)."""
    s = text.strip()
    if s.lower() in MISSING:
        return None
    try:
        if m := re.match(r"^(\d{4})-(\d{1,2})-(\d{1,2})$", s):
            y, mo, d = int(m[1]), int(m[2]), int(m[3])
        elif (m := re.match(r"^(\d{1,2})/(\d{1,2})/(\d{4})$", s)) and style == "mdy":
            mo, d, y = int(m[1]), int(m[2]), int(m[3])
        elif (m := re.match(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})$", s)) and style == "dmy":
            d, mo, y = int(m[1]), int(m[2]), int(m[3])
        else:
            hint = "YYYY-MM-DD or MM/DD/YYYY" if style == "mdy" else "YYYY-MM-DD or DD.MM.YYYY"
            raise ValueError(f"“{short(s)}” is not a date ({hint})")
        value = dt.date(y, mo, d)
    except ValueError as exc:
        if "is not a date" in str(exc):
            raise
        raise ValueError(f"“{short(s)}” is not a valid date")
    if value > dt.date.today() + dt.timedelta(days=1):
        raise ValueError(f"“{s}” is in the future")
    if value.year < 1900:
        raise ValueError(f"“{s}” is too far in the past")
    return value


def date_in_text(text: str) -> dt.date | None:
    """Find a date written by a broker inside free text (`01/15/2024`, `2024/01/15`, `Jan-15-2024`)."""
    patterns = [
        (r"(\d{4})[/-](\d{1,2})[/-](\d{1,2})", lambda m: (int(m[1]), int(m[2]), int(m[3]))),
        (r"(\d{1,2})/(\d{1,2})/(\d{4})", lambda m: (int(m[3]), int(m[1]), int(m[2]))),
        (r"([A-Za-z]{3})[a-z]*[- ](\d{1,2}),?[- ](\d{4})",
         lambda m: (int(m[3]), _MONTHS.get(m[1].lower(), 0), int(m[2]))),
    ]
    for pattern, parts in patterns:
        if m := re.search(pattern, text):
            try:
                return dt.date(*parts(m))
            except ValueError:
                continue
    return None


def short(text: str, limit: int = 40) -> str:
    text = text.replace("\n", " ").replace("\r", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"
