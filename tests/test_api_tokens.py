"""The settings page where a user creates, replaces and revokes their own API token."""

import re

import pytest
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def _works(key: str) -> bool:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client.get("/api/portfolios/").status_code == 200


def test_the_page_is_at_settings_tokens_and_needs_login(client):
    assert reverse("api_tokens") == "/settings/tokens/"
    response = client.get("/settings/tokens/")
    assert response.status_code == 302
    assert response.url == "/accounts/login/?next=/settings/tokens/"


def test_the_user_menu_links_to_it(alice_client):
    response = alice_client.get(reverse("portfolio_list"))
    assert b'href="/settings/tokens/"' in response.content


def test_a_user_without_a_token_sees_the_create_button(alice_client):
    response = alice_client.get("/settings/tokens/")
    assert response.status_code == 200
    assert b'data-testid="no-token"' in response.content
    assert b'href="/api/docs/"' in response.content


def test_creating_shows_the_key_once_and_it_authenticates(alice_client, alice):
    response = alice_client.post("/settings/tokens/", {"action": "create"}, follow=True)
    key = Token.objects.get(user=alice).key
    html = response.content.decode()
    assert re.search(rf'data-testid="token-key">{key}<', html)
    assert f"Authorization: Token {key}" in html
    assert "no-store" in response["Cache-Control"]
    assert _works(key)
    again = alice_client.get("/settings/tokens/").content.decode()
    assert key not in again, "the full key is shown only once"
    assert f"<code>{key[:4]}…</code>" in again


def test_replacing_the_token_invalidates_the_old_one(alice_client, alice):
    alice_client.post("/settings/tokens/", {"action": "create"})
    old = Token.objects.get(user=alice).key
    alice_client.post("/settings/tokens/", {"action": "create"})
    new = Token.objects.get(user=alice).key
    assert new != old
    assert not _works(old)
    assert _works(new)


def test_revoking_deletes_the_token(alice_client, alice):
    alice_client.post("/settings/tokens/", {"action": "create"})
    key = Token.objects.get(user=alice).key
    response = alice_client.post("/settings/tokens/", {"action": "revoke"}, follow=True)
    assert b"API token revoked" in response.content
    assert not Token.objects.filter(user=alice).exists()
    assert not _works(key)


def test_revoking_touches_only_your_own_token(alice_client, alice, bob):
    bobs = Token.objects.create(user=bob)
    alice_client.post("/settings/tokens/", {"action": "revoke"})
    assert Token.objects.filter(pk=bobs.pk).exists()
    page = alice_client.get("/settings/tokens/").content.decode()
    assert 'data-testid="no-token"' in page


def test_the_page_never_shows_another_users_key(alice_client, bob):
    bobs = Token.objects.create(user=bob)
    assert bobs.key not in alice_client.get("/settings/tokens/").content.decode()


def test_posts_need_the_csrf_token(alice):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post("/settings/tokens/", {"action": "create"}).status_code == 403
    assert not Token.objects.filter(user=alice).exists()


def test_an_unknown_action_changes_nothing(alice_client, alice):
    response = alice_client.post("/settings/tokens/", {"action": "steal"}, follow=True)
    assert b"Unknown action" in response.content
    assert not Token.objects.filter(user=alice).exists()
