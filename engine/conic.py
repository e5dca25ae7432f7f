"""The compact conic form of the problem (the fast path of `engine.problem.solve_problem`): the model of
`engine.problem` written straight into Clarabel's form with only what can be non-zero (~380 rows x ~240
columns on typical portfolios, no padding, no cvxpy in the loop). See `conic_form` for the reductions and
why each keeps the optimum.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from engine.solve import ConicProblem

if TYPE_CHECKING:
    from engine.problem import ProblemData


class _Rows:
    """Rows of A (COO triplets) and b, appended block by block in cone order."""

    def __init__(self) -> None:
        self.rows: list[np.ndarray] = []
        self.cols: list[np.ndarray] = []
        self.vals: list[np.ndarray] = []
        self.rhs: list[np.ndarray] = []
        self.count = 0

    def add(self, rows: Any, cols: Any, vals: Any) -> None:
        """Entries of the block being written; `rows` are local to the block, `cols` and `vals` arrays (of
        the same length) or scalars. (Lean on purpose: this runs ~40 times per solve.)"""
        rows = np.asarray(rows, dtype=np.intp)
        size = rows.shape[0]
        if not size:
            return
        self.rows.append(rows + self.count)
        self.cols.append(cols if isinstance(cols, np.ndarray) else np.full(size, cols, dtype=np.intp))
        self.vals.append(vals if isinstance(vals, np.ndarray) else np.full(size, vals, dtype=float))

    def dense(self, matrix: np.ndarray, col0: int, sign: float = 1.0) -> None:
        """A (rows, cols) block at columns col0.. of the block being written (its zeros left out)."""
        rr, cc = np.nonzero(matrix)
        self.add(rr, cc + col0, sign * matrix[rr, cc])

    def close(self, size: int, rhs: Any) -> None:
        """End the block: `size` rows, right-hand side `rhs` (broadcast)."""
        self.rhs.append(rhs if isinstance(rhs, np.ndarray) else np.full(size, rhs, dtype=float))
        self.count += size

    def matrix(self, columns: int) -> tuple[sp.csc_matrix, np.ndarray]:
        a = sp.csc_matrix(
            (np.concatenate(self.vals), (np.concatenate(self.rows), np.concatenate(self.cols))),
            shape=(self.count, columns),
        )
        return a, np.concatenate(self.rhs)


@dataclass(frozen=True)
class Layout:
    """Where each block of `conic_form`'s variables sits, and which pairs they stand for."""

    n: int
    m: int
    buy_pairs: tuple[np.ndarray, np.ndarray]  # (assets, accounts) with buy_max > 0
    sell_pairs: tuple[np.ndarray, np.ndarray]  # with sell_max > 0
    relief_accounts: np.ndarray  # with relief_max > 0
    offsets: dict[str, int]
    sizes: dict[str, int]

    def part(self, x: np.ndarray, name: str) -> np.ndarray:
        start = self.offsets[name]
        return x[start : start + self.sizes[name]]


