"""Tax model for selling in taxable accounts.

- Nothing is taxed in `traditional_ira`, `roth_ira` or `401k` accounts. `taxable` and `other` are
  taxed (`other` conservatively, since the engine cannot tell what it is).
- A lot held more than 365 days before the as-of date is long-term (15%), otherwise short-term (35%).
  Unknown acquisition date: long-term assumed (drifted holdings are usually old), with a warning.
- Unknown cost basis: half the lot's value is assumed to be gain (the `CostModel` fraction), with a
  warning: a deliberately cautious estimate that still lets the optimizer sell when a limit needs it.
- Lots are sold in order of lowest tax per dollar sold first (losses, then high-basis long-term lots,
  ...): for lots in one holding period that is "highest basis first". In the optimizer the tax of
  selling s dollars of a holding is that convex piecewise-linear curve. Losses count: a loss lot's
  piece has a negative slope (the tax it saves). The optimizer credits every loss at the long-term
  rate (`Lot.loss_rate`), so its linear sum over holdings is never below the netted tax of the plan
  (`net_tax`: a short-term loss is worth 35% only against short-term gains); engine.taxplan keeps
  harvesting free of wash sales. Curves with more than `TAX_PIECES` lots are merged into `TAX_PIECES`
  chords (a slight over-estimate between breakpoints); shorter curves repeat their last piece.
- A plan's tax nets gains and losses by term (`net_tax`): short-term losses offset short-term gains first
  and long-term losses long-term gains, then what is left over offsets the other term; a net loss is 0
  tax. Each sell's `est_tax` is its share of that netted figure (`allocate_taxes`): a gain pays its own
  tax, a loss shows the (negative) tax it saves on the plan's gains, and the sells add up to the plan's
  total exactly.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.profiles import DEFAULT_COSTS, CostModel
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
    loss_rate: float = 0.15  # rate a loss from this lot is credited at in the optimizer (the long-term rate)
    acquired: dt.date | None = None

    @property
    def gain_per_share(self) -> float:
        return self.price - self.basis_per_share

    @property
    def tax_per_dollar(self) -> float:
        """The optimizer's tax per dollar of value sold (negative for a loss: the tax it saves)."""
        if self.price <= 0:
            return 0.0
        fraction = 1.0 - self.basis_per_share / self.price
        return (self.rate if fraction >= 0 else self.loss_rate) * fraction


@dataclass(frozen=True)
class Realisation:
    """What selling some shares of a holding realises (USD)."""

    gain: float
    long_term_gain: float  # net of the long-term losses sold (negative: a net loss)
    short_term_gain: float
    tax: float  # this sale's tax: alone, `net_tax` of its gains; in a plan, its share (`allocate_taxes`)
    loss: float = 0.0  # the losses among the lots sold (USD, >= 0), before netting


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
        lots.append(Lot(p.shares, price, basis_per_share, long_term, rate, basis_known, date_known,
                        loss_rate=costs.long_term_rate, acquired=p.acquired))
    lots.sort(key=lambda lot: lot.tax_per_dollar)
    return lots


def net_tax(short_term_gain: float, long_term_gain: float, costs: CostModel = DEFAULT_COSTS) -> float:
    """Tax on net gains (USD) by term: a net loss of one term offsets the other's net gain; a net loss is 0."""
    st, lt = short_term_gain, long_term_gain
    if st < 0 < lt:
        lt, st = lt + st, 0.0
    elif lt < 0 < st:
        st, lt = st + lt, 0.0
    return costs.short_term_rate * max(st, 0.0) + costs.long_term_rate * max(lt, 0.0)


def plan_tax(realisations: Sequence[Realisation], costs: CostModel = DEFAULT_COSTS) -> float:
    """The netted tax of a plan's sales (USD)."""
    return net_tax(sum(r.short_term_gain for r in realisations), sum(r.long_term_gain for r in realisations), costs)


def allocate_taxes(realisations: Sequence[Realisation], costs: CostModel = DEFAULT_COSTS) -> list[float]:
    """Each sale's share of `plan_tax` (USD), summing to it: the tax on its own gains, less its share of what
    the plan's losses save, split in proportion to the losses (a pure loss gets a negative share)."""
    gross = [costs.short_term_rate * max(r.short_term_gain, 0.0) + costs.long_term_rate * max(r.long_term_gain, 0.0)
             for r in realisations]
    losses = [max(-r.short_term_gain, 0.0) + max(-r.long_term_gain, 0.0) for r in realisations]
    saved = sum(gross) - plan_tax(realisations, costs)
    total_loss = sum(losses)
    if total_loss <= 0:
        return gross
    return [g - saved * loss / total_loss for g, loss in zip(gross, losses, strict=True)]


def realise(lots: Sequence[Lot], shares_sold: float, costs: CostModel = DEFAULT_COSTS) -> Realisation:
    """Gain (by term) and netted tax of selling `shares_sold` shares, taking lots in their (tax-sorted) order."""
    remaining = shares_sold
    long_gain = short_gain = loss = 0.0
    for lot in lots:
        if remaining <= 1e-12:
            break
        take = min(lot.shares, remaining)
        remaining -= take
        gain = take * lot.gain_per_share
        loss += max(-gain, 0.0)
        if lot.long_term:
            long_gain += gain
        else:
            short_gain += gain
    return Realisation(long_gain + short_gain, long_gain, short_gain, net_tax(short_gain, long_gain, costs), loss)


def tax_curve(lots: Sequence[Lot], value_scale: float, pieces: int = TAX_PIECES) -> tuple[np.ndarray, np.ndarray]:
    """Affine pieces (slopes, intercepts), each (pieces,), whose maximum is the optimizer's tax of selling
    s (a fraction of `value_scale`, the portfolio value) of this holding, as a fraction of `value_scale`
    (negative where losses are sold: see the module docstring).

    Slopes are non-decreasing (convex). A curve of fewer segments repeats its last piece, except that a
    curve without a loss keeps (0, 0) pieces (they read tax >= 0, which its first piece implies anyway);
    a holding without lots gets (0, 0) pieces only.
    """
    slopes = np.zeros(pieces)
    intercepts = np.zeros(pieces)
    segments = [(lot.shares * lot.price / value_scale, lot.tax_per_dollar) for lot in lots]
    segments = _merge_segments([s for s in segments if s[0] > 0], pieces)
    start, tax_at_start = 0.0, 0.0
    for i, (width, slope) in enumerate(segments):
        slopes[i] = slope
        intercepts[i] = tax_at_start - slope * start
        start += width
        tax_at_start += slope * width
    if segments and segments[0][1] < 0:  # a loss: no (0, 0) piece, which would floor the tax at 0
        slopes[len(segments):] = slopes[len(segments) - 1]
        intercepts[len(segments):] = intercepts[len(segments) - 1]
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
