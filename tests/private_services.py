"""Processes a test (or bench/chaos.py) starts for itself and may kill: a redis-server on a free port,
a gunicorn web server. Never the shared Redis (6379) or PostgreSQL; loopback only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOG_DIR = ROOT / "var" / "test-logs"
REDIS_SERVER = "/usr/bin/redis-server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, *, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited early with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class PrivateRedis:
    """A redis-server of our own on a free loopback port, without persistence (a restart loses every
    queued message, the worst case for "no run lost"). `crash()` SIGKILLs it, `start()` brings it back
    on the same port, `freeze()`/`thaw()` SIGSTOP/SIGCONT it (a Redis that accepts and never answers)."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="private-redis-")
        self.proc: subprocess.Popen | None = None
        self.start()

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir, "--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, proc=self.proc)

    @property
    def up(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def crash(self) -> None:
        if self.up:
            self.proc.kill()
            self.proc.wait(10)

    def freeze(self) -> None:
        if self.up:
            os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        if self.up:
            os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        self.thaw()
        self.crash()


class WebServer:
    """gunicorn serving the project on a free loopback port, with `env` on top of ours."""

    def __init__(self, *, env: dict[str, str], name: str = "web"):
        self.port = free_port()
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = LOG_DIR / f"{name}-{self.port}.log"
        full_env = os.environ.copy() | {"DJANGO_SETTINGS_MODULE": "advisor.settings"} | env
        gunicorn = str(Path(sys.executable).parent / "gunicorn")
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [gunicorn, "advisor.wsgi", "--bind", f"127.0.0.1:{self.port}", "--workers", "1", "--threads", "4",
             "--timeout", "60"],
            cwd=ROOT, env=full_env, stdout=self._log, stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port, timeout=60, proc=self.proc)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


@contextlib.contextmanager
def celery_app_on(broker_url: str) -> Iterator[None]:
    """Point this process's Celery app (publishing, the sweep's queue check) at another broker."""
    from advisor.celery import app

    def repoint(url: str) -> None:  # kombu keeps each URL's pools; drop only this app's references
        app._pool = None
        app.amqp._producer_pool = None
        app.conf.broker_url = url

    old = app.conf.broker_url
    repoint(broker_url)
    try:
        yield
    finally:
        repoint(old)
