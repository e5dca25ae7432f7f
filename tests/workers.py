"""Start and stop a real Celery worker process against the test database and the test Redis."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
LOG_DIR = ROOT / "var" / "test-logs"


def database_url_for_worker() -> str:
    """The URL of the database the tests use right now (the test database, after setup)."""
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    return f"postgres://{auth}{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


class Worker:
    """A `celery -A advisor worker` subprocess. `concurrency` processes, prefork pool."""

    def __init__(
        self,
        *,
        concurrency: int = 1,
        name: str | None = None,
        extra_env: dict | None = None,
        queues: str = "celery",
    ):
        self.name = name or f"test-{uuid.uuid4().hex[:8]}"
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = LOG_DIR / f"{self.name}.log"
        env = os.environ.copy()
        env["DATABASE_URL"] = database_url_for_worker()
        env["DJANGO_SETTINGS_MODULE"] = "advisor.settings"
        env.update(extra_env or {})
        celery = str(Path(sys.executable).parent / "celery")
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [celery, "-A", "advisor", "worker", "--loglevel=INFO", f"--concurrency={concurrency}",
             "--pool=prefork", "--without-gossip", "--without-mingle", "--without-heartbeat",
             "-n", f"{self.name}@%h", "-Q", queues],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        from advisor.celery import app

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early; log: {self.log()}")
            replies = app.control.ping(timeout=0.5) or []
            if any(self.name in key for reply in replies for key in reply):
                return
            time.sleep(0.3)
        raise RuntimeError(f"worker not ready after {timeout}s; log: {self.log()}")

    def wait_idle(self, timeout: float = 60.0, queues: tuple[str, ...] = ("celery",)) -> None:
        """Wait until the queues are empty and this worker runs and holds nothing.

        A test that queues follow-up work (a price refresh fans out recomputes) must not end while
        the worker still writes: the flush after a transactional test would race it.
        """
        from advisor.celery import app

        destination = [f"{self.name}@{socket.gethostname()}"]
        inspect = app.control.inspect(destination=destination, timeout=1.0)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return
            waiting = self.queued(queues)
            busy = 0
            if not waiting:
                for reply in (inspect.active() or {}, inspect.reserved() or {}):
                    busy += sum(len(tasks) for tasks in reply.values())
            if not waiting and not busy:
                return
            time.sleep(0.2)
        raise RuntimeError(f"worker still busy after {timeout}s; log: {self.log()}")

    @staticmethod
    def queued(queues: tuple[str, ...]) -> int:
        """Messages waiting in the broker's queues (a queue nobody ever sent to counts as empty)."""
        from amqp.exceptions import ChannelError

        from advisor.celery import app

        total = 0
        with app.connection_for_read() as conn:
            for q in queues:
                with contextlib.suppress(ChannelError):
                    total += conn.default_channel.queue_declare(queue=q, passive=True).message_count
        return total

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool children), as a crash would."""
        import signal

        if self.proc.poll() is not None:
            return
        children = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True)
        for pid in children.stdout.split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        self.proc.kill()
        self.proc.wait(10)
        self._log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()
