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

from engine.types import Options
from portfolios.models import MAX_FUNDS_LIMIT, MIN_TRADE_FRACTION_LIMIT, MIN_TRADE_USD_LIMIT

PROFILES = ("conservative", "moderate", "aggressive")
DEFAULTS = Options()


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


def _optional(kind):
    """An argparse type: a number of `kind`, or none/null for no limit."""

    def parse(text: str):
        if text.strip().lower() in ("none", "null", "no-limit"):
            return None
        return kind(text)

    parse.__name__ = kind.__name__  # argparse names the type in its message: "invalid float value: 'x'"
    return parse


def plan_limits_check(opts: dict) -> None:
    """The plan limits within the bounds the page and the API use; else a message naming the flag."""
    tax, funds = opts["tax_budget"], opts["max_funds"]
    if tax is not None and not 0 <= tax <= 1:
        raise CommandError("--tax-budget must be a fraction of value between 0 and 1 (e.g. 0.01 for 1%), or none",
                           returncode=2)
    if funds is not None and not 1 <= funds <= MAX_FUNDS_LIMIT:
        raise CommandError(f"--max-funds must be a whole number from 1 to {MAX_FUNDS_LIMIT}, or none", returncode=2)
    if not 0 <= opts["min_trade_usd"] <= MIN_TRADE_USD_LIMIT:
        raise CommandError(f"--min-trade-usd must be an amount from 0 to {MIN_TRADE_USD_LIMIT:,} USD", returncode=2)
    if not 0 <= opts["min_trade_fraction"] <= MIN_TRADE_FRACTION_LIMIT:
        raise CommandError(f"--min-trade-fraction must be a fraction of value from 0 to {MIN_TRADE_FRACTION_LIMIT} "
                           "(e.g. 0.0025 for 0.25%)", returncode=2)


def _plan_lines(doc: dict) -> list[str]:
    """Orders, funds bought, tax against the budget, the planner's notes and the trade-off table."""
    trades = doc.get("trades", [])
    orders = doc.get("orders", len(trades))
    funds = doc.get("funds_bought", len({t["ticker"] for t in trades if t["action"] == "buy"}))
    taxes = float(doc.get("est_taxes") or 0.0)
    value = float(doc.get("value") or 0.0)
    line = f"{orders} orders, {funds} funds bought, est. tax {_money(taxes)}"
    if value:
        line += f" ({taxes / value * 100:.2f}% of value"
        if "tax_budget" in doc:
            budget = doc["tax_budget"]
            line += "; no tax limit" if budget is None else f"; budget {budget * 100:g}% a year"
        line += ")"
    lines = [line] + [f"Note: {note}" for note in doc.get("notes", [])]
    tradeoffs = doc.get("tradeoffs") or []
    if tradeoffs:
        lines += ["", f"{'Tax budget':<14}{'Est. tax':>12}{'Volatility':>12}{'Limits met':>12}"]
        for row in tradeoffs:
            budget = "no limit" if row.get("budget") is None else f"{row['budget'] * 100:g}%"
            mark = "  <- this plan" if row.get("current") else ""
            lines.append(f"{budget:<14}{_money(row.get('est_taxes') or 0.0):>12}{_pct(row.get('volatility')):>12}"
                         f"{str(row.get('limits_met')) + ' of ' + str(row.get('limits_total')):>12}{mark}")
    return lines


def render_table(doc: dict) -> str:
    """A readable text rendering of the result document."""
    lines = [
        f"Rebalance suggestion ({doc['profile']}, prices as of {doc['as_of']}, status {doc['status']})",
        f"Portfolio value {_money(doc['value'])}",
    ]
    if doc.get("summary"):
        lines.append(doc["summary"])
    lines += _plan_lines(doc)
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
    if doc["before"].get("volatility_sample") is not None or doc["after"].get("volatility_sample") is not None:
        lines.append(f"{'Volatility (3y sample)':<24}{_pct(doc['before'].get('volatility_sample')):>10}"
                     f"{_pct(doc['after'].get('volatility_sample')):>10}")
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
        parser.add_argument("--tax-budget", type=_optional(float), default=DEFAULTS.tax_budget, metavar="FRACTION|none",
                            help="Estimated tax a plan may realise, fraction of value per calendar year (default "
                                 "0.01; 0: no net gains; none: no limit)")
        parser.add_argument("--max-funds", type=_optional(int), default=DEFAULTS.max_funds, metavar="N|none",
                            help=f"Most distinct funds to buy, 1 to {MAX_FUNDS_LIMIT} (default 6; none: no cap)")
        parser.add_argument("--min-trade-usd", type=float, default=DEFAULTS.min_trade_usd, metavar="USD",
                            help="Smallest order in USD (default 250); the larger of this and --min-trade-fraction")
        parser.add_argument("--min-trade-fraction", type=float, default=DEFAULTS.min_trade_fraction,
                            metavar="FRACTION", help="Smallest order as a fraction of value (default 0.0025)")
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
        plan_limits_check(opts)
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
            "tax_budget": opts["tax_budget"],
            "max_funds": opts["max_funds"],
            "min_trade_usd": opts["min_trade_usd"],
            "min_trade_fraction": opts["min_trade_fraction"],
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
