"""`make run`: migrate SQLite under var/, load bundled market data, create the demo account,
then start the web server, a real Celery worker and Celery beat under honcho (Ctrl-C stops all).

Broker: REDIS_URL (default redis://127.0.0.1:6379/0). When Redis does not answer, an embedded
broker (kombu's filesystem transport under var/broker) is used instead, and this says so.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping())
    except Exception:
        return False


def manage(*args: str, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], check=True, env=env, cwd=ROOT)


def main() -> int:
    env = os.environ.copy()
    env.setdefault("PORT", "8000")
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    redis_url = env.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    if not env.get("CELERY_BROKER_URL"):
        if redis_answers(redis_url):
            print(f"Broker: Redis at {redis_url}")
        else:
            env["CELERY_BROKER_URL"] = "filesystem://"
            print(
                f"Broker: Redis at {redis_url} does not answer; using the embedded filesystem "
                "broker under var/broker (start Redis for production-like behaviour)."
            )
            env.setdefault("CACHE_URL", "locmem://")
            print("Cache: Redis does not answer; caching in each process's memory instead.")
    manage("migrate", "--noinput", env=env)
    manage("load_market_data", "--if-empty", env=env)
    manage("demo_account", env=env)
    print(f"Starting web on http://127.0.0.1:{env['PORT']}/ with a Celery worker and beat. Ctrl-C stops all.")
    try:
        return subprocess.call([str(BIN / "honcho"), "-f", str(ROOT / "Procfile.dev"), "start"], env=env, cwd=ROOT)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
