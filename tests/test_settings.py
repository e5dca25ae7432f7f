"""Settings come from the environment, fail loudly on bad values, and production needs a secret."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PRICE_", "EMAIL_"))}
    full.update({"DJANGO_SETTINGS_MODULE": "advisor.settings", **env})
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=full, capture_output=True, text=True)


def test_production_refuses_to_start_without_a_secret_key():
    result = _run("import django; django.setup()", DJANGO_DEBUG="false")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr


def test_a_bad_boolean_fails_loudly():
    result = _run("import django; django.setup()", DJANGO_DEBUG="maybe")
    assert result.returncode != 0
    assert "DJANGO_DEBUG='maybe' is not a boolean" in result.stderr


def test_a_bad_price_source_fails_loudly():
    result = _run("import django; django.setup()", PRICE_SOURCE="bloomberg")
    assert "PRICE_SOURCE='bloomberg' must be one of" in result.stderr


def test_a_bad_email_url_fails_loudly():
    result = _run("import django; django.setup()", EMAIL_URL="pigeon://coop")
    assert "EMAIL_URL='pigeon://coop'" in result.stderr


def test_smtp_email_url_is_parsed():
    result = _run(
        "import django; django.setup(); from django.conf import settings as s;"
        "print(s.EMAIL_HOST, s.EMAIL_PORT, s.EMAIL_HOST_USER, s.EMAIL_USE_TLS)",
        EMAIL_URL="smtp://mailer:p%40ss@mail.example.com:2525",
    )
    assert result.stdout.split() == ["mail.example.com", "2525", "mailer", "True"], result.stderr


def test_deploy_check_passes_with_production_settings():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={
            **{k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"},
            "DJANGO_DEBUG": "false",
            "DJANGO_SECRET_KEY": "x" * 64 + "-Yz9!Qw",
            "DJANGO_ALLOWED_HOSTS": "advisor.example.com",
        },
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
