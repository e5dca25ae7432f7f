"""The optimisation problem, built once per shape with cvxpy Parameters (DPP) and re-solved.

Units: every amount is a fraction of the portfolio value V (after the cash change, before costs).
Holdings are an (n assets x m accounts) matrix, so money stays inside its account and the asset
weights are a structural row sum (no dense aggregation parameter: the KKT system stays sparse).

Variables: B (n, m) buys, S (n, m) sells (holdings after X = X0 + B - S is an expression), w (n) = X 1
  asset weights, T (n, m) tax epigraph, tot total value after costs, relief (m) withdrawal not raised,
  factor exposures, residuals of the squared terms, slacks.
Hard constraints: X = X0 + B - S, B, S >= 0, B <= buy_max, S <= sell_max <= X0 (so X >= 0; keep-these, buy-only,
  unpriced and not-on-menu give 0), per-account cash after = cash0 - 1'((1+c) * B) + 1'((1-c) * S)
  + relief >= 0, cash after <= cash_max.
Soft constraints (penalised slack, reported by the caller when a limit ends up unmet):
  volatility |[L w; d * w]| <= vol_cap * tot + slack (factor-form risk, annualised);
  look-through base y = B w (11 sectors, 3 sizes, 4 asset classes: few dense rows), then
  sector caps and financials/small-cap minimums on y, single-name caps N w <= cap * tot, each + slack;
  sum(B) <= buy_budget + slack, sum(S) <= sell_budget + slack (turnover = max(buys, sells)).
Objective (annual units; one-off costs are spread over the horizon by the caller):
  te_weight * (tracking-error variance to the target, factor form: |L (w - t)|^2 + |d * (w - t)|^2)
  + exposure_weight * |E y - e tot|^2 (asset-class mix, look-through sector/size mix vs the target's)
  + weight_weight * |w - t|^2        (a small pull toward the target's own funds)
  (the per-asset terms share one residual: |sqrt(te_weight d^2 + weight_weight) * (w - t)|^2)
  + cash_drag * (cash after)        (expected return given up by holding cash)
  + trade_cost . (B + S) + sum(T)   (costs, small-trade l1 penalty, taxes on realised gains)
  + holding_drag . X                 (yearly tax on income held in taxable accounts: asset location)
  + penalties . slacks
Shapes are padded to buckets so that portfolios of similar size share one compiled problem.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cvxpy as cp
import numpy as np

from engine.solve import SolveReport, solve_certified

_LADDER = (4, 8, 12, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512)
_ACCOUNT_LADDER = (1, 2, 3, 4, 6, 8, 12, 16)


def bucket(size: int, ladder: tuple[int, ...] = _LADDER) -> int:
    """The padded size for `size` (a ladder of roughly 15-30% steps)."""
    for step in ladder:
        if size <= step:
            return step
    return int(np.ceil(size / 128.0) * 128)


@dataclass(frozen=True)
class Shape:
    """Padded dimensions: assets n, accounts m, factors k, base rows Q, base limit rows Rb, single-name
    rows L, exposure-gap rows E, tax pieces P (0: no taxable holding)."""

    n: int
    m: int
    k: int
    Q: int
    Rb: int
    L: int
    E: int
    P: int


@dataclass
class ProblemData:
    """Numeric inputs of one solve (unpadded). n assets, m accounts, k factors, R limit rows, E rows."""

    loadings: np.ndarray  # (k, n) factor loadings, annualised
    specific: np.ndarray  # (n,) specific volatility, annualised
    target: np.ndarray  # (n,) target weights
    te_weight: float
    base: np.ndarray  # (Q, n) look-through base rows; y = base @ w (fractions of value)
    gap_matrix: np.ndarray  # (E, Q) exposure-gap rows: gap_matrix @ y - gap_rhs * tot (0 on target)
    gap_rhs: np.ndarray  # (E,)
    exposure_weight: float
    weight_weight: float
    cash_drag: float
    x0: np.ndarray  # (n, m) holdings before
    buy_max: np.ndarray  # (n, m)
    sell_max: np.ndarray  # (n, m)
    cost_rate: np.ndarray  # (n, m) transaction cost per unit traded (paid from the account's cash)
    cash0: np.ndarray  # (m,) cash before, after the cash change (< 0: a withdrawal still to raise)
    relief_max: np.ndarray  # (m,) withdrawal that may be left unraised (penalised)
    cash_max: np.ndarray  # (m,) upper bound on cash after
    trade_cost: np.ndarray  # (n, m) objective weight per unit traded
    holding_drag: np.ndarray  # (n, m) yearly tax drag per unit held (asset location)
    tax_slopes: np.ndarray  # (P, n, m)
    tax_intercepts: np.ndarray  # (P, n, m)
    vol_cap: float
    base_limit_matrix: np.ndarray  # (Rb, Q): base_limit_matrix @ y <= base_limit_rhs * tot
    base_limit_rhs: np.ndarray  # (Rb,)
    base_limit_penalty: np.ndarray  # (Rb,)
    name_matrix: np.ndarray  # (L, n): name_matrix @ w <= name_rhs * tot
    name_rhs: np.ndarray  # (L,)
    name_penalty: np.ndarray  # (L,)
    buy_budget: float  # bound on sum(B): turnover limit + cash added or already idle
    sell_budget: float  # bound on sum(S): turnover limit + withdrawal
    vol_penalty: float
    turnover_penalty: float
    relief_penalty: float

    def shape(self, n_factors: int) -> Shape:
        n, m = self.x0.shape
        return Shape(
            n=bucket(n),
            m=bucket(m, _ACCOUNT_LADDER),
            k=n_factors,
            Q=self.base.shape[0],
            Rb=self.base_limit_matrix.shape[0],
            L=bucket(self.name_matrix.shape[0]) if self.name_matrix.shape[0] else 0,
            E=self.gap_matrix.shape[0],
            P=self.tax_slopes.shape[0] if np.any(self.tax_slopes) or np.any(self.tax_intercepts) else 0,
        )

    def dense_limits(self) -> tuple[np.ndarray, np.ndarray]:
        """Every limit row on w: (matrix (Rb + L, n), rhs (Rb + L,)), rows read matrix @ w <= rhs * tot."""
        matrix = np.vstack([self.base_limit_matrix @ self.base, self.name_matrix])
        return matrix, np.concatenate([self.base_limit_rhs, self.name_rhs])

    def dense_gaps(self) -> tuple[np.ndarray, np.ndarray]:
        """Exposure-gap rows on w: (matrix (E, n), rhs (E,))."""
        return self.gap_matrix @ self.base, self.gap_rhs


@dataclass(frozen=True)
class Solution:
    """A certified solution (unpadded), fractions of V."""

    x: np.ndarray  # (n, m)
    buys: np.ndarray  # (n, m)
    sells: np.ndarray  # (n, m)
    w: np.ndarray  # (n,)
    cash: np.ndarray  # (m,)
    total: float
    limit_slack: np.ndarray  # (Rb + L,) base limit rows, then single-name rows
    vol_slack: float
    turnover_slack: float
    relief: np.ndarray  # (m,)
    objective: float
    report: SolveReport


def _pad(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    array = np.asarray(array, dtype=float)
    if array.shape == shape:
        return array
    out = np.zeros(shape)
    out[tuple(slice(0, s) for s in array.shape)] = array
    return out


class CompiledProblem:
    """One cvxpy problem for one `Shape`; `solve(data)` updates the Parameters and re-solves."""

    def __init__(self, shape: Shape) -> None:
        self.shape = shape
        self._validated = False
        n, m, k, P = shape.n, shape.m, shape.k, shape.P
        Q, Rb, L, E = shape.Q, shape.Rb, shape.L, shape.E
        par = cp.Parameter
        self.params: dict[str, cp.Parameter] = {
            "loadings": par((k, n)),
            "specific": par(n, nonneg=True),
            "te_scale": par(nonneg=True),  # sqrt(te_weight)
            "target_factor": par(k),  # te_scale * loadings @ target
            "asset_scale": par(n, nonneg=True),  # sqrt(te_weight * specific^2 + weight_weight)
            "asset_target": par(n),  # asset_scale * target
            "base": par((Q, n)),
            "gap_matrix": par((E, Q)),
            "gap_rhs": par(E),
            "cash_drag": par(nonneg=True),
            "x0": par((n, m), nonneg=True),
            "buy_max": par((n, m), nonneg=True),
            "sell_max": par((n, m), nonneg=True),
            "buy_factor": par((n, m), nonneg=True),
            "sell_factor": par((n, m), nonneg=True),
            "cash0": par(m),
            "relief_max": par(m, nonneg=True),
            "cash_max": par(m, nonneg=True),
            "trade_cost": par((n, m), nonneg=True),
            "holding_drag": par((n, m), nonneg=True),
            "vol_cap": par(nonneg=True),
            "base_limit_matrix": par((Rb, Q)),
            "base_limit_rhs": par(Rb),
            "base_limit_penalty": par(Rb, nonneg=True),
            "buy_budget": par(nonneg=True),
            "sell_budget": par(nonneg=True),
            "vol_penalty": par(nonneg=True),
            "turnover_penalty": par(nonneg=True),
            "relief_penalty": par(nonneg=True),
        }
        if L:
            self.params["name_matrix"] = par((L, n))
            self.params["name_rhs"] = par(L)
            self.params["name_penalty"] = par(L, nonneg=True)
        for i in range(P):
            self.params[f"tax_slope_{i}"] = par((n, m))
            self.params[f"tax_intercept_{i}"] = par((n, m))
        p = self.params
        self.b = cp.Variable((n, m), nonneg=True)
        self.s = cp.Variable((n, m), nonneg=True)
        self.t = cp.Variable((n, m), nonneg=True) if P else None  # no taxable holding: no tax rows at all
        self.w = cp.Variable(n)
        self.tot = cp.Variable()
        self.relief = cp.Variable(m, nonneg=True)
        self.y = cp.Variable(Q)
        self.base_slack = cp.Variable(Rb, nonneg=True)
        self.name_slack = cp.Variable(L, nonneg=True) if L else None
        self.vol_slack = cp.Variable(nonneg=True)
        self.turnover_slack = cp.Variable(nonneg=True)
        self.factor = cp.Variable(k)
        self.te_factor = cp.Variable(k)
        self.asset_gap = cp.Variable(n)
        self.exposure_gap = cp.Variable(E)
        self.cash = (
            p["cash0"]
            - cp.sum(cp.multiply(p["buy_factor"], self.b), axis=0)
            + cp.sum(cp.multiply(p["sell_factor"], self.s), axis=0)
            + self.relief
        )
        # X = X0 + B - S >= 0 is implied by S <= sell_max <= X0, so X is an expression, not a variable.
        # w stays a variable: the dense rows (risk, limits, exposures) then touch n columns, not 2 n m.
        self.x = p["x0"] + self.b - self.s
        specific = cp.multiply(p["specific"], self.w)
        cash_total = self.tot - cp.sum(self.w)
        constraints = [
            self.w == cp.sum(self.x, axis=1),
            self.factor == p["loadings"] @ self.w,
            self.y == p["base"] @ self.w,
            self.b <= p["buy_max"],
            self.s <= p["sell_max"],
            self.cash >= 0,
            self.cash <= p["cash_max"],
            self.relief <= p["relief_max"],
            self.tot == cp.sum(self.w) + cp.sum(self.cash),
            cp.norm(cp.hstack([self.factor, specific]), 2) <= p["vol_cap"] * self.tot + self.vol_slack,
            p["base_limit_matrix"] @ self.y <= cp.multiply(p["base_limit_rhs"], self.tot) + self.base_slack,
            cp.sum(self.b) <= p["buy_budget"] + self.turnover_slack,
            cp.sum(self.s) <= p["sell_budget"] + self.turnover_slack,
            # residuals as variables, weights folded into the Parameters (scaled rows), so the
            # objective is a plain sum of squares of variables: DPP and a diagonal quadratic term
            self.te_factor == p["te_scale"] * self.factor - p["target_factor"],
            self.asset_gap == cp.multiply(p["asset_scale"], self.w) - p["asset_target"],
            self.exposure_gap == p["gap_matrix"] @ self.y - cp.multiply(p["gap_rhs"], self.tot),
        ]
        if self.name_slack is not None:
            constraints.append(
                p["name_matrix"] @ self.w <= cp.multiply(p["name_rhs"], self.tot) + self.name_slack
            )
        if self.t is not None:
            constraints += [
                self.t >= cp.multiply(p[f"tax_slope_{i}"], self.s) + p[f"tax_intercept_{i}"] for i in range(P)
            ]
        objective = (
            cp.sum_squares(self.te_factor)
            + cp.sum_squares(self.asset_gap)
            + cp.sum_squares(self.exposure_gap)
            + p["cash_drag"] * cash_total
            + cp.sum(cp.multiply(p["trade_cost"], self.b + self.s))
            + cp.sum(cp.multiply(p["holding_drag"], self.b - self.s))  # drag of X less that of X0 (constant)
            + (cp.sum(self.t) if self.t is not None else 0.0)
            + p["base_limit_penalty"] @ self.base_slack
            + (p["name_penalty"] @ self.name_slack if self.name_slack is not None else 0.0)
            + p["vol_penalty"] * self.vol_slack
            + p["turnover_penalty"] * self.turnover_slack
            + p["relief_penalty"] * cp.sum(self.relief)
        )
        self.problem = cp.Problem(cp.Minimize(objective), constraints)
        if not self.problem.is_dcp(dpp=True):  # a programming error, not a data problem
            raise RuntimeError("the rebalance problem is not DPP")

    def set(self, data: ProblemData) -> None:
        """Copy `data` into the Parameters, zero-padded to this shape."""
        sh = self.shape
        p = self.params
        nm = (sh.n, sh.m)
        loadings = _pad(data.loadings[: sh.k], (sh.k, sh.n))
        target = _pad(data.target, (sh.n,))
        specific = _pad(data.specific, (sh.n,))
        te_scale = float(np.sqrt(data.te_weight))
        asset_scale = np.sqrt(data.te_weight * specific**2 + data.weight_weight)
        exposure_scale = float(np.sqrt(data.exposure_weight))
        x0 = _pad(np.clip(data.x0, 0.0, None), nm)
        values: dict[str, Any] = {
            "asset_target": asset_scale * target,
            "loadings": loadings,
            "specific": specific,
            "te_scale": te_scale,
            "target_factor": te_scale * (loadings @ target),
            "asset_scale": asset_scale,
            "base": _pad(data.base, (sh.Q, sh.n)),
            "gap_matrix": exposure_scale * data.gap_matrix,
            "gap_rhs": exposure_scale * data.gap_rhs,
            "cash_drag": data.cash_drag,
            "x0": x0,
            "buy_max": _pad(np.clip(data.buy_max, 0.0, None), nm),
            "sell_max": _pad(np.clip(data.sell_max, 0.0, None), nm),
            "buy_factor": _pad(1.0 + data.cost_rate, nm),
            "sell_factor": _pad(1.0 - data.cost_rate, nm),
            "cash0": _pad(data.cash0, (sh.m,)),
            "relief_max": _pad(np.clip(data.relief_max, 0.0, None), (sh.m,)),
            "cash_max": _pad(np.clip(data.cash_max, 0.0, None), (sh.m,)),
            "trade_cost": _pad(np.clip(data.trade_cost, 0.0, None), nm),
            "holding_drag": _pad(np.clip(data.holding_drag, 0.0, None), nm),
            "vol_cap": data.vol_cap,
            "base_limit_matrix": data.base_limit_matrix,
            "base_limit_rhs": data.base_limit_rhs,
            "base_limit_penalty": np.clip(data.base_limit_penalty, 0.0, None),
            "buy_budget": data.buy_budget,
            "sell_budget": data.sell_budget,
            "vol_penalty": data.vol_penalty,
            "turnover_penalty": data.turnover_penalty,
            "relief_penalty": data.relief_penalty,
        }
        if sh.L:
            values["name_matrix"] = _pad(data.name_matrix, (sh.L, sh.n))
            values["name_rhs"] = _pad(data.name_rhs, (sh.L,))
            values["name_penalty"] = _pad(np.clip(data.name_penalty, 0.0, None), (sh.L,))
        for i in range(sh.P):
            values[f"tax_slope_{i}"] = _pad(data.tax_slopes[i], nm)
            values[f"tax_intercept_{i}"] = _pad(data.tax_intercepts[i], nm)
        if self._validated:
            # fast path: the values are built above with the declared shapes and signs (validated on the
            # first solve through the public setter); skipping cvxpy's per-assignment checks saves ~1 ms
            for name, value in values.items():
                p[name]._value = np.asarray(value, dtype=float) if np.ndim(value) else float(value)
        else:
            for name, value in values.items():
                p[name].value = value
            self._validated = True

    def solve(self, data: ProblemData) -> Solution:
        """Set the Parameters from `data` and solve; raises `OptimizationError` if nothing certifies."""
        self.set(data)
        report = solve_certified(self.problem)
        n, m = data.x0.shape
        L = data.name_matrix.shape[0]
        name_slack = self.name_slack.value[:L] if self.name_slack is not None else np.zeros(0)
        return Solution(
            x=np.clip(np.asarray(self.x.value)[:n, :m], 0.0, None),
            buys=np.clip(self.b.value[:n, :m], 0.0, None),
            sells=np.clip(self.s.value[:n, :m], 0.0, None),
            w=np.asarray(self.w.value)[:n].copy(),
            cash=np.asarray(self.cash.value)[:m].copy(),
            total=float(self.tot.value),
            limit_slack=np.concatenate([self.base_slack.value, name_slack]),
            vol_slack=float(self.vol_slack.value),
            turnover_slack=float(self.turnover_slack.value),
            relief=self.relief.value[:m].copy(),
            objective=float(self.problem.value),
            report=report,
        )


class ProblemCache:
    """Compiled problems keyed by `Shape`, plus market-level caches (risk models, exposures, targets).

    Create one per worker process and pass it to every `engine.rebalance` call; not thread-safe.
    """

    def __init__(self, max_problems: int = 24, max_entries: int = 256) -> None:
        self.max_problems = max_problems
        self.max_entries = max_entries
        self._problems: OrderedDict[Shape, CompiledProblem] = OrderedDict()
        self._entries: OrderedDict[tuple, Any] = OrderedDict()
        self._fingerprints: OrderedDict[int, tuple[Any, Any]] = OrderedDict()
        self.compiles = 0

    def problem(self, shape: Shape) -> CompiledProblem:
        """The compiled problem for `shape` (built on first use, least recently used evicted)."""
        found = self._problems.get(shape)
        if found is not None:
            self._problems.move_to_end(shape)
            return found
        compiled = CompiledProblem(shape)
        self.compiles += 1
        self._problems[shape] = compiled
        while len(self._problems) > self.max_problems:
            self._problems.popitem(last=False)
        return compiled

    def memo(self, key: tuple, build: Callable[[], Any]) -> Any:
        """The cached value for `key`, built with `build()` on a miss (least recently used evicted)."""
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key]
        value = build()
        self.store(key, value)
        return value

    def fingerprint(self, obj: Any, build: Callable[[], Any], keep: int = 4) -> Any:
        """A content fingerprint of `obj` (e.g. a prices frame), computed once per object.

        Only the last `keep` objects are remembered (with a reference, so their ids cannot be reused),
        so a worker that gets a new frame per run does not pile frames up.
        """
        found = self._fingerprints.get(id(obj))
        if found is not None and found[0] is obj:
            return found[1]
        value = build()
        self._fingerprints[id(obj)] = (obj, value)
        while len(self._fingerprints) > keep:
            self._fingerprints.popitem(last=False)
        return value

    def store(self, key: tuple, value: Any) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._problems)
