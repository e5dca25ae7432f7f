"""From the solver's continuous holdings to tradable orders: whole shares, minimum trade size, repair.

1. Trades smaller than `min_trade_usd` are dropped (selling a whole small holding is kept).
2. Whole shares (default): buys and sells round to the nearest share; a sell within half a share of
   the whole holding sells all of it (fractional remainders included).
3. Repair: a descent on a score = violation (cash shortfall, heavily weighted, + limit violations beyond
   what the solver itself had to relax, weighted by the solver's own penalties, so rounding trades limits
   off in the same order as the optimizer) + objective (a small pull toward the continuous solution + the
   solver's cash drag on cash held). Moves are one step on one slot (a share more or less, or
   opening/closing a minimum-size trade); when no single step helps, every pair of steps among the most
   relevant ones is scored at once (all metrics are sums of per-step changes, plus exact cross terms for
   volatility and shared cash), so fixes like "sell one more AAPL, one less NVDA" are found. A move must
   lower both the violation and the whole score; it stops when nothing is violated or no move helps.
   The cash drag matters: dropping a buy saves its transaction cost, which raises the total value a
   little and so lowers every cap measured as a share of it (single names, volatility). Without a price
   on idle cash the descent dropped buys share by share for that sliver (a whole bond sleeve left as
   cash); the gain is at most penalty x share x cost rate (< 0.03 per unit dropped), below the drag.
   `Repairer.repair` runs it with little work (`engine.descent.Descent`: state and steps updated per move,
   rows no step can reach left out, pairs screened by a lower bound before they are scored, see
   `engine.screen`); tests/rounding_reference.py has the descent as written (`steps`, `single_scores`,
   `pair_scores`), and the tests hold the fast form to it by properties.
4. A last pass guarantees cash >= 0 in every account: it trims buys, then (only for a withdrawal)
   leaves part of the withdrawal unraised. Whatever limit stays broken is reported by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.descent import Descent
from engine.exposures import ExposureModel
from engine.limits import Limits
from engine.profiles import DEFAULT_COSTS
from engine.risk import RiskModel

SINGLE_STEP_PROGRESS = 0.2  # a single step must cut the violation by this share, or pairs are scored too
PAIR_POOL = 40  # best single steps (by full score and ignoring cash) paired with each other and traded slots


@dataclass(frozen=True)
class Book:
    """Static per-run data about slots (K) and accounts (m); money in USD."""

    prices: np.ndarray  # (K,)
    shares0: np.ndarray  # (K,)
    account_of: np.ndarray  # (K,) int
    asset_of: np.ndarray  # (K,) int
    can_buy: np.ndarray  # (K,) bool
    can_sell: np.ndarray  # (K,) bool
    cost_rate: np.ndarray  # (K,)
    cash_start: np.ndarray  # (m,) cash before the cash change
    cash_change: np.ndarray  # (m,) + add / - withdrawal
    value: float  # V, after the cash change
    n_assets: int
    cash_in: float = 0.0  # USD buys may use without counting as turnover (cash on hand after the change)
    cash_out: float = 0.0  # USD sells may raise without counting as turnover (the withdrawal)
    buy_counted: np.ndarray | None = None  # (K,) bool: the slot's buys count as turnover (None: all)
    sell_counted: np.ndarray | None = None  # (K,) bool: the slot's sales count as turnover (None: all)
    sellable: np.ndarray | None = None  # (K,) shares each slot may sell (lots held back: engine.taxplan); None = all

    def turnover_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """(K,) weights (1.0 or 0.0) of each slot's buys and sales in turnover (engine.location, rule 3)."""
        every = np.ones(len(self.prices))
        buy = every if self.buy_counted is None else np.asarray(self.buy_counted, dtype=float)
        sell = every if self.sell_counted is None else np.asarray(self.sell_counted, dtype=float)
        return buy, sell

    @property
    def sell_limit(self) -> np.ndarray:
        """(K,) the most shares each slot may sell."""
        return self.shares0 if self.sellable is None else np.minimum(self.sellable, self.shares0)

    def cash_flow(self, q: np.ndarray) -> np.ndarray:
        """(K,) cash received by each slot for share trades q (buys pay cost, sells lose cost)."""
        amount = q * self.prices
        return np.where(amount > 0, -amount * (1 + self.cost_rate), -amount * (1 - self.cost_rate))

    def cash_after(self, q: np.ndarray, relief: np.ndarray) -> np.ndarray:
        m = len(self.cash_start)
        return self.cash_start + self.cash_change + relief + np.bincount(
            self.account_of, weights=self.cash_flow(q), minlength=m
        )

    def asset_dollars(self, q: np.ndarray) -> np.ndarray:
        return np.bincount(self.asset_of, weights=(self.shares0 + q) * self.prices, minlength=self.n_assets)

    def turnover(self, q: np.ndarray) -> float:
        """max(buys - cash on hand, sells - withdrawal, 0) / V (see engine.profiles; trades of slots not counted
        left out)."""
        amount = q * self.prices
        buy_weight, sell_weight = self.turnover_weights()
        buys = float((amount * buy_weight)[amount > 0].sum())
        sells = float(-(amount * sell_weight)[amount < 0].sum())
        return max(0.0, buys - self.cash_in, sells - self.cash_out) / self.value


