"""`manage.py check_drift [--portfolio ID] [--send]`: measure drift now, one line per portfolio.

Without --send the checks are recorded (the chart's history) but nothing is recomputed or mailed;
with --send the owners whose state calls for it are mailed and their suggestions recomputed.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from portfolios.drift.services import drift_check_run
from portfolios.models import Portfolio
from portfolios.templatetags.drift_format import drift_largest


class Command(BaseCommand):
    help = "Measure every portfolio's drift from its target; print one line per portfolio."

    def add_arguments(self, parser):
        parser.add_argument("--portfolio", type=int, help="Only this portfolio id")
        parser.add_argument("--send", action="store_true",
                            help="Recompute and mail the owners whose state calls for it")

    def handle(self, *args, **opts):
        ids = None
        if opts["portfolio"] is not None:
            if not Portfolio.objects.filter(pk=opts["portfolio"]).exists():
                raise CommandError(f"--portfolio: no portfolio with id {opts['portfolio']}")
            ids = [opts["portfolio"]]
        outcome = drift_check_run(portfolio_ids=ids, send=opts["send"])
        alerted = {c.pk for c in outcome.alerts}
        for check in outcome.checks:
            name = outcome.names.get(check.portfolio_id, "")
            line = f"{check.portfolio_id}\t{name}\t{check.get_status_display().lower()}\tlargest {drift_largest(check)}"
            if check.limits:
                line += "\tlimits " + ", ".join(item["limit"] for item in check.limits)
            if check.pk in alerted:
                line += "\talert raised"
            self.stdout.write(line)
        if not outcome.checks:
            self.stderr.write("no portfolio with a value to check")