def conic_form(data: ProblemData) -> tuple[ConicProblem, Layout]:
    """`data`'s problem in Clarabel's conic form, with only the rows and variables that can matter.

    The model is the one of `CompiledProblem` (module docstring), unpadded, with these reductions; each
    leaves the set of optimal (w, X, cash, tot, slacks) and the optimal value unchanged:
    1. B (S) only for pairs with buy_max > 0 (sell_max > 0): elsewhere 0 <= B <= 0 fixes it at 0.
    2. Tax: T only for sellable pairs with a non-zero piece, and a row only per such piece. A (0, 0) piece
       reads T >= 0, a bound; a pair with no piece has T = 0 at the optimum (T is minimised); an
       unsellable pair (S = 0) has T = max(intercepts) (with 0 where it has a (0, 0) piece), a constant
       added to the offset (and taken off the tax budget). T >= 0 is kept only for pairs with a (0, 0)
       piece, and left out where a piece with slope >= 0 and intercept >= 0 already implies it (S >= 0);
       a pair whose pieces are all live (a loss curve) may have T < 0.
    3. The squared residuals are expanded into P and q instead of being variables with equality rows:
       |a * w - a t|^2 = w' diag(a^2) w - 2 (a^2 t)' w + |a t|^2, and likewise for the factor residual
       (te_scale * f - target_factor, f = L w); the constants go to the offset. The exposure-gap residual
       stays a variable (its rows are sparse; expanding would make a dense (Q+1)^2 block).
    4. A bound B <= buy_max is left out where cash >= 0 already implies it: with B, S >= 0 the account's
       buys cost at most cash0 + relief_max + sum((1-c)^+ sell_max) ("room"), so (1+c) B <= room, and a
       buy_max at or above room / (1+c) cannot bind (needs every (1+c) > 0 in the account). Likewise
       cash <= cash_max is left out where room <= cash_max.
    5. Zero rows are left out: padding (assets, accounts, name rows), SOC entries with specific risk 0,
       relief for accounts with relief_max = 0.
    Clipping (x0, bounds, costs, penalties >= 0) is as in `CompiledProblem.set`; every loadings row is used.
    """
    v = _variables(data)
    P, q, offset = _objective(data, v)
    rows = _Rows()
    _equalities(rows, data, v)
    zero = rows.count
    room, positive = _buy_bounds(rows, data, v)
    _sell_and_tax_rows(rows, data, v)
    _cash_rows(rows, data, v, room, positive)
    _soft_limit_rows(rows, data, v)
    nonneg = rows.count - zero
    cones = (_volatility_cone(rows, data, v), *_sample_cone(rows, data, v))
    A, b = rows.matrix(v.columns)
    conic = ConicProblem(P=P, q=q, A=A, b=b, zero=zero, nonneg=nonneg, soc=cones, offset=offset + v.tax_offset)
    return conic, Layout(v.n, v.m, (v.ib, v.jb), (v.is_, v.js), v.jr, v.offsets, v.sizes)


@dataclass(frozen=True)
class _Tax:
    """Reduction 2: the tax variables (one per sellable pair with a non-zero piece) and their pieces."""

    slopes: np.ndarray  # (P, ns)
    intercepts: np.ndarray  # (P, ns)
    pairs: np.ndarray  # (nt,) positions among the sell pairs
    piece: np.ndarray  # piece p of tax variable `pair`
    pair: np.ndarray
    floor: np.ndarray  # (nt,) T >= 0 needed: a (0, 0) piece that no live piece implies
    offset: float  # max(intercepts) of the unsellable pairs


def _tax(data: ProblemData, is_: np.ndarray, js: np.ndarray, sell_max: np.ndarray) -> _Tax:
    ns = len(is_)
    if not (data.tax_slopes.size > 0 and (np.any(data.tax_slopes) or np.any(data.tax_intercepts))):
        empty = np.zeros(0, dtype=np.intp)
        return _Tax(np.zeros((0, ns)), np.zeros((0, ns)), empty, empty, empty, np.zeros(0, dtype=bool), 0.0)
    slopes, intercepts = data.tax_slopes[:, is_, js], data.tax_intercepts[:, is_, js]  # (P, ns)
    live = (slopes != 0) | (intercepts != 0)
    tax_pairs = np.flatnonzero(live.any(axis=0))
    piece, pair = np.nonzero(live[:, tax_pairs])  # piece p of tax variable `pair`
    implied = (live & (slopes >= 0) & (intercepts >= 0))[:, tax_pairs].any(axis=0)
    floor = (~live[:, tax_pairs]).any(axis=0) & ~implied
    unsellable = sell_max <= 0
    offset = float(data.tax_intercepts.max(axis=0)[unsellable].sum())
    return _Tax(slopes, intercepts, tax_pairs, piece, pair, floor, offset)


@dataclass(frozen=True)
class _Vars:
    """The variables of the compact form: which pairs and accounts they stand for, and their columns."""

    n: int
    m: int
    k: int
    q_rows: int
    rb: int
    e_rows: int
    n_names: int
    ib: np.ndarray  # buy pairs (assets, accounts)
    jb: np.ndarray
    is_: np.ndarray  # sell pairs
    js: np.ndarray
    jr: np.ndarray  # accounts that may leave part of a withdrawal unraised
    tax: _Tax
    offsets: dict[str, int]
    sizes: dict[str, int]
    columns: int
    buy_max: np.ndarray  # clipped inputs
    sell_max: np.ndarray
    sell_factor: np.ndarray
    bf: np.ndarray  # 1 + cost rate of each buy pair
    sf: np.ndarray  # 1 - cost rate of each sell pair
    relief_max: np.ndarray
    cash_max: np.ndarray
    specific: np.ndarray

    @property
    def tax_offset(self) -> float:
        return self.tax.offset

    def cols(self, name: str) -> np.ndarray:
        return self.offsets[name] + np.arange(self.sizes[name])

    def at(self, name: str) -> int:
        return self.offsets[name]


