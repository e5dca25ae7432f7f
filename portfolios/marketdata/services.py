"""Writes of market data: load the bundled snapshot, refresh prices from a provider, the beat schedule.

Nothing here knows about rebalance runs: the refresh task (marketdata/tasks.py) requests them.

Prices are upserted in bulk (PostgreSQL: COPY into a temporary table, then one INSERT .. ON CONFLICT;
other databases: batched executemany with ON CONFLICT). Only new or changed, non-missing closes are
written: existing prices are never deleted and never overwritten by a missing value.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import logging
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Min, OuterRef, Subquery
from django.utils import timezone

from engine.tickers import ticker_key
from portfolios.marketdata.providers import (
    PriceProvider,
    ProviderError,
    SecurityMeta,
    provider_for,
    read_etf_holdings,
    read_securities,
    read_wide_prices,
)
from portfolios.models import EtfHolding, EtfSectorWeight, Price, PriceRefresh, Security

logger = logging.getLogger(__name__)

# A stored close counts as changed when the new one differs by more than this fraction
# (the bundled snapshot keeps 6 significant digits).
REL_TOL = 1e-5
# A refresh re-reads this many calendar days before each ticker's last stored price, to pick up
# late corrections and to detect a re-adjustment (a new dividend or split rescales the whole history).
OVERLAP_DAYS = 10
# A ticker's history is re-read from its first stored date when the overlap moved by more than this.
READJUST_TOL = 5e-5
# New tickers get history from the first stored date, or from this date when there are no prices.
HISTORY_START = dt.date(2019, 1, 1)

LOCK_NAME = "marketdata:prices_refresh"
LOCK_TIMEOUT_S = 35 * 60

BEAT_TASK = "portfolios.marketdata.tasks.prices_refresh_scheduled"
BEAT_TASK_NAME = "Refresh prices after the US close"



@dataclass
class LoadSummary:
    securities: int = 0
    securities_created: int = 0
    menu: int = 0
    etf_sector_rows: int = 0
    etf_holding_rows: int = 0
    prices_written: int = 0
    tickers_priced: int = 0
    as_of: dt.date | None = None
    seconds: float = 0.0

    def __str__(self) -> str:
        return (
            f"{self.securities} securities ({self.securities_created} new, {self.menu} on the menu), "
            f"{self.etf_sector_rows} ETF sector weights, {self.etf_holding_rows} ETF holdings, "
            f"{self.prices_written} prices written for {self.tickers_priced} tickers; "
            f"prices as of {self.as_of or 'none'} ({self.seconds:.1f}s)"
        )


@dataclass
class PriceWrite:
    rows_by_ticker: dict[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(self.rows_by_ticker.values())


def _say(stdout: TextIO | None, message: str) -> None:
    if stdout is not None:
        stdout.write(message + "\n")
        with contextlib.suppress(Exception):
            stdout.flush()


# --- securities and look-through -------------------------------------------------------------


def security_is_menu(meta: SecurityMeta) -> bool:
    """The engine's diversifier rule (engine.menu): broad, equal-weight, sector (not tech/semis or a single
    industry), size, international, bond, cash-like and gold ETFs, one of each near-duplicate pair."""
    from engine.menu import is_diversifier  # lazy: importing the engine package loads cvxpy

    return is_diversifier(meta.ticker, meta.kind, meta.etf_sectors.get("Information Technology", 0.0))


def securities_upsert(*, metas: Collection[SecurityMeta], source: str) -> tuple[dict[str, int], int]:
    """Create or update securities from master data. Returns ({ticker: id}, how many were created)."""
    existing = set(Security.objects.filter(ticker__in=[m.ticker for m in metas]).values_list("ticker", flat=True))
    rows = [
        Security(
            ticker=m.ticker, name=m.name, kind=m.kind, asset_class=m.asset_class, sector=m.sector, size=m.size,
            region=m.region, is_menu=security_is_menu(m), source=source,
        )
        for m in metas
    ]
    Security.objects.bulk_create(
        rows, update_conflicts=True, unique_fields=["ticker"],
        update_fields=["name", "kind", "asset_class", "sector", "size", "region", "is_menu", "source", "updated_at"],
    )
    ids = dict(Security.objects.filter(ticker__in=[m.ticker for m in metas]).values_list("ticker", "id"))
    return ids, len(set(ids) - existing)


def securities_fill_metadata(*, metas: Mapping[str, SecurityMeta], source: str) -> list[str]:
    """Fill what is unknown about securities (kind "unknown" or blank fields) from provider metadata.

    Never overwrites a field that is already set. ETF sector look-through and top holdings are written
    when the ETF has none. Returns the tickers that changed.
    """
    changed: list[str] = []
    for security in Security.objects.filter(ticker__in=list(metas)):
        meta = metas[security.ticker]
        fields = _security_fields_fill(security, meta)
        lookthrough = _lookthrough_fill(security, meta, source)
        if fields or lookthrough:
            changed.append(security.ticker)
    return changed


def _security_fields_fill(security: Security, meta: SecurityMeta) -> bool:
    """Set the blank fields (and an unknown kind) of `security` from `meta`; True when any changed."""
    updates = {}
    if security.kind == Security.Kind.UNKNOWN and meta.kind != "unknown":
        updates["kind"] = meta.kind
    for name in ("name", "asset_class", "sector", "size", "region"):
        if not getattr(security, name) and getattr(meta, name):
            updates[name] = getattr(meta, name)
    for name, value in updates.items():
        setattr(security, name, value)
    if updates:
        security.save(update_fields=[*updates, "updated_at"])
    return bool(updates)


def _lookthrough_fill(security: Security, meta: SecurityMeta, source: str) -> bool:
    """Write the fund's sector weights and top holdings when it has none yet; True when any was written."""
    wrote = False
    if meta.etf_sectors and not EtfSectorWeight.objects.filter(etf=security).exists():
        EtfSectorWeight.objects.bulk_create(
            [EtfSectorWeight(etf=security, sector=s, weight=w, source=source) for s, w in meta.etf_sectors.items()]
        )
        wrote = True
    if meta.etf_holdings and not EtfHolding.objects.filter(etf=security).exists():
        EtfHolding.objects.bulk_create(
            [EtfHolding(etf=security, ticker=t, weight=w) for t, w in meta.etf_holdings.items()]
        )
        wrote = True
    return wrote


