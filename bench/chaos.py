"""Chaos: recompute 200 portfolios while the worker is SIGKILLed and Redis is stopped at random moments.

    .venv/bin/python bench/chaos.py [--portfolios 200] [--events 20] [--seed 7]

Everything it breaks is its own: a scratch PostgreSQL database (`chaos_<pid>`, dropped afterwards),
a redis-server on a free loopback port without persistence (a stop loses every queued message), a
Celery worker (2 processes, in its own process group) and Celery beat (the DatabaseScheduler installs
the runs sweep by itself). The shared Redis and PostgreSQL servers are never touched beyond creating
and dropping the scratch database.

Four price "refreshes" (fan-outs over every portfolio) are spread over `--events` random events;
each event either SIGKILLs the worker's process group or kills Redis, at a random moment, for a
random 1-6 s, then restores it (as a supervisor would). Default production settings for leases,
the sweep and broker timeouts. Afterwards it waits (at most 3 minutes) and checks:
- stuck: runs still pending or running 180 s after the services came back (goal 0);
- lost: portfolios without a run for a refresh, or failed runs without a message (goal 0);
- duplicate: (portfolio, refresh) pairs with two done runs (goal 0);
- no holding changed.
Last line: `RESULT kills=<n> stuck=<s> lost=<l> duplicate=<d> max_recovery_s=<t>`.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
DB_NAME = f"chaos_{os.getpid()}"
RECOVERY_LIMIT_S = 180
REFRESHES = 4
LOG_DIR = ROOT / "var" / "chaos"


def database(action: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        if action == "create":
            conn.execute(f"CREATE DATABASE {DB_NAME}")


class Celery:
    """`celery -A advisor <worker|beat>` in its own process group, restartable, SIGKILLable as a whole."""

    def __init__(self, kind: str, env: dict[str, str]):
        self.kind, self.env, self.proc = kind, env, None
        self.log = open(LOG_DIR / f"{kind}-{os.getpid()}.log", "ab")  # noqa: SIM115

    def start(self) -> None:
        args = ["worker", "--concurrency=2", "--pool=prefork", "--without-gossip", "--without-mingle",
                "--loglevel=WARNING", "-n", f"chaos-{os.getpid()}@%h"] if self.kind == "worker" else \
               ["beat", "--loglevel=WARNING", f"--pidfile={LOG_DIR / f'beat-{os.getpid()}.pid'}"]
        self.proc = subprocess.Popen([str(Path(sys.executable).parent / "celery"), "-A", "advisor", *args],
                                     cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group (main process and pool children), as a crash would."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.alive:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.kill()
        self.log.close()


def holdings_digest() -> str:
    from portfolios.models import Holding

    rows = Holding.objects.order_by("id").values_list("id", "account_id", "security_id", "shares", "cost_basis_usd")
    return hashlib.sha256(repr(list(rows)).encode()).hexdigest()


def refresh(rounds: list[tuple[float, set[int]]]) -> None:
    """One price refresh: a fan-out over every portfolio (Redis may be down: the sweep queues later).

    Records which portfolios it covered: a pending run (new, or one still waiting that now also sees
    the new prices), or a run claimed since the refresh began.
    """
    from django.db.models import Q

    from portfolios.models import RebalanceRun, Security
    from portfolios.recommendations.services import recompute_after_price_refresh

    started = time.time()
    tickers = list(Security.objects.filter(holdings__isnull=False).values_list("ticker", flat=True).distinct())
    recompute_after_price_refresh(tickers=tickers)
    covered = set(RebalanceRun.objects.filter(Q(status="pending") | Q(started_at__gte=_aware(started)))
                  .values_list("portfolio_id", flat=True))
    rounds.append((started, covered))
    print(f"  refresh {len(rounds)}: {len(covered)} portfolios covered", flush=True)


def chaos(*, events: int, rng: random.Random, worker: Celery, redis, rounds: list) -> int:
    """`events` random outages, REFRESHES fan-outs spread among them. Returns how many outages."""
    at_refresh = {round(i * events / REFRESHES) for i in range(REFRESHES)}
    done = {"worker": 0, "redis": 0}
    for event in range(events):  # bounded: one outage per event
        if event in at_refresh:
            refresh(rounds)
        time.sleep(rng.uniform(0.2, 3.0))  # a random moment: before, during or after the computing
        target = rng.choice(("worker", "redis"))
        down_s = rng.uniform(1.0, 6.0)
        print(f"  event {event + 1}: {target} down {down_s:.1f} s", flush=True)
        if target == "worker":
            worker.kill()
        else:
            redis.crash()
        time.sleep(down_s)
        if target == "worker":
            worker.start()
        else:
            redis.start()
        done[target] += 1
    print(f"worker process group SIGKILLed {done['worker']} times, Redis killed {done['redis']} times", flush=True)
    return sum(done.values())


def wait_until_settled(back: float) -> tuple[float, int]:
    """Poll until no run is pending or running, for RECOVERY_LIMIT_S at most.

    Returns (seconds until settled, or the limit; runs still active then).
    """
    from portfolios.models import RebalanceRun

    active = RebalanceRun.objects.filter(status__in=("pending", "running"))
    last_report = 0.0
    while time.time() - back < RECOVERY_LIMIT_S:  # bounded
        count = active.count()
        if not count:
            return time.time() - back, 0
        if time.time() - last_report > 15:
            last_report = time.time()
            print(f"  {time.time() - back:5.0f} s after the services came back: {count} runs active", flush=True)
        time.sleep(0.5)
    return float(RECOVERY_LIMIT_S), active.count()


def verdict(rounds: list[tuple[float, set[int]]]) -> dict:
    """lost: portfolios a refresh did not cover, and failed runs without a message; duplicate:
    (portfolio, refresh) pairs with two done runs."""
    from django.db.models import Count

    from portfolios.models import Portfolio, RebalanceRun

    runs = RebalanceRun.objects.all()
    portfolios = set(Portfolio.objects.values_list("id", flat=True))
    lost = runs.filter(status="failed", error="").count()
    duplicate = 0
    ends = [start for start, _ in rounds[1:]] + [time.time() + 1]
    for (start, covered), end in zip(rounds, ends, strict=True):
        lost += len(portfolios - covered)
        window = runs.filter(created_at__gte=_aware(start), created_at__lt=_aware(end), status="done")
        duplicate += window.values("portfolio").annotate(n=Count("id")).filter(n__gt=1).count()
    return {
        "lost": lost, "duplicate": duplicate,
        "statuses": dict(runs.values_list("status").annotate(n=Count("id"))),
        "failed_messages": list(runs.filter(status="failed").values_list("error", flat=True).distinct()[:5]),
        "claimed_again": runs.filter(attempts__gt=1).count(),
        "max_attempts": max(runs.values_list("attempts", flat=True), default=0),
    }


def _aware(ts: float):
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, tz=dt.UTC)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--portfolios", type=int, default=200)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    LOG_DIR.mkdir(parents=True, exist_ok=True)

    from tests.private_services import PrivateRedis

    redis = PrivateRedis()
    database("create")
    env = os.environ.copy() | {
        "DJANGO_SETTINGS_MODULE": "advisor.settings",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB_NAME}",
        "REDIS_URL": redis.url(),
        "CELERY_BROKER_URL": redis.url(),
        "LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    worker, beat = Celery("worker", env), Celery("beat", env)
    try:
        import django

        django.setup()
        from django.core.management import call_command
        from recompute import make_portfolios

        from portfolios.marketdata.services import market_data_load_bundled

        call_command("migrate", verbosity=0)
        market_data_load_bundled()
        make_portfolios(args.portfolios)
        before = holdings_digest()
        print(f"{args.portfolios} portfolios on {DB_NAME}, Redis on port {redis.port}", flush=True)
        worker.start()
        beat.start()
        rounds: list[tuple[float, list[int]]] = []
        kills = chaos(events=args.events, rng=rng, worker=worker, redis=redis, rounds=rounds)
        back = time.time()
        print(f"services back; beat alive: {beat.alive}", flush=True)
        settled_s, stuck = wait_until_settled(back)
        result = verdict(rounds)
        holdings_changed = holdings_digest() != before
        print(f"runs by status: {result['statuses']}; failure messages: {result['failed_messages']}")
        print(f"runs a kill interrupted mid-computation and a later claim finished: {result['claimed_again']} "
              f"(most claims of one run: {result['max_attempts']})")
        print(f"holdings changed: {holdings_changed}; beat alive at the end: {beat.alive}")
        print(f"RESULT kills={kills} stuck={stuck} lost={result['lost']} duplicate={result['duplicate']} "
              f"max_recovery_s={settled_s:.1f}")
        return 0 if not (stuck or result["lost"] or result["duplicate"] or holdings_changed) else 1
    finally:
        worker.stop()
        beat.stop()
        redis.stop()
        from django.db import connections

        connections.close_all()
        database("drop")


if __name__ == "__main__":
    sys.exit(main())
