"""Feed the pure engine: turn holdings (rows or a parsed file) and market data into a request,
run it, and assemble the result document (DESIGN.md CLI JSON + stress tests + backtest + views).

Each process holds one `engine.MarketSnapshot` (`market_snapshot()`): every priced security over 7 years
(the stress tests and the backtest), its 3-year window (the optimizer), last prices, the risk model, price
tables and exposure catalogue, built once per market-data version (the selectors' version token: last price
date, security master) and replaced when the token moves (after a refresh). A worker builds it before its
pool forks (`warm_up`), so every run of every pool process uses the same one. One `ProblemCache` per process
keeps the cvxpy problems compiled for the rare fallback (the compact form goes to Clarabel directly).
The engine's small matrices gain nothing from threaded BLAS, and two workers on two cores lose a lot to it,
so the feed limits BLAS to one thread per process.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.conf import settings

import engine
from engine.backtest import backtest
from engine.market import MarketSnapshot
from engine.scenarios import historical_stress, hypothetical_stress, load_scenarios
from engine.tickers import ticker_key
from engine.types import AccountCash, MarketData, Options, Position, RebalanceRequest
from engine.views import load_views
from portfolios.marketdata.selectors import _version_token, market_data_for, menu_tickers
from portfolios.models import Account, Security
from portfolios.recommendations import proxies
from portfolios.targets import target_views

RISK_YEARS = 3.0
HISTORY_YEARS = 7.0  # stress episodes reach back to 2020
# cvxpy problems are compiled only when the compact form fails to certify (none of 600 bench portfolios);
# they are keyed by padded shape, ~100 ms to compile and ~6 MB each, so a few are kept.
MAX_COMPILED_PROBLEMS = 8
_CACHE = engine.ProblemCache(max_problems=MAX_COMPILED_PROBLEMS)


@dataclass(frozen=True)
class Lot:
    account: str
    account_type: str
    ticker: str
    shares: float
    cost_basis: float | None = None
    acquired: dt.date | None = None
    lot_id: str | None = None
    # what the broker file said, for a ticker the market data cannot price (see proxies.py)
    file_value: float | None = None  # USD, the lot's market value (or price x shares)
    kind: str = ""  # the security's kind when known (stock, etf, fund, option, bond)
    sector: str = ""
    description: str = ""


def _views_path() -> Path:
    return Path(settings.BASE_DIR) / "data" / "views" / "2026-01-rotation.json"


def _scenarios_path() -> Path:
    return Path(settings.BASE_DIR) / "data" / "scenarios.json"


@lru_cache(maxsize=1)
def _views() -> dict[str, Any]:
    return load_views(_views_path())


@lru_cache(maxsize=1)
def _scenarios() -> dict[str, Any]:
    return load_scenarios(_scenarios_path())


@lru_cache(maxsize=1)
def _blas_single_thread() -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


@dataclass(frozen=True)
class FeedMarket:
    """This process's market: the snapshot of the current market-data version and the priced menu funds."""

    snapshot: MarketSnapshot  # version: the selectors' version token
    menu: tuple[str, ...]


_market: FeedMarket | None = None
_market_lock = threading.Lock()


def feed_market() -> FeedMarket:
    """The current market, rebuilt when the market-data version token moved (one query per call)."""
    global _market
    token = _version_token()
    found = _market
    if found is not None and found.snapshot.version == token:
        return found
    with _market_lock:
        if _market is not None and _market.snapshot.version == token:
            return _market
        tickers = list(Security.objects.filter(priced=True).order_by("ticker").values_list("ticker", flat=True))
        long = market_data_for(tickers=tickers, years=HISTORY_YEARS)
        snapshot = MarketSnapshot.build(long, risk_years=RISK_YEARS, version=token, warm=False)
        last = snapshot.last_prices
        _market = FeedMarket(snapshot=snapshot, menu=tuple(t for t in menu_tickers() if t in last))
        return _market


def market_snapshot() -> MarketSnapshot:
    """The `MarketSnapshot` every run of this process shares (see `feed_market`)."""
    return feed_market().snapshot


_DEFAULTS = Options()


