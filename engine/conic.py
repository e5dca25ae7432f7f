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
       reads T >= 0, already a bound; a pair with no piece has T = 0 at the optimum (T is minimised);
       an unsellable pair (S = 0) has T = max(0, intercepts), a constant added to the offset. T >= 0 is
       left out where a piece with slope >= 0 and intercept >= 0 already implies it (S >= 0).
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
    n, m = data.x0.shape
    k = data.loadings.shape[0]
    q_rows, rb, e_rows = data.base.shape[0], data.base_limit_matrix.shape[0], data.gap_matrix.shape[0]
    n_names = data.name_matrix.shape[0]
    x0 = np.clip(data.x0, 0.0, None)
    buy_max = np.clip(data.buy_max, 0.0, None)
    sell_max = np.clip(data.sell_max, 0.0, None)
    buy_factor = 1.0 + data.cost_rate
    sell_factor = 1.0 - data.cost_rate
    trade_cost = np.clip(data.trade_cost, 0.0, None)
    holding_drag = np.clip(data.holding_drag, 0.0, None)
    relief_max = np.clip(data.relief_max, 0.0, None)
    cash_max = np.clip(data.cash_max, 0.0, None)
    ib, jb = np.nonzero(buy_max > 0)
    is_, js = np.nonzero(sell_max > 0)
    jr = np.flatnonzero(relief_max > 0)
    nb, ns, nr = len(ib), len(is_), len(jr)
    offset = 0.0
    # 2. tax pieces of sellable pairs
    has_tax = data.tax_slopes.size > 0 and (np.any(data.tax_slopes) or np.any(data.tax_intercepts))
    if has_tax:
        slopes, intercepts = data.tax_slopes[:, is_, js], data.tax_intercepts[:, is_, js]  # (P, ns)
        live = (slopes != 0) | (intercepts != 0)
        tax_pairs = np.flatnonzero(live.any(axis=0))
        piece, pair = np.nonzero(live[:, tax_pairs])  # piece p of tax variable `pair`
        implied = (live & (slopes >= 0) & (intercepts >= 0))[:, tax_pairs].any(axis=0)
        unsellable = sell_max <= 0
        offset += float(np.clip(data.tax_intercepts.max(axis=0), 0.0, None)[unsellable].sum())
    else:
        slopes = intercepts = np.zeros((0, ns))
        tax_pairs = piece = pair = np.zeros(0, dtype=np.intp)
        implied = np.zeros(0, dtype=bool)
    nt = len(tax_pairs)
    specific = np.asarray(data.specific, dtype=float)
    spec_at = np.flatnonzero(specific)

    sizes = {"b": nb, "s": ns, "t": nt, "w": n, "tot": 1, "relief": nr, "y": q_rows, "base_slack": rb,
             "name_slack": n_names, "vol_slack": 1, "turnover_slack": 1, "f": k, "gap": e_rows}
    offsets: dict[str, int] = {}
    columns = 0
    for name, size in sizes.items():
        offsets[name] = columns
        columns += size
    o = offsets
    ar = np.arange
    b_cols, s_cols, t_cols, w_cols = o["b"] + ar(nb), o["s"] + ar(ns), o["t"] + ar(nt), o["w"] + ar(n)
    r_cols, f_cols, y_cols, g_cols = o["relief"] + ar(nr), o["f"] + ar(k), o["y"] + ar(q_rows), o["gap"] + ar(e_rows)
    tot, ts = o["tot"], o["turnover_slack"]
    bf, sf = buy_factor[ib, jb], sell_factor[is_, js]

    # objective: 1/2 x'Px + q'x + offset (3.)
    te_scale = float(np.sqrt(data.te_weight))
    asset_scale = np.sqrt(data.te_weight * specific**2 + data.weight_weight)
    asset_target = asset_scale * data.target
    target_factor = te_scale * (data.loadings @ data.target)
    exposure_scale = float(np.sqrt(data.exposure_weight))
    offset += float(target_factor @ target_factor + asset_target @ asset_target)
    q = np.zeros(columns)
    q[b_cols] = trade_cost[ib, jb] + holding_drag[ib, jb]
    q[s_cols] = trade_cost[is_, js] - holding_drag[is_, js]
    q[t_cols] = 1.0
    q[w_cols] = -2.0 * asset_scale * asset_target - data.cash_drag  # cash after = tot - sum(w)
    q[tot] = data.cash_drag
    q[r_cols] = data.relief_penalty
    q[o["base_slack"] : o["base_slack"] + rb] = np.clip(data.base_limit_penalty, 0.0, None)
    q[o["name_slack"] : o["name_slack"] + n_names] = np.clip(data.name_penalty, 0.0, None)
    q[o["vol_slack"]] = data.vol_penalty
    q[ts] = data.turnover_penalty
    q[f_cols] = -2.0 * te_scale * target_factor
    diagonal = np.concatenate([w_cols, f_cols, g_cols])  # increasing: a diagonal P in CSC directly
    p_values = 2.0 * np.concatenate([asset_scale**2, np.full(k, te_scale**2), np.ones(e_rows)])
    p_pointers = np.zeros(columns + 1, dtype=np.intp)
    p_pointers[diagonal + 1] = 1
    P = sp.csc_matrix((p_values, diagonal, np.cumsum(p_pointers)), shape=(columns, columns))

    rows = _Rows()
    # equalities: w = X 1, f = L w, y = base w, tot = sum(w) + sum(cash), gap = E y - e tot
    rows.add(ar(n), w_cols, 1.0)
    rows.add(ib, b_cols, -1.0)
    rows.add(is_, s_cols, 1.0)
    rows.close(n, x0.sum(axis=1))
    rows.add(ar(k), f_cols, 1.0)
    rows.dense(data.loadings, o["w"], -1.0)
    rows.close(k, 0.0)
    rows.add(ar(q_rows), y_cols, 1.0)
    rows.dense(data.base, o["w"], -1.0)
    rows.close(q_rows, 0.0)
    rows.add([0], [tot], 1.0)
    rows.add(np.zeros(n), w_cols, -1.0)
    rows.add(np.zeros(nb), b_cols, bf)
    rows.add(np.zeros(ns), s_cols, -sf)
    rows.add(np.zeros(nr), r_cols, -1.0)
    rows.close(1, data.cash0.sum())
    rows.add(ar(e_rows), g_cols, 1.0)
    rows.dense(exposure_scale * data.gap_matrix, o["y"], -1.0)
    rows.add(ar(e_rows), tot, exposure_scale * data.gap_rhs)
    rows.close(e_rows, 0.0)
    zero = rows.count

    # inequalities A x <= b
    # 4. room: the most an account's buys can cost
    room = data.cash0 + relief_max + (np.clip(sell_factor, 0.0, None) * sell_max).sum(axis=0)
    positive = np.ones(m, dtype=bool)
    np.logical_and.at(positive, jb, bf > 0)
    needed = ~(positive[jb] & (buy_max[ib, jb] * bf >= room[jb]))
    kept = np.flatnonzero(needed)
    rows.add(ar(len(kept)), b_cols[kept], 1.0)
    rows.close(len(kept), buy_max[ib[kept], jb[kept]])
    rows.add(ar(nb), b_cols, -1.0)
    rows.close(nb, 0.0)
    rows.add(ar(ns), s_cols, 1.0)
    rows.close(ns, sell_max[is_, js])
    rows.add(ar(ns), s_cols, -1.0)
    rows.close(ns, 0.0)
    t_free = np.flatnonzero(~implied)
    rows.add(ar(len(t_free)), t_cols[t_free], -1.0)
    rows.close(len(t_free), 0.0)
    # tax pieces: slope * S - T <= -intercept
    at = tax_pairs[pair]
    rows.add(ar(len(piece)), s_cols[at], slopes[piece, at])
    rows.add(ar(len(piece)), t_cols[pair], -1.0)
    rows.close(len(piece), -intercepts[piece, at])
    # cash >= 0: (1+c)'B - (1-c)'S - relief <= cash0, per account
    rows.add(jb, b_cols, bf)
    rows.add(js, s_cols, -sf)
    rows.add(jr, r_cols, -1.0)
    rows.close(m, data.cash0)
    # cash <= cash_max, where it can bind
    capped = np.flatnonzero((room > cash_max) | ~positive)
    row_of = np.full(m, -1)
    row_of[capped] = ar(len(capped))
    sel_b, sel_s, sel_r = row_of[jb] >= 0, row_of[js] >= 0, row_of[jr] >= 0
    rows.add(row_of[jb][sel_b], b_cols[sel_b], -bf[sel_b])
    rows.add(row_of[js][sel_s], s_cols[sel_s], sf[sel_s])
    rows.add(row_of[jr][sel_r], r_cols[sel_r], 1.0)
    rows.close(len(capped), (cash_max - data.cash0)[capped])
    rows.add(ar(nr), r_cols, 1.0)
    rows.close(nr, relief_max[jr])
    rows.add(ar(nr), r_cols, -1.0)
    rows.close(nr, 0.0)
    # soft limits: base_limit y - rhs tot - slack <= 0, names w - rhs tot - slack <= 0, turnover
    rows.dense(data.base_limit_matrix, o["y"])
    rows.add(ar(rb), tot, -np.asarray(data.base_limit_rhs, dtype=float))
    rows.add(ar(rb), o["base_slack"] + ar(rb), -1.0)
    rows.close(rb, 0.0)
    rows.dense(data.name_matrix, o["w"])
    rows.add(ar(n_names), tot, -np.asarray(data.name_rhs, dtype=float))
    rows.add(ar(n_names), o["name_slack"] + ar(n_names), -1.0)
    rows.close(n_names, 0.0)
    rows.add(np.zeros(nb), b_cols, 1.0)
    rows.add([0], [ts], -1.0)
    rows.close(1, data.buy_budget)
    rows.add(np.zeros(ns), s_cols, 1.0)
    rows.add([0], [ts], -1.0)
    rows.close(1, data.sell_budget)
    slack_cols = ar(o["base_slack"], o["turnover_slack"] + 1)  # base, name, volatility, turnover slacks
    rows.add(ar(len(slack_cols)), slack_cols, -1.0)
    rows.close(len(slack_cols), 0.0)
    nonneg = rows.count - zero

    # the volatility cone: |(f, d * w)| <= vol_cap tot + vol_slack (a zero entry keeps it of size >= 2)
    rows.add([0, 0], [tot, o["vol_slack"]], [-data.vol_cap, -1.0])
    rows.add(1 + ar(k), f_cols, -1.0)
    rows.add(1 + k + ar(len(spec_at)), w_cols[spec_at], -specific[spec_at])
    cone = max(2, 1 + k + len(spec_at))
    rows.close(cone, 0.0)
    A, b = rows.matrix(columns)
    conic = ConicProblem(P=P, q=q, A=A, b=b, zero=zero, nonneg=nonneg, soc=(cone,), offset=offset)
    return conic, Layout(n, m, (ib, jb), (is_, js), jr, offsets, sizes)
