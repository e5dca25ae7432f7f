"""Price providers: one interface (tickers, start date -> adjusted closes + metadata).

- `bundled`: the snapshot shipped under settings.MARKET_DATA_DIR (development, tests, demo).
- `yfinance`: Yahoo Finance through yfinance 1.x (the production default).
- `csv`: a wide file in the bundled format (plain or gzip) named by settings.PRICE_CSV_PATH.

A provider never raises for a ticker it cannot price: it reports the ticker in `failures` with a
reason. It raises `ProviderError` only when it cannot work at all (a missing or malformed file).
Closes come back as a DataFrame indexed by a tz-naive DatetimeIndex named "date" (ascending), one
float column per ticker asked that has at least one price; NaN means no price that day.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import logging
import math
import re
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
from django.conf import settings

from engine.tickers import ticker_key

logger = logging.getLogger(__name__)

PROVIDERS = ("bundled", "yfinance", "csv")

# Yahoo's sector keys (funds_data.sector_weightings and info["sector"], normalised) -> GICS names.
YAHOO_SECTOR_TO_GICS = {
    "technology": "Information Technology",
    "financial_services": "Financials",
    "consumer_cyclical": "Consumer Discretionary",
    "consumer_defensive": "Consumer Staples",
    "basic_materials": "Materials",
    "communication_services": "Communication Services",
    "healthcare": "Health Care",
    "industrials": "Industrials",
    "energy": "Energy",
    "utilities": "Utilities",
    "realestate": "Real Estate",
}
LARGE_CAP_USD = 10e9
MID_CAP_USD = 2e9
# yfinance: tickers per yf.download call, attempts per chunk, first backoff (doubles), request timeout.
YF_CHUNK_SIZE = 100
YF_ATTEMPTS = 3
YF_BACKOFF_S = 2.0
YF_TIMEOUT_S = 30.0

_TICKER_RE = re.compile(r"^[A-Z0-9^][A-Z0-9.\-=^]{0,23}$")


class ProviderError(Exception):
    """The provider cannot work at all (missing file, malformed file, unknown provider)."""


@dataclass(frozen=True)
class SecurityMeta:
    """What a provider knows about a ticker. Empty strings mean unknown."""

    ticker: str
    name: str = ""
    kind: str = "unknown"  # stock | etf | unknown
    asset_class: str = ""
    sector: str = ""  # GICS sector (stocks)
    size: str = ""  # large | mid | small | total | n/a | ""
    region: str = ""
    etf_sectors: Mapping[str, float] = field(default_factory=dict)  # GICS sector -> fraction, sums to 1
    etf_holdings: Mapping[str, float] = field(default_factory=dict)  # a fund's top holdings: ticker -> fraction


@dataclass
class ProviderResult:
    closes: pd.DataFrame  # dates x tickers, adjusted closes in USD
    failures: dict[str, str] = field(default_factory=dict)  # ticker -> reason
    metadata: dict[str, SecurityMeta] = field(default_factory=dict)


class PriceProvider(Protocol):
    name: str

    def fetch(
        self, *, tickers: Sequence[str], start: dt.date, metadata_for: Collection[str] = ()
    ) -> ProviderResult:
        """Adjusted closes from `start` (inclusive) for `tickers`, and metadata for `metadata_for`."""
        ...


def empty_closes() -> pd.DataFrame:
    return pd.DataFrame(index=pd.DatetimeIndex([], name="date"), dtype=float)


def _tidy_closes(frame: pd.DataFrame, *, start: dt.date | None = None) -> pd.DataFrame:
    """Float columns, tz-naive midnight DatetimeIndex named "date", ascending, no duplicate dates."""
    index = pd.DatetimeIndex(frame.index)
    if index.tz is not None:
        index = index.tz_localize(None)
    frame = frame.set_axis(index.normalize().astype("datetime64[ns]"), axis=0)
    frame.index.name = "date"
    frame = frame[~frame.index.duplicated(keep="last")].sort_index().astype(float)
    if start is not None:
        frame = frame.loc[frame.index >= pd.Timestamp(start)]
    frame.columns.name = None
    return frame


def _split_priced(closes: pd.DataFrame, tickers: Iterable[str], reason: str) -> tuple[pd.DataFrame, dict[str, str]]:
    """Drop all-NaN columns; every asked ticker without a price becomes a failure with `reason`."""
    closes = closes.loc[:, closes.notna().any(axis=0)] if len(closes.columns) else closes
    failures = {t: reason for t in tickers if t not in closes.columns}
    return closes, failures


# --- wide CSV files (bundled format) ----------------------------------------------------------


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _csv_header(path: Path) -> list[str]:
    opener = gzip.open if _is_gzip(path) else open
    with opener(path, "rt", newline="", encoding="utf-8-sig") as fh:
        return next(csv.reader(fh), [])


NA_VALUES = ["", "NaN", "nan", "NA", "N/A", "null"]


def read_wide_prices(
    path: Path, *, tickers: Collection[str] | None = None, start: dt.date | None = None
) -> pd.DataFrame:
    """Read a wide price file: `date` then one column per ticker, empty cell = no price.

    Only the columns for `tickers` are parsed when given (headers are matched in Yahoo form).
    Raises ProviderError naming the line and the column of the first bad value.
    """
    path = Path(path)
    if not path.is_file():
        raise ProviderError(f"{path}: no such file")
    header = _csv_header(path)
    if not header or header[0].strip().lower() != "date":
        raise ProviderError(f"{path} line 1, column 1: expected 'date' as the first header, found {header[:1]}")
    names = {ticker_key(h): h for h in header[1:] if h.strip()}
    if len(names) != len(header) - 1:
        raise ProviderError(f"{path} line 1: blank or duplicate ticker columns in the header")
    wanted = list(names) if tickers is None else list(dict.fromkeys(t for t in tickers if t in names))
    try:
        frame = pd.read_csv(
            path, usecols=[header[0], *[names[t] for t in wanted]], compression="gzip" if _is_gzip(path) else None,
            keep_default_na=False, na_values=NA_VALUES, dtype={header[0]: str},
        )
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ProviderError(f"{path}: cannot be read as CSV: {exc}") from None
    dates = pd.to_datetime(frame[header[0]].str.strip(), format="%Y-%m-%d", errors="coerce")
    if dates.isna().any():
        row = int(np.flatnonzero(dates.isna().to_numpy())[0])
        raise ProviderError(
            f"{path} line {row + 2}, column 'date': {frame[header[0]].iloc[row]!r} is not a date (YYYY-MM-DD)"
        )
    duplicated = dates.duplicated().to_numpy()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated)[0])
        raise ProviderError(f"{path} line {row + 2}, column 'date': {frame[header[0]].iloc[row]} appears twice")
    frame = frame.drop(columns=header[0]).rename(columns={names[t]: t for t in wanted})
    for ticker in frame.columns:
        column = frame[ticker]
        if not pd.api.types.is_numeric_dtype(column):
            parsed = pd.to_numeric(column, errors="coerce")
            row = int(np.flatnonzero(parsed.isna().to_numpy() & column.notna().to_numpy())[0])
            raise ProviderError(f"{path} line {row + 2}, column {ticker!r}: {column.iloc[row]!r} is not a number")
    values = frame.to_numpy(dtype=float)
    bad = ~np.isnan(values) & ~(values > 0) | np.isinf(values)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise ProviderError(
            f"{path} line {row + 2}, column {frame.columns[col]!r}: {values[row, col]} is not a positive price"
        )
    frame.index = pd.DatetimeIndex(dates)
    return _tidy_closes(frame, start=start)


# --- securities master ------------------------------------------------------------------------


def read_securities(data_dir: Path) -> dict[str, SecurityMeta]:
    """securities.csv + etf_sector_weights.csv -> {ticker: SecurityMeta}. Bad lines raise ProviderError."""
    from portfolios.models import Security

    data_dir = Path(data_dir)
    path = data_dir / "securities.csv"
    if not path.is_file():
        raise ProviderError(f"{path}: no such file (MARKET_DATA_DIR={data_dir})")
    kinds = {Security.Kind.STOCK, Security.Kind.ETF}
    sizes = {s.value for s in Security.Size if s.value}
    out: dict[str, SecurityMeta] = {}
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        required = ["ticker", "name", "kind", "asset_class", "sector", "size", "region"]
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise ProviderError(f"{path} line 1: missing columns {', '.join(missing)}")
        for line, row in enumerate(reader, start=2):
            ticker = ticker_key(row["ticker"] or "")
            if not _TICKER_RE.match(ticker):
                raise ProviderError(f"{path} line {line}, column 'ticker': {row['ticker']!r} is not a ticker")
            if ticker in out:
                raise ProviderError(f"{path} line {line}, column 'ticker': {ticker} appears twice")
            if row["kind"] not in kinds:
                raise ProviderError(f"{path} line {line}, column 'kind': {row['kind']!r} is not stock or etf")
            if row["size"] and row["size"] not in sizes:
                raise ProviderError(
                    f"{path} line {line}, column 'size': {row['size']!r} is not one of {', '.join(sorted(sizes))}"
                )
            out[ticker] = SecurityMeta(
                ticker=ticker, name=row["name"].strip(), kind=row["kind"], asset_class=row["asset_class"].strip(),
                sector=row["sector"].strip(), size=row["size"], region=row["region"].strip(),
            )
    for etf, weights in read_etf_sector_weights(data_dir).items():
        if etf in out:
            meta = out[etf]
            out[etf] = SecurityMeta(**{**meta.__dict__, "etf_sectors": weights})
    return out


def read_etf_sector_weights(data_dir: Path) -> dict[str, dict[str, float]]:
    """etf_sector_weights.csv -> {etf: {GICS sector: fraction}}; each ETF's weights must sum to 1 (±1%)."""
    path = Path(data_dir) / "etf_sector_weights.csv"
    if not path.is_file():
        return {}
    out: dict[str, dict[str, float]] = {}
    first_line: dict[str, int] = {}
    with open(path, newline="", encoding="utf-8-sig") as fh:
        for line, row in enumerate(csv.DictReader(fh), start=2):
            etf = ticker_key(row.get("etf") or "")
            sector = (row.get("sector") or "").strip()
            if not etf or not sector:
                raise ProviderError(f"{path} line {line}, column {'etf' if not etf else 'sector'}: blank")
            try:
                weight = float(row.get("weight") or "")
            except ValueError:
                raise ProviderError(f"{path} line {line}, column 'weight': {row.get('weight')!r} is not a number")
            if not 0 <= weight <= 1:
                raise ProviderError(f"{path} line {line}, column 'weight': {weight} is not a fraction in 0..1")
            out.setdefault(etf, {})[sector] = out.get(etf, {}).get(sector, 0.0) + weight
            first_line.setdefault(etf, line)
    for etf, weights in out.items():
        total = sum(weights.values())
        if not 0.99 <= total <= 1.01:
            raise ProviderError(
                f"{path} line {first_line[etf]}, column 'weight': {etf}'s weights sum to {total:.4f}, not 1"
            )
        out[etf] = {s: w / total for s, w in weights.items()}
    return out


