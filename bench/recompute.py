"""Scale benchmark: recompute N synthetic portfolios after one price refresh, through real Celery
workers (2 processes) and the real Redis, on PostgreSQL.

    .venv/bin/python bench/recompute.py [--portfolios 10000] [--concurrency 2]

Sets up a scratch PostgreSQL database (`bench_recompute`, dropped afterwards; `BENCH_DB_NAME` overrides)
and Redis db 14 (`BENCH_REDIS_URL` overrides: it is flushed),
loads the bundled market data, creates the portfolios (10 to 40 holdings each, tech-heavy like the
users we serve), then times `recompute_after_price_refresh` over every ticker until no run is
pending or running. Goal on the 2-core machine: under 120 s for 10,000 (stretch: under 75 s).
Last line: `RESULT portfolios=<n> wall_s=<s> per_s=<r> failed=<f>`.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.scratch import database_drop, database_recreate  # noqa: E402  (after sys.path)

DB_NAME = os.environ.get("BENCH_DB_NAME", "bench_recompute")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
GOAL_PER_S = 10_000 / 120


def recreate_database() -> None:
    database_recreate(DB_NAME)


def drop_database() -> None:
    database_drop(DB_NAME)


def make_portfolios(n: int, seed: int = 42) -> None:
    from decimal import Decimal

    from django.contrib.auth import get_user_model

    from portfolios.models import Account, Holding, Portfolio, Security

    rng = random.Random(seed)
    stocks = list(Security.objects.filter(kind="stock", priced=True).values_list("id", "ticker"))
    etfs = list(Security.objects.filter(kind="etf", priced=True).values_list("id", "ticker"))
    tech = [s for s in stocks if s[1] in {"AAPL", "MSFT", "NVDA", "GOOGL", "AMZN", "META", "AVGO", "TSLA"}]
    user = get_user_model().objects.create_user(username="bench", email="bench@example.com", password=None)
    profiles = ["conservative", "moderate", "aggressive"]
    batch = 500
    for start in range(0, n, batch):
        size = min(batch, n - start)
        portfolios = Portfolio.objects.bulk_create(
            [Portfolio(owner=user, name=f"P{start + i}", profile=rng.choice(profiles)) for i in range(size)]
        )
        accounts = []
        for p in portfolios:
            accounts.append(Account(portfolio=p, name="Taxable", account_type="taxable",
                                    cash_usd=Decimal(rng.randint(0, 20000))))
            if rng.random() < 0.5:
                accounts.append(Account(portfolio=p, name="Roth IRA", account_type="roth_ira"))
        accounts = Account.objects.bulk_create(accounts)
        by_portfolio: dict[int, list] = {}
        for a in accounts:
            by_portfolio.setdefault(a.portfolio_id, []).append(a)
        holdings = []
        for p in portfolios:
            k = rng.randint(10, 40)
            picks = rng.sample(tech, min(len(tech), rng.randint(3, 6)))
            picks += rng.sample(stocks, max(0, k - len(picks) - 3)) + rng.sample(etfs, 3)
            for sec_id, _ in picks[:k]:
                holdings.append(Holding(
                    account=rng.choice(by_portfolio[p.id]), security_id=sec_id,
                    shares=Decimal(rng.randint(1, 300)), cost_basis_usd=Decimal(rng.randint(500, 40000)),
                ))
        Holding.objects.bulk_create(holdings)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--portfolios", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()

    recreate_database()
    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "advisor.settings",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB_NAME}",
        "REDIS_URL": REDIS_URL,
        "LOG_LEVEL": "WARNING",
    })
    import django

    django.setup()
    import redis
    from django.core.management import call_command

    redis.Redis.from_url(REDIS_URL).flushdb()
    call_command("migrate", verbosity=0)
    t = time.perf_counter()
    from portfolios.marketdata.services import market_data_load_bundled

    market_data_load_bundled()
    print(f"loaded bundled market data in {time.perf_counter() - t:.1f} s", flush=True)
    t = time.perf_counter()
    make_portfolios(args.portfolios)
    from django.db import connection

    with connection.cursor() as cursor:  # fresh planner statistics, as autovacuum keeps them in production
        cursor.execute("ANALYZE")
    print(f"created {args.portfolios} portfolios in {time.perf_counter() - t:.1f} s", flush=True)

    from portfolios.models import Holding, RebalanceRun, Security
    from portfolios.recommendations.services import recompute_after_price_refresh

    log = open(ROOT / "var" / "bench-recompute-worker.log", "wb")  # noqa: SIM115
    worker = subprocess.Popen(
        [str(Path(sys.executable).parent / "celery"), "-A", "advisor", "worker", "--loglevel=WARNING",
         f"--concurrency={args.concurrency}", "--without-gossip", "--without-mingle", "-n", "bench@%h"],
        cwd=ROOT, env=os.environ.copy(), stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        from advisor.celery import app

        while not app.control.ping(timeout=0.5):
            time.sleep(0.2)
        tickers = list(Security.objects.filter(holdings__isnull=False).values_list("ticker", flat=True).distinct())
        print(f"holdings: {Holding.objects.count()} over {len(tickers)} tickers; worker ready", flush=True)
        t0 = time.perf_counter()
        queued = recompute_after_price_refresh(tickers=tickers)
        last_report = t0
        while True:
            open_runs = RebalanceRun.objects.filter(status__in=["pending", "running"]).count()
            now = time.perf_counter()
            if open_runs == 0:
                break
            if now - last_report > 10:
                done = queued - open_runs
                print(f"  {now - t0:6.1f} s: {done}/{queued} done ({done / (now - t0):.1f}/s)", flush=True)
                last_report = now
            time.sleep(0.5)
        wall = time.perf_counter() - t0
    finally:
        worker.terminate()
        worker.wait(30)
        log.close()
    failed = RebalanceRun.objects.filter(status="failed").count()
    durations = sorted(RebalanceRun.objects.filter(status="done").values_list("duration_ms", flat=True))
    median = durations[len(durations) // 2] if durations else 0
    print(f"recomputed {queued} portfolios in {wall:.1f} s with {args.concurrency} worker processes: "
          f"{queued / wall:.1f} portfolios/s; median run {median} ms; failed {failed}")
    if failed:
        sample = RebalanceRun.objects.filter(status="failed").values_list("error", flat=True)[:3]
        print("failures, e.g.:", *sample, sep="\n  ")
    goal = "met" if queued / wall >= GOAL_PER_S else "MISSED"
    print(f"goal (< 120 s for 10,000, i.e. >= {GOAL_PER_S:.1f} portfolios/s): {goal} at this size "
          f"({args.portfolios}: {queued / wall:.1f}/s)")
    from django.db import connections

    connections.close_all()
    if not args.keep_db:
        drop_database()
    print(f"RESULT portfolios={queued} wall_s={wall:.1f} per_s={queued / wall:.1f} failed={failed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
