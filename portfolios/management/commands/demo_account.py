"""Create (in development only) the demo account, with a fresh random password printed."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

DEMO_EMAIL = "demo@example.com"
# A portfolio that drifted into mega-cap tech, directly and through QQQ/XLK: (account, type, ticker, shares, basis).
DEMO_LOTS = [
    ("Individual brokerage", "taxable", "AAPL", 120, 14_500),
    ("Individual brokerage", "taxable", "NVDA", 300, 9_800),
    ("Individual brokerage", "taxable", "MSFT", 45, 11_200),
    ("Individual brokerage", "taxable", "QQQ", 60, 21_000),
    ("Individual brokerage", "taxable", "JPM", 20, 3_100),
    ("Roth IRA", "roth_ira", "GOOGL", 80, 9_000),
    ("Roth IRA", "roth_ira", "AMZN", 70, 10_500),
    ("Roth IRA", "roth_ira", "META", 25, 8_200),
    ("Roth IRA", "roth_ira", "XLK", 40, 6_400),
]
DEMO_CASH = {"Individual brokerage": 4_000, "Roth IRA": 1_500}


def demo_portfolio_create(*, owner):
    from decimal import Decimal

    from portfolios.models import Account, Holding, Portfolio, Security
    from portfolios.recommendations.services import rebalance_run_request

    portfolio = Portfolio.objects.create(owner=owner, name="Demo: tech-heavy", profile="moderate")
    accounts = {}
    for name, account_type, ticker, shares, basis in DEMO_LOTS:
        if name not in accounts:
            accounts[name] = Account.objects.create(
                portfolio=portfolio, name=name, account_type=account_type, cash_usd=Decimal(DEMO_CASH[name])
            )
        security, _ = Security.objects.get_or_create(ticker=ticker, defaults={"kind": "unknown"})
        Holding.objects.create(
            account=accounts[name], security=security, shares=Decimal(shares), cost_basis_usd=Decimal(basis)
        )
    rebalance_run_request(portfolio=portfolio, trigger="import")
    return portfolio


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
        if not user.portfolios.exists():
            portfolio = demo_portfolio_create(owner=user)
            self.stdout.write(f"Created the demo portfolio “{portfolio.name}” and queued its first suggestion.")
