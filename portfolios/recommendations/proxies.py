"""Nothing dropped: value and model the holdings the market data cannot price.

A holding whose ticker has no market price is valued at the broker file's own price (or market value
over shares) and stays in the value, the weights and the limits. Its risk is modelled by a proxy, named:

- a mutual fund by its ETF twin (data/funds/mutual_funds.csv), a target-date fund by a blend of bundled
  ETFs along its glide path; the optimizer may sell it (at the file's price), never buy it;
- a Treasury (CUSIP 912...) by a Treasury fund of matching maturity (bills: BIL, 1-3 years: SHY,
  3-10 years: IEF, longer: TLT), another CUSIP by a bond-market fund (AGG); held fixed;
- a stock by its sector fund when its sector is known, else by the market (VTI); held fixed;
- an option is held fixed at its market value, its risk not modelled (counted as held fixed).
A holding with no price at all is named and counted as held fixed at $0 (unknown value).

The engine sees each as an ordinary asset (`extend_market`): a price column that is the proxy's history
rescaled to end at the file's price, the proxy's classification and look-through under the holding's own
ticker, and `Options.fixed` for what may not be traded. `coverage` then says how much of the value is
modelled directly, by proxy or held fixed; under MODELLED_MIN the run's status is "partial".
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.exposures import HOLDINGS_PROXY
from engine.market import last_prices
from engine.risk import SECTOR_PROXY
from engine.types import MarketData, RebalanceRequest, SecurityInfo

MODELLED_MIN = 0.90  # below this share of value modelled directly or by proxy, the status is "partial"
# At most this many unpriced tickers are modelled one by one (the largest by file value); the rest are held
# fixed together as one OVERFLOW_TICKER asset, so a file of thousands of unknown tickers costs one asset.
MAX_MODELLED = 200
OVERFLOW_TICKER = "OTHER-UNPRICED"
FUNDS_PATH = Path(__file__).resolve().parents[2] / "data" / "funds" / "mutual_funds.csv"
MARKET = ("VTI", "SPY")
BOND_MARKET = ("AGG", "BND")
# Treasury funds by years to maturity (up to and including the bound), best first
TREASURY_LADDER: tuple[tuple[float, tuple[str, ...]], ...] = (
    (1.0, ("BIL", "SHV", "SHY")),
    (3.0, ("SHY", "IEF")),
    (10.0, ("IEF", "SHY")),
    (math.inf, ("TLT", "IEF")),
)
MATURITY_BUCKETS = ((1.0, "within a year"), (3.0, "in 1-3 years"), (10.0, "in 3-10 years"),
                    (math.inf, "in over 10 years"))
# a Treasury CUSIP's prefix says what it is when no maturity date is given
TREASURY_PREFIX_YEARS = {"912797": 0.5, "912796": 0.5, "912810": 20.0, "912828": 5.0, "91282C": 5.0}
GLIDE_STOCKS_MAX, GLIDE_STOCKS_AT_TARGET, GLIDE_STOCKS_MIN = 0.90, 0.50, 0.30
GLIDE_YEARS_BEFORE, GLIDE_YEARS_AFTER = 25, 7
GLIDE_INTERNATIONAL = 0.40  # of the stock part

_CUSIP_RE = re.compile(r"^[0-9]{3}[0-9A-Z]{5}[0-9]$")
_OPTION_RE = re.compile(r"^-?([A-Z]{1,6})[ ]*\d{6}[CP]\d")
_OPTION_WORDS_RE = re.compile(r"^([A-Z]{1,6})\s+\d{2}/\d{2}/\d{4}\s+[\d.]+\s+[CP]$")
_DATE_RES = (
    (re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})"), ("m", "d", "y")),
    (re.compile(r"(\d{4})-(\d{2})-(\d{2})"), ("y", "m", "d")),
)


class Method:
    DIRECT = "direct"
    PROXY = "proxy"
    FIXED = "fixed"
    UNKNOWN = "unknown"  # no price anywhere: held fixed at $0


# --- the mutual-fund table ------------------------------------------------------------------------


@dataclass(frozen=True)
class FundTwin:
    ticker: str
    name: str
    family: str
    expense_ratio_pct: float  # percent per year (0.015 = 0.015%)
    twin: str  # a bundled ETF; "" for a target-date fund
    target_year: int | None = None


@lru_cache(maxsize=2)
def mutual_funds(path: str = str(FUNDS_PATH)) -> dict[str, FundTwin]:
    """The fund table by ticker (data/funds/mutual_funds.csv)."""
    with open(path, newline="") as fh:
        return {
            row["ticker"]: FundTwin(
                ticker=row["ticker"], name=row["name"], family=row["family"],
                expense_ratio_pct=float(row["expense_ratio_pct"]), twin=row["twin"],
                target_year=int(row["target_year"]) if row["target_year"] else None,
            )
            for row in csv.DictReader(fh)
        }


def glide_path_stocks(target_year: int, year: int) -> float:
    """Stock share of a target-date fund in `year`: 90% until 25 years before the target, then linear to 50%
    at the target year, then linear to 30% seven years after (and 30% from then on)."""
    to_go = target_year - year
    if to_go >= GLIDE_YEARS_BEFORE:
        return GLIDE_STOCKS_MAX
    if to_go >= 0:
        return GLIDE_STOCKS_AT_TARGET + (GLIDE_STOCKS_MAX - GLIDE_STOCKS_AT_TARGET) * to_go / GLIDE_YEARS_BEFORE
    past = min(-to_go, GLIDE_YEARS_AFTER)
    return GLIDE_STOCKS_AT_TARGET - (GLIDE_STOCKS_AT_TARGET - GLIDE_STOCKS_MIN) * past / GLIDE_YEARS_AFTER


def glide_path_blend(target_year: int, year: int) -> tuple[tuple[str, float], ...]:
    """A target-date fund as bundled ETFs: US stocks (VTI), international stocks (VXUS), bonds (BND)."""
    stocks = glide_path_stocks(target_year, year)
    return (("VTI", stocks * (1 - GLIDE_INTERNATIONAL)), ("VXUS", stocks * GLIDE_INTERNATIONAL), ("BND", 1 - stocks))


# --- choosing a proxy -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Unpriced:
    """One ticker the market data cannot price, over all its lots."""

    ticker: str
    shares: float
    value_usd: float | None  # what the file said it is worth (sum over lots); None = the file gave no price
    kind: str = ""  # hint: stock | etf | fund | option | bond | unknown | ""
    sector: str = ""  # GICS sector when the master knows it
    description: str = ""

    @property
    def price(self) -> float | None:
        if self.value_usd is None or self.shares <= 0 or not self.value_usd > 0:
            return None
        return self.value_usd / self.shares


@dataclass(frozen=True)
class Proxy:
    """How one unpriced ticker is valued and modelled."""

    ticker: str
    kind: str  # fund | bond | stock | option | unknown
    method: str  # Method.PROXY | FIXED | UNKNOWN
    blend: tuple[tuple[str, float], ...]  # ETFs standing in for its risk, weights summing to 1; () = none
    price: float | None  # USD per share (the file's); None = unknown value
    shares: float
    sellable: bool  # the optimizer may sell it (at `price`)
    label: str  # plain words for the proxy: "its ETF twin VOO"
    info: SecurityInfo = field(default_factory=lambda: SecurityInfo(ticker="", kind="unknown"))

    @property
    def value_usd(self) -> float:
        return self.shares * self.price if self.price else 0.0

    def proxy_text(self) -> str:
        return ", ".join(f"{t} {w:.0%}" if len(self.blend) > 1 else t for t, w in self.blend)


def classify(ticker: str, kind_hint: str = "", description: str = "") -> str:
    """fund | bond | option | stock, from the fund table, the file's hint and the ticker's shape."""
    if ticker in mutual_funds():
        return "fund"
    if kind_hint in ("fund", "bond", "option", "stock"):
        return kind_hint
    if kind_hint == "etf":
        return "fund"
    if _OPTION_RE.match(ticker) or _OPTION_WORDS_RE.match(ticker):
        return "option"
    if _CUSIP_RE.match(ticker):
        return "bond"
    if len(ticker) == 5 and ticker.isalpha() and ticker.endswith("X"):
        return "fund"  # the NASDAQ fund-ticker convention (five letters ending in X)
    return "stock"


def maturity_years(ticker: str, description: str, as_of: dt.date) -> float | None:
    """Years to maturity from a date in the description, else from a Treasury CUSIP's prefix."""
    for pattern, order in _DATE_RES:
        for match in pattern.finditer(description or ""):
            parts = dict(zip(order, (int(g) for g in match.groups()), strict=True))
            try:
                date = dt.date(parts["y"], parts["m"], parts["d"])
            except ValueError:
                continue
            if date > as_of:
                return (date - as_of).days / 365.25
    return TREASURY_PREFIX_YEARS.get(ticker[:6])


