"""The settings page where a user creates and revokes their own API token."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods
from rest_framework.authtoken.models import Token

from portfolios.api.services import api_token_create, api_token_revoke

_NEW_KEY = "api_token_new_key"


@never_cache
@require_http_methods(["GET", "POST"])
def api_tokens(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "create":
            token = api_token_create(user=request.user)
            # Shown once, on the page this redirect leads to; never again after that.
            request.session[_NEW_KEY] = token.key
            messages.success(request, "New API token created.")
        elif action == "revoke":
            if api_token_revoke(user=request.user):
                messages.success(request, "API token revoked. Requests using it are now refused.")
            else:
                messages.info(request, "You had no API token.")
        else:
            messages.error(request, "Unknown action.")
        return redirect("api_tokens")
    new_key = request.session.pop(_NEW_KEY, None)
    token = Token.objects.filter(user=request.user).first()
    if token is not None and new_key != token.key:
        new_key = None
    return render(request, "portfolios/api/tokens.html", {"token": token, "new_key": new_key})