def etf_lookthrough_replace(
    *, sector_weights: Mapping[str, Mapping[str, float]], holdings: Mapping[str, Mapping[str, tuple[str, str, float]]],
    security_ids: Mapping[str, int], sectors_by_ticker: Mapping[str, str], source: str,
) -> tuple[int, int]:
    """Replace the sector weights and single-name holdings of the ETFs given. Returns row counts."""
    sector_etfs = [security_ids[e] for e in sector_weights if e in security_ids]
    EtfSectorWeight.objects.filter(etf_id__in=sector_etfs).delete()
    sector_rows = EtfSectorWeight.objects.bulk_create(
        [
            EtfSectorWeight(etf_id=security_ids[etf], sector=sector, weight=weight, source=source)
            for etf, weights in sector_weights.items() if etf in security_ids
            for sector, weight in weights.items()
        ],
        batch_size=2000,
    )
    holding_etfs = [security_ids[e] for e in holdings if e in security_ids]
    EtfHolding.objects.filter(etf_id__in=holding_etfs).delete()
    holding_rows = EtfHolding.objects.bulk_create(
        [
            EtfHolding(
                etf_id=security_ids[etf], ticker=ticker, name=name,
                sector=sectors_by_ticker.get(ticker) or sector, weight=weight,
            )
            for etf, rows in holdings.items() if etf in security_ids
            for ticker, (name, sector, weight) in rows.items()
        ],
        batch_size=2000,
    )
    return len(sector_rows), len(holding_rows)


# --- prices -----------------------------------------------------------------------------------


def _existing_closes(*, security_ids: Sequence[int], index: pd.DatetimeIndex) -> np.ndarray:
    """Stored closes aligned to (index, security_ids); NaN where nothing is stored."""
    from portfolios.marketdata.selectors import price_rows

    old = np.full((len(index), len(security_ids)), np.nan)
    if not len(index) or not security_ids:
        return old
    ids, days, closes = price_rows(security_ids=security_ids, start=index[0].date(), end=index[-1].date())
    if not len(ids):
        return old
    cols = pd.Index(security_ids).get_indexer(ids)
    pos = index.get_indexer(pd.DatetimeIndex(days.astype("datetime64[ns]")))
    keep = (cols >= 0) & (pos >= 0)
    old[pos[keep], cols[keep]] = closes[keep]
    return old