def read_etf_holdings(data_dir: Path) -> dict[str, dict[str, tuple[str, str, float]]]:
    """etf_holdings/{ETF}.csv (weight in percent) -> {etf: {ticker: (name, sector, fraction)}}.

    Rows that are not single stocks are dropped: cash and derivatives, placeholder tickers ("-",
    blank, "NAN" disclaimer lines), zero or negative weights. Share classes are put in Yahoo form
    (BRK.B -> BRK-B); a ticker listed twice has its weights summed.
    """
    folder = Path(data_dir) / "etf_holdings"
    out: dict[str, dict[str, tuple[str, str, float]]] = {}
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob("*.csv")):
        etf = ticker_key(path.stem)
        rows: dict[str, tuple[str, str, float]] = {}
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            if not {"ticker", "weight"} <= set(reader.fieldnames or []):
                raise ProviderError(f"{path} line 1: needs columns ticker and weight")
            for line, row in enumerate(reader, start=2):
                raw = (row.get("ticker") or "").strip()
                sector = (row.get("sector") or "").strip()
                try:
                    pct = float(row.get("weight") or "nan")
                except ValueError:
                    raise ProviderError(f"{path} line {line}, column 'weight': {row.get('weight')!r} is not a number")
                ticker = ticker_key(raw)
                if (
                    not _TICKER_RE.match(ticker) or ticker in {"NAN", "-"} or not math.isfinite(pct) or pct <= 0
                    or sector.lower().startswith("cash")
                ):
                    continue
                name = " ".join((row.get("name") or "").split())[:200]
                sector = "" if sector.lower() in {"unknown", "-"} else sector
                old = rows.get(ticker)
                rows[ticker] = (old[0] if old else name, (old[1] if old else "") or sector,
                                round((old[2] if old else 0.0) + pct / 100.0, 10))
        out[etf] = rows
    return out