def _first(candidates: Iterable[str], available: Collection[str]) -> str | None:
    return next((t for t in candidates if t in available), None)


def _fund_proxy(item: Unpriced, available: Collection[str], as_of: dt.date) -> tuple[tuple, bool, str]:
    fund = mutual_funds().get(item.ticker)
    if fund is not None and fund.target_year is not None:
        blend = tuple((t, w) for t, w in glide_path_blend(fund.target_year, as_of.year) if t in available and w > 0)
        total = sum(w for _, w in blend)
        stocks = glide_path_stocks(fund.target_year, as_of.year)
        label = (f"{fund.name} (expense ratio {fund.expense_ratio_pct:g}%) as its glide path in {as_of.year}: "
                 f"{stocks:.0%} stocks, {1 - stocks:.0%} bonds")
        return tuple((t, w / total) for t, w in blend), True, label
    if fund is not None and fund.twin in available:
        return ((fund.twin, 1.0),), True, (f"{fund.name} (expense ratio {fund.expense_ratio_pct:g}%), modelled by "
                                           f"its ETF twin {fund.twin}")
    market = _first(MARKET, available)
    return (((market, 1.0),) if market else ()), False, "a fund this app does not know, modelled by the market"


def _bond_proxy(item: Unpriced, available: Collection[str], as_of: dt.date) -> tuple[tuple, bool, str]:
    treasury = item.ticker.startswith("912")
    years = maturity_years(item.ticker, item.description, as_of)
    if not treasury:
        fund = _first(BOND_MARKET, available)
        return (((fund, 1.0),) if fund else ()), False, "a bond, modelled by the bond market"
    years = 5.0 if years is None else years
    fund = next((_first(c, available) for bound, c in TREASURY_LADDER if years <= bound and _first(c, available)),
                None)
    bucket = next(text for bound, text in MATURITY_BUCKETS if years <= bound)
    label = f"Treasuries maturing {bucket}, modelled by a Treasury fund of matching maturity"
    return (((fund, 1.0),) if fund else ()), False, label


