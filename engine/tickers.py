"""One ticker normaliser for every boundary: importers, forms, API, CLI, providers, engine feed, engine.

Tickers are kept the Yahoo way: upper case, class shares with a dash (`BRK.B`, `BRK/B`, `BRK B`,
`brk-b` and the broker spelling `BRKB` all become `BRK-B`). Pure: no Django, no pandas.

- `ticker_normalize(text)` is strict: it raises `ValueError` with a message a user can read when the
  text cannot be a ticker (for input a person typed or uploaded).
- `ticker_key(text)` is lenient: the same spelling rules, never raises (for lookups and data that
  was validated before, e.g. a keep-list or a provider's column names).
"""

from __future__ import annotations

import re

__all__ = ["TICKER_MAX_LEN", "ticker_key", "ticker_normalize"]

TICKER_MAX_LEN = 24

_TICKER = re.compile(r"^[A-Z0-9][A-Z0-9.\-]{0,23}$")
_CLASS_SHARE = re.compile(r"^([A-Z]{1,6})[./ ]([A-Z])$")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "|")

# Class shares that brokers write without any separator (Fidelity: `BRKB`).
_RUN_TOGETHER = {"BRKA": "BRK-A", "BRKB": "BRK-B", "BFA": "BF-A", "BFB": "BF-B"}


def _short(text: str, limit: int = 30) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def ticker_key(text: object) -> str:
    """Trim, upper-case and spell class shares with a dash; never raises (empty text gives "")."""
    ticker = str(text).strip().upper()
    ticker = _CLASS_SHARE.sub(r"\1-\2", ticker)
    ticker = _RUN_TOGETHER.get(ticker, ticker)
    # A dotted suffix of one letter after a longer root (`BRK.B` caught above); other dots are
    # Yahoo's exchange suffixes (`RY.TO`) and stay.
    return ticker


def ticker_normalize(text: str) -> str:
    """`ticker_key`, then refuse what cannot be a ticker, with a reason a person can act on."""
    raw = str(text).strip()
    if not raw:
        raise ValueError("the ticker is missing")
    if raw.startswith(_FORMULA_START):
        raise ValueError(f"“{_short(raw)}” cannot be a ticker (it starts with “{raw[0]}”)")
    ticker = ticker_key(raw)
    if not _TICKER.match(ticker) or ticker.endswith((".", "-")):
        raise ValueError(
            f"“{_short(raw)}” is not a ticker (letters, digits, “.” and “-”, at most {TICKER_MAX_LEN})"
        )
    return ticker