# --- providers ----------------------------------------------------------------------------------


class BundledProvider:
    """The shipped snapshot under settings.MARKET_DATA_DIR."""

    name = "bundled"

    def __init__(self, data_dir: Path | None = None):
        self.data_dir = Path(data_dir or settings.MARKET_DATA_DIR)

    def fetch(
        self, *, tickers: Sequence[str], start: dt.date, metadata_for: Collection[str] = ()
    ) -> ProviderResult:
        closes = read_wide_prices(self.data_dir / "prices_daily.csv.gz", tickers=tickers, start=start)
        closes, failures = _split_priced(closes, tickers, "not in the bundled snapshot")
        meta = read_securities(self.data_dir) if metadata_for else {}
        return ProviderResult(
            closes=closes, failures=failures, metadata={t: meta[t] for t in metadata_for if t in meta}
        )


class CsvProvider:
    """A wide CSV in the bundled format (plain or gzip), e.g. one a user downloaded."""

    name = "csv"

    def __init__(self, path: str | Path | None = None):
        raw = path or settings.PRICE_CSV_PATH
        if not raw:
            raise ProviderError("PRICE_CSV_PATH is not set (a wide CSV: date then one column per ticker)")
        self.path = Path(raw)

    def fetch(
        self, *, tickers: Sequence[str], start: dt.date, metadata_for: Collection[str] = ()
    ) -> ProviderResult:
        closes = read_wide_prices(self.path, tickers=tickers, start=start)
        closes, failures = _split_priced(closes, tickers, f"no prices in {self.path.name}")
        return ProviderResult(closes=closes, failures=failures)


