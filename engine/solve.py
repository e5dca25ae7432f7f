"""The solve helpers: accept only a certified optimal status, else fall back to the next attempt.

- `solve_certified(problem)`: a cvxpy problem; Clarabel, then SCS.
- `solve_conic(conic)`: a problem already in conic form (`ConicProblem`, built without cvxpy), handed to
  Clarabel directly. Only Clarabel's "Solved" certifies (not "AlmostSolved": cvxpy's optimal_inaccurate).
"""
# OSQP is not used: it cannot express the second-order-cone volatility cap.

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import clarabel
import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from engine.errors import OptimizationError

# (label, cvxpy solver, options): Clarabel with the supernodal "faer" factorisation (about 15% faster
# here), Clarabel with its default QDLDL, then SCS as the fallback.
Attempt = tuple[str, str, dict[str, object]]
DEFAULT_ATTEMPTS: tuple[Attempt, ...] = (
    ("CLARABEL", "CLARABEL", {"direct_solve_method": "faer"}),
    ("CLARABEL/qdldl", "CLARABEL", {}),
    ("SCS", "SCS", {"eps_abs": 1e-7, "eps_rel": 1e-7, "max_iters": 200_000}),
)
# Clarabel settings for `solve_conic`: the defaults (tolerances 1e-8), QDLDL on one thread. On the
# rebalance problem's compact form (200-500 variables) QDLDL is as fast as faer, and one thread is right
# for worker processes that already share the cores.
CONIC_SETTINGS: dict[str, object] = {"direct_solve_method": "qdldl", "max_threads": 1}


@dataclass(frozen=True)
class SolveReport:
    solver: str  # label of the attempt that certified
    status: str
    solve_ms: float  # the solver's own time (the floor)
    total_ms: float  # wall time of the solve (data update or assembly + solver + unpacking)
    attempts: tuple[str, ...]  # "CLARABEL: infeasible_inaccurate", ... for attempts that did not certify


def solve_certified(problem: cp.Problem, *, attempts: Sequence[Attempt] = DEFAULT_ATTEMPTS) -> SolveReport:
    """Solve `problem` with the first solver that certifies an optimal solution.

    Raises `OptimizationError` when none does; a solver's "optimal_inaccurate" is not accepted.
    """
    failed: list[str] = []
    for label, solver, options in attempts:
        start = time.perf_counter()
        try:
            problem.solve(solver=solver, **options)
        except (cp.SolverError, ValueError, ArithmeticError) as exc:
            failed.append(f"{label}: {type(exc).__name__}: {exc}")
            continue
        total_ms = (time.perf_counter() - start) * 1e3
        if problem.status == cp.OPTIMAL:
            stats = problem.solver_stats
            solve_ms = (stats.solve_time or 0.0) * 1e3 if stats is not None else total_ms
            return SolveReport(label, problem.status, solve_ms, total_ms, tuple(failed))
        failed.append(f"{label}: {problem.status}")
    attempts_text = failed
    raise OptimizationError("no solver certified a solution (" + "; ".join(attempts_text) + ")")


@dataclass(frozen=True)
class ConicProblem:
    """minimise 1/2 x'Px + q'x + offset  subject to  A x + s = b, s in the cones (Clarabel's and SCS's form):
    the first `zero` rows are equalities, the next `nonneg` rows read A x <= b, then one second-order
    cone per entry of `soc` (its first row the bound, the others the vector)."""

    P: sp.csc_matrix  # (N, N) upper triangle
    q: np.ndarray  # (N,)
    A: sp.csc_matrix  # (M, N)
    b: np.ndarray  # (M,)
    zero: int
    nonneg: int
    soc: tuple[int, ...]
    offset: float = 0.0


@dataclass(frozen=True)
class ConicSolution:
    x: np.ndarray
    objective: float  # including the offset
    report: SolveReport


def solve_conic(conic: ConicProblem, *, settings: dict[str, object] | None = None) -> ConicSolution:
    """Solve `conic` with Clarabel; raises `OptimizationError` unless the status is "Solved"."""
    start = time.perf_counter()
    options = clarabel.DefaultSettings()
    options.verbose = False
    for name, value in (CONIC_SETTINGS if settings is None else settings).items():
        setattr(options, name, value)
    cones: list[object] = []
    if conic.zero:
        cones.append(clarabel.ZeroConeT(conic.zero))
    if conic.nonneg:
        cones.append(clarabel.NonnegativeConeT(conic.nonneg))
    cones += [clarabel.SecondOrderConeT(size) for size in conic.soc]
    try:
        result = clarabel.DefaultSolver(conic.P, conic.q, conic.A, conic.b, cones, options).solve()
    except (ValueError, ArithmeticError, RuntimeError) as exc:  # bad data panics surface as exceptions
        raise OptimizationError(f"CLARABEL: {type(exc).__name__}: {exc}") from exc
    status = str(result.status)
    if status != "Solved":
        raise OptimizationError(f"CLARABEL: {status}")
    total_ms = (time.perf_counter() - start) * 1e3
    report = SolveReport("CLARABEL", cp.OPTIMAL, result.solve_time * 1e3, total_ms, ())
    return ConicSolution(np.asarray(result.x), float(result.obj_val) + conic.offset, report)
