"""The production stack as the README deploys it: collectstatic, then the Procfile's `web` line.

Shared by the production test (tests/test_production.py) and the web benchmark (bench/web.py).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SECRET_KEY = "production-test-" + "k" * 48 + "-Yz9!Qw"


def procfile_command(name: str = "web") -> str:
    """The command line the Procfile gives process `name`, exactly as written there."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        key, sep, command = line.partition(":")
        if sep and key.strip() == name:
            return command.strip()
    raise LookupError(f"Procfile has no {name!r} process")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def production_env(*, database_url: str, redis_url: str, static_root: Path, **extra: str) -> dict[str, str]:
    """The environment the README's deployment section lists, for processes on this machine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PRICE_", "EMAIL_", "CACHE_"))}
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    env.update({
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        "DJANGO_SETTINGS_MODULE": "advisor.settings",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": SECRET_KEY,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "STATIC_ROOT": str(static_root),
        "PRICE_SOURCE": "bundled",
        "EMAIL_URL": "locmem://",
        "WEB_HOST": "127.0.0.1",  # the Procfile binds all interfaces by default; tests stay on loopback
    })
    env.update(extra)
    return env


def collectstatic(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )


def get(port: int, path: str, *, headers: dict[str, str] | None = None, timeout: float = 10.0):
    """One plain HTTP GET to 127.0.0.1:port as if through an HTTPS proxy; returns (status, headers, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"X-Forwarded-Proto": "https", **(headers or {})})
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


@contextlib.contextmanager
def procfile_web(env: dict[str, str], *, log_path: Path, port: int | None = None, ready_timeout: float = 60.0
                 ) -> Iterator[int]:
    """Start the Procfile's `web` command through the shell, as a platform would; yield its port.

    Waits until /health/ answers, and on the way out stops the whole process group it started.
    """
    with procfile_web_process(env, log_path=log_path, port=port, ready_timeout=ready_timeout) as (port, _):
        yield port


@contextlib.contextmanager
def procfile_web_process(env: dict[str, str], *, log_path: Path, port: int | None = None,
                         ready_timeout: float = 60.0) -> Iterator[tuple[int, subprocess.Popen]]:
    """`procfile_web`, yielding (port, the gunicorn master process: the shell execs it)."""
    port = port or free_port()
    env = {**env, "PORT": str(port)}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            ["bash", "-c", "exec " + procfile_command("web")],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited ({proc.returncode}):\n{log_path.read_text()[-3000:]}")
            try:
                status, _, _ = get(port, "/health/", timeout=2)
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn not ready after {ready_timeout}s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield port, proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def portfolio_with_done_run(*, owner, tickers: list[str], name: str = "Production check"):
    """A portfolio holding `tickers` (one taxable account, some cash) and a done run computed by the
    real engine in this process, stored as the runner stores it. Returns (portfolio, run)."""
    from decimal import Decimal

    from django.utils import timezone

    from portfolios.models import Account, Holding, Portfolio, RebalanceRun, Security
    from portfolios.recommendations.engine_feed import portfolio_document
    from portfolios.recommendations.services import run_inputs_for

    portfolio = Portfolio.objects.create(owner=owner, name=name, profile="moderate")
    account = Account.objects.create(portfolio=portfolio, name="Brokerage", account_type="taxable",
                                     cash_usd=Decimal(5000))
    securities = {s.ticker: s for s in Security.objects.filter(ticker__in=tickers)}
    for i, ticker in enumerate(tickers):
        security = securities.get(ticker) or Security.objects.create(ticker=ticker)
        Holding.objects.create(account=account, security=security, shares=Decimal(10 + 7 * i),
                               cost_basis_usd=Decimal(1000 + 150 * i))
    inputs = run_inputs_for(portfolio)
    started = timezone.now()
    document = portfolio_document(portfolio_id=portfolio.pk, inputs=inputs)
    run = RebalanceRun.objects.create(
        portfolio=portfolio, status=RebalanceRun.Status.DONE, trigger=RebalanceRun.Trigger.MANUAL,
        profile=portfolio.profile, inputs=inputs, result=document, prices_as_of=document.get("as_of"),
        started_at=started, finished_at=timezone.now(), duration_ms=1,
    )
    return portfolio, run
