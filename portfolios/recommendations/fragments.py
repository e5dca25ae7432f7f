"""A done run's result section, rendered once and served from the shared cache after.

A done run never changes, so its rendered section (trades, exposures, risk, stress tests, thesis,
chart data) is cached under the run's id and finish time, the templates' version, the out-of-band
flag and the price warnings (which depend on today's date and the newest prices). A page then reads
one cache entry instead of parsing the result document and rendering a few thousand template nodes.
When Redis is down the cache answers as a miss (advisor/cache.py) and the section is rendered as
before, so the page never fails for want of the cache.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe

from portfolios.models import Portfolio, RebalanceRun
from portfolios.recommendations.selectors import result_display

SECTION_TEMPLATE = "portfolios/recommendations/partials/result_section.html"
OPTIONS_TEMPLATE = "portfolios/recommendations/partials/options_fields.html"
OPTION_FIELDS = ("profile", "cash_change_usd", "buy_only", "keep_tickers", "fractional", "max_turnover", "use_views",
                 "tax_budget", "max_funds", "min_trade_usd", "min_trade_fraction")
TIMEOUT_SECONDS = 7 * 24 * 3600  # immutable: kept a week, re-rendered on demand after
APP_DIR = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ResultFragment:
    html: SafeString
    value: float | None  # the portfolio value the run saw, for page headers


@lru_cache(maxsize=1)
def templates_version() -> str:
    """A digest of everything that shapes the section, so a deploy that changes it renders anew."""
    digest = hashlib.sha1(usedforsecurity=False)
    partials = sorted((Path(settings.BASE_DIR) / "templates/portfolios/recommendations/partials").glob("*.html"))
    for path in [*partials, APP_DIR / "templatetags/rec_format.py", APP_DIR / "recommendations/selectors.py"]:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _key(run: RebalanceRun, *, oob: bool, price_warnings: list[str]) -> str:
    warnings = hashlib.sha1("\n".join(price_warnings).encode(), usedforsecurity=False).hexdigest()[:12]
    finished = int(run.finished_at.timestamp() * 1_000_000) if run.finished_at else 0
    return f"result-section:{templates_version()}:{run.pk}:{finished}:{int(oob)}:{warnings}"


def _render(run: RebalanceRun | None, *, oob: bool, price_warnings: list[str]) -> ResultFragment:
    display = result_display(result=run.result) if run is not None and run.status == RebalanceRun.Status.DONE else None
    html = render_to_string(SECTION_TEMPLATE, {
        "run": run, "oob": oob, "display": display, "price_warnings": price_warnings,
    })
    return ResultFragment(html=mark_safe(html), value=display.value if display else None)  # noqa: S308


def result_fragment(*, run: RebalanceRun | None, oob: bool = False, price_warnings: list[str] | None = None
                    ) -> ResultFragment:
    """The rendered result section of `run` (None: an empty section); cached once the run is done."""
    price_warnings = list(price_warnings or [])
    if run is None or run.status != RebalanceRun.Status.DONE:
        return _render(run, oob=oob, price_warnings=price_warnings)
    key = _key(run, oob=oob, price_warnings=price_warnings)
    memo = run.__dict__.setdefault("_result_fragments", {})  # one lookup per run object and request
    if key in memo:
        return memo[key]
    cached = cache.get(key)
    if isinstance(cached, dict) and isinstance(cached.get("html"), str):
        fragment = ResultFragment(html=mark_safe(cached["html"]), value=cached.get("value"))  # noqa: S308
    else:
        fragment = _render(run, oob=oob, price_warnings=price_warnings)
        cache.set(key, {"html": str(fragment.html), "value": fragment.value}, TIMEOUT_SECONDS)
    memo[key] = fragment
    return fragment


def _options_key(portfolio: Portfolio) -> str:
    saved = "|".join(str(getattr(portfolio, name)) for name in OPTION_FIELDS)
    digest = hashlib.sha1(f"{saved}|{portfolio.updated_at}".encode(), usedforsecurity=False).hexdigest()[:16]
    return f"options-fields:{templates_version()}:{portfolio.pk}:{digest}"


def options_fields_html(*, form, portfolio: Portfolio, prefetched: dict | None = None) -> SafeString:
    """The options form's fields. Unbound, they show only the portfolio's saved options, so they are
    rendered once per version of those; a bound form (with the user's input and errors) never is cached."""
    if form.is_bound:
        return mark_safe(render_to_string(OPTIONS_TEMPLATE, {"form": form}))  # noqa: S308
    key = _options_key(portfolio)
    html = prefetched.get(key) if prefetched is not None else cache.get(key)
    if not isinstance(html, str):
        html = render_to_string(OPTIONS_TEMPLATE, {"form": form})
        cache.set(key, html, TIMEOUT_SECONDS)
    return mark_safe(html)  # noqa: S308


def page_fragments_prefetch(*, portfolio: Portfolio, run: RebalanceRun | None, price_warnings: list[str]) -> dict:
    """Fetch the portfolio page's cached fragments (options fields, result section) in one round trip.

    The result section lands in the run's memo; the returned dict goes in the context as `fragments`.
    """
    keys = [_options_key(portfolio)]
    result_key = None
    if run is not None and run.status == RebalanceRun.Status.DONE:
        result_key = _key(run, oob=False, price_warnings=list(price_warnings))
        keys.append(result_key)
    found = cache.get_many(keys)
    cached = found.get(result_key) if result_key else None
    if isinstance(cached, dict) and isinstance(cached.get("html"), str):
        memo = run.__dict__.setdefault("_result_fragments", {})
        memo[result_key] = ResultFragment(html=mark_safe(cached["html"]), value=cached.get("value"))  # noqa: S308
    return {key: found.get(key) for key in keys}
