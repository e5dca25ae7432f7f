"""Sign-up, log-in, log-out and password-reset flows through allauth."""

import re

import pytest
from django.core import mail
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_it_signs_up_and_lands_on_the_empty_dashboard(client, django_user_model):
    response = client.post(
        reverse("account_signup"),
        {"email": "carol@example.com", "password1": "a long secret 9!", "password2": "a long secret 9!"},
        follow=True,
    )
    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == reverse("portfolio_list")
    assert b"No holdings yet" in response.content
    user = django_user_model.objects.get(email="carol@example.com")
    assert user.password.startswith("md5$")  # tests use the fast hasher; production is Argon2


def test_it_refuses_a_mismatched_password(client, django_user_model):
    response = client.post(
        reverse("account_signup"),
        {"email": "dan@example.com", "password1": "a long secret 9!", "password2": "different 9!"},
    )
    assert response.status_code == 200
    assert not django_user_model.objects.filter(email="dan@example.com").exists()


def test_it_logs_in_by_email_and_out(client, alice):
    response = client.post(
        reverse("account_login"), {"login": "alice@example.com", "password": "correct horse battery"}
    )
    assert response.status_code == 302
    assert response.url == reverse("portfolio_list")
    assert client.get(reverse("portfolio_list")).status_code == 200
    client.post(reverse("account_logout"))
    assert client.get(reverse("portfolio_list")).status_code == 302


def test_it_refuses_a_wrong_password(client, alice):
    response = client.post(reverse("account_login"), {"login": "alice@example.com", "password": "nope"})
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


def test_it_resets_a_password_by_email(client, alice):
    client.post(reverse("account_reset_password"), {"email": "alice@example.com"})
    assert len(mail.outbox) == 1
    link = re.search(r"https?://[^/]+(/accounts/password/reset/key/\S+)", mail.outbox[0].body).group(1)
    response = client.get(link, follow=True)
    form_url = response.redirect_chain[-1][0] if response.redirect_chain else link
    response = client.post(form_url, {"password1": "brand new secret 7", "password2": "brand new secret 7"})
    assert response.status_code == 302
    assert client.login(username="alice", password="brand new secret 7")


def test_production_hasher_is_argon2():
    from advisor import settings as project_settings

    assert project_settings.PASSWORD_HASHERS[0].endswith("Argon2PasswordHasher")
