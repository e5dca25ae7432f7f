"""An API token dies with the password: change, reset, the admin and scripts all revoke it; a log-in does not."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.urls import reverse
from rest_framework.authtoken.models import Token

from tests.conftest import PASSWORD, verified_user

pytestmark = pytest.mark.django_db
NEW = "brand new secret 7"


@pytest.fixture
def tokens(alice, bob) -> dict[str, str]:
    return {u.username: Token.objects.create(user=u).key for u in (alice, bob)}


def alive() -> set[str]:
    return set(Token.objects.values_list("user__username", flat=True))


def test_changing_the_password_revokes_only_your_token(alice_client, tokens):
    response = alice_client.post(reverse("account_change_password"),
                                 {"oldpassword": PASSWORD, "password1": NEW, "password2": NEW})
    assert response.status_code == 302
    assert alive() == {"bob"}


def test_a_failed_change_keeps_the_token(alice_client, tokens):
    alice_client.post(reverse("account_change_password"), {"oldpassword": "wrong", "password1": NEW, "password2": NEW})
    assert alive() == {"alice", "bob"}


def test_resetting_the_password_by_email_revokes_the_token(client, tokens):
    client.post(reverse("account_reset_password"), {"email": "alice@example.com"})
    link = re.search(r"https?://[^/]+(/accounts/password/reset/key/\S+)", mail.outbox[0].body).group(1)
    form_url = client.get(link, follow=True).redirect_chain[-1][0]
    assert alive() == {"alice", "bob"}, "asking for a reset changes nothing yet"
    assert client.post(form_url, {"password1": NEW, "password2": NEW}).status_code == 302
    assert alive() == {"bob"}


def test_the_admin_changing_a_password_revokes_the_token(client, tokens, django_user_model):
    admin = verified_user("root", "root@example.com")
    admin.is_staff = admin.is_superuser = True
    admin.save()
    client.force_login(admin)
    alice = django_user_model.objects.get(username="alice")
    response = client.post(f"/admin/auth/user/{alice.pk}/password/", {"password1": NEW, "password2": NEW})
    assert response.status_code == 302, response.content[:2000]
    assert alive() == {"bob"}


def test_a_script_setting_the_password_revokes_the_token(tokens, django_user_model):
    alice = django_user_model.objects.get(username="alice")
    alice.set_password(NEW)
    alice.save()
    assert alive() == {"bob"}


def test_saving_a_user_without_a_new_password_keeps_the_token(tokens, django_user_model):
    alice = django_user_model.objects.get(username="alice")
    alice.first_name = "Alice"
    alice.save()
    assert alive() == {"alice", "bob"}


def test_logging_in_keeps_the_token_even_when_the_hash_is_upgraded(client, tokens, settings, django_user_model):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.ScryptPasswordHasher",
                                 "django.contrib.auth.hashers.MD5PasswordHasher"]
    response = client.post(reverse("account_login"), {"login": "alice@example.com", "password": PASSWORD})
    assert response.status_code == 302 and response.url == reverse("portfolio_list")
    assert django_user_model.objects.get(username="alice").password.startswith("scrypt$"), "the hash was upgraded"
    assert alive() == {"alice", "bob"}


def test_the_tokens_page_says_a_password_change_revokes_the_token(alice_client):
    html = alice_client.get("/settings/tokens/").content.decode()
    note = re.search(r'data-testid="token-password-note">([^<]+)', html)
    assert note and "password revokes your token" in " ".join(note.group(1).split())
