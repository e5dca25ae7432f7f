"""`python manage.py rebalance --holdings FILE`: one JSON document on stdout (DESIGN.md contract).

Works on a fresh database after `migrate`: the bundled market data loads itself the first time
(progress on stderr). Bad input: non-zero exit, a message on stderr naming line and field, and
nothing on stdout.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

PROFILES = ("conservative", "moderate", "aggressive")


def _money(value: float) -> str:
    return f"${value:,.2f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def keep_parse(text: str) -> list[str]:
    """`--keep AAPL,brk.b` -> ["AAPL", "BRK-B"] through the one ticker normaliser; a bad one names itself."""
    from engine.tickers import ticker_normalize

    tickers: list[str] = []
    for part in text.split(","):
        if not part.strip():
            continue
        try:
            tickers.append(ticker_normalize(part))
        except ValueError as exc:
            raise CommandError(f"--keep: {exc}", returncode=2) from None
    return list(dict.fromkeys(tickers))


def render_table(doc: dict) -> str:
    """A readable text rendering of the result document."""
    lines = [
        f"Rebalance suggestion ({doc['profile']}, prices as of {doc['as_of']}, status {doc['status']})",
        f"Portfolio value {_money(doc['value'])}",
    ]
    if doc.get("summary"):
        lines.append(doc["summary"])
    cover = doc.get("coverage") or {}
    if cover.get("proxy") or cover.get("fixed"):
        lines.append(f"Value modelled directly {_pct(cover.get('direct'))}, by a proxy {_pct(cover.get('proxy'))}, "
                     f"held fixed {_pct(cover.get('fixed'))}")
    lines.append("")
    trades = doc.get("trades", [])
    if trades:
        header = f"{'Action':<6} {'Ticker':<7} {'Account':<18} {'Shares':>10} {'Price':>10} {'Amount':>12}  Reason"
        lines += [header, "-" * len(header)]
        for t in trades:
            lines.append(
                f"{t['action']:<6} {t['ticker']:<7} {t['account'][:18]:<18} {t['shares']:>10g} "
                f"{t['price']:>10.2f} {t['amount']:>12,.2f}  {t['reason']}"
            )
    else:
        lines.append("No trades suggested.")
    lines.append("")
    lines.append(f"{'':<24}{'Before':>10}{'After':>10}")
    lines.append(f"{'Volatility':<24}{_pct(doc['before']['volatility']):>10}{_pct(doc['after']['volatility']):>10}")
    sectors = sorted(set(doc["before"]["sectors"]) | set(doc["after"]["sectors"]))
    for sector in sectors:
        lines.append(
            f"{sector[:24]:<24}{_pct(doc['before']['sectors'].get(sector, 0)):>10}"
            f"{_pct(doc['after']['sectors'].get(sector, 0)):>10}"
        )
    for size in ("large", "mid", "small"):
        lines.append(
            f"{('Size: ' + size):<24}{_pct(doc['before']['size'].get(size, 0)):>10}"
            f"{_pct(doc['after']['size'].get(size, 0)):>10}"
        )
    for warning in doc.get("warnings", []):
        lines.append(f"Warning: {warning}")
    return "\n".join(lines)


class Command(BaseCommand):
    help = "Suggest rebalancing trades for a holdings file and print them as JSON (or a table)."

    def add_arguments(self, parser):
        parser.add_argument("--holdings", required=True, help="Positions file (broker export or plain CSV)")
        parser.add_argument("--profile", choices=PROFILES, default="moderate")
        parser.add_argument("--cash", type=float, default=0.0, help="USD to add (positive) or withdraw (negative)")
        parser.add_argument("--buy-only", action="store_true", help="Only buy, funded by cash")
        parser.add_argument("--keep", default="", help="Comma-separated tickers never to sell")
        parser.add_argument("--fractional", action="store_true", help="Allow fractional shares")
        parser.add_argument("--max-turnover", type=float, default=None, help="Fraction of value, e.g. 0.25")
        parser.add_argument("--no-views", action="store_true", help="Ignore the dated investment views")
        parser.add_argument("--format", choices=("json", "table"), default="json")

    def handle(self, *args, **opts):
        from engine.errors import EngineError
        from portfolios.holdings.importers import ImportFailed, parse_positions
        from portfolios.marketdata.services import market_data_ensure_loaded
        from portfolios.recommendations.engine_feed import (
            build_request_valued,
            compute_document,
            options_from_inputs,
            parsed_file_lots,
        )

        path = Path(opts["holdings"])
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"{path}: cannot read the holdings file ({exc.strerror})", returncode=2) from None
        if opts["max_turnover"] is not None and not 0 <= opts["max_turnover"] <= 1:
            raise CommandError("--max-turnover must be a fraction between 0 and 1 (e.g. 0.25)", returncode=2)
        keep = keep_parse(opts["keep"])
        try:
            parsed = parse_positions(data, filename=path.name)
        except ImportFailed as exc:
            lines = [f"{path}: the holdings file was refused:"]
            for problem in exc.errors:
                where = f"line {problem.line}" if problem.line else "file"
                lines.append(f"  {where}, field {problem.field or '-'}: {problem.message}")
            raise CommandError("\n".join(lines), returncode=2) from None

        market_data_ensure_loaded(stdout=sys.stderr)
        inputs = {
            "profile": opts["profile"],
            "cash": opts["cash"],
            "buy_only": opts["buy_only"],
            "keep": keep,
            "fractional": opts["fractional"],
            "max_turnover": opts["max_turnover"],
            "use_views": not opts["no_views"],
        }
        lots, cash = parsed_file_lots(parsed)
        try:
            request, snapshot, valued = build_request_valued(lots=lots, cash=cash,
                                                              options=options_from_inputs(inputs))
            document = compute_document(request, snapshot, valued)
        except EngineError as exc:
            raise CommandError(f"{path}: no suggestion could be made: {exc}", returncode=3) from None
        document["warnings"] = list(parsed.warnings) + list(document.get("warnings", []))
        if opts["format"] == "table":
            self.stdout.write(render_table(document))
        else:
            self.stdout.write(json.dumps(document, indent=2))