def _rows_upsert(
    *, ids: np.ndarray, dates: np.ndarray, closes: np.ndarray, all_new: bool = False, chunk_rows: int = 100_000
) -> None:
    """Insert or update (security_id, date, close) rows in bulk, converting one chunk at a time.

    PostgreSQL: COPY into a temporary table, then one INSERT .. ON CONFLICT DO UPDATE. When
    `all_new` (nothing is stored for these security/date pairs, e.g. a first load) the rows are
    COPied straight into the table inside a savepoint; a concurrent writer's row makes that fail
    with IntegrityError, and the upsert path runs instead. Other databases: batched executemany
    with ON CONFLICT DO UPDATE.
    """
    if not len(ids):
        return
    table = Price._meta.db_table

    def chunks() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        for i in range(0, len(ids), chunk_rows):
            day_text = np.datetime_as_string(dates[i : i + chunk_rows].astype("datetime64[D]"), unit="D")
            yield ids[i : i + chunk_rows], day_text, closes[i : i + chunk_rows]

    def copy_into(cursor, target: str) -> None:
        with cursor.copy(f"COPY {target} (security_id, date, close) FROM STDIN") as copy:
            for chunk_ids, chunk_days, chunk_closes in chunks():
                buffer = io.StringIO()
                pd.DataFrame({"s": chunk_ids, "d": chunk_days, "c": chunk_closes}).to_csv(
                    buffer, sep="\t", header=False, index=False
                )
                copy.write(buffer.getvalue())

    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            if all_new:
                try:
                    with transaction.atomic():
                        copy_into(cursor, table)
                    return
                except IntegrityError:
                    logger.info("prices appeared while loading; upserting instead")
            cursor.execute("DROP TABLE IF EXISTS marketdata_price_load")
            cursor.execute(
                "CREATE TEMPORARY TABLE marketdata_price_load "
                "(security_id bigint, date date, close double precision) ON COMMIT DROP"
            )
            copy_into(cursor, "marketdata_price_load")
            cursor.execute(
                f"INSERT INTO {table} (security_id, date, close) "  # noqa: S608
                "SELECT security_id, date, close FROM marketdata_price_load ORDER BY security_id, date "
                "ON CONFLICT (security_id, date) DO UPDATE SET close = EXCLUDED.close"
            )
            cursor.execute("DROP TABLE marketdata_price_load")
        else:
            sql = (
                f"INSERT INTO {table} (security_id, date, close) VALUES (%s, %s, %s) "  # noqa: S608
                "ON CONFLICT (security_id, date) DO UPDATE SET close = excluded.close"
            )
            for chunk_ids, chunk_days, chunk_closes in chunks():
                cursor.executemany(
                    sql, list(zip(chunk_ids.tolist(), chunk_days.tolist(), chunk_closes.tolist(), strict=True))
                )


def prices_write(
    *, closes: pd.DataFrame, security_ids: Mapping[str, int], stdout: TextIO | None = None
) -> PriceWrite:
    """Upsert the non-missing closes that are new or changed. Returns rows written per ticker.

    closes: dates x tickers (DatetimeIndex). Tickers without a security id are ignored. A NaN never
    replaces a stored price, and no stored price is ever deleted.
    """
    tickers = [t for t in closes.columns if t in security_ids]
    if not tickers or closes.empty:
        return PriceWrite()
    closes = closes[tickers].sort_index()
    ids = [security_ids[t] for t in tickers]
    new = closes.to_numpy(dtype=float)
    old = _existing_closes(security_ids=ids, index=pd.DatetimeIndex(closes.index))
    with np.errstate(invalid="ignore"):
        write = ~np.isnan(new) & (np.isnan(old) | (np.abs(new - old) > REL_TOL * np.abs(old)))
    cols, rows = np.nonzero(write.T)  # ticker-major order: index-friendly inserts
    _say(stdout, f"  writing {len(rows):,} prices for {len(np.unique(cols)):,} tickers")
    _rows_upsert(
        ids=np.asarray(ids, dtype=np.int64)[cols], dates=closes.index.to_numpy()[rows], closes=new[rows, cols],
        all_new=bool(np.isnan(old[rows, cols]).all()),
    )
    counts = np.bincount(cols, minlength=len(tickers))
    written = {tickers[i]: int(n) for i, n in enumerate(counts) if n}
    if written:
        latest = Price.objects.filter(security=OuterRef("pk")).order_by("-date").values("date")[:1]
        Security.objects.filter(ticker__in=list(written)).update(
            priced=True, last_price_date=Subquery(latest), updated_at=timezone.now()
        )
    return PriceWrite(rows_by_ticker=written)


