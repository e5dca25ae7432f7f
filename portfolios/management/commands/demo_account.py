"""Create (in development only) the demo account, with a fresh random password printed."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

DEMO_EMAIL = "demo@example.com"


class Command(BaseCommand):
    help = "Create or reset the demo account (DJANGO_DEBUG=true only) and print its password."

    def handle(self, *args, **options):
        if not settings.DEBUG:
            raise CommandError("The demo account exists only in development (DJANGO_DEBUG=true).")
        from allauth.account.models import EmailAddress

        password = secrets.token_urlsafe(12)
        user_model = get_user_model()
        user, created = user_model.objects.get_or_create(
            username="demo", defaults={"email": DEMO_EMAIL}
        )
        user.email = DEMO_EMAIL
        user.set_password(password)
        user.save()
        EmailAddress.objects.update_or_create(
            user=user, email=DEMO_EMAIL, defaults={"verified": True, "primary": True}
        )
        verb = "Created" if created else "Reset"
        self.stdout.write(f"{verb} demo account: {DEMO_EMAIL} / password: {password}")
