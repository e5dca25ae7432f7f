"""Optimizer benchmark on the bundled data (no Django): `.venv/bin/python bench/optimizer.py`.

For n = 20, 60 and 200 assets (one taxable-free account; holdings + menu funds), the same portfolios
are solved by
  1. our problem as in production: the compact conic form, Clarabel directly -> "resolve"
  2. the same model as a cvxpy problem built and compiled for every portfolio -> "rebuild"
  3. PyPortfolioOpt's EfficientFrontier per portfolio, same objective and limits -> "pypfopt"
and the solver's own time inside (1) is the floor. The full `engine.rebalance` pipeline (one
`MarketSnapshot` for every portfolio, rounding, explanations) is timed too, and a batch of 1,000 portfolios
(60 assets) runs on 2 processes with one snapshot each. Other processes may share the CPU: figures are medians.
The last line is machine-readable:
RESULT n60_ms=<resolve> pypfopt_n60_ms=<pypfopt> floor_n60_ms=<floor> batch_per_s=<batch>
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import time
import warnings
from pathlib import Path

import cvxpy as cp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import engine
from engine.fallback import CompiledProblem
from engine.market import MarketSnapshot
from engine.menu import default_menu
from engine.pipeline import problem_data
from engine.prepare import prepare
from engine.problem import solve_problem
from engine.risk import N_FACTORS
from engine.sample_data import load_bundled_market
from engine.types import AccountCash, MarketData, Options, Position, RebalanceRequest

SEED = 42
ACCOUNT = ("IRA", "traditional_ira")


def universe(market: MarketData, n: int) -> tuple[list[str], list[str]]:
    """(held stocks, menu funds) with len(held) + len(menu) == n; menu at most 45 funds."""
    menu = [t for t in default_menu(market.securities) if t in market.prices.columns][:45]
    menu = menu[: max(n // 4, min(45, n - 5))]
    stocks = [t for t, s in market.securities.items() if s.kind == "stock" and market.prices[t].notna().all()]
    rng = np.random.default_rng(SEED)
    held = sorted(rng.choice(stocks, size=n - len(menu), replace=False).tolist())
    return held, menu


def portfolios(market: MarketData, held: list[str], menu: list[str], count: int, seed: int) -> list[RebalanceRequest]:
    """`count` random portfolios over the same universe: random holdings (tech-heavy draws included)."""
    rng = np.random.default_rng(seed)
    last = market.prices.iloc[-1]
    views = engine.load_views()
    requests = []
    for _ in range(count):
        value = float(rng.uniform(50_000, 500_000))
        weights = rng.dirichlet(np.full(len(held), 0.5))
        positions = [
            Position(t, ACCOUNT[0], ACCOUNT[1], float(max(1, round(w * value / last[t]))), float(last[t]))
            for t, w in zip(held, weights, strict=True)
        ]
        cash = [AccountCash(ACCOUNT[0], ACCOUNT[1], float(rng.uniform(0, 0.05) * value))]
        options = Options(profile=str(rng.choice(["conservative", "moderate", "aggressive"])), max_turnover=1.0)
        requests.append(RebalanceRequest(positions, cash, menu, market, options, views))
    return requests


def _timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, (time.perf_counter() - start) * 1e3


def pypfopt_solve(data, cov: np.ndarray) -> np.ndarray:
    """The same problem through PyPortfolioOpt (fully invested, one account, no taxes)."""
    from pypfopt import EfficientFrontier

    x0 = data.x0[:, 0]
    n = len(x0)
    target = data.target
    total0 = float(x0.sum() + data.cash0[0])
    ef = EfficientFrontier(None, cov, weight_bounds=(0, 1), solver="CLARABEL")
    buy_ok = data.buy_max[:, 0] > 0
    sell_ok = data.sell_max[:, 0] > 0
    ef.add_constraint(lambda w: w[~buy_ok] <= x0[~buy_ok] / total0 + 1e-12)
    ef.add_constraint(lambda w: w[~sell_ok] >= x0[~sell_ok] / total0 - 1e-12)
    ef.add_constraint(lambda w: cp.quad_form(w, cov) <= data.vol_cap**2)
    limit_matrix, limit_rhs = data.dense_limits()
    ef.add_constraint(lambda w: limit_matrix @ w <= limit_rhs)
    ef.add_constraint(lambda w: cp.sum(cp.pos(w - x0)) <= data.buy_budget)
    ef.add_constraint(lambda w: cp.sum(cp.pos(x0 - w)) <= data.sell_budget)
    cost = data.trade_cost[:, 0]
    drag = data.holding_drag[:, 0]
    exposure, rhs = data.dense_gaps()

    def objective(w, **_: object):
        return (
            data.te_weight * cp.quad_form(w - target, cov)
            + data.exposure_weight * cp.sum_squares(exposure @ w - rhs)
            + data.weight_weight * cp.sum_squares(w - target)
            + cost @ cp.abs(w - x0)
            + drag @ w
        )

    weights = ef.convex_objective(objective)
    return np.array([weights[i] for i in range(n)]) if isinstance(weights, dict) else np.asarray(weights)


def bench_n(market: MarketData, n: int, count: int) -> dict[str, float]:
    held, menu = universe(market, n)
    requests = portfolios(market, held, menu, count, seed=SEED + n)
    snapshot = MarketSnapshot.of(market)
    datas = []
    for request in requests:  # pure-invested variant for the like-for-like comparison
        prep = prepare(request, snapshot)
        data = problem_data(prep)
        data.cash_max = np.zeros_like(data.cash_max)  # fully invested, as PyPortfolioOpt is
        data.relief_max = np.zeros_like(data.relief_max)
        data.cost_rate = np.zeros_like(data.cost_rate)  # costs stay in the objective; cash stays exact
        datas.append((prep, data))
    resolve, floor, rebuild, pyp, gaps = [], [], [], [], []
    for i, (prep, data) in enumerate(datas):
        shape = data.shape(N_FACTORS)
        solution, ms = _timed(solve_problem, data)
        resolve.append(ms)
        floor.append(solution.report.solve_ms)
        if i < max(3, count // 4):
            _, ms = _timed(lambda d, s=shape: CompiledProblem(s).solve(d), data)
            rebuild.append(ms)
            cov = prep.risk.covariance()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                w_pyp, ms = _timed(pypfopt_solve, data, cov)
            pyp.append(ms)
            gaps.append(float(np.abs(w_pyp - solution.w / solution.total).max()))
    full = []
    for request in requests:
        _, ms = _timed(lambda r: engine.rebalance(r, snapshot=snapshot), request)
        full.append(ms)
    return {
        "n": n,
        "resolve": statistics.median(resolve),
        "floor": statistics.median(floor),
        "rebuild": statistics.median(rebuild),
        "pypfopt": statistics.median(pyp),
        "full": statistics.median(full),
        "max_weight_gap": max(gaps),
    }


def _worker(args: tuple[int, int]) -> int:
    seed, count = args
    market = load_bundled_market(years=3)
    held, menu = universe(market, 60)
    snapshot = MarketSnapshot.of(market)
    requests = portfolios(market, held, menu, count, seed=seed)
    engine.rebalance(requests[0], snapshot=snapshot)  # warm: risk model, target
    start = time.perf_counter()
    for request in requests:
        engine.rebalance(request, snapshot=snapshot)
    return int((time.perf_counter() - start) * 1e6)


def bench_batch(total: int, processes: int) -> tuple[float, float]:
    per = total // processes
    ctx = mp.get_context("fork")
    start = time.perf_counter()
    with ctx.Pool(processes) as pool:
        inner = pool.map(_worker, [(SEED + 1000 + i, per) for i in range(processes)])
    wall = time.perf_counter() - start
    steady = max(inner) / 1e6
    return total / steady, total / wall


def evidence(market: MarketData) -> None:
    """The figures behind the profile limits (engine/profiles.py docstring)."""
    from engine.profiles import PROFILES
    from engine.risk import estimate_risk_model
    from engine.target import build_target

    returns = market.prices.pct_change(fill_method=None).iloc[1:]
    tickers = ["SPY", "RSP", "IWM", "XLF", "XLK", "QQQ", "BND", "VXUS", "NVDA", "AAPL"]
    vols = {t: float(returns[t].std() * np.sqrt(252)) for t in tickers}
    print("3-year realised volatility: " + ", ".join(f"{t} {v:.1%}" for t, v in vols.items()))
    for etf in ("SPY", "RSP"):
        sectors = market.etf_sectors[etf]
        print(f"{etf}: Information Technology {sectors['Information Technology']:.1%}, "
              f"Financials {sectors['Financials']:.1%}")
    for etf in ("SPY", "QQQ", "XLK"):
        name, weight = max(market.etf_holdings[etf].items(), key=lambda kv: kv[1])
        print(f"largest name in {etf}: {name} {weight:.1%}")
    menu = [t for t in default_menu(market.securities) if t in market.prices.columns]
    risk = estimate_risk_model(market.prices, menu, market.securities)
    index = {t: i for i, t in enumerate(menu)}
    for name, profile in PROFILES.items():
        target = build_target(profile=profile, views=engine.load_views(), menu=menu, market=market)
        w = np.zeros(len(menu))
        for t, x in target.weights.items():
            w[index[t]] = x
        print(f"target {name}: volatility {risk.volatility(w):.1%} (cap {profile.vol_cap:.0%}), "
              f"equity {profile.equity_share:.0%}, Financials {target.sectors['Financials']:.1%} of equity "
              f"(min {profile.min_financials:.0%}), small caps {target.size['small']:.1%} "
              f"(min {profile.min_small_cap:.0%})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--portfolios", type=int, default=60, help="portfolios per size")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--evidence", action="store_true", help="print the figures behind the profile limits")
    args = parser.parse_args()
    market = load_bundled_market(years=3)
    if args.evidence:
        evidence(market)
        return
    print(f"bundled market: {market.prices.shape[1]} tickers, as of {market.as_of}; CPU may be shared")
    print(f"{'n':>4} {'resolve ms':>11} {'floor ms':>9} {'rebuild ms':>11} {'pypfopt ms':>11} {'full ms':>8}"
          f" {'pypfopt/ours':>13} {'ours/floor':>11} {'max |dw|':>9}")
    rows = {}
    for n in (20, 60, 200):
        r = bench_n(market, n, args.portfolios if n < 200 else max(8, args.portfolios // 4))
        rows[n] = r
        print(f"{n:>4} {r['resolve']:>11.2f} {r['floor']:>9.2f} {r['rebuild']:>11.1f} {r['pypfopt']:>11.1f}"
              f" {r['full']:>8.1f} {r['pypfopt'] / r['resolve']:>12.1f}x {r['resolve'] / r['floor']:>10.2f}x"
              f" {r['max_weight_gap']:>9.1e}")
    steady, overall = bench_batch(args.batch, args.processes)
    print(f"batch: {args.batch} portfolios (60 assets, full rebalance pipeline) on {args.processes} processes: "
          f"{steady:.0f} portfolios/s steady ({overall:.0f}/s including start-up and compile)")
    r60 = rows[60]
    print(f"RESULT n60_ms={r60['resolve']:.2f} pypfopt_n60_ms={r60['pypfopt']:.2f} floor_n60_ms={r60['floor']:.2f} "
          f"batch_per_s={steady:.0f}")


if __name__ == "__main__":
    main()
