"""Reads of market data: as-of date, staleness, latest prices, the menu, the engine's MarketData.

`market_data_for` reads the database on every call (a few queries, prices as arrays). It is not on the
hot path: the engine feed builds one `engine.MarketSnapshot` per market-data version from it (checked
against `_version_token`, one query on small aggregates) and every run shares that snapshot.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import connection
from django.db.models import Max, OuterRef, Subquery

from engine.tickers import ticker_key
from engine.types import CASH
from portfolios.models import EtfHolding, EtfSectorWeight, Price, Security

if TYPE_CHECKING:
    from engine.types import MarketData, SecurityInfo


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
    out = (ticker_key(t) for t in tickers)
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


def _version_token() -> tuple:
    """Changes whenever priced securities, prices or look-through rows are added, removed or touched.

    Unconfirmed securities (a ticker first seen in an upload: never priced) are left out: no run's market
    data holds them, so adding one must not make every worker rebuild its snapshot."""
    tables = {m: m._meta.db_table for m in (Security, Price, EtfSectorWeight, EtfHolding)}
    sql = (
        f"SELECT (SELECT COUNT(*) FROM {tables[Security]} WHERE priced), "  # noqa: S608
        f"(SELECT MAX(id) FROM {tables[Security]} WHERE priced), "
        f"(SELECT MAX(updated_at) FROM {tables[Security]} WHERE priced), (SELECT MAX(id) FROM {tables[Price]}), "
        f"(SELECT MAX(date) FROM {tables[Price]}), (SELECT MAX(id) FROM {tables[EtfSectorWeight]}), "
        f"(SELECT MAX(id) FROM {tables[EtfHolding]})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return (connection.alias, connection.settings_dict.get("NAME"), *cursor.fetchone())


def _security_facts(wanted: list[str]) -> tuple[dict[str, int], dict[str, SecurityInfo]]:
    """(ids, SecurityInfo) of the wanted tickers the security master knows."""
    from engine.types import SecurityInfo

    ids: dict[str, int] = {}
    infos: dict[str, SecurityInfo] = {}
    for s in Security.objects.filter(ticker__in=wanted).only(
        "id", "ticker", "kind", "asset_class", "sector", "size", "region", "name"
    ):
        ids[s.ticker] = s.pk
        infos[s.ticker] = SecurityInfo(ticker=s.ticker, kind=s.kind, asset_class=s.asset_class, sector=s.sector,
                                       size=s.size, region=s.region, name=s.name)
    return ids, infos


def _look_through(wanted: list[str]) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """(sector weights, single-name holdings) of the wanted ETFs that have them."""
    etf_sectors: dict[str, dict[str, float]] = {}
    for etf, sector, weight in EtfSectorWeight.objects.filter(etf__ticker__in=wanted).values_list(
        "etf__ticker", "sector", "weight"
    ):
        etf_sectors.setdefault(etf, {})[sector] = weight
    etf_holdings: dict[str, dict[str, float]] = {}
    for etf, ticker, weight in EtfHolding.objects.filter(etf__ticker__in=wanted).values_list(
        "etf__ticker", "ticker", "weight"
    ):
        etf_holdings.setdefault(etf, {})[ticker] = weight
    return etf_sectors, etf_holdings


def _price_frame(ids: dict[str, int], wanted: list[str], start: dt.date, end: dt.date) -> pd.DataFrame:
    """Closes of the wanted tickers from `start` to `end` (inclusive), one column per ticker in order; days on
    which none has a price are left out."""
    by_id = {pk: t for t, pk in ids.items()}
    sid, days, close = price_rows(security_ids=list(by_id), start=start, end=end)
    if not len(sid):
        return pd.DataFrame(columns=wanted, index=pd.DatetimeIndex([], name="date"), dtype=float)
    frame = pd.DataFrame({"security_id": sid, "date": days.astype("datetime64[ns]"), "close": close})
    wide = frame.pivot(index="date", columns="security_id", values="close").rename(columns=by_id)
    wide.columns.name = None
    prices = wide.sort_index().reindex(columns=wanted).astype(float).dropna(how="all")
    prices.index.name = "date"
    return prices


def market_data_for(*, tickers: Iterable[str], years: float = 3.0, as_of: dt.date | None = None) -> MarketData:
    """The engine's MarketData for `tickers` (CASH ignored), read from the database on every call (the
    worker keeps one `engine.MarketSnapshot` per market-data version; nothing is cached here).

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
    ids, infos = _security_facts(wanted)
    securities = {t: infos.get(t) or SecurityInfo(ticker=t, kind="unknown") for t in wanted}
    etf_sectors, etf_holdings = _look_through(wanted)
    latest = prices_as_of()
    end = as_of or latest
    if end is None:
        prices = pd.DataFrame(columns=wanted, index=pd.DatetimeIndex([], name="date"), dtype=float)
    else:
        first = (pd.Timestamp(end) - pd.Timedelta(days=round(years * 365.25))).date() + dt.timedelta(days=1)
        prices = _price_frame(ids, wanted, first, end)
    data_as_of = prices.index[-1].date() if len(prices.index) else (as_of or latest or dt.date.today())
    return MarketData(
        prices=prices, securities=securities, etf_sectors=etf_sectors, etf_holdings=etf_holdings, as_of=data_as_of
    )