def _optional_float(inputs: dict[str, Any], key: str, default: float | None) -> float | None:
    """`inputs[key]` as a float; null (or "") means None (no limit); a missing key means `default`."""
    if key not in inputs:
        return default
    value = inputs[key]
    return None if value in (None, "") else float(value)


def options_from_inputs(inputs: dict[str, Any]) -> Options:
    """Run inputs (JSON from a form, the API or the CLI) -> engine Options.

    A key a run's inputs lack (runs requested before the option existed) takes the engine's default.
    """
    keep = inputs.get("keep") or []
    if isinstance(keep, str):
        keep = keep.split(",")
    max_funds = inputs.get("max_funds", _DEFAULTS.max_funds)
    return Options(
        profile=str(inputs.get("profile") or "moderate"),
        cash_change=float(inputs.get("cash") or 0.0),
        buy_only=bool(inputs.get("buy_only", False)),
        keep=frozenset(ticker_key(t) for t in keep if t and str(t).strip()),
        fractional=bool(inputs.get("fractional", False)),
        max_turnover=_optional_float(inputs, "max_turnover", None),
        use_views=bool(inputs.get("use_views", True)),
        tax_budget=_optional_float(inputs, "tax_budget", _DEFAULTS.tax_budget),
        tax_spent_usd=float(inputs.get("tax_spent_usd") or 0.0),
        max_funds=None if max_funds in (None, "") else int(max_funds),
        min_trade_usd=float(inputs.get("min_trade_usd", _DEFAULTS.min_trade_usd)),
        min_trade_fraction=float(inputs.get("min_trade_fraction", _DEFAULTS.min_trade_fraction)),
    )


def build_request(
    *, lots: Iterable[Lot], cash: list[AccountCash], options: Options, target: dict[str, Any] | None = None
) -> tuple[RebalanceRequest, MarketSnapshot]:
    """The engine request (about 3 years of prices) and the snapshot to run it with (7 years for the stress
    tests and the backtest).

    `target`: a custom target (portfolios.targets); None: the dated views, or the neutral mix with views off.
    """
    request, snapshot, _ = build_request_valued(lots=lots, cash=cash, options=options, target=target)
    return request, snapshot


def _unpriced_items(lots: list[Lot], last: Mapping[str, float]) -> list[proxies.Unpriced]:
    """The lots the market data cannot price, one item per ticker (shares and file values summed)."""
    by_ticker: dict[str, list[Lot]] = {}
    for lot in lots:
        if lot.ticker not in last:
            by_ticker.setdefault(lot.ticker, []).append(lot)
    items = []
    for ticker, group in by_ticker.items():
        valued = [lot for lot in group if lot.file_value is not None and lot.file_value > 0]
        first = group[0]
        items.append(proxies.Unpriced(
            ticker=ticker, shares=sum(lot.shares for lot in valued) if valued else sum(lot.shares for lot in group),
            value_usd=sum(float(lot.file_value or 0.0) for lot in valued) if valued else None,
            kind=first.kind, sector=first.sector, description=first.description,
        ))
    return items


def _collapse_overflow(lots: list[Lot], overflow: list[proxies.Unpriced]) -> list[Lot]:
    """`lots` with those of the `overflow` tickers replaced by one lot per account of proxies.OVERFLOW_TICKER
    ($1 a share, as many shares as the file's dollars); lots with no file value count $0 and go."""
    tickers = {x.ticker for x in overflow}
    out = [lot for lot in lots if lot.ticker not in tickers]
    dollars: dict[tuple[str, str], float] = {}
    for lot in lots:
        if lot.ticker in tickers and lot.file_value:
            key = (lot.account, lot.account_type)
            dollars[key] = dollars.get(key, 0.0) + float(lot.file_value)
    out += [Lot(account=a, account_type=t, ticker=proxies.OVERFLOW_TICKER, shares=v, file_value=v, kind="unknown",
                lot_id=f"{proxies.OVERFLOW_TICKER}-{a}") for (a, t), v in dollars.items()]
    return out


