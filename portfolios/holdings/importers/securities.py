"""What a row of a broker file holds: cash (money-market funds), an option, a bond/T-bill (CUSIP), a fund.

Money-market funds come from `data/funds/money_market.csv` (ticker, name, broker). Option symbols in
the brokers' spellings become one OCC-style ticker (`AAPL260116C00300000`). Pure: no database.
"""

from __future__ import annotations

import csv
import re
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path

from engine.tickers import ticker_key

MONEY_MARKET_FILE = Path(__file__).resolve().parents[3] / "data" / "funds" / "money_market.csv"

# The Security.Kind values a file may name.
STOCK, ETF, FUND, OPTION, BOND = "stock", "etf", "fund", "option", "bond"
CASH = "cash"  # not a kind: the row is cash


@cache
def money_market_funds() -> frozenset[str]:
    with MONEY_MARKET_FILE.open(newline="", encoding="utf-8") as handle:
        return frozenset(ticker_key(row["ticker"]) for row in csv.DictReader(handle) if row["ticker"].strip())


def symbol_clean(text: str) -> str:
    """A symbol as a broker writes it, without its markers (Fidelity's `SPAXX**`, a trailing `*`)."""
    return text.strip().rstrip("*").strip()


def is_money_market(symbol: str) -> bool:
    return ticker_key(symbol_clean(symbol)) in money_market_funds()


# --- kinds named by the file -----------------------------------------------------------------------

_KIND_WORDS = (
    (CASH, ("cash", "money market", "sweep")),
    (OPTION, ("option", "call", "put")),
    (ETF, ("etf", "exchange traded", "closed end")),
    (FUND, ("mutual fund", "mutual funds", "fund")),
    (BOND, ("fixed income", "bond", "treasur", "t-bill", "cd", "certificate of deposit", "municipal", "debt")),
    (STOCK, ("equity", "equities", "stock", "common", "adr", "preferred")),
)


def kind_from_label(label: str) -> str:
    """A security-type cell (`Equity`, `ETFs & Closed End Funds`, `Mutual Fund`, `Option`, `Fixed Income`,
    `Cash and Money Market`) -> stock/etf/fund/option/bond, "cash", or "" when it says nothing we know."""
    low = re.sub(r"\s+", " ", label.strip().lower())
    if low in ("", "--", "n/a", "other"):
        return ""
    for kind, words in _KIND_WORDS:
        if any(re.search(rf"\b{re.escape(w)}", low) for w in words):
            return kind
    return ""


# --- CUSIPs (T-bills, bonds, CDs) ------------------------------------------------------------------

_CUSIP = re.compile(r"^[0-9]{3}[0-9A-Z]{5}[0-9]$")


def is_cusip(text: str) -> bool:
    """Nine characters with a valid check digit (912797KX4); a ticker never has one."""
    code = text.strip().upper()
    if not _CUSIP.match(code):
        return False
    total = 0
    for i, char in enumerate(code[:8]):
        value = int(char) if char.isdigit() else ord(char) - ord("A") + 10
        if i % 2:
            value *= 2
        total += value // 10 + value % 10
    return (10 - total % 10) % 10 == int(code[8])


# --- options ---------------------------------------------------------------------------------------

_OCC = re.compile(r"^-?([A-Z]{1,6})\d?\s*(\d{6})([CP])(\d{8})$")  # AAPL  260116C00300000
_COMPACT = re.compile(r"^-?([A-Z]{1,6})(\d{6})([CP])(\d+(?:\.\d+)?)$")  # Fidelity: -AAPL260116C300
_SPELLED = re.compile(  # Schwab: AAPL 01/16/2026 300.00 C; IBKR: AAPL 16JAN26 300 C
    r"^([A-Z]{1,6})\s+(\d{2}/\d{2}/\d{4}|\d{1,2}[A-Z]{3}\d{2})\s+(\d+(?:\.\d+)?)\s+([CP])(?:ALL|UT)?$"
)
_WORDS = re.compile(  # E*TRADE: AAPL Jan 16 '26 $300 Call
    r"^([A-Z]{1,6})\s+([A-Z]{3})\s+(\d{1,2})\s+'(\d{2})\s+\$(\d+(?:\.\d+)?)\s+(CALL|PUT)$"
)
_MONTHS = {m: i for i, m in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), start=1)}


def option_symbol(text: str) -> str | None:
    """An option written the OCC, Fidelity, Schwab, IBKR or E*TRADE way -> `ROOT` + YYMMDD + C/P + strike x 1000
    (8 digits), e.g. `AAPL260116C00300000`; None when the text is not an option."""
    raw = re.sub(r"\s+", " ", text.strip().upper())
    if match := _OCC.match(raw):
        return f"{match[1]}{match[2]}{match[3]}{match[4]}"
    if match := _COMPACT.match(raw.replace(" ", "")):
        return _occ(match[1], match[2], match[3], match[4])
    if match := _SPELLED.match(raw):
        when = match[2]
        if "/" in when:
            month, day, year = when.split("/")
            yymmdd = f"{year[2:]}{month}{day}"
        else:
            found = re.match(r"(\d{1,2})([A-Z]{3})(\d{2})", when)
            if not found or found[2] not in _MONTHS:
                return None
            yymmdd = f"{found[3]}{_MONTHS[found[2]]:02d}{int(found[1]):02d}"
        return _occ(match[1], yymmdd, match[4], match[3])
    if (match := _WORDS.match(raw)) and match[2] in _MONTHS:
        return _occ(match[1], f"{match[4]}{_MONTHS[match[2]]:02d}{int(match[3]):02d}", match[6][0], match[5])
    return None


def _occ(root: str, yymmdd: str, right: str, strike: str) -> str | None:
    try:
        thousandths = int(Decimal(strike) * 1000)
    except InvalidOperation:  # pragma: no cover - the patterns only let digits through
        return None
    if not 0 < thousandths < 10**8:
        return None
    return f"{root}{yymmdd}{right}{thousandths:08d}"


def fund_by_symbol(ticker: str) -> bool:
    """Five letters ending in X: the Nasdaq symbol convention for mutual funds (FXAIX, VTSAX)."""
    return len(ticker) == 5 and ticker.isalpha() and ticker.endswith("X")