def _stock_proxy(item: Unpriced, available: Collection[str]) -> tuple[tuple, bool, str]:
    fund = SECTOR_PROXY.get(item.sector)
    if fund in available:
        return ((fund, 1.0),), False, f"a {item.sector} stock, modelled by its sector fund"
    market = _first(MARKET, available)
    return (((market, 1.0),) if market else ()), False, "a stock of unknown sector, modelled by the market"


def choose_proxy(item: Unpriced, *, available: Collection[str], as_of: dt.date,
                 securities: Mapping[str, SecurityInfo] | None = None) -> Proxy:
    """How `item` is valued and modelled; `available` are the tickers with prices."""
    kind = classify(item.ticker, item.kind, item.description)
    price = item.price
    if price is None:
        return Proxy(item.ticker, kind, Method.UNKNOWN, (), None, item.shares, False,
                     "no price in the market data or the file")
    if kind == "option":
        underlying = _option_underlying(item.ticker)
        base = (securities or {}).get(underlying or "")
        info = SecurityInfo(ticker=item.ticker, kind="stock", asset_class="equity",
                            sector=base.sector if base else "", size=base.size if base else "", name=item.description)
        return Proxy(item.ticker, kind, Method.FIXED, (), price, item.shares, False,
                     "an option, held fixed at its market value (its risk is not modelled)", info)
    if kind == "fund":
        blend, sellable, label = _fund_proxy(item, available, as_of)
    elif kind == "bond":
        blend, sellable, label = _bond_proxy(item, available, as_of)
    else:
        blend, sellable, label = _stock_proxy(item, available)
    if not blend:
        return Proxy(item.ticker, kind, Method.FIXED, (), price, item.shares, False,
                     f"{label}; no proxy fund has prices, so it is held fixed")
    info = _proxy_info(item, kind, blend, securities or {})
    return Proxy(item.ticker, kind, Method.PROXY, blend, price, item.shares, sellable, label, info)