def build_request_valued(
    *, lots: Iterable[Lot], cash: list[AccountCash], options: Options, target: dict[str, Any] | None = None
) -> tuple[RebalanceRequest, MarketSnapshot, list[proxies.Proxy]]:
    """`build_request`, plus how each holding without a market price is valued and modelled (proxies.py):
    the engine sees it at the file's price, its proxy's history and look-through, held fixed unless a fund."""
    lots = list(lots)
    current = feed_market()
    snapshot, menu = current.snapshot, list(current.menu)
    chosen: list[proxies.Proxy] = []
    if not all(lot.ticker in snapshot.last_prices for lot in lots):
        # a ticker without prices (or not in the master): a snapshot of its own, with its proxy's history
        menu = menu_tickers()
        kept, overflow = proxies.split_overflow(_unpriced_items(lots, snapshot.last_prices))
        chosen = proxies.proxies_for(kept, market=snapshot.market)
        if overflow:
            lots = _collapse_overflow(lots, overflow)
            chosen.append(proxies.overflow_proxy(overflow))
        tickers = sorted({lot.ticker for lot in lots} | set(menu) | proxies.proxy_tickers(chosen))
        long = proxies.extend_market(market_data_for(tickers=tickers, years=HISTORY_YEARS), chosen)
        snapshot = MarketSnapshot.build(long, risk_years=RISK_YEARS, warm=False)
        options = replace(options, fixed=options.fixed | proxies.fixed_tickers(chosen))
    last = snapshot.last_prices
    positions = [
        Position(
            ticker=lot.ticker,
            account=lot.account,
            account_type=lot.account_type,
            shares=lot.shares,
            price=last.get(lot.ticker),
            cost_basis=lot.cost_basis,
            acquired=lot.acquired,
            lot_id=lot.lot_id,
        )
        for lot in lots
    ]
    views = target_views(target, _views()) if target else _views() if options.use_views else None
    request = RebalanceRequest(
        positions=positions,
        cash=cash,
        menu=[t for t in menu if t in last and t not in options.fixed],
        market=snapshot.market,
        options=options,
        views=views,
    )
    return request, snapshot, chosen


def compute_document(
    request: RebalanceRequest, snapshot: MarketSnapshot | MarketData, valued: list[proxies.Proxy] | None = None
) -> dict[str, Any]:
    """Run the engine and assemble the full result document (`snapshot`: the one `build_request` gave; a
    long-history `MarketData` is still accepted and makes a snapshot for this call), with `coverage` (see
    proxies.apply_coverage)."""
    _blas_single_thread()
    if not isinstance(snapshot, MarketSnapshot):
        snapshot = MarketSnapshot(market=request.market, long=snapshot)
    result = engine.rebalance(request, snapshot=snapshot, cache=_CACHE)
    document = engine.result_to_document(result)
    scenarios = _scenarios()
    before_w = document["before"]["weights"]
    after_w = document["after"]["weights"]
    document["stress"] = historical_stress(
        before=before_w, after=after_w, history=snapshot.history, episodes=scenarios.get("historical", [])
    ) + hypothetical_stress(before=result.before, after=result.after, scenarios=scenarios.get("hypothetical", []))
    document["backtest"] = backtest(
        before=before_w, after=after_w, history=snapshot.history, years=RISK_YEARS, rebalance="monthly",
        curve_every="monthly",
    )
    if request.views:
        document["views"] = {
            key: request.views.get(key) for key in ("title", "as_of", "facts", "risks") if key in request.views
        }
    document["unpriced"] = proxies.request_unpriced(request)
    # the budget the plan was held to, and the tax already realised this year that it took off (USD)
    document.setdefault("tax_budget", request.options.tax_budget)
    document.setdefault("tax_spent_usd", round(request.options.tax_spent_usd, 2))
    return proxies.apply_coverage(document, valued or [])


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def portfolio_lots(*, portfolio_id: int) -> tuple[list[Lot], list[AccountCash]]:
    """The portfolio's lots and account cash, in one query (accounts left-joined to their holdings).

    Lots come ordered by account name (unique within a portfolio), ticker and row id; cash by account name.
    """
    rows = (
        Account.objects.filter(portfolio_id=portfolio_id)
        .order_by("name", "holdings__security__ticker", "holdings__id")
        .values_list("name", "account_type", "cash_usd", "holdings__security__ticker", "holdings__shares",
                     "holdings__cost_basis_usd", "holdings__acquired_on", "holdings__id",
                     "holdings__file_price_usd", "holdings__file_value_usd", "holdings__security__kind",
                     "holdings__security__sector", "holdings__security__name")
    )
    lots: list[Lot] = []
    cash: list[AccountCash] = []
    for row in rows:
        name, kind, amount, ticker, shares, basis, acquired, pk, file_price, file_value, sec_kind, sector, title = row
        if not cash or cash[-1].account != name:
            cash.append(AccountCash(account=name, account_type=kind, cash=float(amount)))
        if pk is not None and shares > 0:
            lots.append(Lot(account=name, account_type=kind, ticker=ticker, shares=float(shares),
                            cost_basis=_float(basis), acquired=acquired, lot_id=str(pk),
                            file_value=file_lot_value(shares=shares, price=file_price, value=file_value),
                            kind=sec_kind or "", sector=sector or "", description=title or ""))
    return lots, cash


