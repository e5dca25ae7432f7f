"""Reads of market data: as-of date, staleness, latest prices, the menu, the engine's MarketData.

`market_data_for` is on the hot path of a full recompute (thousands of portfolios per process), so
it keeps a per-process cache: the security master, the ETF look-through and the full price history
of every ticker asked so far (loaded with one query per batch of new tickers). The cache is checked
against a cheap version token (one query on small aggregates) on every call and dropped when market
data changed; writers in this package also clear it explicitly.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import connection
from django.db.models import Max, OuterRef, Subquery

from portfolios.models import EtfHolding, EtfSectorWeight, Price, Security

if TYPE_CHECKING:  # the engine package imports cvxpy: pages that only need the as-of date skip it
    from engine.types import MarketData, SecurityInfo

CASH = "CASH"  # engine.types.CASH


def prices_as_of() -> dt.date | None:
    """The latest date for which any price is stored, or None when there are no prices."""
    return Price.objects.aggregate(latest=Max("date"))["latest"]


def trading_days_between(start: dt.date, end: dt.date) -> int:
    """Weekdays after `start` up to and including `end` (US holidays are not subtracted)."""
    if end <= start:
        return 0
    return int(np.busday_count(start + dt.timedelta(days=1), end + dt.timedelta(days=1)))


def prices_are_stale(as_of: dt.date | None, today: dt.date | None = None) -> bool:
    if as_of is None:
        return True
    today = today or dt.date.today()
    return trading_days_between(as_of, today) > settings.PRICE_STALE_TRADING_DAYS


def _tickers_clean(tickers: Iterable[str]) -> list[str]:
    """Upper-case Yahoo form, de-duplicated in order, CASH and blanks dropped."""
    out = (str(t).strip().upper().replace(".", "-") for t in tickers)
    return list(dict.fromkeys(t for t in out if t and t != CASH))


def latest_prices(*, tickers: Iterable[str]) -> dict[str, tuple[float, dt.date]]:
    """{ticker: (newest close, its date)} for the tickers that have any price."""
    wanted = _tickers_clean(tickers)
    if not wanted:
        return {}
    newest = Price.objects.filter(security=OuterRef("pk")).order_by("-date")
    rows = (
        Security.objects.filter(ticker__in=wanted)
        .annotate(close=Subquery(newest.values("close")[:1]), close_date=Subquery(newest.values("date")[:1]))
        .values_list("ticker", "close", "close_date")
    )
    return {t: (float(c), d) for t, c, d in rows if c is not None}


def menu_tickers() -> list[str]:
    """The diversifier menu: securities flagged is_menu that have prices."""
    return list(Security.objects.filter(is_menu=True, priced=True).order_by("ticker").values_list("ticker", flat=True))


# --- raw price rows ---------------------------------------------------------------------------

_EPOCH = dt.date(1970, 1, 1)


def _as_date(value: dt.date | str) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


def price_rows(
    *, security_ids: Iterable[int], start: dt.date | None = None, end: dt.date | None = None,
    chunk_rows: int = 100_000,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stored prices of `security_ids` between `start` and `end` (inclusive) as three arrays:
    security ids (int64), dates (datetime64[D]) and closes (float64). Read in chunks, with the date
    sent as a day number, so a million rows cost arrays rather than Python objects."""
    ids = list(security_ids)
    if not ids:
        return np.empty(0, np.int64), np.empty(0, "datetime64[D]"), np.empty(0, float)
    if connection.vendor == "postgresql":
        day = "(date - DATE '1970-01-01')"
    elif connection.vendor == "sqlite":
        day = "CAST(julianday(date) - 2440587.5 AS INTEGER)"
    else:
        day = "date"
    where: list[str] = [f"security_id IN ({', '.join(['%s'] * len(ids))})"]
    params: list[int | dt.date] = list(ids)
    if start is not None:
        where.append("date >= %s")
        params.append(start)
    if end is not None:
        where.append("date <= %s")
        params.append(end)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT security_id, {day}, close FROM {Price._meta.db_table} WHERE {' AND '.join(where)}",  # noqa: S608
            params,
        )
        while rows := cursor.fetchmany(chunk_rows):
            if day == "date":
                rows = [(s, (_as_date(d) - _EPOCH).days, c) for s, d, c in rows]
            block = np.array(rows, dtype=float)  # ids and day numbers are exact in float64
            parts.append((block[:, 0].astype(np.int64), block[:, 1].astype(np.int64), block[:, 2].copy()))
    if not parts:
        return np.empty(0, np.int64), np.empty(0, "datetime64[D]"), np.empty(0, float)
    return (
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]).astype("datetime64[D]"),
        np.concatenate([p[2] for p in parts]),
    )


# --- MarketData for the engine ---------------------------------------------------------------


@dataclass
class _Cache:
    token: tuple | None = None
    securities: dict[str, SecurityInfo] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)
    etf_sectors: dict[str, dict[str, float]] = field(default_factory=dict)
    etf_holdings: dict[str, dict[str, float]] = field(default_factory=dict)
    prices: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(index=pd.DatetimeIndex([], name="date")))
    loaded: set[str] = field(default_factory=set)
    as_of: dt.date | None = None


