"""The cvxpy form of the problem (`CompiledProblem`): the fallback of `engine.problem.solve_problem` when
Clarabel does not certify the compact form, and the reference the compact form is tested against.
Every (asset, account) pair gets B, S and T and P tax rows; shapes are padded to buckets so that
portfolios of similar size share one compiled problem (`ProblemCache`). Importing this module loads cvxpy.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import cvxpy as cp
import numpy as np

from engine.errors import OptimizationError
from engine.problem import ProblemData, Shape, Solution
from engine.solve import solve_certified


def _pad(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    array = np.asarray(array, dtype=float)
    if array.shape == shape:
        return array
    out = np.zeros(shape)
    out[tuple(slice(0, s) for s in array.shape)] = array
    return out


def _parameters(shape: Shape) -> dict[str, cp.Parameter]:
    """The cvxpy Parameters of one shape (padded; `CompiledProblem.set` fills them)."""
    n, m, k, P = shape.n, shape.m, shape.k, shape.P
    Q, Rb, L, E = shape.Q, shape.Rb, shape.L, shape.E
    par = cp.Parameter
    params: dict[str, cp.Parameter] = {
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
        "sample_loadings": par((n, n)),  # (r <= n, n) exact factor of the plain sample covariance, zero-padded
        "base_limit_matrix": par((Rb, Q)),
        "base_limit_rhs": par(Rb),
        "base_limit_penalty": par(Rb, nonneg=True),
        "turnover_buy": par((n, m), nonneg=True),  # weight of each pair's buys / sales in the turnover sums
        "turnover_sell": par((n, m), nonneg=True),
        "buy_budget": par(nonneg=True),
        "sell_budget": par(nonneg=True),
        "vol_penalty": par(nonneg=True),
        "turnover_penalty": par(nonneg=True),
        "relief_penalty": par(nonneg=True),
    }
    if L:
        params["name_matrix"] = par((L, n))
        params["name_rhs"] = par(L)
        params["name_penalty"] = par(L, nonneg=True)
    for i in range(P):
        params[f"tax_slope_{i}"] = par((n, m))
        params[f"tax_intercept_{i}"] = par((n, m))
    if P and shape.budget:
        params["tax_budget"] = par()
    return params


class CompiledProblem:
    """One cvxpy problem for one `Shape`; `solve(data)` updates the Parameters and re-solves.

    The fallback of `solve_problem` (and the reference its compact form is tested against)."""

    def __init__(self, shape: Shape) -> None:
        self.shape = shape
        self._validated = False
        self.params = _parameters(shape)
        self._variables(shape)
        self.problem = cp.Problem(cp.Minimize(self._objective()), self._constraints())
        if not self.problem.is_dcp(dpp=True):  # type: ignore[call-arg]  # cvxpy's decorator hides `dpp`
            raise RuntimeError("the rebalance problem is not DPP")

    def _variables(self, shape: Shape) -> None:
        n, m, k, P = shape.n, shape.m, shape.k, shape.P
        Q, Rb, L, E = shape.Q, shape.Rb, shape.L, shape.E
        p = self.params
        self.b = cp.Variable((n, m), nonneg=True)
        self.s = cp.Variable((n, m), nonneg=True)
        # no taxable holding: no tax rows at all; T >= 0 comes from (0, 0) pieces (a loss curve has none)
        self.t = cp.Variable((n, m)) if P else None
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

    def _constraints(self) -> list:
        p = self.params
        specific = cp.multiply(p["specific"], self.w)
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
            cp.norm(p["sample_loadings"] @ self.w, 2) <= p["vol_cap"] * self.tot + self.vol_slack,
            p["base_limit_matrix"] @ self.y <= cp.multiply(p["base_limit_rhs"], self.tot) + self.base_slack,
            cp.sum(cp.multiply(p["turnover_buy"], self.b)) <= p["buy_budget"] + self.turnover_slack,
            cp.sum(cp.multiply(p["turnover_sell"], self.s)) <= p["sell_budget"] + self.turnover_slack,
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
                self.t >= cp.multiply(p[f"tax_slope_{i}"], self.s) + p[f"tax_intercept_{i}"]
                for i in range(self.shape.P)
            ]
            if "tax_budget" in p:
                constraints.append(cp.sum(self.t) <= p["tax_budget"])
        return constraints

    def _objective(self) -> Any:
        p = self.params
        cash_total = self.tot - cp.sum(self.w)
        return (
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
            "sample_loadings": _pad(data.sample_loadings[: sh.n], (sh.n, sh.n)),
            "base_limit_matrix": data.base_limit_matrix,
            "base_limit_rhs": data.base_limit_rhs,
            "base_limit_penalty": np.clip(data.base_limit_penalty, 0.0, None),
            "turnover_buy": _pad(data.turnover_weights()[0], nm),
            "turnover_sell": _pad(data.turnover_weights()[1], nm),
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
        if "tax_budget" in p:
            values["tax_budget"] = float(data.tax_budget) if data.tax_budget is not None else 0.0
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
        name_slack = _value(self.name_slack)[:L] if self.name_slack is not None else np.zeros(0)
        return Solution(
            x=np.clip(_value(self.x)[:n, :m], 0.0, None),
            buys=np.clip(_value(self.b)[:n, :m], 0.0, None),
            sells=np.clip(_value(self.s)[:n, :m], 0.0, None),
            w=_value(self.w)[:n].copy(),
            cash=_value(self.cash)[:m].copy(),
            total=float(_value(self.tot)),
            limit_slack=np.concatenate([_value(self.base_slack), name_slack]),
            vol_slack=float(_value(self.vol_slack)),
            turnover_slack=float(_value(self.turnover_slack)),
            relief=_value(self.relief)[:m].copy(),
            objective=float(self.problem.value),
            report=report,
        )


def _value(expression: Any) -> np.ndarray:
    """The value of a solved variable or expression (a certified solve sets every one)."""
    value = expression.value
    if value is None:
        raise OptimizationError("the solver certified a solution but left a variable without a value")
    return np.asarray(value)



class ProblemCache:
    """Compiled cvxpy problems keyed by `Shape`, built only when `solve_problem` falls back to the cvxpy form
    (keyed by content: a shape is plain numbers). One per worker process; not thread-safe."""

    def __init__(self, max_problems: int = 24) -> None:
        self.max_problems = max_problems
        self._problems: OrderedDict[Shape, CompiledProblem] = OrderedDict()
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

    def __len__(self) -> int:
        return len(self._problems)
