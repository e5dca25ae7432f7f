"""Template tags for the cached result section (portfolios/recommendations/fragments.py)."""

from __future__ import annotations

from django import template
from django.utils.safestring import SafeString

from portfolios.recommendations.fragments import options_fields_html, result_fragment, templates_version

register = template.Library()


def _fragment(context: template.Context):
    return result_fragment(run=context.get("run"), oob=bool(context.get("oob")),
                           price_warnings=context.get("price_warnings") or [])


@register.simple_tag(takes_context=True)
def result_section(context: template.Context) -> SafeString:
    """The result section for the `run` in context (with `oob` and `price_warnings`)."""
    return _fragment(context).html


@register.simple_tag(takes_context=True)
def result_value(context: template.Context, run) -> float | None:
    """The portfolio value `run` saw; shares the cache entry (and its one lookup) with the section."""
    return result_fragment(run=run, price_warnings=context.get("price_warnings") or []).value


@register.simple_tag
def fragments_version() -> str:
    """The digest of the recommendation partials, so cached fragments change when a deploy changes them."""
    return templates_version()


@register.simple_tag(takes_context=True)
def options_fields(context: template.Context) -> SafeString:
    """The options form's fields, from the fragment cache when the form is unbound."""
    return options_fields_html(form=context["form"], portfolio=context["portfolio"],
                               prefetched=context.get("fragments"))