def _variables(data: ProblemData) -> _Vars:
    """Reductions 1 and 2: B, S only for pairs that can trade, T only for pairs that can realise a gain."""
    n, m = data.x0.shape
    k = data.loadings.shape[0]
    q_rows, rb, e_rows = data.base.shape[0], data.base_limit_matrix.shape[0], data.gap_matrix.shape[0]
    n_names = data.name_matrix.shape[0]
    buy_max = np.clip(data.buy_max, 0.0, None)
    sell_max = np.clip(data.sell_max, 0.0, None)
    relief_max = np.clip(data.relief_max, 0.0, None)
    ib, jb = np.nonzero(buy_max > 0)
    is_, js = np.nonzero(sell_max > 0)
    jr = np.flatnonzero(relief_max > 0)
    tax = _tax(data, is_, js, sell_max)
    sizes = {"b": len(ib), "s": len(is_), "t": len(tax.pairs), "w": n, "tot": 1, "relief": len(jr), "y": q_rows,
             "base_slack": rb, "name_slack": n_names, "vol_slack": 1, "turnover_slack": 1, "f": k, "gap": e_rows}
    offsets: dict[str, int] = {}
    columns = 0
    for name, size in sizes.items():
        offsets[name] = columns
        columns += size
    sell_factor = 1.0 - data.cost_rate
    return _Vars(
        n=n, m=m, k=k, q_rows=q_rows, rb=rb, e_rows=e_rows, n_names=n_names, ib=ib, jb=jb, is_=is_, js=js, jr=jr,
        tax=tax, offsets=offsets, sizes=sizes, columns=columns, buy_max=buy_max, sell_max=sell_max,
        sell_factor=sell_factor, bf=(1.0 + data.cost_rate)[ib, jb], sf=sell_factor[is_, js], relief_max=relief_max,
        cash_max=np.clip(data.cash_max, 0.0, None), specific=np.asarray(data.specific, dtype=float),
    )


def _objective(data: ProblemData, v: _Vars) -> tuple[sp.csc_matrix, np.ndarray, float]:
    """Reduction 3: 1/2 x'Px + q'x + offset, the squared residuals expanded (P diagonal)."""
    trade_cost = np.clip(data.trade_cost, 0.0, None)
    holding_drag = np.clip(data.holding_drag, 0.0, None)
    ib, jb, is_, js = v.ib, v.jb, v.is_, v.js
    w_cols, f_cols, g_cols = v.cols("w"), v.cols("f"), v.cols("gap")
    te_scale = float(np.sqrt(data.te_weight))
    asset_scale = np.sqrt(data.te_weight * v.specific**2 + data.weight_weight)
    asset_target = asset_scale * data.target
    target_factor = te_scale * (data.loadings @ data.target)
    offset = float(target_factor @ target_factor + asset_target @ asset_target)
    q = np.zeros(v.columns)
    q[v.cols("b")] = trade_cost[ib, jb] + holding_drag[ib, jb]
    q[v.cols("s")] = trade_cost[is_, js] - holding_drag[is_, js]
    q[v.cols("t")] = 1.0
    q[w_cols] = -2.0 * asset_scale * asset_target - data.cash_drag  # cash after = tot - sum(w)
    q[v.at("tot")] = data.cash_drag
    q[v.cols("relief")] = data.relief_penalty
    q[v.cols("base_slack")] = np.clip(data.base_limit_penalty, 0.0, None)
    q[v.cols("name_slack")] = np.clip(data.name_penalty, 0.0, None)
    q[v.at("vol_slack")] = data.vol_penalty
    q[v.at("turnover_slack")] = data.turnover_penalty
    q[f_cols] = -2.0 * te_scale * target_factor
    diagonal = np.concatenate([w_cols, f_cols, g_cols])  # increasing: a diagonal P in CSC directly
    p_values = 2.0 * np.concatenate([asset_scale**2, np.full(v.k, te_scale**2), np.ones(v.e_rows)])
    p_pointers = np.zeros(v.columns + 1, dtype=np.intp)
    p_pointers[diagonal + 1] = 1
    P = sp.csc_matrix((p_values, diagonal, np.cumsum(p_pointers)), shape=(v.columns, v.columns))
    return P, q, offset