# --- the bundled snapshot ---------------------------------------------------------------------


def market_data_load_bundled(*, stdout: TextIO | None = None, data_dir: Path | None = None) -> LoadSummary:
    """Load (or reload) the bundled snapshot: securities, ETF look-through, prices. Idempotent.

    Everything is validated before anything is written; a bad line raises ProviderError naming the
    file, line and column, and the database is left as it was.
    """
    started = time.perf_counter()
    data_dir = Path(data_dir or settings.MARKET_DATA_DIR)
    _say(stdout, f"Loading bundled market data from {data_dir}")
    metas = read_securities(data_dir)
    holdings = read_etf_holdings(data_dir)
    _say(stdout, f"  read {len(metas)} securities, look-through for {len(holdings)} ETF holdings files")
    closes = read_wide_prices(data_dir / "prices_daily.csv.gz")
    _say(stdout, f"  read {closes.shape[0]:,} trading days x {closes.shape[1]} tickers "
                 f"({closes.index[0]:%Y-%m-%d} .. {closes.index[-1]:%Y-%m-%d})" if len(closes) else "  no prices")
    unlisted = {t: SecurityMeta(ticker=t) for t in closes.columns if t not in metas}
    summary = LoadSummary()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:  # a reload is idempotent: no need to wait for the WAL flush
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        ids, summary.securities_created = securities_upsert(metas=[*metas.values(), *unlisted.values()],
                                                            source="bundled")
        summary.securities = len(ids)
        summary.menu = sum(1 for m in metas.values() if security_is_menu(m))
        sectors = {t: m.sector for t, m in metas.items() if m.sector}
        summary.etf_sector_rows, summary.etf_holding_rows = etf_lookthrough_replace(
            sector_weights={t: m.etf_sectors for t, m in metas.items() if m.etf_sectors}, holdings=holdings,
            security_ids=ids, sectors_by_ticker=sectors, source="bundled",
        )
        _say(stdout, f"  {summary.securities} securities ({summary.securities_created} new), "
                     f"{summary.etf_sector_rows} sector weights, {summary.etf_holding_rows} holdings")
        write = prices_write(closes=closes, security_ids=ids, stdout=stdout)
        summary.prices_written, summary.tickers_priced = write.rows, int(closes.notna().any().sum())
        beat_schedule_ensure()
    from portfolios.marketdata.selectors import prices_as_of

    summary.as_of = prices_as_of()
    summary.seconds = time.perf_counter() - started
    _say(stdout, f"Done: {summary}")
    return summary


def market_data_ensure_loaded(*, stdout: TextIO | None = None) -> bool:
    """Load the bundled snapshot when no price is stored yet. Returns True when it loaded."""
    if Price.objects.exists():
        return False
    market_data_load_bundled(stdout=stdout)
    return True


# --- refreshing -----------------------------------------------------------------------------


@contextlib.contextmanager
def prices_refresh_lock(*, timeout_s: int = LOCK_TIMEOUT_S) -> Iterator[bool | None]:
    """A Redis lock (settings.REDIS_URL) so two refreshes never overlap.

    Yields True when held, False when another refresh holds it, None when Redis does not answer
    (the refresh then runs unlocked; `make run` without Redis has a single beat anyway).
    """
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=5)
    lock = client.lock(LOCK_NAME, timeout=timeout_s)
    try:
        acquired = lock.acquire(blocking=False)
    except redis.RedisError as exc:
        logger.warning("price refresh lock unavailable (%s): running without it", exc)
        acquired = None
    try:
        yield acquired
    finally:
        if acquired:
            with contextlib.suppress(redis.RedisError):
                lock.release()
        client.close()