class YFinanceProvider:
    """Yahoo Finance through yfinance 1.x.

    `yf.download` in chunks of at most `chunk_size` tickers; with group_by="column" the columns are a
    MultiIndex (Price, Ticker) and "Close" is the adjusted close (auto_adjust=True). When Yahoo is
    unreachable yfinance returns an EMPTY frame and raises nothing, so empty frames and all-NaN
    columns count as failures; they (and raised exceptions) are retried with exponential backoff.
    """

    name = "yfinance"

    def __init__(
        self, *, chunk_size: int | None = None, attempts: int | None = None, backoff_s: float | None = None,
        timeout_s: float | None = None, sleep: Callable[[float], None] | None = None,
    ):
        self.chunk_size = chunk_size or YF_CHUNK_SIZE
        if not 1 <= self.chunk_size <= 100:
            raise ProviderError("chunk_size must be between 1 and 100")
        self.attempts = max(1, attempts or YF_ATTEMPTS)
        self.backoff_s = YF_BACKOFF_S if backoff_s is None else backoff_s
        self.timeout_s = timeout_s or YF_TIMEOUT_S
        self.sleep = sleep or time.sleep

    def fetch(
        self, *, tickers: Sequence[str], start: dt.date, metadata_for: Collection[str] = ()
    ) -> ProviderResult:
        frames: list[pd.DataFrame] = []
        failures: dict[str, str] = {}
        tickers = list(dict.fromkeys(tickers))
        for i in range(0, len(tickers), self.chunk_size):
            closes, chunk_failures = self._download_with_retries(tickers[i : i + self.chunk_size], start)
            frames.append(closes)
            failures.update(chunk_failures)
        closes = pd.concat(frames, axis=1, sort=True) if frames else empty_closes()
        closes = _tidy_closes(closes, start=start) if len(closes.columns) else empty_closes()
        metadata = {}
        for ticker in metadata_for:
            meta = self.metadata(ticker)
            if meta is not None:
                metadata[ticker] = meta
        return ProviderResult(closes=closes, failures=failures, metadata=metadata)

    def _download_with_retries(self, chunk: list[str], start: dt.date) -> tuple[pd.DataFrame, dict[str, str]]:
        pending = list(chunk)
        got: list[pd.DataFrame] = []
        failures: dict[str, str] = {}
        for attempt in range(self.attempts):
            if attempt:
                self.sleep(self.backoff_s * 2 ** (attempt - 1))
            closes, failures = self._download_once(pending, start)
            if len(closes.columns):
                got.append(closes)
            pending = [t for t in pending if t in failures]
            if not pending:
                break
        closes = pd.concat(got, axis=1, sort=True) if got else empty_closes()
        return closes, {t: failures[t] for t in pending}

    def _download_once(self, chunk: list[str], start: dt.date) -> tuple[pd.DataFrame, dict[str, str]]:
        import yfinance as yf

        try:
            frame = yf.download(
                chunk, start=start.isoformat(), auto_adjust=True, group_by="column", threads=True,
                progress=False, timeout=self.timeout_s,
            )
        except Exception as exc:  # network errors, rate limits: transient, retried by the caller
            reason = f"Yahoo request failed: {type(exc).__name__}: {exc}"[:300]
            return empty_closes(), dict.fromkeys(chunk, reason)
        if frame is None or frame.empty:
            return empty_closes(), dict.fromkeys(chunk, "Yahoo returned no data (unreachable, or unknown ticker)")
        closes = self._close_columns(frame, chunk)
        closes = _tidy_closes(closes, start=start)
        return _split_priced(closes, chunk, "Yahoo returned no prices (delisted or unknown ticker)")

    @staticmethod
    def _close_columns(frame: pd.DataFrame, chunk: list[str]) -> pd.DataFrame:
        columns = frame.columns
        if isinstance(columns, pd.MultiIndex):
            level = "Price" if "Price" in (columns.names or []) else next(
                (i for i in range(columns.nlevels) if "Close" in columns.get_level_values(i)), 0
            )
            if "Close" not in columns.get_level_values(level):
                return empty_closes()
            closes = frame.xs("Close", axis=1, level=level)
            if isinstance(closes, pd.Series):
                closes = closes.to_frame(chunk[0])
        elif "Close" in columns and len(chunk) == 1:  # multi_level_index=False, one ticker
            closes = frame[["Close"]].set_axis([chunk[0]], axis=1)
        else:
            return empty_closes()
        closes = closes.copy()
        closes.columns = [ticker_key(c) for c in closes.columns]
        return closes.loc[:, ~closes.columns.duplicated()]

    def metadata(self, ticker: str) -> SecurityMeta | None:
        """Ticker.info (quoteType, sector, marketCap) and, for ETFs, funds_data.sector_weightings."""
        import yfinance as yf

        try:
            handle = yf.Ticker(ticker)
            info = handle.info or {}
        except Exception as exc:
            logger.info("no Yahoo metadata for %s: %s", ticker, exc)
            return None
        quote_type = str(info.get("quoteType") or "").upper()
        kind = {"EQUITY": "stock", "ETF": "etf", "MUTUALFUND": "fund"}.get(quote_type, "unknown")
        if kind == "unknown":
            return None
        name = str(info.get("longName") or info.get("shortName") or "")[:200]
        country = str(info.get("country") or "")
        region = "us" if country in {"United States", ""} else "international"
        if kind == "stock":
            return SecurityMeta(
                ticker=ticker, name=name, kind=kind, asset_class="equity",
                sector=yahoo_sector_to_gics(info.get("sector")), size=size_from_market_cap(info.get("marketCap")),
                region=region,
            )
        etf_sectors: dict[str, float] = {}
        try:
            etf_sectors = yahoo_weights_to_gics(handle.funds_data.sector_weightings or {})
        except Exception as exc:
            logger.info("no Yahoo sector weightings for %s: %s", ticker, exc)
        category = str(info.get("category") or "").lower()
        size = next((s for s in ("large", "mid", "small") if s in category), "")
        asset_class = "bond" if "bond" in category or "treasury" in category else ("equity" if etf_sectors else "")
        return SecurityMeta(
            ticker=ticker, name=name, kind=kind, asset_class=asset_class,
            size=size, region="", etf_sectors=etf_sectors, etf_holdings=_top_holdings(handle, ticker),
        )