def _option_underlying(ticker: str) -> str | None:
    match = _OPTION_RE.match(ticker) or _OPTION_WORDS_RE.match(ticker)
    return match.group(1) if match else None


def _proxy_info(item: Unpriced, kind: str, blend: tuple[tuple[str, float], ...],
                securities: Mapping[str, SecurityInfo]) -> SecurityInfo:
    """The classification the engine sees for the holding: its proxy's, under its own ticker."""
    name = item.description or item.ticker
    if kind == "stock":
        return SecurityInfo(ticker=item.ticker, kind="stock", asset_class="equity", sector=item.sector, name=name)
    parts = [(securities.get(t) or SecurityInfo(ticker=t, kind="etf"), w) for t, w in blend]
    classes: dict[str, float] = {}
    for info, weight in parts:
        klass = info.asset_class or "equity"
        classes[klass] = classes.get(klass, 0.0) + weight
    main = max(parts, key=lambda p: p[1])[0]
    mix = tuple(sorted(classes.items())) if len(classes) > 1 else ()
    sizes = {info.size for info, _ in parts if (info.asset_class or "equity") == "equity"}
    size = main.size if len(parts) == 1 else (sizes.pop() if len(sizes) == 1 else "total")
    return SecurityInfo(ticker=item.ticker, kind="etf" if kind == "fund" else kind,
                        asset_class=max(classes, key=lambda c: classes[c]), size=size, region=main.region,
                        name=name, asset_mix=mix)


def proxies_for(items: Iterable[Unpriced], *, market: MarketData) -> list[Proxy]:
    """A proxy for each unpriced item, from the tickers `market` prices."""
    available = set(last_prices(market.prices))
    return [choose_proxy(item, available=available, as_of=market.as_of, securities=market.securities)
            for item in items]


def split_overflow(items: Iterable[Unpriced], limit: int | None = None) -> tuple[list[Unpriced], list[Unpriced]]:
    """(the `limit` (default MAX_MODELLED) items of largest file value, the rest), each in the order given."""
    items = list(items)
    limit = MAX_MODELLED if limit is None else limit
    if len(items) <= limit:
        return items, []
    ranked = sorted(range(len(items)), key=lambda i: -(items[i].value_usd or 0.0))
    kept = set(ranked[:limit])
    return [x for i, x in enumerate(items) if i in kept], [x for i, x in enumerate(items) if i not in kept]


def overflow_proxy(overflow: list[Unpriced]) -> Proxy:
    """One asset for the unpriced tickers beyond MAX_MODELLED: $1 a share, one share per file dollar, held
    fixed, risk not modelled; its label names the first of them and counts those with no price at all."""
    valued = [x for x in overflow if x.price is not None]
    total = sum(x.value_usd or 0.0 for x in valued)
    names = ", ".join(x.ticker for x in overflow[:12]) + ("…" if len(overflow) > 12 else "")
    unknown = len(overflow) - len(valued)
    label = (f"{len(overflow)} more holdings without a market price ({names}), too many to model one by one: "
             f"held fixed together at the file's values" + (f"; {unknown} of them have no price at all and count "
                                                             f"$0" if unknown else ""))
    info = SecurityInfo(ticker=OVERFLOW_TICKER, kind="stock", asset_class="equity", name=label)
    method = Method.FIXED if total > 0 else Method.UNKNOWN
    return Proxy(OVERFLOW_TICKER, "unknown", method, (), 1.0 if total > 0 else None, total, False, label, info)


