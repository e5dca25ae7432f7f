"""Revoke a user's API token whenever their password changes, whichever way it changes.

One hook covers every path: allauth's change and reset forms, Django's admin "change password"
form, `manage.py changepassword`, a script's `set_password()`. `set_password` leaves the new raw
password in `_password` until `save()` has run (Django uses it for the validators' `password_changed`),
and the `post_save` signal fires inside that `save()`; a hash upgrade at log-in clears it first, so
it revokes nothing.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models.signals import post_save
from django.dispatch import receiver

from portfolios.api.services import api_token_revoke


@receiver(post_save, sender=get_user_model(), dispatch_uid="api_token_revoke_on_password_change")
def _password_changed(sender, instance, created: bool, **kwargs) -> None:
    if not created and getattr(instance, "_password", None) is not None:
        api_token_revoke(user=instance)
