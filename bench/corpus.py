"""A corpus of realistic rebalance requests on the bundled market, and their result documents.

    .venv/bin/python bench/corpus.py --out /tmp/corpus-after.pickle [--count 600]
    .venv/bin/python bench/corpus.py --compare /tmp/corpus-before.pickle /tmp/corpus-after.pickle

Requests mix one to three accounts (taxable, IRA, Roth), 3 to 40 holdings (tech-heavy draws, some held
in two accounts, some with cost basis and purchase dates, some without), deposits and withdrawals,
every profile, buy-only, keep lists, fractional shares, turnover caps, large minimum trades and runs
without the views. Each document is the engine's result document plus the stress tests and the
3-year backtest, as the worker writes it. `--compare` reports the largest differences and fails when
any passes the stated tolerances (`TOLERANCES`). Used to hold a refactor to "the same advice".
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import pickle
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TECH = ["AAPL", "MSFT", "NVDA", "GOOGL", "AMZN", "META", "AVGO", "TSLA"]
ACCOUNTS = [("Taxable", "taxable"), ("IRA", "traditional_ira"), ("Roth", "roth_ira")]
# Stated tolerances for "the same advice": trades identical in (ticker, account, action) and shares
# within 1e-6; every other number within an absolute 1e-6 (weights, returns, USD amounts rounded to
# cents are compared within 0.011) and every string identical.
TOLERANCES = {"shares": 1e-6, "number": 1e-6, "usd": 0.011}


def _requests(count: int, seed: int, market: Any) -> list[Any]:
    import engine
    from engine.menu import default_menu
    from engine.types import AccountCash, Options, Position, RebalanceRequest

    rng = np.random.default_rng(seed)
    last = market.prices.ffill().iloc[-1]
    priced = [t for t in market.prices.columns if np.isfinite(last[t]) and last[t] > 0]
    stocks = [t for t in priced if market.securities.get(t) and market.securities[t].kind == "stock"]
    etfs = [t for t in priced if market.securities.get(t) and market.securities[t].kind == "etf"]
    menu = [t for t in default_menu(market.securities, market.etf_sectors) if t in priced]
    views = engine.load_views()
    out = []
    for i in range(count):
        n_accounts = int(rng.choice([1, 1, 2, 2, 3]))
        accounts = [ACCOUNTS[0]] + [ACCOUNTS[j] for j in rng.choice([1, 2], size=n_accounts - 1, replace=False)]
        k = int(rng.integers(3, 41))
        picks = list(rng.choice(TECH, size=min(k, int(rng.integers(2, 7))), replace=False))
        picks += [t for t in rng.choice(stocks, size=k, replace=False) if t not in picks][: max(0, k - len(picks) - 2)]
        picks += [t for t in rng.choice(etfs, size=2, replace=False) if t not in picks]
        value = float(rng.lognormal(math.log(150_000), 0.9))
        weights = rng.dirichlet(np.full(len(picks), 0.6))
        positions = []
        for ticker, w in zip(picks, weights, strict=True):
            name, kind = accounts[int(rng.integers(len(accounts)))]
            shares = float(max(1, round(w * value / last[ticker])))
            basis = None if rng.random() < 0.15 else float(shares * last[ticker] * rng.uniform(0.3, 1.4))
            acquired = None if rng.random() < 0.3 else market.as_of - dt.timedelta(days=int(rng.integers(20, 2500)))
            positions.append(Position(ticker, name, kind, shares, float(last[ticker]), cost_basis=basis,
                                      acquired=acquired, lot_id=f"{i}-{ticker}-{name}"))
            if len(accounts) > 1 and rng.random() < 0.1:  # the same ticker in a second account
                name2, kind2 = accounts[(accounts.index((name, kind)) + 1) % len(accounts)]
                positions.append(Position(ticker, name2, kind2, max(1.0, shares // 3), float(last[ticker]),
                                          cost_basis=None, lot_id=f"{i}-{ticker}-{name2}"))
        cash = [AccountCash(name, kind, float(rng.uniform(0, 0.08) * value)) for name, kind in accounts]
        roll = rng.random()
        options = Options(
            profile=str(rng.choice(["conservative", "moderate", "aggressive"])),
            cash_change=float(rng.choice([0.0, 0.0, rng.uniform(500, 30_000), -rng.uniform(500, 0.2 * value)])),
            buy_only=bool(roll < 0.08),
            keep=frozenset(rng.choice(picks, size=1).tolist()) if 0.08 <= roll < 0.16 else frozenset(),
            fractional=bool(rng.random() < 0.2),
            max_turnover=float(rng.choice([0.02, 0.05, 0.1])) if 0.16 <= roll < 0.26 else None,
            min_trade_usd=float(rng.choice([50.0, 50.0, 50.0, 500.0, 5.0])),
            use_views=bool(rng.random() > 0.1),
        )
        use_menu = menu if rng.random() > 0.05 else menu[:6]
        out.append(RebalanceRequest(positions, cash, list(use_menu), market, options,
                                    views if options.use_views else None))
    return out


def _document(request: Any, long_market: Any, scenarios: dict) -> dict[str, Any]:
    """The worker's document for `request` (engine result + stress tests + backtest)."""
    import engine
    from engine.scenarios import hypothetical_stress

    try:
        from engine.market import MarketSnapshot  # the refactored engine
    except ImportError:
        MarketSnapshot = None
    if MarketSnapshot is None:
        from engine.backtest import backtest
        from engine.scenarios import historical_stress

        result = engine.rebalance(request, cache=_CACHE)
        document = engine.result_to_document(result)
        prices = long_market.prices
        before_w, after_w = document["before"]["weights"], document["after"]["weights"]
        document["stress"] = historical_stress(
            before=before_w, after=after_w, prices=prices, episodes=scenarios["historical"]
        ) + hypothetical_stress(before=result.before, after=result.after, scenarios=scenarios["hypothetical"])
        document["backtest"] = backtest(before=before_w, after=after_w, prices=prices, years=3.0,
                                        rebalance="monthly", curve_every="monthly")
        return document
    from engine.backtest import backtest
    from engine.scenarios import historical_stress

    snap = _snapshot(long_market)
    result = engine.rebalance(request, snapshot=snap)
    document = engine.result_to_document(result)
    before_w, after_w = document["before"]["weights"], document["after"]["weights"]
    document["stress"] = historical_stress(
        before=before_w, after=after_w, history=snap.history, episodes=scenarios["historical"]
    ) + hypothetical_stress(before=result.before, after=result.after, scenarios=scenarios["hypothetical"])
    document["backtest"] = backtest(before=before_w, after=after_w, history=snap.history, years=3.0,
                                    rebalance="monthly", curve_every="monthly")
    return document