@dataclass(frozen=True)
class Allowance:
    """How far each limit may stay violated after rounding (what the solver already relaxed)."""

    vol: float
    sectors: np.ndarray  # (11,)
    financials: float
    small: float
    names: np.ndarray  # (L,)
    turnover: float


def initial_round(book: Book, q_cont: np.ndarray, *, fractional: bool, min_trade_usd: float) -> tuple[np.ndarray, int]:
    """Round continuous share trades and drop those under the minimum; returns (q, dropped count)."""
    q = q_cont.copy()
    limit = book.sell_limit
    sell_all = (q < 0) & (-q >= limit - (1e-9 if fractional else 0.5)) & book.can_sell & (limit > 0)
    if not fractional:
        q = np.round(q)
    q = np.where(sell_all, -limit, q)
    q = np.clip(q, -limit, None)
    q = np.where(book.can_buy | (q <= 0), q, 0.0)
    q = np.where(book.can_sell | (q >= 0), q, 0.0)
    small = (np.abs(q * book.prices) < min_trade_usd) & ~sell_all
    dropped = int(((np.abs(q_cont * book.prices) >= 0.01) & small).sum())
    q[small] = 0.0
    return q, dropped


class Repairer:
    """Descent repair of rounded trades (see the module docstring)."""

    def __init__(
        self,
        book: Book,
        risk: RiskModel,
        exposures: ExposureModel,
        limits: Limits,
        allowance: Allowance,
        *,
        fractional: bool,
        min_trade_usd: float,
        cash_drag: float = DEFAULT_COSTS.cash_drag,
    ) -> None:
        self.book = book
        self.cash_drag = cash_drag
        self.risk = risk
        self.exp = exposures
        self.limits = limits
        self.allow = allowance
        self.min_trade = min_trade_usd
        self.fractional = fractional
        if fractional:
            self.step = np.maximum(min_trade_usd, 1.0) / book.prices
            self.open_size = self.step.copy()
        else:
            self.step = np.ones_like(book.prices)
            self.open_size = np.maximum(np.ceil(min_trade_usd / book.prices - 1e-9), 1.0)

    # ---- search

    def repair(
        self, q: np.ndarray, relief: np.ndarray, q_cont: np.ndarray, max_steps: int, *, trace: list | None = None
    ) -> tuple[np.ndarray, int]:
        """Descent with single steps, then pairs of steps; returns (trades, steps taken).

        A move is taken only if it lowers both the violation (cash shortfall + limits) and the whole score
        (violation + pull toward the continuous trades + cash drag); among those the lowest score wins.
        The moves of the reference descent, found with less work (`engine.descent.Descent`). `trace`, if given, gets the
        (violation, score) of the start and after every move.
        """
        fast = Descent(self, q.copy(), relief, q_cont)
        taken = 0
        violation, score = fast.current()
        while taken < max_steps and violation > 1e-12:
            if trace is not None:
                trace.append((violation, score))
            cols = fast.ok.nonzero()[0]
            if len(cols) == 0:
                break
            single_violation, singles, no_cash = fast.singles(cols)
            ok = (single_violation < violation - 1e-12) & (singles < score - 1e-12)
            best = int(np.where(ok, singles, np.inf).argmin()) if ok.any() else -1
            if best < 0 or single_violation[best] >= (1.0 - SINGLE_STEP_PROGRESS) * violation:
                # no single step makes real progress: score pairs of steps too and take the better move
                pool = fast.q[fast.col_slot[cols]] != 0
                pool[singles.argsort()[:PAIR_POOL]] = True
                pool[no_cash.argsort()[:PAIR_POOL]] = True
                bar = float(singles[best]) if best >= 0 else np.inf
                pair = fast.best_pair(cols[pool.nonzero()[0]], violation, score, bar)
                if pair is not None:
                    i, j, violation, score = pair
                    fast.take(i)
                    fast.take(j)
                    fast.refresh()
                    taken += 2
                    continue
                if best < 0:
                    break
            fast.take(int(cols[best]))
            fast.refresh()
            violation, score = float(single_violation[best]), float(singles[best])
            taken += 1
        if trace is not None:
            trace.append((violation, score))
        return fast.q, taken

def ensure_cash(
    book: Book, q: np.ndarray, relief: np.ndarray, withdrawal: np.ndarray, *, fractional: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Trim buys (largest first), then leave withdrawal unraised, until every account's cash >= 0."""
    q = q.copy()
    relief = relief.copy()
    cash = book.cash_after(q, relief)
    for a in np.nonzero(cash < -1e-9)[0]:
        buys = [j for j in np.argsort(-(q * book.prices)) if book.account_of[j] == a and q[j] > 0]
        for j in buys:
            deficit = -book.cash_after(q, relief)[a]
            if deficit <= 1e-9:
                break
            per_share = book.prices[j] * (1 + book.cost_rate[j])
            cut = deficit / per_share if fractional else np.ceil(deficit / per_share - 1e-12)
            q[j] = max(0.0, q[j] - cut)
        deficit = -book.cash_after(q, relief)[a]
        if deficit > 1e-9:
            relief[a] = min(withdrawal[a], relief[a] + deficit + 0.005)
    return q, relief