_cache = _Cache()
_cache_lock = threading.Lock()


def market_data_cache_clear() -> None:
    """Forget the cached market data of this process (writers call this after changing prices)."""
    global _cache
    with _cache_lock:
        _cache = _Cache()


def _version_token() -> tuple:
    """Changes whenever securities, prices or look-through rows are added, removed or touched."""
    tables = {m: m._meta.db_table for m in (Security, Price, EtfSectorWeight, EtfHolding)}
    sql = (
        f"SELECT (SELECT COUNT(*) FROM {tables[Security]}), (SELECT MAX(id) FROM {tables[Security]}), "  # noqa: S608
        f"(SELECT MAX(updated_at) FROM {tables[Security]}), (SELECT MAX(id) FROM {tables[Price]}), "
        f"(SELECT MAX(date) FROM {tables[Price]}), (SELECT MAX(id) FROM {tables[EtfSectorWeight]}), "
        f"(SELECT MAX(id) FROM {tables[EtfHolding]})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return (connection.alias, connection.settings_dict.get("NAME"), *cursor.fetchone())


def _cache_fresh() -> _Cache:
    """The process cache, rebuilt (master data only; prices load lazily) when the token moved."""
    global _cache
    token = _version_token()
    if _cache.token == token:
        return _cache
    from engine.types import SecurityInfo

    cache = _Cache(token=token, as_of=prices_as_of())
    for s in Security.objects.all().only(
        "id", "ticker", "kind", "asset_class", "sector", "size", "region", "name"
    ):
        cache.ids[s.ticker] = s.pk
        cache.securities[s.ticker] = SecurityInfo(
            ticker=s.ticker, kind=s.kind, asset_class=s.asset_class, sector=s.sector, size=s.size,
            region=s.region, name=s.name,
        )
    for etf, sector, weight in EtfSectorWeight.objects.values_list("etf__ticker", "sector", "weight"):
        cache.etf_sectors.setdefault(etf, {})[sector] = weight
    for etf, ticker, weight in EtfHolding.objects.values_list("etf__ticker", "ticker", "weight"):
        cache.etf_holdings.setdefault(etf, {})[ticker] = weight
    _cache = cache
    return cache


def _cache_load_prices(cache: _Cache, tickers: list[str]) -> None:
    """Add the full price history of `tickers` to the cache with one query."""
    ids = {cache.ids[t]: t for t in tickers if t in cache.ids}
    cache.loaded.update(tickers)
    if not ids:
        return
    sid, days, close = price_rows(security_ids=list(ids))
    if not len(sid):
        return
    frame = pd.DataFrame({"security_id": sid, "date": days.astype("datetime64[ns]"), "close": close})
    wide = frame.pivot(index="date", columns="security_id", values="close").rename(columns=ids)
    wide.columns.name = None
    prices = pd.concat([cache.prices, wide], axis=1, sort=True) if len(cache.prices.columns) else wide
    prices.index.name = "date"
    cache.prices = prices.astype(float)


def market_data_for(*, tickers: Iterable[str], years: float = 3.0, as_of: dt.date | None = None) -> MarketData:
    """The engine's MarketData for `tickers` (CASH ignored).

    prices: DataFrame indexed by a DatetimeIndex named "date" (ascending) over the `years` before
        `as_of` (default: the latest stored price date), one float column per ticker asked, in the
        order asked; NaN before a ticker listed; all-NaN for an unpriced ticker. Days on which no
        asked ticker has a price are dropped.
    securities: SecurityInfo for every ticker asked; tickers unknown to the master get kind "unknown".
    etf_sectors / etf_holdings: look-through of every ETF among the tickers that has it (fractions).
    as_of: the last date in `prices` (or `as_of`/today when there are none).
    """
    from engine.types import MarketData, SecurityInfo

    wanted = _tickers_clean(tickers)
    with _cache_lock:
        cache = _cache_fresh()
        missing = [t for t in wanted if t not in cache.loaded]
        if missing:
            _cache_load_prices(cache, missing)
        full = cache.prices
        securities = {t: cache.securities.get(t) or SecurityInfo(ticker=t, kind="unknown") for t in wanted}
        etf_sectors = {t: dict(cache.etf_sectors[t]) for t in wanted if t in cache.etf_sectors}
        etf_holdings = {t: dict(cache.etf_holdings[t]) for t in wanted if t in cache.etf_holdings}
        latest = cache.as_of
    end = as_of or latest
    if end is None or not len(full.index):
        prices = pd.DataFrame(columns=wanted, index=pd.DatetimeIndex([], name="date"), dtype=float)
    else:
        start = pd.Timestamp(end) - pd.Timedelta(days=round(years * 365.25))
        index = full.index
        window = full.loc[(index > start) & (index <= pd.Timestamp(end))]
        prices = window.reindex(columns=wanted).dropna(how="all")
        prices.index.name = "date"
    data_as_of = prices.index[-1].date() if len(prices.index) else (as_of or latest or dt.date.today())
    return MarketData(
        prices=prices, securities=securities, etf_sectors=etf_sectors, etf_holdings=etf_holdings, as_of=data_as_of
    )
