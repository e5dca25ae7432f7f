"""Settings for the rebalancing advisor: one file, every value from the environment.

Development defaults are safe and need nothing set. Bad values fail loudly at start
(`ImproperlyConfigured`), and production (`DJANGO_DEBUG=false`) refuses to start
without a secret key.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


# --- typed helpers -------------------------------------------------------------------------


def envbool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true or false)")


def envint(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}")
    return value


def envchoice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(name, "") or default
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} must be one of: {', '.join(choices)}")
    return value


def envlist(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def email_settings(url: str) -> dict[str, object]:
    """Turn EMAIL_URL (console://, locmem://, file:///path, smtp[s]://user:pass@host:port) into settings."""
    parsed = urlparse(url)
    scheme = parsed.scheme
    if scheme == "console":
        return {"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"}
    if scheme == "locmem":
        return {"EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend"}
    if scheme == "file":
        return {
            "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
            "EMAIL_FILE_PATH": parsed.path,
        }
    if scheme in {"smtp", "smtps", "submission"}:
        if not parsed.hostname:
            raise ImproperlyConfigured(f"EMAIL_URL={url!r} has no host")
        query = parse_qs(parsed.query)
        return {
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": parsed.hostname,
            "EMAIL_PORT": parsed.port or (465 if scheme == "smtps" else 587),
            "EMAIL_HOST_USER": unquote(parsed.username or ""),
            "EMAIL_HOST_PASSWORD": unquote(parsed.password or ""),
            "EMAIL_USE_SSL": scheme == "smtps",
            "EMAIL_USE_TLS": scheme != "smtps" and query.get("tls", ["true"])[0] != "false",
        }
    raise ImproperlyConfigured(
        f"EMAIL_URL={url!r}: scheme must be console, locmem, file, smtp, smtps or submission"
    )


# --- core ------------------------------------------------------------------------------------

DEBUG = envbool("DJANGO_DEBUG", True)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG=false")
    SECRET_KEY = "dev-insecure-key-only-for-local-development"  # noqa: S105
ALLOWED_HOSTS = envlist("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = envlist("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "allauth",
    "allauth.account",
    "django_celery_beat",
    "django_htmx",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "csp",
    "portfolios",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "advisor.middleware.PrivatePagesMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "advisor.urls"
WSGI_APPLICATION = "advisor.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portfolios.context_processors.market",
            ],
        },
    },
]

# --- database --------------------------------------------------------------------------------

DATABASE_URL = os.environ.get("DATABASE_URL", "") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
# Production keeps each process's connection open (checked before reuse) instead of opening one per
# request; development closes it after each request, as Django does by default.
DB_CONN_MAX_AGE = envint("DB_CONN_MAX_AGE", 0 if DEBUG else 600, minimum=0)
try:
    _db = dj_database_url.parse(DATABASE_URL, conn_max_age=DB_CONN_MAX_AGE, conn_health_checks=True)
except Exception as exc:  # dj_database_url raises several types
    raise ImproperlyConfigured(f"DATABASE_URL={DATABASE_URL!r} is not a database URL: {exc}") from None
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # A file-backed test database, so a Celery worker process can see what the tests wrote.
    _db.setdefault("TEST", {})["NAME"] = str(VAR_DIR / "test-db.sqlite3")
    _db.setdefault("OPTIONS", {}).update({"timeout": 30, "transaction_mode": "IMMEDIATE"})
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- auth ------------------------------------------------------------------------------------

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "portfolio_list"
ACCOUNT_LOGOUT_REDIRECT_URL = "landing"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
# Nobody can tell from sign-up or password reset whether an address has an account: both always answer
# "we sent you an email" (the owner of a taken address gets a note instead of a second account). That
# needs mandatory verification; confirming the link signs the new user in (same browser session).
ACCOUNT_PREVENT_ENUMERATION = True
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_LOGIN_ON_PASSWORD_RESET = False
ACCOUNT_RATE_LIMITS_ENABLED = envbool("ACCOUNT_RATE_LIMITS_ENABLED", True)
if not ACCOUNT_RATE_LIMITS_ENABLED:
    ACCOUNT_RATE_LIMITS = False
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Rebalance Advisor <noreply@localhost>")

EMAIL_URL = os.environ.get("EMAIL_URL", "") or "console://"
globals().update(email_settings(EMAIL_URL))
# The public address of the site, for links in e-mails sent by workers (no request to build them from).
SITE_URL = os.environ.get("SITE_URL", "") or "http://127.0.0.1:8000"
if not SITE_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured(f"SITE_URL={SITE_URL!r} must start with http:// or https://")

