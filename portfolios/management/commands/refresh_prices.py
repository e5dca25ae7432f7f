"""Refresh prices now from the configured provider (or --provider), recompute what changed, print a summary."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from portfolios.marketdata.providers import PROVIDERS
from portfolios.marketdata.selectors import prices_are_stale
from portfolios.marketdata.tasks import prices_refresh_then_recompute
from portfolios.models import PriceRefresh


class Command(BaseCommand):
    help = "Refresh prices for every held and menu ticker (or --tickers) from PRICE_SOURCE or --provider."

    def add_arguments(self, parser):
        parser.add_argument("--tickers", nargs="+", metavar="TICKER", help="Only these tickers (Yahoo form).")
        parser.add_argument("--provider", choices=PROVIDERS, help="Override PRICE_SOURCE for this run.")

    def handle(self, *args, **options):
        tickers = [t for raw in options["tickers"] or [] for t in raw.split(",") if t.strip()] or None
        refresh = prices_refresh_then_recompute(tickers=tickers, provider=options["provider"])
        if refresh.status == PriceRefresh.Status.SKIPPED:
            raise CommandError("Another price refresh is running; nothing was done. Try again when it has finished.")
        out = self.stdout
        out.write(f"Provider: {refresh.provider}")
        out.write(f"Tickers asked: {refresh.tickers_asked}")
        out.write(f"Tickers updated: {refresh.tickers_updated}")
        out.write(f"Rows written: {refresh.rows_written}")
        out.write(f"Failures: {len(refresh.failures)}")
        for ticker, reason in sorted(refresh.failures.items()):
            out.write(f"  {ticker}: {reason}")
        stale = ""
        if prices_are_stale(refresh.as_of):
            stale = f" (more than {settings.PRICE_STALE_TRADING_DAYS} trading days old)"
        out.write(f"Prices as of: {refresh.as_of or 'none'}{stale}")
        if refresh.status == PriceRefresh.Status.FAILED:
            detail = "" if refresh.message.startswith("Every") else f" {refresh.message}"
            raise CommandError(
                f"Every ticker failed ({refresh.tickers_asked} asked); no price was updated, "
                f"the last good prices are kept.{detail}"
            )
        if refresh.message:
            out.write(refresh.message)