def proxy_tickers(proxies: Iterable[Proxy]) -> set[str]:
    """Every ticker the proxies read (their ETFs and those ETFs' holdings sources)."""
    out: set[str] = set()
    for proxy in proxies:
        for ticker, _ in proxy.blend:
            out.add(ticker)
            if ticker in HOLDINGS_PROXY:
                out.add(HOLDINGS_PROXY[ticker])
    return out


# --- the engine's view ----------------------------------------------------------------------------


def _series(prices: pd.DataFrame, proxy: Proxy) -> pd.Series:
    """The proxy's price history (daily-rebalanced blend) rescaled to end at the holding's price; constant
    for a holding without a proxy."""
    assert proxy.price is not None
    if not proxy.blend:
        return pd.Series(proxy.price, index=prices.index, dtype=float)
    tickers = [t for t, _ in proxy.blend]
    weights = np.array([w for _, w in proxy.blend])
    frame = prices[tickers].ffill()
    returns = frame.pct_change().to_numpy()
    live = np.isfinite(returns)
    covered = (live * weights).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        blended = np.where(covered > 0, np.nansum(np.where(live, returns, 0.0) * weights, axis=1) / covered, np.nan)
    listed = frame.notna().any(axis=1).to_numpy()
    level = np.cumprod(np.where(np.isfinite(blended), 1.0 + blended, 1.0))
    level = np.where(listed, level, np.nan)
    return pd.Series(level / level[-1] * proxy.price, index=prices.index)


def _lookthrough(market: MarketData, proxy: Proxy) -> tuple[dict[str, float], dict[str, float]]:
    """(sector weights of the equity part, single names in fractions of the holding's value)."""
    sectors: dict[str, float] = {}
    names: dict[str, float] = {}
    for ticker, weight in proxy.blend:
        for sector, w in (market.etf_sectors.get(ticker) or {}).items():
            sectors[sector] = sectors.get(sector, 0.0) + weight * float(w)
        held = market.etf_holdings.get(ticker) or market.etf_holdings.get(HOLDINGS_PROXY.get(ticker, ""), {})
        for name, w in held.items():
            names[name] = names.get(name, 0.0) + weight * float(w)
    total = sum(sectors.values())
    return ({s: w / total for s, w in sectors.items()} if total > 0 else {}), names


def extend_market(market: MarketData, proxies: Iterable[Proxy]) -> MarketData:
    """`market` plus one priced asset per valued proxy (a new MarketData; `market` is not changed)."""
    valued = [p for p in proxies if p.price is not None]
    if not valued:
        return market
    columns = {p.ticker: _series(market.prices, p) for p in valued}
    prices = pd.concat([market.prices.drop(columns=[t for t in columns if t in market.prices.columns]),
                        pd.DataFrame(columns, index=market.prices.index)], axis=1)
    prices.index.name = market.prices.index.name
    securities = dict(market.securities)
    etf_sectors = dict(market.etf_sectors)
    etf_holdings = dict(market.etf_holdings)
    for proxy in valued:
        securities[proxy.ticker] = replace(proxy.info, ticker=proxy.ticker)
        if proxy.kind in ("fund",) and proxy.blend:
            sectors, names = _lookthrough(market, proxy)
            if sectors:
                etf_sectors[proxy.ticker] = sectors
            if names:
                etf_holdings[proxy.ticker] = names
    return replace(market, prices=prices, securities=securities, etf_sectors=etf_sectors, etf_holdings=etf_holdings)


def fixed_tickers(proxies: Iterable[Proxy]) -> frozenset[str]:
    """Valued holdings the optimizer may not sell."""
    return frozenset(p.ticker for p in proxies if p.price is not None and not p.sellable)


# --- coverage and warnings ------------------------------------------------------------------------


