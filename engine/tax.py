"""Tax model for selling in taxable accounts.

- Nothing is taxed in `traditional_ira`, `roth_ira` or `401k` accounts. `taxable` and `other` are
  taxed (`other` conservatively, since the engine cannot tell what it is).
- A lot held more than 365 days before the as-of date is long-term (15%), otherwise short-term (35%).
  Unknown acquisition date: long-term assumed (drifted holdings are usually old), with a warning.
- Unknown cost basis: half the lot's value is assumed to be gain (the `CostModel` fraction), with a
  warning: a deliberately cautious estimate that still lets the optimizer sell when a limit needs it.
- Lots are sold in order of lowest tax per dollar sold first (losses, then high-basis long-term lots,
  ...): for lots in one holding period that is "highest basis first". In the optimizer the tax of
  selling s dollars of a holding is that convex piecewise-linear curve (losses count as zero tax there,
  so the solver never sells and re-buys just to harvest a loss: a wash sale). Curves with more than
  `TAX_PIECES` lots are merged into `TAX_PIECES` chords (a slight over-estimate between breakpoints).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.profiles import CostModel
from engine.types import Position

TAX_FREE_ACCOUNT_TYPES = frozenset({"traditional_ira", "roth_ira", "401k"})
LONG_TERM_DAYS = 365
TAX_PIECES = 4


@dataclass(frozen=True)
class Lot:
    """One lot of a holding, valued at the current price. Money in USD."""

    shares: float
    price: float
    basis_per_share: float
    long_term: bool
    rate: float  # tax rate on a gain from this lot
    basis_known: bool
    date_known: bool

    @property
    def tax_per_dollar(self) -> float:
        """Tax per dollar of value sold (negative for a loss)."""
        return self.rate * (1.0 - self.basis_per_share / self.price) if self.price > 0 else 0.0


@dataclass(frozen=True)
class Realisation:
    """What selling some shares of a holding realises (USD)."""

    gain: float
    long_term_gain: float
    short_term_gain: float
    tax: float  # >= 0; losses give 0 here (they offset other gains, reported in the reason)


def is_taxable(account_type: str) -> bool:
    return account_type not in TAX_FREE_ACCOUNT_TYPES


def holding_lots(
    positions: Sequence[Position], *, price: float, as_of: dt.date, costs: CostModel
) -> list[Lot]:
    """The lots of one holding (same ticker, same account), sorted by tax per dollar ascending."""
    lots: list[Lot] = []
    for p in positions:
        if p.shares <= 0:
            continue
        date_known = p.acquired is not None
        long_term = not date_known or (as_of - p.acquired).days > LONG_TERM_DAYS  # type: ignore[operator]
        basis_known = p.cost_basis is not None
        if basis_known:
            basis_per_share = float(p.cost_basis) / p.shares  # type: ignore[arg-type]
        else:
            basis_per_share = price * (1.0 - costs.unknown_basis_gain_fraction)
        rate = costs.long_term_rate if long_term else costs.short_term_rate
        lots.append(Lot(p.shares, price, basis_per_share, long_term, rate, basis_known, date_known))
    lots.sort(key=lambda lot: lot.tax_per_dollar)
    return lots


def realise(lots: Sequence[Lot], shares_sold: float) -> Realisation:
    """Gain and tax of selling `shares_sold` shares, taking lots in their (tax-sorted) order."""
    remaining = shares_sold
    long_gain = short_gain = tax = 0.0
    for lot in lots:
        if remaining <= 1e-12:
            break
        take = min(lot.shares, remaining)
        remaining -= take
        gain = take * (lot.price - lot.basis_per_share)
        if lot.long_term:
            long_gain += gain
        else:
            short_gain += gain
        tax += lot.rate * gain
    return Realisation(long_gain + short_gain, long_gain, short_gain, max(tax, 0.0))


def tax_curve(lots: Sequence[Lot], value_scale: float, pieces: int = TAX_PIECES) -> tuple[np.ndarray, np.ndarray]:
    """Affine pieces (slopes, intercepts), each (pieces,), whose maximum (with 0) is the tax of selling
    s (a fraction of `value_scale`, the portfolio value) of this holding, as a fraction of `value_scale`.

    Slopes are non-decreasing (convex); unused pieces are (0, 0).
    """
    slopes = np.zeros(pieces)
    intercepts = np.zeros(pieces)
    segments = [(lot.shares * lot.price / value_scale, max(lot.tax_per_dollar, 0.0)) for lot in lots]
    segments = [s for s in segments if s[0] > 0]
    segments = _merge_segments(segments, pieces)
    start, tax_at_start = 0.0, 0.0
    for i, (width, slope) in enumerate(segments):
        slopes[i] = slope
        intercepts[i] = tax_at_start - slope * start
        start += width
        tax_at_start += slope * width
    return slopes, intercepts


def _merge_segments(segments: list[tuple[float, float]], pieces: int) -> list[tuple[float, float]]:
    """Merge adjacent (width, slope) segments with the closest slopes until at most `pieces` remain."""
    segments = list(segments)
    while len(segments) > pieces:
        gaps = [segments[i + 1][1] - segments[i][1] for i in range(len(segments) - 1)]
        i = int(np.argmin(gaps))
        (w1, s1), (w2, s2) = segments[i], segments[i + 1]
        segments[i : i + 2] = [(w1 + w2, (w1 * s1 + w2 * s2) / (w1 + w2))]
    return segments