def _top_holdings(handle: object, ticker: str) -> dict[str, float]:
    """`Ticker.funds_data.top_holdings` (a frame indexed by Symbol with a "Holding Percent" column of fractions)
    as {ticker in Yahoo form: fraction}; {} when Yahoo has none."""
    try:
        frame = handle.funds_data.top_holdings  # type: ignore[attr-defined]
    except Exception as exc:
        logger.info("no Yahoo top holdings for %s: %s", ticker, exc)
        return {}
    if not isinstance(frame, pd.DataFrame) or "Holding Percent" not in frame.columns:
        return {}
    out: dict[str, float] = {}
    for symbol, weight in frame["Holding Percent"].items():
        try:
            value = float(weight)
        except (TypeError, ValueError):
            continue
        name = ticker_key(symbol)
        if name and math.isfinite(value) and 0 < value <= 1:
            out[name] = out.get(name, 0.0) + value
    return out


def yahoo_sector_key(raw: object) -> str:
    key = str(raw or "").strip().lower().replace(" ", "_")
    return "realestate" if key == "real_estate" else key


def yahoo_sector_to_gics(raw: object) -> str:
    return YAHOO_SECTOR_TO_GICS.get(yahoo_sector_key(raw), "")


def yahoo_weights_to_gics(weights: Mapping[str, object]) -> dict[str, float]:
    """Yahoo sector weightings -> GICS fractions summing to 1 (unknown keys and non-positive weights dropped)."""
    out: dict[str, float] = {}
    for key, value in weights.items():
        sector = yahoo_sector_to_gics(key)
        try:
            weight = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        if sector and math.isfinite(weight) and weight > 0:
            out[sector] = out.get(sector, 0.0) + weight
    total = sum(out.values())
    return {s: w / total for s, w in out.items()} if total > 0 else {}


def size_from_market_cap(market_cap: object) -> str:
    """>= $10B large, $2-10B mid, < $2B small; unknown -> ""."""
    try:
        cap = float(market_cap)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return ""
    if not math.isfinite(cap) or cap <= 0:
        return ""
    if cap >= LARGE_CAP_USD:
        return "large"
    return "mid" if cap >= MID_CAP_USD else "small"


def provider_for(name: str | None = None) -> PriceProvider:
    """The provider called `name` (default settings.PRICE_SOURCE)."""
    name = name or settings.PRICE_SOURCE
    if name == "bundled":
        return BundledProvider()
    if name == "csv":
        return CsvProvider()
    if name == "yfinance":
        return YFinanceProvider()
    raise ProviderError(f"unknown price provider {name!r}: use one of {', '.join(PROVIDERS)}")
