"""Benchmark: load the whole bundled snapshot (~1 million prices) into PostgreSQL and into SQLite.

`.venv/bin/python bench/market_data.py` just works: for each backend it starts a fresh child
interpreter that configures Django itself on a scratch database (PostgreSQL: a database created
with psycopg and dropped afterwards; SQLite: a temporary file), migrates it, and times
`market_data_load_bundled` (first load, then a reload that finds nothing to change) and
`market_data_for` (cold, then warm). Peak memory is the child's maximum resident set size.
Goal on a 2-core machine: under 20 s and under 500 MB per backend.

Options: --only pg|sqlite, --pg-url postgres://user@host:port/postgres (the server to create the
scratch database on; default BENCH_PG_URL or postgres://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent
GOAL_S, GOAL_MB = 20.0, 500.0


def child() -> None:
    """Runs inside the child process: DATABASE_URL names the scratch database."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "advisor.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from portfolios.marketdata.selectors import market_data_for
    from portfolios.marketdata.services import market_data_load_bundled
    from portfolios.models import Price, Security

    call_command("migrate", verbosity=0, interactive=False)
    baseline_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    summary = market_data_load_bundled()
    load_s = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    started = time.perf_counter()
    again = market_data_load_bundled()
    reload_s = time.perf_counter() - started

    import engine.types  # noqa: F401  (imports cvxpy; a worker has it loaded already)

    tickers = list(Security.objects.order_by("?").values_list("ticker", flat=True)[:30])
    started = time.perf_counter()
    market_data_for(tickers=tickers)
    cold_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    for _ in range(200):
        market_data_for(tickers=tickers)
    warm_ms = (time.perf_counter() - started) / 200 * 1000
    print(json.dumps({
        "rows": Price.objects.count(), "written": summary.prices_written, "rewritten": again.prices_written,
        "load_s": load_s, "reload_s": reload_s, "baseline_mb": baseline_mb,
        "peak_mb": max(peak_mb, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "load_peak_mb": peak_mb, "market_data_for_cold_ms": cold_ms, "market_data_for_warm_ms": warm_ms,
    }))


def run_child(database_url: str) -> dict:
    env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "advisor.settings",
           "LOG_LEVEL": "WARNING"}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--child"], env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"benchmark child failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["total_s"] = time.perf_counter() - started
    return result


def bench_postgres(server_url: str) -> dict:
    import psycopg

    name = f"bench_market_{os.getpid()}"
    parsed = urlparse(server_url)
    admin_dsn = urlunparse(parsed._replace(scheme="postgresql"))
    with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        return run_child(urlunparse(parsed._replace(scheme="postgres", path=f"/{name}")))
    finally:
        with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def bench_sqlite() -> dict:
    with tempfile.TemporaryDirectory(prefix="bench_market_") as folder:
        return run_child(f"sqlite:///{Path(folder) / 'bench.sqlite3'}")


def report(name: str, r: dict) -> str:
    ok = "OK" if r["load_s"] < GOAL_S and r["peak_mb"] < GOAL_MB else "OVER GOAL"
    return (
        f"{name:<10} {r['rows']:>9,} rows  load {r['load_s']:6.1f} s  reload {r['reload_s']:5.1f} s "
        f"(rewrote {r['rewritten']})  peak RSS {r['peak_mb']:6.0f} MB (baseline {r['baseline_mb']:.0f} MB)  "
        f"market_data_for(30 tickers) cold {r['market_data_for_cold_ms']:.0f} ms, "
        f"warm {r['market_data_for_warm_ms']:.2f} ms  [{ok}]"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--only", choices=["pg", "sqlite"])
    parser.add_argument(
        "--pg-url", default=os.environ.get("BENCH_PG_URL") or "postgres://postgres@127.0.0.1:5432/postgres"
    )
    args = parser.parse_args()
    if args.child:
        child()
        return 0
    print(f"Loading the bundled snapshot ({os.cpu_count()} CPUs; goal < {GOAL_S:.0f} s and < {GOAL_MB:.0f} MB)")
    if args.only in (None, "pg"):
        print(report("PostgreSQL", bench_postgres(args.pg_url)), flush=True)
    if args.only in (None, "sqlite"):
        print(report("SQLite", bench_sqlite()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