def refresh_tickers() -> list[str]:
    """Every held ticker and every menu ticker, except unconfirmed ones (first seen in an upload, never priced
    by a provider: see onboarding.py), so that typos never grow the shared refresh list."""
    from django.db.models import Q

    from portfolios.marketdata.onboarding import UNCONFIRMED

    return list(
        Security.objects.filter(Q(holdings__isnull=False) | Q(is_menu=True)).exclude(UNCONFIRMED)
        .values_list("ticker", flat=True).distinct().order_by("ticker")
    )


def _overlap_moved(*, closes: pd.DataFrame, security_ids: Mapping[str, int], last_dates: Mapping[str, dt.date]
                   ) -> list[str]:
    """Tickers whose re-read overlap differs from the stored closes: the provider re-adjusted their history."""
    tickers = [t for t in closes.columns if t in last_dates and t in security_ids]
    if not tickers or closes.empty:
        return []
    frame = closes[tickers]
    old = _existing_closes(security_ids=[security_ids[t] for t in tickers], index=pd.DatetimeIndex(frame.index))
    new = frame.to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        moved = np.abs(new / old - 1.0)
    out = []
    for j, ticker in enumerate(tickers):
        col = moved[:, j][~np.isnan(moved[:, j])]
        if len(col) and float(np.median(col)) > READJUST_TOL:
            out.append(ticker)
    return out


def _fetch(
    *, source: PriceProvider, tickers: list[str], start: dt.date, metadata_for: Collection[str]
) -> tuple[pd.DataFrame, dict[str, str], dict[str, SecurityMeta]]:
    if not tickers:
        return pd.DataFrame(), {}, {}
    result = source.fetch(tickers=tickers, start=start, metadata_for=[t for t in tickers if t in metadata_for])
    return result.closes, dict(result.failures), dict(result.metadata)


def _refresh_fetch(
    *, source: PriceProvider, asked: list[str], known: Mapping[str, Security]
) -> tuple[pd.DataFrame, dict[str, str], dict[str, SecurityMeta]]:
    """Ask the provider for what is missing: tickers with history from a little before their last
    stored price (and from the first stored date when the overlap shows a re-adjustment), new
    tickers from the first stored date. Metadata is asked for tickers the master does not know."""
    last_dates = {t: s.last_price_date for t, s in known.items() if s.last_price_date}
    first = Price.objects.aggregate(first=Min("date"))["first"] or HISTORY_START
    metadata_for = {t for t in asked if t not in known or known[t].kind == Security.Kind.UNKNOWN
                    or known[t].last_price_date is None}
    with_history = [t for t in asked if t in last_dates]
    new = [t for t in asked if t not in last_dates]
    frames, failures, metas = [], {}, {}
    if with_history:
        start = min(last_dates[t] for t in with_history) - dt.timedelta(days=OVERLAP_DAYS)
        closes, fails, found = _fetch(source=source, tickers=with_history, start=start, metadata_for=metadata_for)
        ids = {t: known[t].pk for t in with_history}
        readjust = _overlap_moved(closes=closes, security_ids=ids, last_dates=last_dates)
        if readjust:
            logger.info("re-reading the whole history of %s (the provider re-adjusted it)", readjust)
            again, again_fails, _ = _fetch(source=source, tickers=readjust, start=first, metadata_for=())
            closes = pd.concat(
                [closes.drop(columns=[t for t in readjust if t in again.columns]), again], axis=1, sort=True
            )
            fails.update({t: r for t, r in again_fails.items() if t not in closes.columns})
        frames.append(closes)
        failures.update(fails)
        metas.update(found)
    if new:
        closes, fails, found = _fetch(source=source, tickers=new, start=first, metadata_for=metadata_for)
        frames.append(closes)
        failures.update(fails)
        metas.update(found)
    frames = [f for f in frames if len(f.columns)]
    return (pd.concat(frames, axis=1, sort=True) if frames else pd.DataFrame()), failures, metas


def prices_refresh(*, tickers: list[str] | None = None, provider: str | None = None) -> PriceRefresh:
    """Run a provider for every held and menu ticker (or `tickers`), write new or changed closes.

    Records a PriceRefresh (status done, partial, failed, or skipped when another refresh holds the lock).
    """
    return prices_refresh_changes(tickers=tickers, provider=provider)[0]