# --- i18n / static ---------------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "America/New_York"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", "") or BASE_DIR / "staticfiles")
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns when it is missing
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# --- cache / redis / celery ----------------------------------------------------------------

REDIS_URL = os.environ.get("REDIS_URL", "") or "redis://127.0.0.1:6379/0"
if urlparse(REDIS_URL).scheme not in {"redis", "rediss", "unix"}:
    raise ImproperlyConfigured(f"REDIS_URL={REDIS_URL!r} must start with redis://, rediss:// or unix://")

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "") or REDIS_URL
# A task whose worker died is redelivered after this many seconds (must exceed the hard time limit).
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
    "visibility_timeout": envint("CELERY_VISIBILITY_TIMEOUT", 600, minimum=1),
    # How often a worker sweeps for such tasks (kombu's defaults: every 10 s, scanning every 10th time).
    "unacked_restore_interval": envint("CELERY_UNACKED_RESTORE_INTERVAL", 10, minimum=1),
    "unacked_restore_throttle": envint("CELERY_UNACKED_RESTORE_THROTTLE", 10, minimum=1),
}
if CELERY_BROKER_URL.startswith("filesystem://"):
    # Embedded broker for `make run` without Redis: kombu's filesystem transport under var/.
    _queue_dir = VAR_DIR / "broker"
    for sub in ("queue", "processed", "control"):
        (_queue_dir / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir / "queue"),
        "data_folder_out": str(_queue_dir / "queue"),
        "processed_folder": str(_queue_dir / "processed"),
        "control_folder": str(_queue_dir / "control"),
        "store_processed": False,
    }
    CELERY_RESULT_BACKEND = None
else:
    CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND", "") or REDIS_URL
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_RESULT_EXPIRES = 3600
# 0 turns the soft limit off (only the hard limit then applies; its on_failure records the run as failed).
CELERY_TASK_SOFT_TIME_LIMIT = envint("CELERY_TASK_SOFT_TIME_LIMIT", 240, minimum=0) or None
CELERY_TASK_TIME_LIMIT = envint("CELERY_TASK_TIME_LIMIT", 300, minimum=1)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = envint("CELERY_WORKER_PREFETCH_MULTIPLIER", 1, minimum=1)
CELERY_TASK_ALWAYS_EAGER = False  # never eager: tasks always go through a real worker
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# Redis down must not hold a web request: connect and socket timeouts of BROKER_TIMEOUT_S (2 s) and no
# publish retry, so a send fails within ~2 s whether Redis refuses (at once) or hangs (measured: 2.0 s).
# A run that could not be queued stays pending, the page says so, and the sweep below queues it later.
BROKER_TIMEOUT_S = envint("BROKER_TIMEOUT_S", 2, minimum=1)
CELERY_BROKER_CONNECTION_TIMEOUT = BROKER_TIMEOUT_S
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 0}
if not CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS |= {
        "socket_connect_timeout": BROKER_TIMEOUT_S,
        "socket_timeout": BROKER_TIMEOUT_S,
        "retry_on_timeout": False,
    }
    CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = BROKER_TIMEOUT_S
    CELERY_REDIS_SOCKET_TIMEOUT = BROKER_TIMEOUT_S

# Rebalance runs (portfolios/recommendations/runner.py): a running run holds a lease its task renews;
# the sweep (beat, every RUN_SWEEP_SECONDS) re-queues pending runs that waited RUN_REQUEUE_AFTER_SECONDS
# and running runs whose lease lapsed, and fails a run after RUN_MAX_ATTEMPTS claims.
RUN_LEASE_SECONDS = envint("RUN_LEASE_SECONDS", 30, minimum=3)
RUN_SWEEP_SECONDS = envint("RUN_SWEEP_SECONDS", 30, minimum=1)
RUN_REQUEUE_AFTER_SECONDS = envint("RUN_REQUEUE_AFTER_SECONDS", 60, minimum=1)
RUN_MAX_ATTEMPTS = envint("RUN_MAX_ATTEMPTS", 4, minimum=1)
# Installed into django-celery-beat's tables by the DatabaseScheduler when beat starts (no admin step).
CELERY_BEAT_SCHEDULE = {
    "rebalance-runs-sweep": {
        "task": "portfolios.recommendations.tasks.rebalance_runs_sweep",
        "schedule": float(RUN_SWEEP_SECONDS),
        "options": {"expires": float(RUN_SWEEP_SECONDS)},
    },
}

