"""Drift e-mails: the alert for one portfolio, the weekly digest, and the signed unsubscribe link.

Sent only to the owner's verified address (allauth), in plain text and HTML, with a one-click
unsubscribe (a signed token naming the user; no sign-in, RFC 8058 List-Unsubscribe-Post too).
"""

from __future__ import annotations

import datetime as dt

from allauth.account.models import EmailAddress
from django.conf import settings
from django.core import signing
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from portfolios.models import DriftAlertSetting, DriftCheck, RebalanceRun

UNSUBSCRIBE_SALT = "drift-unsubscribe"
DIGEST_EVERY = dt.timedelta(days=7)


def unsubscribe_token(*, user_id: int) -> str:
    return signing.dumps({"u": user_id}, salt=UNSUBSCRIBE_SALT)


def unsubscribe_user_id(token: str) -> int | None:
    """The user a token names, or None when it was not signed by us."""
    try:
        data = signing.loads(token, salt=UNSUBSCRIBE_SALT)
    except signing.BadSignature:
        return None
    user_id = data.get("u") if isinstance(data, dict) else None
    return user_id if isinstance(user_id, int) else None


def unsubscribe(*, token: str) -> bool:
    """Turn drift e-mails off for the user the token names. Returns False for a bad token."""
    user_id = unsubscribe_user_id(token)
    if user_id is None:
        return False
    from django.contrib.auth import get_user_model

    if not get_user_model().objects.filter(pk=user_id).exists():
        return False
    DriftAlertSetting.objects.update_or_create(user_id=user_id, defaults={"mode": DriftAlertSetting.Mode.OFF})
    return True


def verified_address(user) -> str | None:
    found = (
        EmailAddress.objects.filter(user=user, verified=True).order_by("-primary", "id")
        .values_list("email", flat=True).first()
    )
    return found


def _absolute(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path


def _suggestion(check: DriftCheck) -> dict:
    """The headline of the recompute this check requested if done, else of the latest done suggestion."""
    run = check.recompute_run
    if run is not None and run.status == RebalanceRun.Status.DONE:
        return {"fresh": True, "summary": (run.result or {}).get("summary", ""), "run": run}
    latest = (
        RebalanceRun.objects.filter(portfolio=check.portfolio, status=RebalanceRun.Status.DONE)
        .order_by("-finished_at", "-id").first()
    )
    if latest is None:
        return {"fresh": False, "summary": "", "run": None}
    return {"fresh": False, "summary": (latest.result or {}).get("summary", ""), "run": latest}


def _send(*, user, to: str, subject: str, template: str, context: dict) -> None:
    token = unsubscribe_token(user_id=user.pk)
    unsubscribe_url = _absolute(reverse("drift_unsubscribe", kwargs={"token": token}))
    context = {**context, "unsubscribe_url": unsubscribe_url, "settings_url": _absolute(reverse("drift_alerts"))}
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string(f"emails/{template}.txt", context),
        to=[to],
        headers={"List-Unsubscribe": f"<{unsubscribe_url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
    )
    message.attach_alternative(render_to_string(f"emails/{template}.html", context), "text/html")
    message.send()


def drift_alert_send(*, check_id: int) -> str:
    """Mail the owner about one raised check (skipped if they turned alerts off or have no verified address)."""
    check = DriftCheck.objects.select_related("portfolio__owner", "recompute_run").filter(pk=check_id).first()
    if check is None or check.alerted_at is None:
        return "skipped"
    owner = check.portfolio.owner
    setting = DriftAlertSetting.objects.filter(user=owner).first()
    if setting is not None and setting.mode != DriftAlertSetting.Mode.DRIFT:
        return "off"
    to = verified_address(owner)
    if to is None:
        return "unverified"
    portfolio = check.portfolio
    what = "breaks a limit" if check.status == DriftCheck.Status.BREAKS_LIMIT else "drifted from its target"
    context = {
        "portfolio": portfolio, "check": check, "what": what, "suggestion": _suggestion(check),
        "portfolio_url": _absolute(reverse("portfolio_detail", kwargs={"portfolio_id": portfolio.pk})),
    }
    _send(user=owner, to=to, subject=f"{portfolio.name} {what}", template="drift_alert", context=context)
    return "sent"


def digests_send_due(*, now: dt.datetime | None = None) -> int:
    """One digest per weekly-digest user not mailed in the last week, listing their portfolios out of band."""
    from portfolios.drift.selectors import drift_latest_by_portfolio
    from portfolios.models import Portfolio

    now = now or timezone.now()
    sent = 0
    settings_due = DriftAlertSetting.objects.filter(mode=DriftAlertSetting.Mode.WEEKLY).exclude(
        digest_sent_at__gt=now - DIGEST_EVERY
    ).select_related("user")
    for setting in settings_due:
        portfolios = {p.pk: p for p in Portfolio.objects.filter(owner=setting.user)}
        latest = drift_latest_by_portfolio(portfolio_ids=portfolios)
        rows = [(portfolios[pk], c) for pk, c in sorted(latest.items()) if c.status != DriftCheck.Status.IN_BAND]
        to = verified_address(setting.user)
        if not rows or to is None:
            continue
        links = [(p, c, _absolute(reverse("portfolio_detail", kwargs={"portfolio_id": p.pk}))) for p, c in rows]
        with transaction.atomic():
            claimed = DriftAlertSetting.objects.filter(pk=setting.pk, digest_sent_at=setting.digest_sent_at).update(
                digest_sent_at=now
            )
            if not claimed:
                continue
            _send(user=setting.user, to=to, subject="Your weekly drift digest", template="drift_digest",
                  context={"rows": links})
        sent += 1
    return sent
