"""The pair screen of the rounding repair's descent (`engine.descent.Descent`): before pairs of steps are
scored, every pair gets a lower bound of its violation and of its score, computed with a margin far above
rounding error; the pairs it rules out could not be taken, and only the others are scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.limits import (
    CASH_WEIGHT,
    PENALTY_MINIMUM,
    PENALTY_SECTOR,
    PENALTY_SINGLE_STOCK,
    PENALTY_TURNOVER,
    PENALTY_VOLATILITY,
    PULL_WEIGHT,
)

if TYPE_CHECKING:
    from engine.rounding import Book


class PairScreen:
    """The screen, as a base of `Descent` (whose state it reads: declared below)."""

    book: Book
    V: float
    n_sel: int
    n_accounts: int
    col_acc: np.ndarray
    col_slot: np.ndarray
    cash: np.ndarray
    short: np.ndarray
    short_sum: Any  # numpy scalars: the descent keeps numpy's own sums
    buys: float
    sells: float
    pull_sum: float
    cash_sum: Any
    cash_drag: float
    total: float
    total_fall: float
    eq_fall: float
    base: np.ndarray
    sel: np.ndarray
    sel_sectors: int
    sel_caps: np.ndarray
    turn_limit: tuple[float, float]
    vol_limit: tuple[float, float]
    ff: Any
    spsp: Any
    shared_assets: bool

    def _screen(self, pool: tuple, violation: float, score: float, bar: float) -> tuple[np.ndarray, np.ndarray]:
        """Pairs (i, j) of the pool (positions, row-major order, both orientations, on different slots) that a
        lower bound of their violation and score does not rule out (see the class docstring); pool: `_pool`.

        The bound: the pair's cash shortfall and turnover terms, plus max(0, sum of the linear parts of the
        limit terms violated now): sector and minimum terms over the pair's equity, single-name terms over the
        largest total any pair reaches, and volatility (if over its cap now) through the chord of the square
        root over the pairs' range of variance, which lies below it."""
        cols, Z, one, uu_cross = pool
        n = self.n_sel
        bound = _Bound(row=np.zeros(len(cols)), magnitude=self._screen_magnitude(Z))
        low = self._cash_bound(cols, Z[n + 3])
        turn = self._turnover_bound(Z[n], Z[n + 1])
        if turn is not None:
            low += turn
        total_high = self.total + 2 * float(Z[n + 4].max())
        if total_high <= 0:
            total_high = np.inf
        self._sector_bound(bound, Z)
        self._name_bound(bound, Z, total_high)
        self._volatility_bound(bound, Z, one, uu_cross, total_high)
        lin = bound.linear(uu_cross)
        if lin is not None:
            low += lin
        return self._screened(cols, low, Z, violation, score, bar, bound.magnitude)

    def _screen_magnitude(self, Z: np.ndarray) -> float:
        """The size of the cash, turnover and objective terms, for the screen's margin."""
        b, V, n = self.book, self.V, self.n_sel
        turn_cap = (self.turn_limit[0] + self.turn_limit[1]) * V
        big = np.abs(Z[n:n + 4]).max(axis=1)  # buys, sells, pull, cash
        return (CASH_WEIGHT / V * (float(self.short_sum) + float(np.abs(self.cash).max()) + 2 * big[3])
                + PENALTY_TURNOVER / V * (self.buys + self.sells + b.cash_in + b.cash_out + turn_cap
                                          + 2 * (big[0] + big[1]))
                + (PULL_WEIGHT * (self.pull_sum + 2 * big[2]) + self.cash_drag * (abs(float(self.cash_sum))
                                                                                  + 2 * big[3])) / V)

    def _cash_bound(self, cols: np.ndarray, x: np.ndarray) -> np.ndarray:
        """(P, P) cash shortfall term of each pair: an account's shortfall after both steps (same account) or
        after each."""
        cash_scale = CASH_WEIGHT / self.V
        short_sum = float(self.short_sum)
        acc = self.col_acc[cols]
        cash_i = self.cash[acc] + x
        short_acc = self.short[acc]
        low = (-cash_scale * cash_i)[:, None] - (cash_scale * x)[None, :]
        np.maximum(low, 0.0, out=low)
        low += (cash_scale * (short_sum - short_acc))[:, None]
        if self.n_accounts > 1:
            alone = np.maximum(-cash_i, 0.0) - short_acc
            apart = (cash_scale * (alone + short_sum))[:, None] + (cash_scale * alone)[None, :]
            low = np.where(acc[:, None] == acc[None, :], low, apart)
        return low

    def _turnover_bound(self, buys: np.ndarray, sells: np.ndarray) -> np.ndarray | None:
        """(P, P) turnover term of each pair, or None when no pair can pass the turnover limit."""
        b, V = self.book, self.V
        turn_scale = PENALTY_TURNOVER / V
        turn_cap = (self.turn_limit[0] + self.turn_limit[1]) * V
        over_b = turn_scale * ((self.buys - b.cash_in - turn_cap) + buys)
        over_s = turn_scale * ((self.sells - b.cash_out - turn_cap) + sells)
        buys_s, sells_s = turn_scale * buys, turn_scale * sells
        high_b = float(over_b.max() + buys_s.max())
        high_s = float(over_s.max() + sells_s.max())
        if high_b <= 0 and high_s <= 0:
            return None
        if high_s <= 0:
            turn = over_b[:, None] + buys_s[None, :]
        elif high_b <= 0:
            turn = over_s[:, None] + sells_s[None, :]
        else:
            turn = np.maximum(over_b[:, None] + buys_s[None, :], over_s[:, None] + sells_s[None, :])
        np.maximum(turn, 0.0, out=turn)
        return turn

    def _sector_bound(self, bound: _Bound, Z: np.ndarray) -> None:
        """The linear parts of the sector and minimum terms violated now, over the pair's equity."""
        base = self.base
        n_sec = self.sel_sectors
        equity = float(base[0])
        if not (equity > 1e-9 and equity - self.eq_fall > 1e-9):
            return
        values = base[self.sel[1:3 + n_sec]]
        now = values / equity - self.sel_caps[:2 + n_sec, 0]
        now[:2] *= -1.0
        active = now > 0
        if not active.any():
            return
        weights = np.where(active, PENALTY_SECTOR, 0.0)
        weights[:2] = np.where(active[:2], -PENALTY_MINIMUM, 0.0)
        steps = weights @ Z[1:3 + n_sec]
        e_d = Z[0]
        lin = (float(weights @ values) + steps)[:, None] + steps[None, :]
        lin /= (equity + e_d)[:, None] + e_d[None, :]
        bound.lin = lin
        caps = float(weights @ self.sel_caps[:2 + n_sec, 0])
        bound.const -= caps
        bound.magnitude += ((float(np.abs(weights) @ values) + 2 * float(np.abs(steps).max()))
                            / (equity - self.eq_fall) + abs(caps))

    def _name_bound(self, bound: _Bound, Z: np.ndarray, total_high: float) -> None:
        """The linear parts of the single-name terms violated now, over the largest total any pair reaches."""
        n, n_sec = self.n_sel, self.sel_sectors
        if not n > 3 + n_sec:
            return
        values = self.base[self.sel[3 + n_sec:]]
        now = values / self.total - self.sel_caps[2 + n_sec:, 0]
        active = now > 0
        if not (active.any() and total_high < np.inf):
            return
        weights = np.where(active, PENALTY_SINGLE_STOCK, 0.0)
        steps = weights @ Z[3 + n_sec:n]
        bound.row += steps / total_high
        caps = float(weights @ self.sel_caps[2 + n_sec:, 0])
        bound.const += float(weights @ values) / total_high - caps
        bound.used = True
        bound.magnitude += ((float(weights @ values) + 2 * float(np.abs(steps).max()))
                            / (self.total - self.total_fall) + caps)

    def _volatility_bound(self, bound: _Bound, Z: np.ndarray, one: np.ndarray, uu_cross: np.ndarray,
                          total_high: float) -> None:
        """Volatility, if over its cap now: the chord of the square root over the pairs' range of variance."""
        n = self.n_sel
        vol_cap = self.vol_limit[0] + self.vol_limit[1]
        var0 = float(self.ff + self.spsp)
        if not (total_high < np.inf and np.sqrt(max(var0, 0.0)) / self.total > vol_cap):
            return
        lowest = var0 - (2 * float((Z[n + 8] * Z[n + 6]).max()) if self.shared_assets else 0.0)
        lo = max(lowest + 2 * float(one.min()) + 2 * float(uu_cross.min()), 0.0)
        hi = max(var0 + 2 * float(one.max()) + 2 * float(uu_cross.max()), lo)
        root_lo, root_hi = np.sqrt(lo), np.sqrt(hi)
        slope = (root_hi - root_lo) / (hi - lo) if hi > lo else 0.0
        scale = PENALTY_VOLATILITY / total_high
        bound.row += (scale * slope) * one
        bound.const += scale * (root_lo + slope * (lowest - lo)) - PENALTY_VOLATILITY * vol_cap
        bound.cross = 2 * scale * slope
        bound.used = True
        bound.magnitude += PENALTY_VOLATILITY * (root_hi / (self.total - self.total_fall) + vol_cap)

    def _screened(self, cols: np.ndarray, low: np.ndarray, Z: np.ndarray, violation: float, score: float,
                  bar: float, magnitude: float) -> tuple[np.ndarray, np.ndarray]:
        """The pairs whose lower bound `low` is under the thresholds (with a margin far above rounding error)."""
        n, V = self.n_sel, self.V
        pull, x = Z[n + 2], Z[n + 3]
        obj = (PULL_WEIGHT * pull + self.cash_drag * x) / V
        base_obj = (PULL_WEIGHT * self.pull_sum + self.cash_drag * float(self.cash_sum)) / V
        margin = 1e-10 * (magnitude + abs(violation) + abs(score) + (abs(bar) if bar < np.inf else 0.0))
        limit = (min(score - 1e-12, bar) + 2 * margin - base_obj - obj)[:, None] - obj[None, :]
        np.minimum(limit, violation - 1e-12 + margin, out=limit)
        ii, jj = np.divmod((low < limit).ravel().nonzero()[0], len(cols))
        slot = self.col_slot[cols]
        differ = slot[ii] != slot[jj]
        return ii[differ], jj[differ]


@dataclass
class _Bound:
    """The linear lower bound of a pair's limit terms, built term by term (`PairScreen._screen`)."""

    row: np.ndarray  # (P,) per-step part, added for both steps of a pair
    magnitude: float  # size of every term, for the margin
    lin: np.ndarray | None = None  # (P, P) sector/minimum part
    const: float = 0.0
    used: bool = False  # single-name or volatility terms are in `row` / `const`
    cross: float = 0.0  # weight of the pair's variance cross term

    def linear(self, uu_cross: np.ndarray) -> np.ndarray | None:
        """max(0, the bound) for every pair, or None when no limit term is violated now."""
        if self.lin is None and not self.used:
            return None
        if self.lin is None:
            lin = (self.row + self.const)[:, None] + self.row[None, :]
        else:
            lin = self.lin
            lin += (self.row + self.const)[:, None]
            lin += self.row[None, :]
        if self.cross:
            lin += self.cross * uu_cross
        np.maximum(lin, 0.0, out=lin)
        return lin