def _equalities(rows: _Rows, data: ProblemData, v: _Vars) -> None:
    """w = X 1, f = L w, y = base w, tot = sum(w) + sum(cash), gap = E y - e tot."""
    ar = np.arange
    n, k, q_rows, e_rows = v.n, v.k, v.q_rows, v.e_rows
    w_cols, b_cols, s_cols, r_cols = v.cols("w"), v.cols("b"), v.cols("s"), v.cols("relief")
    rows.add(ar(n), w_cols, 1.0)
    rows.add(v.ib, b_cols, -1.0)
    rows.add(v.is_, s_cols, 1.0)
    rows.close(n, np.clip(data.x0, 0.0, None).sum(axis=1))
    rows.add(ar(k), v.cols("f"), 1.0)
    rows.dense(data.loadings, v.at("w"), -1.0)
    rows.close(k, 0.0)
    rows.add(ar(q_rows), v.cols("y"), 1.0)
    rows.dense(data.base, v.at("w"), -1.0)
    rows.close(q_rows, 0.0)
    rows.add([0], [v.at("tot")], 1.0)
    rows.add(np.zeros(n), w_cols, -1.0)
    rows.add(np.zeros(len(v.ib)), b_cols, v.bf)
    rows.add(np.zeros(len(v.is_)), s_cols, -v.sf)
    rows.add(np.zeros(len(v.jr)), r_cols, -1.0)
    rows.close(1, data.cash0.sum())
    exposure_scale = float(np.sqrt(data.exposure_weight))
    rows.add(ar(e_rows), v.cols("gap"), 1.0)
    rows.dense(exposure_scale * data.gap_matrix, v.at("y"), -1.0)
    rows.add(ar(e_rows), v.at("tot"), exposure_scale * data.gap_rhs)
    rows.close(e_rows, 0.0)


def _buy_bounds(rows: _Rows, data: ProblemData, v: _Vars) -> tuple[np.ndarray, np.ndarray]:
    """Reduction 4: B <= buy_max only where cash >= 0 does not imply it; then B >= 0. Returns (room, positive):
    the most each account's buys can cost, and whether every buy there costs more than it buys."""
    ar = np.arange
    ib, jb, nb = v.ib, v.jb, len(v.ib)
    b_cols = v.cols("b")
    room = data.cash0 + v.relief_max + (np.clip(v.sell_factor, 0.0, None) * v.sell_max).sum(axis=0)
    positive = np.ones(v.m, dtype=bool)
    np.logical_and.at(positive, jb, v.bf > 0)
    needed = ~(positive[jb] & (v.buy_max[ib, jb] * v.bf >= room[jb]))
    kept = np.flatnonzero(needed)
    rows.add(ar(len(kept)), b_cols[kept], 1.0)
    rows.close(len(kept), v.buy_max[ib[kept], jb[kept]])
    rows.add(ar(nb), b_cols, -1.0)
    rows.close(nb, 0.0)
    return room, positive


def _sell_and_tax_rows(rows: _Rows, data: ProblemData, v: _Vars) -> None:
    """0 <= S <= sell_max; T >= 0 where a (0, 0) piece asks for it and no piece implies it; each tax piece
    slope * S - T <= -intercept; the tax budget sum(T) + offset <= tax_budget."""
    ar = np.arange
    ns = len(v.is_)
    s_cols, t_cols = v.cols("s"), v.cols("t")
    tax = v.tax
    rows.add(ar(ns), s_cols, 1.0)
    rows.close(ns, v.sell_max[v.is_, v.js])
    rows.add(ar(ns), s_cols, -1.0)
    rows.close(ns, 0.0)
    t_floor = np.flatnonzero(tax.floor)
    rows.add(ar(len(t_floor)), t_cols[t_floor], -1.0)
    rows.close(len(t_floor), 0.0)
    at = tax.pairs[tax.pair]
    rows.add(ar(len(tax.piece)), s_cols[at], tax.slopes[tax.piece, at])
    rows.add(ar(len(tax.piece)), t_cols[tax.pair], -1.0)
    rows.close(len(tax.piece), -tax.intercepts[tax.piece, at])
    if data.tax_budget is not None and len(t_cols):
        rows.add(np.zeros(len(t_cols)), t_cols, 1.0)
        rows.close(1, float(data.tax_budget) - tax.offset)