def prices_refresh_changes(
    *, tickers: list[str] | None = None, provider: str | None = None
) -> tuple[PriceRefresh, list[str]]:
    """`prices_refresh`, also returning the tickers whose prices changed (the caller decides what follows)."""
    provider_name = provider or settings.PRICE_SOURCE
    with prices_refresh_lock() as locked:
        if locked is False:
            return PriceRefresh.objects.create(
                provider=provider_name, status=PriceRefresh.Status.SKIPPED, finished_at=timezone.now(),
                tickers_asked=len(tickers or []), message="Another price refresh was running; this one was skipped.",
            ), []
        refresh, changed = _prices_refresh_locked(tickers=tickers, provider_name=provider_name)
        if locked is None:
            refresh.message = (refresh.message + " (ran without the Redis lock: Redis did not answer)").strip()
            refresh.save(update_fields=["message"])
    return refresh, changed


def _prices_refresh_locked(*, tickers: list[str] | None, provider_name: str) -> tuple[PriceRefresh, list[str]]:
    from portfolios.marketdata.selectors import prices_as_of

    asked = list(dict.fromkeys(ticker_key(t) for t in tickers if t.strip())) if tickers else refresh_tickers()
    refresh = PriceRefresh.objects.create(provider=provider_name, tickers_asked=len(asked))
    try:
        source = provider_for(provider_name)
        securities = Security.objects.filter(ticker__in=asked).only("id", "ticker", "kind", "last_price_date")
        known = {s.ticker: s for s in securities}
        closes, failures, metas = _refresh_fetch(source=source, asked=asked, known=known)
        priced = [t for t in asked if t in closes.columns and closes[t].notna().any()]
        failures = {t: failures.get(t, "no prices returned") for t in asked if t not in priced}

        with transaction.atomic():
            to_create = [t for t in asked if t not in known and (t in priced or t in metas)]
            if to_create:
                Security.objects.bulk_create(
                    [Security(ticker=t, kind=Security.Kind.UNKNOWN, source=provider_name) for t in to_create],
                    ignore_conflicts=True,
                )
            securities_fill_metadata(metas=metas, source=provider_name)
            ids = dict(Security.objects.filter(ticker__in=priced).values_list("ticker", "id"))
            write = prices_write(closes=closes[priced] if priced else pd.DataFrame(), security_ids=ids)
    except ProviderError as exc:
        refresh.status, refresh.message = PriceRefresh.Status.FAILED, str(exc)
        refresh.failures = dict.fromkeys(asked, str(exc))
        refresh.finished_at, refresh.as_of = timezone.now(), prices_as_of()
        refresh.save()
        return refresh, []
    except Exception as exc:
        refresh.status, refresh.finished_at = PriceRefresh.Status.FAILED, timezone.now()
        refresh.message = f"Unexpected error: {type(exc).__name__}: {exc}"[:2000]
        refresh.save()
        raise
    changed = sorted(write.rows_by_ticker)
    refresh.tickers_updated, refresh.rows_written = len(changed), write.rows
    refresh.failures = failures
    refresh.as_of = prices_as_of()
    refresh.finished_at = timezone.now()
    if not asked:
        refresh.status, refresh.message = PriceRefresh.Status.DONE, "No held or menu tickers to refresh."
    elif not priced:
        refresh.status, refresh.message = PriceRefresh.Status.FAILED, f"Every one of the {len(asked)} tickers failed."
    elif failures:
        refresh.status = PriceRefresh.Status.PARTIAL
        refresh.message = f"{len(failures)} of {len(asked)} tickers failed; their last good prices are kept."
    else:
        refresh.status, refresh.message = PriceRefresh.Status.DONE, ""
    refresh.save()
    return refresh, changed


# --- the beat schedule ------------------------------------------------------------------------


def beat_schedule_ensure():
    """The weekday 17:30 America/New_York price refresh, created once (then editable in the admin)."""
    from zoneinfo import ZoneInfo

    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    task = PeriodicTask.objects.filter(name=BEAT_TASK_NAME).first()
    if task is not None:
        return task
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute="30", hour="17", day_of_week="1-5", day_of_month="*", month_of_year="*",
        timezone=ZoneInfo("America/New_York"),
    )
    task, _ = PeriodicTask.objects.get_or_create(
        name=BEAT_TASK_NAME,
        defaults={"task": BEAT_TASK, "crontab": crontab,
                  "description": "Weekdays after the US close: refresh held and menu prices, then recompute."},
    )
    return task