_CACHE: Any = None
_SNAPSHOT: Any = None


def _snapshot(long_market: Any) -> Any:
    global _SNAPSHOT
    if _SNAPSHOT is None:
        from engine.market import MarketSnapshot

        _SNAPSHOT = MarketSnapshot.build(long_market, risk_years=3.0)
    return _SNAPSHOT


def run(count: int, seed: int) -> tuple[list[dict[str, Any]], float]:
    global _CACHE
    import engine
    from engine.sample_data import load_bundled_market
    from engine.scenarios import load_scenarios

    if hasattr(engine, "ProblemCache"):
        _CACHE = engine.ProblemCache()
    long_market = load_bundled_market(years=7)
    scenarios = load_scenarios(ROOT / "data" / "scenarios.json")
    try:  # the refactored engine: requests read the snapshot's window
        import engine.market

        market = _snapshot(long_market).market
    except ImportError:
        market = load_bundled_market(years=3)
    requests = _requests(count, seed, market)
    documents = []
    start = time.perf_counter()
    for request in requests:
        try:
            documents.append(_document(request, long_market, scenarios))
        except Exception as exc:  # a refused request is part of the corpus too
            documents.append({"error": f"{type(exc).__name__}: {exc}"})
    return documents, time.perf_counter() - start


def _walk(a: Any, b: Any, path: str, worst: dict[str, tuple[float, str]], problems: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            problems.append(f"{path}: keys differ {sorted(set(a) ^ set(b))}")
        for key in set(a) & set(b):
            if key in ("timings_ms",):
                continue
            _walk(a[key], b[key], f"{path}.{key}", worst, problems)
    elif isinstance(a, list | tuple) and isinstance(b, list | tuple):
        if len(a) != len(b):
            problems.append(f"{path}: lengths {len(a)} != {len(b)}")
            return
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _walk(x, y, f"{path}[{i}]", worst, problems)
    elif isinstance(a, bool | str | None) or isinstance(b, bool | str | None):
        if a != b:
            problems.append(f"{path}: {a!r} != {b!r}")
    elif isinstance(a, int | float) and isinstance(b, int | float):
        kind = "shares" if path.endswith(".shares") else "usd" if path.rsplit(".", 1)[-1] in (
            "value", "est_costs", "est_taxes", "amount", "est_cost", "est_tax", "realized_gain") else "number"
        gap = abs(float(a) - float(b))
        if gap > worst.get(kind, (0.0, ""))[0]:
            worst[kind] = (gap, path)
    elif a != b:
        problems.append(f"{path}: {a!r} != {b!r}")


def compare(before_path: str, after_path: str) -> int:
    with open(before_path, "rb") as fh:
        before = pickle.load(fh)  # noqa: S301 (our own file)
    with open(after_path, "rb") as fh:
        after = pickle.load(fh)  # noqa: S301
    worst: dict[str, tuple[float, str]] = {}
    problems: list[str] = []
    for i, (a, b) in enumerate(zip(before["documents"], after["documents"], strict=True)):
        _walk(a, b, f"[{i}]", worst, problems)
    errors = sum("error" in d for d in after["documents"])
    print(f"{len(after['documents'])} documents ({errors} refused requests); "
          f"before {before['seconds']:.1f} s, after {after['seconds']:.1f} s")
    for kind, (gap, path) in sorted(worst.items()):
        print(f"largest {kind} difference {gap:.3g} (tolerance {TOLERANCES[kind]:g}) at {path}")
    for line in problems[:20]:
        print("DIFFERENT", line)
    over = [k for k, (gap, _) in worst.items() if gap > TOLERANCES[k]]
    ok = not problems and not over
    print(f"RESULT documents={len(after['documents'])} same_advice={'yes' if ok else 'no'} "
          f"differences={len(problems)} over_tolerance={','.join(over) or 'none'}")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=600)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out")
    parser.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"))
    args = parser.parse_args()
    if args.compare:
        return compare(*args.compare)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
    documents, seconds = run(args.count, args.seed)
    refused = [d["error"] for d in documents if "error" in d]
    example = f", e.g. {refused[0]}" if refused else ""
    print(f"{len(documents)} documents in {seconds:.1f} s ({len(refused)} refused{example})")
    if args.out:
        with open(args.out, "wb") as fh:
            pickle.dump({"documents": documents, "seconds": seconds}, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
