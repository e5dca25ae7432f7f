"""Where a page's time goes, in one process with the production settings (no gunicorn, no load generator).

    .venv/bin/python bench/web_profile.py [--requests 300] [--profile page] [--keep-db]

Sets up the same data as bench/web.py (scratch PostgreSQL database `bench_web_profile`, Redis cache db
13 under its own key prefix), then calls the WSGI application directly, as gunicorn does, for
`/health/`, the portfolio list, the holdings page and the suggestions page: mean wall time per request,
the CPU each middleware adds (measured by timing the chain with and without it), and with
`--profile NAME` a cProfile of that page sorted by cumulative time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.scratch import database_drop, database_recreate  # noqa: E402  (after sys.path)

DB_NAME = "bench_web_profile"


def environ(path: str, cookie: str) -> dict:
    import io as _io

    return {
        "REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000", "HTTP_HOST": "127.0.0.1", "HTTP_X_FORWARDED_PROTO": "https",
        "HTTP_COOKIE": f"sessionid={cookie}", "REMOTE_ADDR": "127.0.0.1", "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.input": _io.BytesIO(b""), "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
        "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False, "wsgi.version": (1, 0),
    }


def call(app, path: str, cookie: str) -> tuple[str, bytes]:
    status = []
    body = b"".join(app(environ(path, cookie), lambda s, h, *a: status.append(s)))
    return status[0], body


def mean_ms(app, path: str, cookie: str, n: int, rounds: int = 5) -> tuple[float, float]:
    """(wall, CPU of this process) milliseconds per request: the mean over `n` requests, in the round of
    `n / rounds` requests that cost least (the machine is shared: the least disturbed round is the closest
    to the page's own cost)."""
    for _ in range(20):
        call(app, path, cookie)
    per_round = max(n // rounds, 1)
    best = (float("inf"), float("inf"))
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(per_round):
            call(app, path, cookie)
        spent = ((time.perf_counter() - wall) / per_round * 1000, (time.process_time() - cpu) / per_round * 1000)
        best = min(best, spent, key=lambda pair: pair[1])
    return best


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--profile", choices=["health", "list", "holdings", "page"])
    parser.add_argument("--sort", default="cumulative", help="cProfile order: cumulative, tottime...")
    parser.add_argument("--lines", type=int, default=70, help="lines of the profile to print")
    parser.add_argument("--middleware", action="store_true", help="time the chain without each middleware")
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()

    from tests.production import production_env

    static_root = Path(tempfile.mkdtemp(prefix="bench-web-profile-static-"))
    os.environ.update(production_env(
        database_url=f"postgres://postgres@127.0.0.1:5432/{DB_NAME}", redis_url="redis://127.0.0.1:6379/13",
        static_root=static_root, CACHE_KEY_PREFIX=f"bench-web-profile-{os.getpid()}",
    ))
    database_recreate(DB_NAME)
    try:
        import django

        django.setup()
        from django.conf import settings
        from django.core.management import call_command

        from bench.web import setup_data

        call_command("collectstatic", "--noinput", verbosity=0)

        cookie, portfolio_id = setup_data()
        from django.core.wsgi import get_wsgi_application

        pages = {"health": "/health/", "list": "/portfolios/", "holdings": f"/portfolios/{portfolio_id}/holdings/",
                 "page": f"/portfolios/{portfolio_id}/"}
        app = get_wsgi_application()
        for name, path in pages.items():
            status, body = call(app, path, cookie)
            assert status.startswith("200"), (path, status, body[:300])
            wall, cpu = mean_ms(app, path, cookie, args.requests)
            print(f"{name:9s} {path:28s} {wall:6.2f} ms/request, {cpu:6.2f} ms CPU ({len(body):,} bytes)", flush=True)
        if args.middleware:
            from django.core.handlers.wsgi import WSGIHandler

            full = settings.MIDDLEWARE
            base = mean_ms(app, pages["page"], cookie, args.requests)[1]
            for mw in full:
                settings.MIDDLEWARE = [m for m in full if m != mw]
                handler = WSGIHandler()
                status, _ = call(handler, pages["page"], cookie)
                if not status.startswith("200"):
                    print(f"  {mw}: the page needs it ({status})")
                    continue
                without = mean_ms(handler, pages["page"], cookie, args.requests)[1]
                print(f"  {mw:58s} {base - without:+6.2f} ms")
            settings.MIDDLEWARE = full
        if args.profile:
            profiler = cProfile.Profile(time.process_time)  # CPU: waits on the shared machine do not count
            profiler.enable()
            for _ in range(args.requests):
                call(app, pages[args.profile], cookie)
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(args.sort).print_stats(args.lines)
            print(out.getvalue())
    finally:
        shutil.rmtree(static_root, ignore_errors=True)
        if not args.keep_db:
            from django.db import connections

            connections.close_all()
            database_drop(DB_NAME)
    return 0


if __name__ == "__main__":
    sys.exit(main())