def _cash_rows(rows: _Rows, data: ProblemData, v: _Vars, room: np.ndarray, positive: np.ndarray) -> None:
    """Per account: cash >= 0, cash <= cash_max where it can bind, 0 <= relief <= relief_max."""
    ar = np.arange
    jb, js, jr = v.jb, v.js, v.jr
    b_cols, s_cols, r_cols = v.cols("b"), v.cols("s"), v.cols("relief")
    bf, sf = v.bf, v.sf
    rows.add(jb, b_cols, bf)
    rows.add(js, s_cols, -sf)
    rows.add(jr, r_cols, -1.0)
    rows.close(v.m, data.cash0)
    capped = np.flatnonzero((room > v.cash_max) | ~positive)
    row_of = np.full(v.m, -1)
    row_of[capped] = ar(len(capped))
    sel_b, sel_s, sel_r = row_of[jb] >= 0, row_of[js] >= 0, row_of[jr] >= 0
    rows.add(row_of[jb][sel_b], b_cols[sel_b], -bf[sel_b])
    rows.add(row_of[js][sel_s], s_cols[sel_s], sf[sel_s])
    rows.add(row_of[jr][sel_r], r_cols[sel_r], 1.0)
    rows.close(len(capped), (v.cash_max - data.cash0)[capped])
    nr = len(jr)
    rows.add(ar(nr), r_cols, 1.0)
    rows.close(nr, v.relief_max[jr])
    rows.add(ar(nr), r_cols, -1.0)
    rows.close(nr, 0.0)


def _soft_limit_rows(rows: _Rows, data: ProblemData, v: _Vars) -> None:
    """base_limit y - rhs tot - slack <= 0, names w - rhs tot - slack <= 0, turnover, slacks >= 0."""
    ar = np.arange
    rb, n_names, tot, ts = v.rb, v.n_names, v.at("tot"), v.at("turnover_slack")
    rows.dense(data.base_limit_matrix, v.at("y"))
    rows.add(ar(rb), tot, -np.asarray(data.base_limit_rhs, dtype=float))
    rows.add(ar(rb), v.cols("base_slack"), -1.0)
    rows.close(rb, 0.0)
    rows.dense(data.name_matrix, v.at("w"))
    rows.add(ar(n_names), tot, -np.asarray(data.name_rhs, dtype=float))
    rows.add(ar(n_names), v.cols("name_slack"), -1.0)
    rows.close(n_names, 0.0)
    buy_weight, sell_weight = data.turnover_weights()
    rows.add(np.zeros(len(v.ib)), v.cols("b"), buy_weight[v.ib, v.jb])
    rows.add([0], [ts], -1.0)
    rows.close(1, data.buy_budget)
    rows.add(np.zeros(len(v.is_)), v.cols("s"), sell_weight[v.is_, v.js])
    rows.add([0], [ts], -1.0)
    rows.close(1, data.sell_budget)
    slack_cols = ar(v.at("base_slack"), ts + 1)  # base, name, volatility, turnover slacks
    rows.add(ar(len(slack_cols)), slack_cols, -1.0)
    rows.close(len(slack_cols), 0.0)


def _volatility_cone(rows: _Rows, data: ProblemData, v: _Vars) -> int:
    """|(f, d * w)| <= vol_cap tot + vol_slack (a zero entry keeps it of size >= 2); returns the cone's size."""
    ar = np.arange
    k = v.k
    spec_at = np.flatnonzero(v.specific)
    rows.add([0, 0], [v.at("tot"), v.at("vol_slack")], [-data.vol_cap, -1.0])
    rows.add(1 + ar(k), v.cols("f"), -1.0)
    rows.add(1 + k + ar(len(spec_at)), v.cols("w")[spec_at], -v.specific[spec_at])
    cone = max(2, 1 + k + len(spec_at))
    rows.close(cone, 0.0)
    return cone


def _sample_cone(rows: _Rows, data: ProblemData, v: _Vars) -> tuple[int, ...]:
    """|R w| <= vol_cap tot + vol_slack on the plain sample estimate (its zero rows left out); () without one."""
    factor = np.asarray(data.sample_loadings, dtype=float)
    live = np.flatnonzero(np.abs(factor).max(axis=1, initial=0.0) > 0) if factor.size else np.zeros(0, np.intp)
    if not len(live):
        return ()
    rows.add([0, 0], [v.at("tot"), v.at("vol_slack")], [-data.vol_cap, -1.0])
    block = np.zeros((1 + len(live), factor.shape[1]))
    block[1:] = factor[live]
    rows.dense(block, v.at("w"), -1.0)
    cone = 1 + len(live)
    rows.close(cone, 0.0)
    return (cone,)