def _usd(x: float) -> str:
    return f"${x:,.0f}"


def proxy_warnings(proxies: Iterable[Proxy]) -> list[str]:
    """One plain sentence per kind of treatment (tickers grouped), naming every holding."""
    groups: dict[tuple[str, str, str, bool], list[Proxy]] = {}
    for p in proxies:
        groups.setdefault((p.method, p.label, p.proxy_text(), p.sellable), []).append(p)
    out: list[str] = []
    for (method, label, proxy_text, sellable), members in groups.items():
        names = ", ".join(p.ticker for p in members[:12]) + ("…" if len(members) > 12 else "")
        if method == Method.UNKNOWN:
            out.append(f"No price for {names} in the market data or the file: held fixed and counted at $0 "
                       f"(unknown value).")
            continue
        value = _usd(sum(p.value_usd for p in members))
        what = f"{names} ({value})" if len(members) == 1 else f"{names} ({len(members)} holdings, {value})"
        if method == Method.FIXED:
            out.append(f"{what}: no market price; valued at the file's price and held fixed — {label}.")
            continue
        trade = "may be sold at the file's price, never bought" if sellable else "held fixed (not traded)"
        out.append(f"{what}: no market price; valued at the file's price, {trade}; risk and look-through by "
                   f"{proxy_text} — {label}.")
    return out


def coverage(*, value_usd: float, proxies: Iterable[Proxy], trades: Iterable[Mapping[str, Any]] = ()
             ) -> dict[str, Any]:
    """How much of `value_usd` (the document's value) is modelled directly, by proxy, or held fixed."""
    proxies = list(proxies)
    proxy_usd = sum((p.value_usd for p in proxies if p.method == Method.PROXY), 0.0)
    fixed_usd = sum((p.value_usd for p in proxies if p.method == Method.FIXED), 0.0)
    direct_usd = max(0.0, value_usd - proxy_usd - fixed_usd)
    total = value_usd if value_usd > 0 else 1.0
    modelled = (direct_usd + proxy_usd) / total

    def share(x: float) -> float:
        return round(x / total, 6) + 0.0

    return {
        "direct_usd": round(direct_usd, 2), "proxy_usd": round(proxy_usd, 2), "fixed_usd": round(fixed_usd, 2),
        "direct": share(direct_usd), "proxy": share(proxy_usd), "fixed": share(fixed_usd),
        "modelled": round(modelled, 6) + 0.0, "modelled_min": MODELLED_MIN,
        "holdings": [
            {"ticker": p.ticker, "kind": p.kind, "method": p.method, "proxy": [t for t, _ in p.blend],
             "proxy_weights": {t: round(w, 6) for t, w in p.blend}, "price": p.price,
             "value": round(p.value_usd, 2), "sellable": p.sellable, "note": p.label}
            for p in proxies
        ],
    }


def apply_coverage(document: dict[str, Any], proxies: Iterable[Proxy]) -> dict[str, Any]:
    """Add `coverage` to a result document; under MODELLED_MIN the status becomes "partial" and the warnings
    and the summary lead with it. Returns the document (changed in place)."""
    proxies = list(proxies)
    cover = coverage(value_usd=float(document.get("value") or 0.0), proxies=proxies)
    document["coverage"] = cover
    warnings = proxy_warnings(proxies)
    if cover["modelled"] < MODELLED_MIN:
        lead = (f"Only {cover['modelled']:.0%} of the value is modelled directly or by a proxy: "
                f"{_usd(cover['fixed_usd'])} ({cover['fixed']:.0%}) is held fixed at the file's values. "
                f"The suggestion is partial: its risk and exposure figures leave that part out of the model.")
        document["status"] = "partial"
        warnings.insert(0, lead)
        document["summary"] = f"{lead} {document.get('summary') or ''}".strip()
    document["warnings"] = warnings + list(document.get("warnings") or [])
    return document


def request_unpriced(request: RebalanceRequest) -> list[str]:
    """Tickers the engine left without a price (unknown value)."""
    return sorted({p.ticker for p in request.positions if p.price is None})
