"""Load the bundled market data (securities, ETF look-through, prices) into the database."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from portfolios.marketdata.providers import ProviderError
from portfolios.marketdata.selectors import prices_as_of
from portfolios.marketdata.services import beat_schedule_ensure, market_data_ensure_loaded, market_data_load_bundled


class Command(BaseCommand):
    help = "Load the bundled market data from MARKET_DATA_DIR (idempotent bulk upsert)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--if-empty", action="store_true", help="Only load when no price is stored yet (fast when loaded)."
        )

    def handle(self, *args, **options):
        try:
            if options["if_empty"]:
                loaded = market_data_ensure_loaded(stdout=self.stdout)
                beat_schedule_ensure()
                if not loaded:
                    self.stdout.write(f"Market data already loaded (prices as of {prices_as_of()}).")
            else:
                market_data_load_bundled(stdout=self.stdout)
        except ProviderError as exc:
            raise CommandError(f"Nothing was loaded: {exc}") from None
