"""Response headers every page of ours carries (static files are served before this, by whitenoise)."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

PRIVATE = "private, no-store"


class PrivatePagesMiddleware:
    """`Cache-Control: private, no-store` and a Permissions-Policy on every response Django renders.

    Pages, exports and API answers carry portfolio data, and the sign-in pages carry tokens, so no
    shared or browser cache may keep any of them. A view that sets its own Cache-Control keeps it.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if "Cache-Control" not in response:
            response["Cache-Control"] = PRIVATE
        response.setdefault("Permissions-Policy", settings.PERMISSIONS_POLICY)
        return response
