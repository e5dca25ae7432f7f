"""`{% live_include %}`: a region of a cached page that is rendered anew for every request
(portfolios/recommendations/page_cache.py)."""

from __future__ import annotations

from django import template
from django.utils.safestring import SafeString, mark_safe

from portfolios.recommendations.page_cache import HOLES, hole_placeholder

register = template.Library()


@register.simple_tag(takes_context=True)
def live_include(context: template.Context, template_name: str) -> SafeString:
    """Like `{% include template_name %}`; in a rendering for the page cache, a placeholder instead,
    which each request fills with the template rendered from its own context."""
    holes = context.get(HOLES)
    if holes is not None:
        marker = hole_placeholder(template_name)
        holes[marker] = template_name
        return mark_safe(marker)  # noqa: S308 (our own marker)
    return mark_safe(context.template.engine.get_template(template_name).render(context))  # noqa: S308