def file_lot_value(*, shares: Decimal | float, price: Decimal | None, value: Decimal | None) -> float | None:
    """What the file said a lot is worth (USD): its market value, else price x shares; None when it said
    neither (or zero)."""
    if value is not None and value > 0:
        return float(value)
    if price is not None and price > 0:
        return float(price) * float(shares)
    return None


def portfolio_document(*, portfolio_id: int, inputs: dict[str, Any]) -> dict[str, Any]:
    """The result document for a stored portfolio with the given run inputs (by id: the runner has the id
    from its claim, not the row)."""
    lots, cash = portfolio_lots(portfolio_id=portfolio_id)
    request, snapshot, valued = build_request_valued(lots=lots, cash=cash, options=options_from_inputs(inputs),
                                                     target=inputs.get("target"))
    return compute_document(request, snapshot, valued)


def warm_up() -> str:
    """Build this process's shared market caches before the first real run; returns a line for the log.

    A worker calls it at start, before it forks its pool, so every pool process inherits the market snapshot
    (risk model, price-history tables, exposure catalogue) instead of building it on its first run (seconds,
    while a price refresh waits). It computes one document for a small portfolio
    of menu funds, which takes exactly the path a real run takes. Never raises: a worker must start even
    when the database is empty or not migrated yet.
    """
    start = time.perf_counter()
    try:
        _blas_single_thread()
        _views()
        _scenarios()
        current = feed_market()
        if len(current.menu) < 2:
            return "engine warm-up skipped: no priced menu funds yet"
        current.snapshot.warm()  # risk model, price tables, exposure catalogue
        lots = [Lot(account="Warm-up", account_type="taxable", ticker=t, shares=10.0) for t in current.menu[:3]]
        cash = [AccountCash(account="Warm-up", account_type="taxable", cash=1000.0)]
        request, snapshot = build_request(lots=lots, cash=cash, options=Options())
        compute_document(request, snapshot)
    except Exception as exc:  # the first real run builds what is missing, and says why it fails
        return f"engine warm-up skipped ({type(exc).__name__}: {exc})"
    return (f"engine warmed in {time.perf_counter() - start:.1f} s "
            f"({len(current.snapshot.last_prices)} priced securities)")


def parsed_file_lots(parsed) -> tuple[list[Lot], list[AccountCash]]:
    """Lots and cash from an importer `ParsedFile` (the CLI path: nothing is written)."""
    types = {a.name: a.account_type for a in parsed.accounts}
    lots = [
        Lot(
            account=p.account,
            account_type=types.get(p.account, "taxable"),
            ticker=p.ticker,
            shares=float(p.shares),
            cost_basis=_float(p.cost_basis),
            acquired=p.acquired_on,
            lot_id=f"line-{p.line}",
            file_value=file_lot_value(shares=p.shares, price=p.price, value=p.market_value),
            kind=p.kind,
            description=p.description,
        )
        for p in parsed.positions
        if p.shares > 0
    ]
    cash = [AccountCash(account=a.name, account_type=a.account_type, cash=float(a.cash)) for a in parsed.accounts]
    return lots, cash
