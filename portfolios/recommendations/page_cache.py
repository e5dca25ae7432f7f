"""The suggestions page, rendered once per state of what it shows and served from the shared cache after.

Nearly every view of the page shows the same thing as the one before: the same done run, the same
options, holdings, executed trades and drift. So the whole page is rendered once and cached under a key
made of everything it is rendered from (`page_key`):

- the code's version: a digest of the templates, the Python code of the apps, the static files (their
  hashed names are in the page) and the pinned requirements, so a deploy never serves an old rendering;
- the signed-in user (id, names and e-mail, staff flag) and the portfolio's row (every field: the name,
  the options, the target and bands), so one user's page is never another's and an options change shows;
- versions of the accounts and lots, the executed plans and the drift checks (counts, the newest id,
  sums, links to runs), read with the portfolio's row in the same query (`portfolios_for_page`);
- every loaded field of the runs the page lists (status, start, finish, error, trade count...) and of
  the done run it shows, so a new run, or a run starting, finishing or failing, changes the key at once;
- the newest price date and today's date (the "prices are stale" and "newer prices exist" warnings).

What must differ between two views of the same state is filled in per request, never cached:
- the CSRF token: the page is rendered with a placeholder that each request replaces with its own
  session's token (`get_token`, which also sets the CSRF cookie when it is due);
- the run status region ("Computed 3 minutes ago", a run in progress, "the worker has not picked this
  up yet"): it depends on the clock, so `{% live_include %}` leaves a placeholder in the cached page and
  it is rendered for each request from the state the view read (a few dozen template nodes);
- messages ("Options saved..."): a request with messages to show is rendered in full and not cached.

With Redis down the cache answers as a miss (advisor/cache.py), so the page is rendered every time, as
before. Anything new the page shows must be covered by the key: add its version to `portfolios_for_page`
(the `page_*_version` annotations) or to `page_key`; tests/test_page_cache.py checks each kind of change.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import zlib
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.core.cache import cache
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.template import Context
from django.template.loader import get_template, render_to_string
from django.utils import timezone
from django.utils.autoreload import file_changed
from django.utils.crypto import salted_hmac

from portfolios.models import Portfolio
from portfolios.recommendations.selectors import PortfolioPageState

TIMEOUT_SECONDS = 3600
# Context key under which `{% live_include %}` collects the placeholders of a rendering for the cache.
HOLES = "page_cache_holes"
USER_FIELDS = ("pk", "username", "email", "first_name", "last_name", "is_staff", "is_superuser", "is_active")
CODE_GLOBS = (("templates", "**/*"), ("portfolios", "**/*.py"), ("advisor", "**/*.py"), ("static", "**/*"),
              (".", "requirements.txt"))


@receiver(file_changed, dispatch_uid="page_cache_code_version")
def _file_changed(sender, file_path, **kwargs) -> None:
    """`runserver` reloads templates without restarting when one changes: render pages anew then too."""
    from portfolios.recommendations.fragments import templates_version

    code_version.cache_clear()
    templates_version.cache_clear()


@lru_cache(maxsize=1)
def code_version() -> str:
    """A digest of everything a rendering depends on besides the data (read once per process)."""
    digest = hashlib.sha1(usedforsecurity=False)
    base = Path(settings.BASE_DIR)
    for folder, pattern in CODE_GLOBS:
        for path in sorted((base / folder).glob(pattern)):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(base)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@lru_cache(maxsize=1)
def _placeholder_prefix() -> str:
    """Placeholders no page content can carry on purpose: derived from the secret key, the same in every
    process that shares the cache."""
    return "pc-" + salted_hmac("page-cache-placeholder", "v1").hexdigest()[:24]


def csrf_placeholder() -> str:
    return _placeholder_prefix() + "-csrf"


def hole_placeholder(template_name: str) -> str:
    return f"<!--{_placeholder_prefix()}:{template_name}-->"


def _fields(obj, names) -> tuple:
    return tuple(getattr(obj, name, None) for name in names)


def _loaded(obj) -> tuple:
    """Every value the ORM loaded into `obj` (its fields and annotations), in a stable order."""
    return tuple(sorted((k, repr(v)) for k, v in obj.__dict__.items() if not k.startswith("_")))


def page_key(*, request: HttpRequest, portfolio: Portfolio, state: PortfolioPageState) -> str:
    """The cache key of the page as `request.user` sees `portfolio` in `state` (see the module's docstring)."""
    runs = list(state.history)
    if state.shown_run is not None and state.shown_run not in runs:  # an older done run beyond the history
        runs.append(state.shown_run)
    parts = (
        _fields(request.user, USER_FIELDS),
        _loaded(portfolio),
        tuple(_loaded(run) for run in runs),
        dt.date.today(), timezone.localdate(),
    )
    digest = hashlib.sha256(repr(parts).encode(), usedforsecurity=False).hexdigest()[:32]
    return f"page:{code_version()}:{request.user.pk}:{portfolio.pk}:{digest}"


def warm_up() -> None:
    """Do once, before the first request, what the first request would otherwise pay for (measured: 0.35 s
    of a worker's first page): the URL patterns (importing every view), the translation catalogue, the
    code's version and the templates, compiled into the cached loader. Called where the WSGI application
    is built (advisor/wsgi.py): with gunicorn's `preload_app` that is the master, so every worker, also one
    that replaces a recycled worker, starts with all of it in memory. No database or Redis here."""
    from django.urls import reverse
    from django.utils.translation import gettext

    from portfolios.recommendations.fragments import templates_version

    reverse("landing")
    gettext("Yes")
    code_version()
    templates_version()
    folder = Path(settings.BASE_DIR) / "templates"
    for path in sorted(folder.glob("**/*.html")):
        get_template(str(path.relative_to(folder)))


def _has_messages(request: HttpRequest) -> bool:
    return len(messages.get_messages(request)) > 0


def _fill(request: HttpRequest, html: str, holes: dict[str, str], live_context: dict) -> str:
    """The cached page with this request's CSRF token and its live regions. A live region sees the view's
    `live_context` plus `request`, `user` and `csrf_token` (not the other context processors' values)."""
    token = get_token(request)  # also marks the CSRF cookie to be set, as rendering `{% csrf_token %}` does
    if holes:
        context = Context(live_context | {"request": request, "user": request.user, "csrf_token": token})
        for marker, template_name in holes.items():
            html = html.replace(marker, get_template(template_name).template.render(context), 1)
    return html.replace(csrf_placeholder(), token)


def cached_page(request: HttpRequest, *, key: str, template_name: str, live_context: dict,
                full_context: Callable[[], dict]) -> HttpResponse:
    """The page `template_name` for `request`, from the cache under `key` when it is there.

    `live_context` is what the live regions (`{% live_include %}`) need, read for every request;
    `full_context()` is the rest of what the page needs, read only when the page is rendered.
    """
    if _has_messages(request):  # shown once, so never cached: rendered in full like any page
        return HttpResponse(render_to_string(template_name, live_context | full_context(), request))
    entry = cache.get(key)
    if isinstance(entry, dict) and isinstance(entry.get("html"), bytes) and isinstance(entry.get("holes"), dict):
        html, holes = zlib.decompress(entry["html"]).decode(), entry["holes"]
    else:
        holes = {}
        context = live_context | full_context() | {"csrf_token": csrf_placeholder(), HOLES: holes}
        html = render_to_string(template_name, context, request)
        cache.set(key, {"html": zlib.compress(html.encode(), 1), "holes": holes}, TIMEOUT_SECONDS)
    return HttpResponse(_fill(request, html, holes, live_context))
