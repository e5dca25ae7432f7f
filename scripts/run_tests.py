"""`make test`: the static checks (ruff, mypy, `makemigrations --check`), then the whole pytest suite
against PostgreSQL and the real Redis. Any check that fails fails the run, before pytest starts.

- DATABASE_URL defaults to the local PostgreSQL `test` database; without PostgreSQL the suite
  falls back to SQLite and says so in one line.
- REDIS_URL defaults to redis://127.0.0.1:6379/15 (a database of its own); without Redis only the
  tests that need a broker are skipped, and this says so in one line.
- Browser tests need /usr/bin/chromium; without it they are skipped, with one line saying so.
- REQUIRE_SERVICES=1 (set by .ci/run) turns every one of those fallbacks into a failure.
Extra arguments go to pytest; pytest's summary is the last line printed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS = "redis://127.0.0.1:6379/15"
CHROMIUM = "/usr/bin/chromium"


def postgres_answers(url: str) -> bool:
    import psycopg

    try:
        dsn = url.replace("postgres://", "postgresql://", 1)
        with psycopg.connect(dsn, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except Exception:
        return False


def redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2).ping())
    except Exception:
        return False


def main() -> int:
    env = os.environ.copy()
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    require = env.get("REQUIRE_SERVICES", "") == "1"
    missing: list[str] = []

    db_url = env.get("DATABASE_URL") or DEFAULT_PG
    if db_url.startswith("postgres") and not postgres_answers(db_url):
        missing.append(f"PostgreSQL at {db_url}")
        print(f"PostgreSQL at {db_url} does not answer: running the tests on SQLite instead.")
        db_url = "sqlite:///" + str(ROOT / "var" / "db-test-main.sqlite3")
    env["DATABASE_URL"] = db_url

    redis_url = env.get("REDIS_URL") or DEFAULT_REDIS
    env["REDIS_URL"] = redis_url
    env.pop("CELERY_BROKER_URL", None)
    if redis_answers(redis_url):
        env["TEST_BROKER"] = "1"
    else:
        env["TEST_BROKER"] = "0"
        missing.append(f"Redis at {redis_url}")
        print(f"Redis at {redis_url} does not answer: skipping only the tests that need a broker.")

    if os.path.exists(CHROMIUM):
        env["TEST_BROWSER"] = "1"
    else:
        env["TEST_BROWSER"] = "0"
        missing.append(f"Chromium at {CHROMIUM}")
        print(f"No Chromium at {CHROMIUM} (apt-get install chromium): skipping the browser tests.")

    if require and missing:
        print("REQUIRE_SERVICES=1 but missing: " + "; ".join(missing), file=sys.stderr)
        return 2

    if not static_checks(env):
        return 1
    return subprocess.call([sys.executable, "-m", "pytest", *sys.argv[1:]], cwd=ROOT, env=env)


def static_checks(env: dict[str, str]) -> bool:
    """ruff (with the complexity rules on the engine and the services), mypy (engine and services, see
    pyproject.toml) and `makemigrations --check` (models and migrations agree); stops at the first failure."""
    ruff = shutil.which("ruff", path=env["PATH"]) or str(BIN / "ruff")
    checks = [
        ("ruff check --no-cache .", [ruff, "check", "--no-cache", "."]),
        ("mypy (engine, services, selectors)",
         [sys.executable, "-m", "mypy", "--no-incremental", "--cache-dir", os.devnull]),
        ("manage.py makemigrations --check --dry-run",
         [sys.executable, "manage.py", "makemigrations", "--check", "--dry-run", "--verbosity", "1"]),
    ]
    for title, command in checks:
        print(title, flush=True)
        if subprocess.call(command, cwd=ROOT, env=env) != 0:
            print(f"FAILED: {title}", file=sys.stderr)
            return False
    return True


if __name__ == "__main__":
    sys.exit(main())