# --- market data ---------------------------------------------------------------------------

MARKET_DATA_DIR = Path(os.environ.get("MARKET_DATA_DIR", BASE_DIR / "data" / "market"))
PRICE_SOURCE = envchoice("PRICE_SOURCE", "bundled", ("bundled", "yfinance", "csv"))
PRICE_CSV_PATH = os.environ.get("PRICE_CSV_PATH", "")
if PRICE_SOURCE == "csv" and not PRICE_CSV_PATH:
    raise ImproperlyConfigured("PRICE_SOURCE=csv needs PRICE_CSV_PATH (a wide CSV, plain or .gz)")
PRICE_STALE_TRADING_DAYS = envint("PRICE_STALE_TRADING_DAYS", 5, minimum=1)
# Tickers first seen in a user's upload that the provider may be asked to confirm, per user and hour
# (PRICE_SOURCE=yfinance; see portfolios/marketdata/onboarding.py). 0 = never ask.
TICKER_CONFIRMATIONS_PER_HOUR = envint("TICKER_CONFIRMATIONS_PER_HOUR", 20, minimum=0)

# --- holdings import -----------------------------------------------------------------------

IMPORT_MAX_BYTES = envint("IMPORT_MAX_BYTES", 2 * 1024 * 1024, minimum=1024)
IMPORT_MAX_ROWS = envint("IMPORT_MAX_ROWS", 5000, minimum=1)
DATA_UPLOAD_MAX_MEMORY_SIZE = IMPORT_MAX_BYTES + 512 * 1024

# --- REST API --------------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_THROTTLE_CLASSES": ["rest_framework.throttling.UserRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"user": os.environ.get("API_THROTTLE_USER", "") or "2000/hour"},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Rebalance Advisor API",
    "DESCRIPTION": "Portfolios, holdings import, rebalance runs and trade lists.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- security (production) -----------------------------------------------------------------

SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = envbool("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = envint("DJANGO_SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SECURE_REFERRER_POLICY = "same-origin"

# Content-Security-Policy (django-csp 4): scripts only from this site (no inline script anywhere:
# templates load static/js files). Styles allow inline because Swagger UI's page and htmx's
# indicator styles carry some; images may be data: URIs (Pico's icons, Swagger UI).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
# Browser features no page of ours uses.
PERMISSIONS_POLICY = (
    "accelerometer=(), autoplay=(), camera=(), display-capture=(), geolocation=(), gyroscope=(), "
    "magnetometer=(), microphone=(), midi=(), payment=(), usb=(), interest-cohort=()"
)

# --- cache -----------------------------------------------------------------------------------

# One Redis cache shared by every process (login rate limits, rendered result fragments, the
# worker heartbeat). Short socket timeouts and a circuit breaker (advisor/cache.py): with Redis
# down a call answers as a miss, so pages render without the cache instead of failing or hanging.
CACHE_URL = os.environ.get("CACHE_URL", "") or REDIS_URL
if urlparse(CACHE_URL).scheme not in {"redis", "rediss", "unix", "locmem"}:
    raise ImproperlyConfigured(f"CACHE_URL={CACHE_URL!r} must start with redis://, rediss://, unix:// or be locmem://")
CACHE_KEY_PREFIX = os.environ.get("CACHE_KEY_PREFIX", "") or "advisor"
_REDIS_CACHE = {
    "BACKEND": "advisor.cache.ResilientRedisCache",
    "LOCATION": CACHE_URL,
    "KEY_PREFIX": CACHE_KEY_PREFIX,
    "TIMEOUT": 300,
    "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5, "retry_on_timeout": False},
}
# Sessions are read from the cache and written through to the database: with Redis down they
# come from PostgreSQL as before.
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
if CACHE_URL == "locmem://":  # asked for (make run without Redis): one process's memory
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
elif DEBUG and not CACHE_URL.startswith("unix"):
    from advisor.cache import redis_answers

    if redis_answers(CACHE_URL):
        CACHES = {"default": _REDIS_CACHE}
    else:  # development without Redis: one process's memory (rate limits then hold per process only)
        import sys

        print(f"Redis at {CACHE_URL} does not answer: caching in process memory instead.", file=sys.stderr)
        CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
else:
    CACHES = {"default": _REDIS_CACHE}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "") or "INFO"},
    # ofxtools logs every element it converts at INFO.
    "loggers": {"django.db.backends": {"level": "WARNING"}, "ofxtools": {"level": "WARNING"}},
}
