"""Sign-up, log-in, log-out and password-reset flows through allauth."""

import re

import pytest
from django.core import mail
from django.urls import reverse

pytestmark = pytest.mark.django_db


SECRET = "a long secret 9!"


def sign_up(client, email: str):
    return client.post(reverse("account_signup"), {"email": email, "password1": SECRET, "password2": SECRET},
                       follow=True)


def link_in(message, path: str) -> str:
    return re.search(rf"https?://[^/]+({path}\S+)", message.body).group(1)


def page_text(response) -> str:
    """The page a person sees, without the per-request CSRF token."""
    return re.sub(r'"X-CSRFToken": "[^"]+"|name="csrfmiddlewaretoken" value="[^"]+"', "", response.content.decode())


def test_it_signs_up_verifies_the_email_and_lands_on_the_empty_dashboard(client, django_user_model):
    response = sign_up(client, "carol@example.com")
    assert response.redirect_chain[-1][0] == reverse("account_email_verification_sent")
    assert "_auth_user_id" not in client.session, "not signed in before the address is verified"
    user = django_user_model.objects.get(email="carol@example.com")
    assert user.password.startswith("md5$")  # tests use the fast hasher; production is Argon2
    [message] = mail.outbox
    assert message.to == ["carol@example.com"]
    link = link_in(message, "/accounts/confirm-email/")
    assert client.get(link).status_code == 200  # a page with a button: a mail scanner's GET confirms nothing
    response = client.post(link, follow=True)
    assert response.redirect_chain[-1][0] == reverse("portfolio_list")
    assert b"No holdings yet" in response.content
    assert user.emailaddress_set.get().verified


def test_sign_up_looks_the_same_whether_or_not_the_address_has_an_account(client, alice, django_user_model):
    from django.test import Client

    fresh, taken = sign_up(Client(), "newcomer@example.com"), sign_up(Client(), "alice@example.com")
    assert fresh.status_code == taken.status_code == 200
    assert fresh.redirect_chain == taken.redirect_chain
    assert page_text(fresh).replace("newcomer@", "alice@") == page_text(taken)
    assert b"already" not in taken.content
    assert django_user_model.objects.filter(email__iexact="alice@example.com").count() == 1
    # The owner of the taken address hears about it; nobody else learns anything.
    to_alice = [m for m in mail.outbox if m.to == ["alice@example.com"]]
    assert len(to_alice) == 1 and "already exists" in to_alice[0].body
    assert "/accounts/password/reset/" in to_alice[0].body


def test_password_reset_looks_the_same_whether_or_not_the_address_has_an_account(alice):
    from django.test import Client

    known = Client().post(reverse("account_reset_password"), {"email": "alice@example.com"}, follow=True)
    unknown = Client().post(reverse("account_reset_password"), {"email": "nobody@example.com"}, follow=True)
    assert known.status_code == unknown.status_code == 200
    assert known.redirect_chain == unknown.redirect_chain
    assert page_text(known).replace("alice@", "nobody@") == page_text(unknown)
    assert sorted(m.to[0] for m in mail.outbox) == ["alice@example.com", "nobody@example.com"]
    [to_nobody] = [m for m in mail.outbox if m.to == ["nobody@example.com"]]
    assert "/accounts/password/reset/key/" not in to_nobody.body


def test_an_unverified_account_cannot_sign_in_until_it_follows_the_link(client, django_user_model):
    sign_up(client, "dave@example.com")
    client.logout()
    mail.outbox.clear()
    response = client.post(reverse("account_login"), {"login": "dave@example.com", "password": SECRET})
    assert response.status_code == 302 and response.url == reverse("account_email_verification_sent")
    assert "_auth_user_id" not in client.session
    assert len(mail.outbox) == 1  # a fresh link


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


def test_the_make_run_demo_account_signs_in_with_its_printed_password(client, settings):
    import io

    from django.core.management import call_command

    settings.DEBUG = True
    out = io.StringIO()
    call_command("demo_account", stdout=out)
    password = re.search(r"password: (\S+)", out.getvalue()).group(1)
    response = client.post(reverse("account_login"), {"login": "demo@example.com", "password": password})
    assert response.status_code == 302 and response.url == reverse("portfolio_list")
    assert "Demo: tech-heavy" in client.get(reverse("portfolio_list")).content.decode()
