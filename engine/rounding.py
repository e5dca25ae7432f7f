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
   `Repairer.repair_reference` is this descent as written (`steps`, `single_scores`, `pair_scores`);
   `Repairer.repair` takes the same moves with far less work (see `_Fast`: state and steps updated per move,
   rows no step can reach left out, pairs screened by a lower bound before they are scored), doing the same
   floating-point operations on every score that can decide a move, so the two agree to the last bit.
4. A last pass guarantees cash >= 0 in every account: it trims buys, then (only for a withdrawal)
   leaves part of the withdrawal unraised. Whatever limit stays broken is reported by the caller.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.exposures import ExposureModel
from engine.limits import (
    FINANCIALS,
    PENALTY_MINIMUM,
    PENALTY_SECTOR,
    PENALTY_SINGLE_STOCK,
    PENALTY_TURNOVER,
    PENALTY_VOLATILITY,
    SMALL,
    Limits,
)
from engine.profiles import DEFAULT_COSTS
from engine.risk import RiskModel

CASH_WEIGHT = 1e5  # cash shortfall outweighs every limit (the limits use the solver's penalties)
PULL_WEIGHT = 1e-3
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
        """max(buys - cash on hand, sells - withdrawal, 0) / V (see engine.profiles)."""
        amount = q * self.prices
        buys = float(amount[amount > 0].sum())
        sells = float(-amount[amount < 0].sum())
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
    sell_all = (q < 0) & (-q >= book.shares0 - (1e-9 if fractional else 0.5)) & book.can_sell
    if not fractional:
        q = np.round(q)
    q = np.where(sell_all, -book.shares0, q)
    q = np.clip(q, -book.shares0, None)
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
        The moves of `repair_reference`, found with less work (see `_Fast`). `trace`, if given, gets the
        (violation, score) of the start and after every move.
        """
        fast = _Fast(self, q.copy(), relief, q_cont)
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

class _Fast:
    """The descent of `Repairer.repair_reference` with far less work, but the same floating-point operations on
    the same numbers for every score that can decide a move, so it takes the same moves.

    - Columns 0..K-1 are the up steps of slots 0..K-1, columns K..2K-1 their down steps. Each column's step
      and its effects (`cm`: the step's dollars times the slot's exposure rows, its buys, sells, pull, cash,
      ...; `load`: its dollars times the factor loadings) and each slot's share of the state (holdings, cash
      flow, amount, pull) are kept, and redone only for the slot a move changed (`_column`), with the
      operations of `Repairer.steps` / `_state`.
    - The state is computed once per move (`refresh`); single steps are scored with the operations of
      `single_scores` / `_score`, once for the scores with and without the cash weight.
    - Sector and single-name rows that no two steps can push over their caps are left out (they add exact
      zeros), bounded with `reach`, the most one step can move a slot's holding.
    - Pairs are screened first (`_screen`): every pair gets a lower bound of its violation and of its score,
      computed with a margin far above rounding error; the pairs it rules out could not be taken. The others
      are scored with the operations of `pair_scores`, in row-major order over both orientations, as its
      argmin sees them.
    Rows are only summed over arrays of more than one column (numpy sums a single column pairwise).
    """

    def __init__(self, r: Repairer, q: np.ndarray, relief: np.ndarray, q_cont: np.ndarray) -> None:
        b, risk, e, lim, al = r.book, r.risk, r.exp, r.limits, r.allow
        self.book, self.risk, self.exp, self.limits, self.allow = b, risk, e, lim, al
        K = len(b.prices)
        self.K = K
        self.q = q
        self.V = b.value
        self.fractional = r.fractional
        self.min_trade = r.min_trade
        self.cash_drag = r.cash_drag
        a = b.asset_of
        self.n_sectors = e.sectors.shape[0]
        self.n_names = e.names_matrix.shape[0]
        # exposure rows per slot: equity, Financials, small caps, the sectors, the single names
        rows = np.empty((3 + self.n_sectors + self.n_names, K))
        rows[0] = e.equity[a]
        rows[1] = e.sectors[FINANCIALS, a]
        rows[2] = e.size[SMALL, a]
        rows[3:3 + self.n_sectors] = e.sectors[:, a]
        rows[3 + self.n_sectors:] = e.names_matrix[:, a]
        self.rows_slot = rows
        R = len(rows)
        self.R = R
        self.rows_all = np.arange(R)
        self.load_slot = risk.loadings[:, a]
        s2 = risk.specific[a] ** 2
        self.col_slot = np.concatenate([np.arange(K), np.arange(K)])
        self.col_acc = b.account_of[self.col_slot]
        self.col_asset = a[self.col_slot]
        self.col_s2 = np.concatenate([s2, s2])
        self.n_accounts = len(b.cash_start)
        self.shared_assets = int(np.bincount(a).max(initial=0)) > 1  # some asset in more than one account
        # caps by row: -, Financials and small-cap minimums, sector caps, single-name caps
        self.caps = np.concatenate([[0.0, lim.min_financials - al.financials, lim.min_small_cap - al.small],
                                    lim.max_sector + al.sectors, lim.max_single_stock + al.names])
        self.vol_limit = (lim.vol_cap, al.vol)
        self.turn_limit = (lim.max_turnover, al.turnover)
        self.limit_caps = np.array([[lim.vol_cap], [lim.max_turnover]])
        self.limit_allowed = np.array([[al.vol], [al.turnover]])
        self.limit_penalties = np.array([[PENALTY_VOLATILITY], [PENALTY_TURNOVER]])
        self.objective_weights = np.array([[PULL_WEIGHT], [r.cash_drag]])
        # leaving rows out: no step moves a slot's holding by more than `reach` USD (opening a trade, one step,
        # or closing a trade under the minimum size), nor the total by more than its cost
        reach = b.prices * (np.maximum(r.open_size, r.step) + r.step) + r.min_trade
        self.rise = 2.0 * (np.maximum(rows[3:], 0.0) * reach).max(axis=1, initial=0.0)  # two steps
        self.eq_fall = 2.0 * float((np.abs(rows[0]) * reach).max(initial=0.0))
        self.total_fall = 2.0 * float((b.cost_rate * reach).max(initial=0.0))
        self.open_caps = self.caps[3:] - 1e-9
        self.is_sector = np.arange(R - 3) < self.n_sectors
        # python numbers per slot for `_column`
        self.slot_lists = (b.prices.tolist(), b.cost_rate.tolist(), q_cont.tolist(), r.open_size.tolist(),
                           r.step.tolist(), b.shares0.tolist(), b.can_buy.tolist(), b.can_sell.tolist())
        self.cash_base = b.cash_start + b.cash_change + relief
        self._open_key: bytes | None = b""
        self._init_columns(r, q_cont)
        self.refresh()

    # ---- steps per column, state per slot

    def _init_columns(self, r: Repairer, q_cont: np.ndarray) -> None:
        """Every column at once (the operations of `Repairer.steps` / `_state`)."""
        b = self.book
        q, p = self.q, b.prices
        up = np.where(q == 0, r.open_size, q + r.step)
        if not r.fractional:
            up = np.where(np.abs(q - np.round(q)) > 1e-9, np.ceil(q), up)
        up = np.where(q < 0, np.minimum(up, 0.0), up)
        up = np.where((q < 0) & (np.abs(up * p) < r.min_trade), 0.0, up)
        up_ok = np.where(up > 0, b.can_buy, True) & (up != q)
        down = np.where(q == 0, -r.open_size, q - r.step)
        down = np.where(q > 0, np.maximum(down, 0.0), down)
        down = np.where((q > 0) & (down * p < r.min_trade), 0.0, down)
        down = np.maximum(down, -b.shares0)
        down_ok = np.where(down < 0, b.can_sell, True) & (down != q)
        self.ok = np.concatenate([up_ok, down_ok])
        self.new_q = np.concatenate([up, down])
        amount = q * p
        flow = b.cash_flow(q)
        pull = np.abs(q - q_cont)
        price = np.concatenate([p, p])
        cost = np.concatenate([b.cost_rate, b.cost_rate])
        new = self.new_q * price
        old = np.concatenate([amount, amount])
        d = new - old
        R = self.R
        cm = np.empty((R + 9, 2 * self.K))
        np.multiply(self.rows_slot, d[:self.K], out=cm[:R, :self.K])
        np.multiply(self.rows_slot, d[self.K:], out=cm[:R, self.K:])
        cm[R] = d
        cm[R + 1] = np.maximum(new, 0.0) - np.maximum(old, 0.0)
        cm[R + 2] = np.maximum(-new, 0.0) - np.maximum(-old, 0.0)
        cm[R + 3] = (np.abs(self.new_q - np.concatenate([q_cont, q_cont])) - np.concatenate([pull, pull])) * price
        cm[R + 4] = np.where(new > 0, -new * (1 + cost), -new * (1 - cost)) - np.concatenate([flow, flow])
        cm[R + 5] = d * d
        u = np.empty((self.load_slot.shape[0], 2 * self.K))
        np.multiply(self.load_slot, d[:self.K], out=u[:, :self.K])
        np.multiply(self.load_slot, d[self.K:], out=u[:, self.K:])
        column_major = np.asfortranarray(u)  # as the reference's loadings[:, a] * d: rows summed pairwise
        cm[R + 6] = (column_major * column_major).sum(axis=0)
        cm[R + 7] = d + cm[R + 4]
        cm[R + 8] = self.col_s2
        self.cm = cm
        self.load = u  # (k, 2K)
        self.amount = amount
        self.hold = (b.shares0 + q) * p
        self.flow = flow
        self.pull = pull * p

    def _column(self, j: int) -> None:
        """Slot j's columns and state terms after q[j] changed (the same operations, on python floats)."""
        p, cost, target, open_size, step, shares0, can_buy, can_sell = (v[j] for v in self.slot_lists)
        qj = float(self.q[j])
        up = open_size if qj == 0 else qj + step
        if not self.fractional and abs(qj - round(qj)) > 1e-9:
            up = float(math.ceil(qj))
        if qj < 0:
            up = min(up, 0.0)
            if abs(up * p) < self.min_trade:
                up = 0.0
        down = -open_size if qj == 0 else qj - step
        if qj > 0:
            down = max(down, 0.0)
            if down * p < self.min_trade:
                down = 0.0
        down = max(down, -shares0)
        K = self.K
        cols = [j, K + j]
        self.ok[j] = (can_buy if up > 0 else True) and up != qj
        self.ok[K + j] = (can_sell if down < 0 else True) and down != qj
        self.new_q[j] = up
        self.new_q[K + j] = down
        old = qj * p
        flow = -old * (1 + cost) if old > 0 else -old * (1 - cost)
        pull = abs(qj - target)
        buys, sells = max(old, 0.0), max(-old, 0.0)
        values = []
        for nq in (up, down):
            new = nq * p
            d = new - old
            x = (-new * (1 + cost) if new > 0 else -new * (1 - cost)) - flow
            values.append((d, max(new, 0.0) - buys, max(-new, 0.0) - sells, (abs(nq - target) - pull) * p, x, d * d,
                           0.0, d + x))
        R = self.R
        block = np.array(values).T
        d2 = block[0]
        u = self.load_slot[:, j, None] * d2
        column_major = np.asfortranarray(u)  # as in `_init_columns`
        block[6] = (column_major * column_major).sum(axis=0)
        self.cm[R:R + 8, cols] = block
        self.cm[:R, cols] = self.rows_slot[:, j, None] * d2
        self.load[:, cols] = u
        self.amount[j] = old
        self.hold[j] = (shares0 + qj) * p
        self.flow[j] = flow
        self.pull[j] = pull * p

    def take(self, col: int) -> None:
        """Take the step of column col (`refresh` once all steps of a move are taken)."""
        j = int(self.col_slot[col])
        self.q[j] = self.new_q[col]
        self._column(j)

    def refresh(self) -> None:
        """The state of the trades as they stand (as `Repairer._state` and the state parts of `_score`)."""
        b, risk, e = self.book, self.risk, self.exp
        A = np.bincount(b.asset_of, weights=self.hold, minlength=b.n_assets)
        cash = self.cash_base + np.bincount(b.account_of, weights=self.flow, minlength=self.n_accounts)
        amount = self.amount
        f = risk.loadings @ A
        spec = risk.specific * A
        short = np.maximum(-cash, 0.0)
        sectors = e.sectors @ A
        self.A_col = A[self.col_asset]
        self.cash = cash
        self.short = short
        self.short_sum = np.add.reduce(short)
        self.cash_sum = np.add.reduce(cash)
        self.total = float(np.add.reduce(A) + self.cash_sum)
        self.buys = float(np.add.reduce(amount[amount > 0]))
        self.sells = float(-np.add.reduce(amount[amount < 0]))
        self.pull_sum = float(np.add.reduce(self.pull))
        self.f = f
        self.ff = f @ f
        self.spsp = spec @ spec
        self.base = np.concatenate([[e.equity @ A, sectors[FINANCIALS], e.size[SMALL] @ A], sectors,
                                    e.names_matrix @ A])
        # rows two steps could push over their caps
        equity_low = self.base[0] - self.eq_fall
        self.equity_low = equity_low
        total_low = self.total - self.total_fall
        if equity_low > 1e-9 and total_low > 0:
            high = (self.base[3:] + self.rise) / np.where(self.is_sector, equity_low, total_low)
            open_rows = high > self.open_caps
            key = open_rows.tobytes()
            if key != self._open_key:
                self._open_key = key
                self.rows(np.concatenate([self.rows_all[:3], open_rows.nonzero()[0] + 3]))
        elif self._open_key is not None:
            self._open_key = None
            self.rows(self.rows_all)

    def rows(self, sel: np.ndarray) -> None:
        """Score the rows `sel` (ascending, with 0, 1, 2) of `cm` (see `singles` and `best_pair`)."""
        R = self.R
        self.sel = sel
        self.n_sel = len(sel)
        self.sel_sectors = int(np.count_nonzero(sel < 3 + self.n_sectors)) - 3
        self.sel_caps = self.caps[sel[1:], None]
        self.sel_sector_ids = sel[3:3 + self.sel_sectors] - 3
        self.sel_name_ids = sel[3 + self.sel_sectors:] - 3 - self.n_sectors
        # singles: rows, buys, sells, pull, cash (+ state), then dollars, cash, dollars^2, |u|^2, specific^2
        self.single_rows = np.concatenate([sel, [R + 1, R + 2, R + 3, R + 4, R, R + 4, R + 5, R + 6, R + 8]])
        # pairs: rows, buys, sells, pull, cash, dollars + cash (+ state), then dollars, dollars^2, |u|^2, spec^2
        self.pair_rows = np.concatenate([sel, [R + 1, R + 2, R + 3, R + 4, R + 7, R, R + 5, R + 6, R + 8]])

    # ---- scores

    @staticmethod
    def _row_sum(values: np.ndarray, ids: np.ndarray, rows: np.ndarray | None, n_rows: int, n: int) -> np.ndarray:
        """(n,) sums over the rows `rows` (default 0..n_rows-1) of a column-major array holding `values` (rows
        `ids`) and zeros elsewhere: the reference's sum, to the bit."""
        if not len(ids):
            return np.zeros(n)
        full = np.zeros((n_rows if rows is None else len(rows), n), order="F")
        if rows is None:
            full[ids] = values
        else:
            at = np.searchsorted(rows, ids)
            inside = at < len(rows)
            inside[inside] = rows[at[inside]] == ids[inside]
            full[at[inside]] = values[inside]
        return full.sum(axis=0)

    def _terms(self, shortfall: np.ndarray, agg: np.ndarray, total: np.ndarray, var: np.ndarray,
               buys: np.ndarray, sells: np.ndarray, sector_rows: np.ndarray | None = None,
               name_rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(violation, violation without the cash term) of n states, as `Repairer._score`: the terms in its
        order (cash, sectors, minimums, names, volatility, turnover) summed in that order. shortfall (n,) USD;
        agg (len(sel), n) = equity, Financials, small caps, sector and name rows `sel` (USD); total, var, buys,
        sells (n,) (buys and sells are overwritten). The sector and single-name terms are summed over the rows
        the reference sums (`sector_rows` / `name_rows`, default all), as it sums them: its arrays are column
        major (from fancy indexing), so numpy adds their rows pairwise; rows left out here hold exact zeros."""
        b = self.book
        n_sec = self.sel_sectors
        n = agg.shape[1]
        terms = np.empty((6, n))
        np.multiply(shortfall, CASH_WEIGHT, out=terms[0])
        terms[0] /= self.V
        equity = agg[0]
        every = self.equity_low > 1e-9 or bool(equity.min() > 1e-9)
        if every:
            frac = agg[1:3 + n_sec] / equity  # Financials, small caps, sectors
        else:
            has_equity = equity > 1e-9
            safe = np.where(has_equity, equity, 1.0)
            frac = np.where(has_equity, agg[1:3 + n_sec] / safe, 0.0)
            frac[1] = agg[2] / safe  # small caps are divided, not masked (their term is masked below)
        frac -= self.sel_caps[:2 + n_sec]
        np.negative(frac[:2], out=frac[:2])  # minimums: cap - fraction
        np.maximum(frac, 0.0, out=frac)
        np.multiply(self._row_sum(frac[2:], self.sel_sector_ids, sector_rows, self.n_sectors, n), PENALTY_SECTOR,
                    out=terms[1])
        np.add(frac[0], frac[1], out=terms[2])
        if not every:
            terms[2] = np.where(has_equity, terms[2], 0.0)
        terms[2] *= PENALTY_MINIMUM
        if self.n_names:
            names = agg[3 + n_sec:] / total
            names -= self.sel_caps[2 + n_sec:]
            np.maximum(names, 0.0, out=names)
            np.multiply(self._row_sum(names, self.sel_name_ids, name_rows, self.n_names, n), PENALTY_SINGLE_STOCK,
                        out=terms[3])
        else:
            terms[3] = 0.0
        vol_turn = terms[4:]
        np.maximum(var, 0.0, out=vol_turn[0])
        np.sqrt(vol_turn[0], out=vol_turn[0])
        vol_turn[0] /= total
        buys -= b.cash_in
        sells -= b.cash_out
        np.maximum(buys, sells, out=vol_turn[1])
        np.maximum(vol_turn[1], 0.0, out=vol_turn[1])
        vol_turn[1] /= b.value
        vol_turn -= self.limit_caps
        vol_turn -= self.limit_allowed
        np.maximum(vol_turn, 0.0, out=vol_turn)
        vol_turn *= self.limit_penalties
        if n > 1:  # rows summed in order
            return np.add.reduce(terms, axis=0), np.add.reduce(terms[1:], axis=0)
        violation = terms[0].copy()
        for t in terms[1:]:
            violation += t
        no_cash = terms[1].copy()
        for t in terms[2:]:
            no_cash += t
        return violation, no_cash

    def singles(self, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(C,) violations, whole scores, and whole scores without the cash shortfall after each single step of
        `cols` (as `Repairer.single_scores` with and without the cash weight)."""
        n = self.n_sel
        Z = self.cm[self.single_rows][:, cols]
        agg = Z[:n + 4]
        agg += np.concatenate([self.base[self.sel], [self.buys, self.sells, self.pull_sum, self.cash_sum]])[:, None]
        d, x, dd, uu, s2 = Z[n + 4], Z[n + 5], Z[n + 6], Z[n + 7], Z[n + 8]
        if self.n_accounts == 1:
            shortfall = self.short_sum - self.short[0] + np.maximum(-(self.cash[0] + x), 0.0)
        else:
            acc = self.col_acc[cols]
            shortfall = self.short_sum - self.short[acc] + np.maximum(-(self.cash[acc] + x), 0.0)
        var = self.ff + 2 * (self.f @ self.load[:, cols]) + uu + self.spsp + s2 * (2 * self.A_col[cols] * d + dd)
        violation, no_cash = self._terms(shortfall, agg[:n], self.total + d + x, var, agg[n], agg[n + 1])
        objective = agg[n + 2:n + 4] * self.objective_weights
        objective = objective[0] + objective[1]
        objective /= self.V
        return violation, violation + objective, no_cash + objective

    def current(self) -> tuple[float, float]:
        """(violation, whole score) of the trades as they stand: `Repairer.state_score` (a no-op step on slot 0,
        whose zero changes leave every quantity as it is), with its one-column arrays (whose rows numpy sums
        pairwise)."""
        b, lim, al = self.book, self.limits, self.allow
        acc = int(self.col_acc[0])
        shortfall = self.short_sum - self.short[acc] + max(-(self.cash[acc] + 0.0), 0.0)
        score = CASH_WEIGHT * shortfall / self.V
        base = self.base
        equity = base[0]
        ns = self.n_sectors
        safe = equity if equity > 1e-9 else 1.0
        frac = base[3:3 + ns, None] / safe if equity > 1e-9 else np.zeros((ns, 1))
        score = score + PENALTY_SECTOR * np.clip(frac - self.caps[3:3 + ns, None], 0.0, None).sum(axis=0)[0]
        fin_short = max(lim.min_financials - al.financials - float(frac[FINANCIALS, 0]), 0.0)
        small_short = max(lim.min_small_cap - al.small - float(base[2] / safe), 0.0)
        score = score + PENALTY_MINIMUM * (fin_short + small_short if equity > 1e-9 else 0.0)
        if self.n_names:
            names = base[3 + ns:, None] / self.total - self.caps[3 + ns:, None]
            score = score + PENALTY_SINGLE_STOCK * np.clip(names, 0.0, None).sum(axis=0)[0]
        vol = np.sqrt(max(float(self.ff + self.spsp), 0.0)) / self.total
        score = score + PENALTY_VOLATILITY * max(vol - lim.vol_cap - al.vol, 0.0)
        turnover = max(max(self.buys - b.cash_in, self.sells - b.cash_out), 0.0) / b.value
        score = score + PENALTY_TURNOVER * max(turnover - lim.max_turnover - al.turnover, 0.0)
        return float(score), float(score + (PULL_WEIGHT * self.pull_sum + self.cash_drag * self.cash_sum) / self.V)

    # ---- pairs

    def best_pair(
        self, cols: np.ndarray, violation: float, score: float, bar: float
    ) -> tuple[int, int, float, float] | None:
        """The pair of steps of the pool `cols` (columns, in the order of `Repairer.pair_scores`' pool) that
        `repair_reference` takes: the lowest whole score, first in row-major order, among the pairs (on
        different slots) lowering the violation below `violation` and the score below `score`, if it is below
        `bar`. Returns (column i, column j, violation, score) or None."""
        pool = self._pool(cols)
        ii, jj = self._screen(pool, violation, score, bar)
        if not len(ii):
            return None
        violations, scores = self.pair_scores(pool, ii, jj)
        ok = (violations < violation - 1e-12) & (scores < score - 1e-12)
        if not ok.any():
            return None
        k = int(np.where(ok, scores, np.inf).argmin())
        if scores[k] >= bar:
            return None
        return int(cols[ii[k]]), int(cols[jj[k]]), float(violations[k]), float(scores[k])

    def _pool(self, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(cols, Z, one, uu_cross) of a pool: its columns of `cm` at `pair_rows`, and the per-step and cross
        parts of the pair variance (as `pair_scores`)."""
        n = self.n_sel
        Z = self.cm[self.pair_rows][:, cols]
        d, dd, uu, s2 = Z[n + 5], Z[n + 6], Z[n + 7], Z[n + 8]
        u = self.load[:, cols]
        one = 2 * (self.f @ u) + uu + s2 * (2 * self.A_col[cols] * d + dd)
        return cols, Z, one, u.T @ u

    def pair_scores(self, pool: tuple, ii: np.ndarray, jj: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(violations, scores) of the pairs (ii[k], jj[k]) (positions in the pool), as `Repairer.pair_scores`."""
        cols, Z, one, uu_cross = pool
        single = len(ii) == 1
        if single:  # rows are summed over more than one column
            ii, jj = np.repeat(ii, 2), np.repeat(jj, 2)
        n = self.n_sel
        x, d, s2 = Z[n + 3], Z[n + 5], Z[n + 8]
        if self.n_accounts == 1:  # every pair in one account: the where()s of `pair_scores` add exact zeros
            c1 = (self.cash[0] + x)[ii] + x[jj]
            shortfall = (self.short_sum - self.short[0]) + np.maximum(-c1, 0.0)
        else:
            acc = self.col_acc[cols]
            cash_acc = self.cash[acc]
            short_acc = self.short[acc]
            same = acc[ii] == acc[jj]
            xj = x[jj]
            c1 = cash_acc[ii] + x[ii] + np.where(same, xj, 0.0)
            c2 = cash_acc[jj] + xj
            shortfall = (self.short_sum - short_acc[ii] - np.where(same, 0.0, short_acc[jj]) + np.maximum(-c1, 0.0)
                         + np.where(same, 0.0, np.maximum(-c2, 0.0)))
        var = self.ff + self.spsp + (one[ii] + one[jj]) + 2 * uu_cross[ii, jj]
        if self.shared_assets:
            asset = self.col_asset[cols]
            same_asset = asset[ii] == asset[jj]
            if same_asset.any():
                var += np.where(same_asset, 2 * s2[ii] * d[ii] * d[jj], 0.0)
        pair = Z[:n + 5]
        agg = pair[:, ii] + pair[:, jj]
        agg += np.concatenate([self.base[self.sel], [self.buys, self.sells, self.pull_sum, self.cash_sum,
                                                      self.total]])[:, None]
        sector_rows, name_rows = self._reference_rows(cols, Z[n + 4])
        violations, _ = self._terms(shortfall, agg[:n], agg[n + 4], var, agg[n], agg[n + 1], sector_rows, name_rows)
        objective = agg[n + 2:n + 4] * self.objective_weights
        scores = objective[0] + objective[1]
        scores /= self.V
        scores += violations
        if single:
            return violations[:1], scores[:1]
        return violations, scores

    def _reference_rows(self, cols: np.ndarray, change: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The sector and single-name rows `Repairer._open_rows` gives `pair_scores` for the pool `cols` (change:
        the pool's dollars + cash), with its operations: the rows its sums run over."""
        lim, al = self.limits, self.allow
        ns = self.n_sectors
        equity_low = float(self.base[0]) + 2.0 * min(0.0, float(self.cm[0, cols].min(initial=0.0)))
        if equity_low > 1e-9:
            rise = np.clip(self.cm[3:3 + ns][:, cols].max(axis=1, initial=0.0), 0.0, None)
            high = (self.base[3:3 + ns] + 2.0 * rise) / equity_low
            open_s = high > lim.max_sector + al.sectors - 1e-9
            open_s[FINANCIALS] = True
            sector_rows = np.nonzero(open_s)[0]
        else:
            sector_rows = np.arange(ns)
        total_low = self.total + 2.0 * min(0.0, float(change.min(initial=0.0)))
        if self.n_names and total_low > 0:
            rise = np.clip(self.cm[3 + ns:self.R][:, cols].max(axis=1, initial=0.0), 0.0, None)
            high = (self.base[3 + ns:] + 2.0 * rise) / total_low
            name_rows = np.nonzero(high > lim.max_single_stock + al.names - 1e-9)[0]
        else:
            name_rows = np.arange(self.n_names)
        return sector_rows, name_rows

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
    """The linear lower bound of a pair's limit terms, built term by term (`_Fast._screen`)."""

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

