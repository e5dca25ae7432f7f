"""Real headless Chromium: the Swagger UI renders the API from vendored assets only (no CDN)."""

import os
from urllib.parse import urlsplit

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.conftest import ARTIFACTS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _sign_in(page, live_server, user) -> None:
    client = Client()
    client.force_login(user)
    host = urlsplit(live_server.url).hostname
    page.context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "domain": host,
                               "path": "/"}])


def test_the_swagger_ui_renders_from_this_site_only(page, live_server, alice):
    _sign_in(page, live_server, alice)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    response = page.goto("/api/docs/")
    assert response.status == 200
    page.locator(".opblock-summary-path", has_text="/api/portfolios/{id}/import/").first.wait_for()
    assert page.locator(".opblock").count() >= 9
    page.screenshot(path=os.path.join(ARTIFACTS, "api-docs.png"), full_page=False)
    foreign = [url for url in requested if not url.startswith(live_server.url) and not url.startswith("data:")]
    assert not foreign, foreign
    assert any(url.endswith("/api/schema/") for url in requested)


def test_a_user_creates_a_token_from_the_user_menu_and_it_works(page, live_server, alice):
    _sign_in(page, live_server, alice)
    page.goto("/portfolios/")
    page.get_by_label("Account menu").click()
    page.get_by_role("link", name="API tokens").click()
    page.wait_for_url("**/settings/tokens/")
    page.get_by_test_id("create-token").click()
    key = page.get_by_test_id("token-key").inner_text().strip()
    assert key == Token.objects.get(user=alice).key
    page.screenshot(path=os.path.join(ARTIFACTS, "api-token-created.png"), full_page=True)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert api.get("/api/portfolios/").status_code == 200

    page.reload()
    assert page.get_by_test_id("token-key").count() == 0, "the key is shown once"
    page.get_by_test_id("revoke-token").click()
    page.get_by_test_id("no-token").wait_for()
    assert api.get("/api/portfolios/").status_code == 401
