"""The rounding repair's descent, with little work (`Descent`, run by `engine.rounding.Repairer.repair`).

The descent itself is specified in `engine.rounding` (module docstring, step 3) and written out plainly in
tests/rounding_reference.py; this form keeps every candidate step and the state up to date per move
instead of rebuilding them, and screens pairs of steps before scoring them (`engine.screen`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from engine.limits import (
    CASH_WEIGHT,
    FINANCIALS,
    PENALTY_MINIMUM,
    PENALTY_SECTOR,
    PENALTY_SINGLE_STOCK,
    PENALTY_TURNOVER,
    PENALTY_VOLATILITY,
    PULL_WEIGHT,
    SMALL,
)
from engine.screen import PairScreen

if TYPE_CHECKING:
    from engine.rounding import Repairer


class Descent(PairScreen):
    """The descent of the reference repair (tests/rounding_reference.py) with far less work, with the same
    floating-point operations on the same numbers for every score that can decide a move.

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
                           r.step.tolist(), b.shares0.tolist(), b.can_buy.tolist(), b.can_sell.tolist(),
                           b.sell_limit.tolist())
        self.cash_base = b.cash_start + b.cash_change + relief
        self.buy_weight, self.sell_weight = b.turnover_weights()
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
        down = np.maximum(down, -b.sell_limit)
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
        cm[R + 1] *= self.buy_weight[self.col_slot]
        cm[R + 2] = np.maximum(-new, 0.0) - np.maximum(-old, 0.0)
        cm[R + 2] *= self.sell_weight[self.col_slot]
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
        p, cost, target, open_size, step, shares0, can_buy, can_sell, sell_limit = (v[j] for v in self.slot_lists)
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
        down = max(down, -sell_limit)
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
        buy_weight, sell_weight = float(self.buy_weight[j]), float(self.sell_weight[j])
        values = []
        for nq in (up, down):
            new = nq * p
            d = new - old
            x = (-new * (1 + cost) if new > 0 else -new * (1 - cost)) - flow
            values.append((d, (max(new, 0.0) - buys) * buy_weight, (max(-new, 0.0) - sells) * sell_weight,
                           (abs(nq - target) - pull) * p, x, d * d, 0.0, d + x))
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
        self.buys = float(np.add.reduce((amount * self.buy_weight)[amount > 0]))
        self.sells = float(-np.add.reduce((amount * self.sell_weight)[amount < 0]))
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
        """The pair of steps of the pool `cols` (columns, in the order of the reference's `pair_scores` pool)
        that the reference descent takes: the lowest whole score, first in row-major order, among the pairs (on
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
