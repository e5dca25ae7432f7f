"""Scale benchmark: the drift check of N portfolios after one price refresh, on PostgreSQL.

    .venv/bin/python bench/drift.py [--portfolios 10000]

Sets up a scratch PostgreSQL database (`bench_drift`, dropped afterwards) and Redis db 13 (its own; the
recomputes the alerts queue are purged at the end), loads the bundled market data, creates the portfolios
as bench/recompute.py does (10 to 40 holdings, tech-heavy), gives half of them a suggestion they executed
(a done run whose post-trade weights are their current weights), then writes one new day of prices (every
ticker moves a little, NVDA jumps 40%) and times `drift_check_run(send=True)`: the check of every
portfolio, the DriftCheck rows, and each alert's recompute requested and queued (e-mails go to locmem).
The market-data cache is cleared first, as a refresh leaves it. Baseline in the same run: the same check
called one portfolio at a time, on a sample, extrapolated.
Goal: under 30 s for 10,000. Last line: `RESULT portfolios=<n> drift_s=<s> alerts=<a>`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from bench.scratch import database_drop, database_recreate  # noqa: E402  (after sys.path)

DB_NAME = "bench_drift"
REDIS_URL = "redis://127.0.0.1:6379/13"
GOAL_S = 30.0
BASELINE_SAMPLE = 20


def recreate_database() -> None:
    database_recreate(DB_NAME)


def drop_database() -> None:
    database_drop(DB_NAME)


def give_half_an_executed_plan(seed: int = 7) -> int:
    """A done run for every other portfolio whose post-trade weights are its current weights."""
    from collections import defaultdict

    from django.db.models import Sum

    from portfolios.marketdata.selectors import latest_prices
    from portfolios.models import Account, Holding, Portfolio, RebalanceRun

    rng = random.Random(seed)
    ids = [pk for pk in Portfolio.objects.order_by("id").values_list("id", flat=True) if rng.random() < 0.5]
    wanted = set(ids)
    shares: dict[int, dict[str, float]] = defaultdict(dict)
    for pk, ticker, total in (
        Holding.objects.values("account__portfolio_id", "security__ticker").annotate(total=Sum("shares"))
        .values_list("account__portfolio_id", "security__ticker", "total")
    ):
        if pk in wanted:
            shares[pk][ticker] = float(total)
    cash = dict(Account.objects.values("portfolio_id").annotate(c=Sum("cash_usd")).values_list("portfolio_id", "c"))
    prices = {t: p for t, (p, _) in latest_prices(tickers={t for s in shares.values() for t in s}).items()}
    runs = []
    now = dt.datetime.now(dt.UTC)
    for pk in ids:
        values = {t: n * prices[t] for t, n in shares[pk].items() if t in prices}
        total = sum(values.values()) + float(cash.get(pk) or 0)
        weights = {t: v / total for t, v in values.items()}
        weights["CASH"] = float(cash.get(pk) or 0) / total
        runs.append(RebalanceRun(portfolio_id=pk, status="done", profile="moderate", inputs={},
                                 result={"summary": "bench plan", "after": {"weights": weights}}, finished_at=now))
    RebalanceRun.objects.bulk_create(runs, batch_size=2000)
    return len(runs)


def one_price_refresh(seed: int = 11) -> int:
    """Write one new business day of closes: every priced ticker moves ~1%, NVDA jumps 40%."""
    import numpy as np

    from portfolios.marketdata.selectors import latest_prices
    from portfolios.models import Price, Security

    rng = np.random.default_rng(seed)
    ids = dict(Security.objects.filter(priced=True).values_list("ticker", "id"))
    last = latest_prices(tickers=ids)
    newest = max(d for _, d in last.values())
    day = newest + dt.timedelta(days=3 if newest.weekday() == 4 else 1)
    rows = []
    for ticker, (close, _) in last.items():
        move = 1.4 if ticker == "NVDA" else 1 + rng.normal(0, 0.01)
        rows.append(Price(security_id=ids[ticker], date=day, close=close * move))
    Price.objects.bulk_create(rows, batch_size=5000)
    Security.objects.filter(id__in=ids.values()).update(last_price_date=day)
    return len(rows)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--portfolios", type=int, default=10_000)
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()

    recreate_database()
    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "advisor.settings",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB_NAME}",
        "REDIS_URL": REDIS_URL,
        "EMAIL_URL": "locmem://",
        "LOG_LEVEL": "WARNING",
    })
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from portfolios.marketdata.services import market_data_load_bundled

    t = time.perf_counter()
    market_data_load_bundled()
    print(f"loaded bundled market data in {time.perf_counter() - t:.1f} s", flush=True)
    from recompute import make_portfolios

    t = time.perf_counter()
    make_portfolios(args.portfolios)
    plans = give_half_an_executed_plan()
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(f"created {args.portfolios} portfolios ({plans} with an executed plan) in {time.perf_counter() - t:.1f} s",
          flush=True)
    written = one_price_refresh()
    print(f"price refresh: {written} new closes", flush=True)

    from advisor.celery import app
    from portfolios.drift.services import drift_check_run
    from portfolios.models import DriftCheck, Portfolio, RebalanceRun

    sample = list(Portfolio.objects.order_by("?").values_list("id", flat=True)[:BASELINE_SAMPLE])
    drift_check_run(portfolio_ids=sample[:1])  # warm imports and the target builder
    t = time.perf_counter()
    for pk in sample:
        drift_check_run(portfolio_ids=[pk])
    per_one = (time.perf_counter() - t) / len(sample)
    DriftCheck.objects.all().delete()
    # The check reads the new prices from the database itself (market data is not cached per process).

    t0 = time.perf_counter()
    outcome = drift_check_run(send=True)
    drift_s = time.perf_counter() - t0
    n = len(outcome.checks)
    alerts = len(outcome.alerts)
    queued = RebalanceRun.objects.filter(status="pending").count()
    counts = {s: sum(1 for c in outcome.checks if c.status == s) for s in ("in_band", "drifted", "breaks_limit")}
    print(f"checked {n} portfolios in {drift_s:.1f} s ({n / drift_s:.0f}/s): {counts}; "
          f"{alerts} alerts, {queued} recomputes pending and queued")
    print(f"baseline: one portfolio per call {per_one * 1000:.0f} ms, i.e. {per_one * n:.0f} s for {n} "
          f"({per_one * n / drift_s:.0f}x slower)")
    print(f"goal (< {GOAL_S:.0f} s for 10,000): {'met' if drift_s < GOAL_S else 'MISSED'} at this size")
    app.control.purge()
    from django.db import connections

    connections.close_all()
    if not args.keep_db:
        drop_database()
    print(f"RESULT portfolios={n} drift_s={drift_s:.1f} alerts={alerts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
