"""Real headless Chromium: sign up, follow the emailed link, land on the empty dashboard."""

import os

import pytest

from tests.conftest import ARTIFACTS, confirm_email_in_browser

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_it_signs_up_in_a_real_browser(page):
    page.goto("/")
    page.get_by_text("Create an account").click()
    page.get_by_label("Email:").fill("erin@example.com")
    page.get_by_label("Password:", exact=True).fill("a long secret 9!")
    page.get_by_label("Password (again):").fill("a long secret 9!")
    page.locator("form button[type=submit]").click()
    page.wait_for_url("**/accounts/confirm-email/")
    assert "Verify Your Email Address" in page.content()
    assert page.get_by_test_id("empty-dashboard").count() == 0, "not signed in before the link is followed"
    confirm_email_in_browser(page, "erin@example.com")
    page.wait_for_url("**/portfolios/")
    assert page.get_by_test_id("empty-dashboard").is_visible()
    assert "No holdings yet" in page.content()
    page.screenshot(path=os.path.join(ARTIFACTS, "signup-dashboard.png"), full_page=True)
