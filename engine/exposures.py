"""Look-through exposures: GICS sector, size, asset class and single names, for any weights.

Conventions:
- Sectors and size are fractions of the EQUITY part (bond, commodity and cash funds are not equity).
- Asset classes and single names are fractions of total value (cash included).
- An equity ETF's sectors come from `MarketData.etf_sectors`; its size from its label
  (`large`/`mid`/`small`, or `total` = 70/20/10 large/mid/small, an approximation for total-market funds).
- Single names: a stock held directly plus inside ETFs (`MarketData.etf_holdings`) counts once, in full.
  IVV/VOO use SPY's holdings, ITOT uses VTI's and VGT uses XLK's (same or near-identical indexes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from engine.types import CASH, GICS_SECTORS, SIZES, MarketData, SecurityInfo, Snapshot

UNCLASSIFIED = "Unclassified"
ASSET_CLASSES: tuple[str, ...] = ("equity", "bond", "commodity", "cash")
TOTAL_MARKET_SIZE: Mapping[str, float] = {"large": 0.7, "mid": 0.2, "small": 0.1}
HOLDINGS_PROXY: Mapping[str, str] = {"IVV": "SPY", "VOO": "SPY", "ITOT": "VTI", "VGT": "XLK"}
UNKNOWN_COMPOSITION_NAMES = 50  # an ETF without holdings data counts as this many equal names (effective holdings)

_SECTOR_INDEX = {s: i for i, s in enumerate(GICS_SECTORS)}
_SIZE_INDEX = {s: i for i, s in enumerate(SIZES)}
_CLASS_INDEX = {s: i for i, s in enumerate(ASSET_CLASSES)}


@dataclass(frozen=True)
class AssetExposure:
    """How one security looks through: vectors over GICS_SECTORS / SIZES / ASSET_CLASSES, names dict."""

    ticker: str
    kind: str  # stock | etf | unknown
    asset_class: np.ndarray  # (4,) fractions of the asset's value
    sectors: np.ndarray  # (11,) fractions of the asset's value (0 for non-equity)
    size: np.ndarray  # (3,) fractions of the asset's value (0 for non-equity)
    names: Mapping[str, float]  # single-name look-through, fractions of the asset's value
    names_known: bool  # False: composition unknown (an ETF without holdings data)
    warning: str | None = None


@dataclass(frozen=True)
class ExposureModel:
    """Exposure matrices for a universe of n tickers (columns follow `tickers`).

    asset_class (4, n), sectors (11, n), size (3, n): fractions of each asset's value;
    equity (n,) = asset_class[0]; names_matrix (L, n): weight of each single name in each asset;
    unknown_names (n,): weight of each asset whose composition is unknown (effective-holdings helper).
    """

    tickers: tuple[str, ...]
    kinds: tuple[str, ...]
    asset_class: np.ndarray
    sectors: np.ndarray
    size: np.ndarray
    equity: np.ndarray
    names: tuple[str, ...]
    names_matrix: np.ndarray
    unknown_names: np.ndarray
    warnings: tuple[str, ...]

    def index(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.tickers)}


def asset_exposure(ticker: str, market: MarketData) -> AssetExposure:
    """Classify one ticker using the security master, ETF sector weights and ETF holdings."""
    info: SecurityInfo | None = market.securities.get(ticker)
    asset_class = np.zeros(len(ASSET_CLASSES))
    sectors = np.zeros(len(GICS_SECTORS))
    size = np.zeros(len(SIZES))
    if info is None:
        asset_class[0] = 1.0
        size[_SIZE_INDEX["large"]] = 1.0
        return AssetExposure(
            ticker, "unknown", asset_class, sectors, size, {ticker: 1.0}, True,
            f"{ticker} is not in the security master: treated as a US large-cap stock of unknown sector.",
        )
    if info.asset_mix:
        return _blend_exposure(ticker, info, market)
    klass = info.asset_class if info.asset_class in _CLASS_INDEX else "equity"
    asset_class[_CLASS_INDEX[klass]] = 1.0
    warning = None
    if info.kind == "stock":
        return _stock_exposure(ticker, info, asset_class, klass)
    if klass != "equity":
        return AssetExposure(ticker, info.kind or "etf", asset_class, sectors, size, {}, klass == "cash", None)
    weights = market.etf_sectors.get(ticker)
    if weights:
        for sector, weight in weights.items():
            if sector in _SECTOR_INDEX:
                sectors[_SECTOR_INDEX[sector]] += float(weight)
        total = sectors.sum()
        if total > 0:
            sectors /= total
    else:
        warning = f"{ticker} has no sector look-through data: its equity is counted as {UNCLASSIFIED}."
    if info.size in _SIZE_INDEX:
        size[_SIZE_INDEX[info.size]] = 1.0
    else:
        size[:] = [TOTAL_MARKET_SIZE[s] for s in SIZES]
    holdings = market.etf_holdings.get(ticker) or market.etf_holdings.get(HOLDINGS_PROXY.get(ticker, ""), {})
    kind = info.kind or "etf"
    return AssetExposure(ticker, kind, asset_class, sectors, size, dict(holdings), bool(holdings), warning)


def _stock_exposure(ticker: str, info: SecurityInfo, asset_class: np.ndarray, klass: str) -> AssetExposure:
    """A single stock: its own GICS sector and size, itself as its only name."""
    sectors = np.zeros(len(GICS_SECTORS))
    size = np.zeros(len(SIZES))
    warning = None
    if info.sector in _SECTOR_INDEX:
        sectors[_SECTOR_INDEX[info.sector]] = 1.0
    else:
        warning = f"{ticker} has no GICS sector in the security master: counted as {UNCLASSIFIED}."
    size[_SIZE_INDEX.get(info.size, 0)] = 1.0 if klass == "equity" else 0.0
    return AssetExposure(ticker, "stock", asset_class, sectors, size, {ticker: 1.0}, True, warning)


def _blend_exposure(ticker: str, info: SecurityInfo, market: MarketData) -> AssetExposure:
    """A blended fund (`SecurityInfo.asset_mix`, e.g. a target-date fund): asset classes from its mix; the
    sectors and size of its equity part from its look-through, scaled by the equity fraction; its names
    (`MarketData.etf_holdings`) as given, in fractions of the fund's value."""
    asset_class = np.zeros(len(ASSET_CLASSES))
    for klass, weight in info.asset_mix:
        asset_class[_CLASS_INDEX.get(klass, 0)] += float(weight)
    if asset_class.sum() > 0:
        asset_class /= asset_class.sum()
    equity = float(asset_class[0])
    sectors = np.zeros(len(GICS_SECTORS))
    for sector, weight in (market.etf_sectors.get(ticker) or {}).items():
        if sector in _SECTOR_INDEX:
            sectors[_SECTOR_INDEX[sector]] += float(weight)
    warning = None
    if sectors.sum() > 0:
        sectors *= equity / sectors.sum()
    elif equity > 0:
        warning = f"{ticker} has no sector look-through data: its equity is counted as {UNCLASSIFIED}."
    size = np.array([TOTAL_MARKET_SIZE[s] for s in SIZES]) if info.size not in _SIZE_INDEX else np.eye(len(SIZES))[
        _SIZE_INDEX[info.size]]
    holdings = dict(market.etf_holdings.get(ticker) or {})
    return AssetExposure(ticker, info.kind or "etf", asset_class, sectors, size * equity, holdings,
                         bool(holdings) or equity == 0.0, warning)


def exposure_model(
    tickers: Sequence[str], market: MarketData, *, name_threshold: float | None = None
) -> ExposureModel:
    """Exposure matrices for `tickers`.

    name_threshold: None keeps every look-through name (snapshots); a number keeps only names held
    directly or weighing at least that fraction inside some fund (the optimizer's single-name limit
    rows: a name below the threshold everywhere cannot exceed it in the portfolio).
    """
    assets = [asset_exposure(t, market) for t in tickers]
    full = _model(tickers, assets)
    return full if name_threshold is None else _restricted(full, assets, name_threshold)


def exposure_models(
    tickers: Sequence[str], market: MarketData, *, name_threshold: float, catalog: ExposureCatalog | None = None
) -> tuple[ExposureModel, ExposureModel]:
    """(`exposure_model(..., name_threshold=name_threshold)`, `exposure_model(...)`) classifying each ticker once.

    With a `catalog` (one per market data, see `ExposureCatalog`) the classifications are reused across
    universes and the name matrices are built with array operations; the models are the same, exactly.
    """
    if catalog is not None:
        return catalog.models(tickers, name_threshold)
    assets = [asset_exposure(t, market) for t in tickers]
    full = _model(tickers, assets)
    return _restricted(full, assets, name_threshold), full


class ExposureCatalog:
    """`asset_exposure` of each ticker of one `MarketData`, computed once, with its look-through names as
    integer ids (in the order of its names dict), so that a universe's name matrix is array work rather
    than a loop over the thousands of names inside its funds. Not thread-safe (one per worker's cache).

    `models(tickers, threshold)` equals `exposure_models(tickers, market, name_threshold=threshold)`:
    names in order of first appearance (ticker order, then each asset's dict order), the same weights.
    """

    def __init__(self, market: MarketData) -> None:
        self.market = market
        self._entries: dict[str, tuple[AssetExposure, np.ndarray, np.ndarray]] = {}
        self._ids: dict[str, int] = {}
        self._names: list[str] = []
        self._names_array = np.zeros(0, dtype=object)

    def entry(self, ticker: str) -> tuple[AssetExposure, np.ndarray, np.ndarray]:
        """(exposure, name ids, name weights) of `ticker`."""
        found = self._entries.get(ticker)
        if found is None:
            exposure = asset_exposure(ticker, self.market)
            ids = np.fromiter((self._id(name) for name in exposure.names), dtype=np.intp, count=len(exposure.names))
            weights = np.fromiter(exposure.names.values(), dtype=float, count=len(exposure.names))
            found = (exposure, ids, weights)
            self._entries[ticker] = found
        return found

    def _id(self, name: str) -> int:
        found = self._ids.get(name)
        if found is None:
            found = self._ids[name] = len(self._names)
            self._names.append(name)
        return found

    def models(self, tickers: Sequence[str], name_threshold: float) -> tuple[ExposureModel, ExposureModel]:
        """(restricted to `name_threshold`, full), as `exposure_models`."""
        entries = [self.entry(t) for t in tickers]
        assets = [e[0] for e in entries]
        n = len(assets)
        counts = np.fromiter((len(e[1]) for e in entries), dtype=np.intp, count=n)
        ids = np.concatenate([e[1] for e in entries]) if n else np.zeros(0, dtype=np.intp)
        weights = np.concatenate([e[2] for e in entries]) if n else np.zeros(0)
        cols = np.repeat(np.arange(n), counts)
        # full model: names in order of first appearance
        unique, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")
        rank = np.empty(len(unique), dtype=np.intp)
        rank[order] = np.arange(len(unique))
        names_matrix = np.zeros((len(unique), n))
        names_matrix[rank[inverse], cols] = weights
        if len(self._names_array) != len(self._names):
            self._names_array = np.array(self._names, dtype=object)
        names = self._names_array
        full = _model(tickers, assets, names=tuple(names[unique[order]]), names_matrix=names_matrix)
        # restricted: names at or above the threshold inside some asset, or a directly held stock's own name
        direct = np.array([a.kind in ("stock", "unknown") for a in assets], dtype=bool)
        own = np.array([self._ids.get(a.ticker, -1) for a in assets], dtype=np.intp)
        keep = (weights >= name_threshold) | (direct[cols] & (ids == own[cols]))
        kept_unique, kept_first = np.unique(ids[keep], return_index=True)
        kept = kept_unique[np.argsort(kept_first, kind="stable")]
        rows = rank[np.searchsorted(unique, kept)]
        restricted = replace(full, names=tuple(names[kept]), names_matrix=full.names_matrix[rows])
        return restricted, full


def _model(
    tickers: Sequence[str],
    assets: Sequence[AssetExposure],
    *,
    names: tuple[str, ...] | None = None,
    names_matrix: np.ndarray | None = None,
) -> ExposureModel:
    """The model keeping every look-through name, in order of first appearance (`names` and `names_matrix`
    when the caller has them, see `ExposureCatalog`)."""
    n = len(assets)
    if names is None or names_matrix is None:
        index: dict[str, int] = {}
        rows: list[int] = []
        cols: list[int] = []
        values: list[float] = []
        for j, a in enumerate(assets):
            for name, weight in a.names.items():
                i = index.setdefault(name, len(index))
                rows.append(i)
                cols.append(j)
                values.append(weight)
        names = tuple(index)
        names_matrix = np.zeros((len(index), n))
        names_matrix[rows, cols] = values  # a name appears once per asset
    unknown = np.array([0.0 if a.names_known else 1.0 for a in assets])
    asset_class = np.column_stack([a.asset_class for a in assets]) if n else np.zeros((4, 0))
    return ExposureModel(
        tickers=tuple(tickers),
        kinds=tuple(a.kind for a in assets),
        asset_class=asset_class,
        sectors=np.column_stack([a.sectors for a in assets]) if n else np.zeros((11, 0)),
        size=np.column_stack([a.size for a in assets]) if n else np.zeros((3, 0)),
        equity=asset_class[0].copy(),
        names=names,
        names_matrix=names_matrix,
        unknown_names=unknown,
        warnings=tuple(a.warning for a in assets if a.warning),
    )


def _restricted(full: ExposureModel, assets: Sequence[AssetExposure], name_threshold: float) -> ExposureModel:
    """`full` keeping only the names held directly or weighing at least `name_threshold` inside some fund
    (in order of first such appearance)."""
    kept: dict[str, None] = {}
    for a in assets:
        direct = a.kind in ("stock", "unknown")
        for name, weight in a.names.items():
            if (weight >= name_threshold or (direct and name == a.ticker)) and name not in kept:
                kept[name] = None
    position = {name: i for i, name in enumerate(full.names)}
    rows = np.array([position[name] for name in kept], dtype=int)
    return replace(full, names=tuple(kept), names_matrix=full.names_matrix[rows])


def snapshot_from_model(
    weights: np.ndarray, cash_weight: float, model: ExposureModel, volatility: float
) -> Snapshot:
    """Snapshot for weights (n,) over `model.tickers` plus a cash weight, all fractions of total value."""
    w = np.asarray(weights, dtype=float)
    equity_total = float(model.equity @ w)
    sector_values = model.sectors @ w
    size_values = model.size @ w
    if equity_total > 1e-12:
        sectors = {s: float(v / equity_total) for s, v in zip(GICS_SECTORS, sector_values, strict=True)}
        unclassified = 1.0 - sum(sectors.values())
        if unclassified > 1e-6:
            sectors[UNCLASSIFIED] = unclassified
        size = {s: float(v / equity_total) for s, v in zip(SIZES, size_values, strict=True)}
    else:
        sectors = dict.fromkeys(GICS_SECTORS, 0.0)
        size = dict.fromkeys(SIZES, 0.0)
    asset_class = {c: float(v) for c, v in zip(ASSET_CLASSES, model.asset_class @ w, strict=True)}
    asset_class["cash"] += float(cash_weight)
    name_weights = model.names_matrix @ w
    order = np.argsort(-name_weights)[:10]
    top_names = {model.names[i]: float(name_weights[i]) for i in order if name_weights[i] > 0}
    invested = float(w.sum() - model.asset_class[_CLASS_INDEX["cash"]] @ w)
    # unknown composition: spread over UNKNOWN_COMPOSITION_NAMES equal pseudo-names
    unknown = model.unknown_names * w
    squares = float(name_weights @ name_weights + (unknown**2).sum() / UNKNOWN_COMPOSITION_NAMES)
    effective = invested**2 / squares if squares > 1e-18 else 0.0
    weights_dict = {t: float(v) for t, v in zip(model.tickers, w, strict=True) if abs(v) > 1e-12}
    weights_dict[CASH] = float(cash_weight)
    positions = [(t, v) for t, v in weights_dict.items() if t != CASH]
    largest_position = max(positions, key=lambda tv: tv[1]) if positions else ("", 0.0)
    classified = [(s, v) for s, v in sectors.items() if s != UNCLASSIFIED]
    largest_sector = max(classified, key=lambda sv: sv[1]) if equity_total > 1e-12 else ("", 0.0)
    return Snapshot(
        weights=weights_dict,
        sectors=sectors,
        size=size,
        volatility=float(volatility),
        asset_class=asset_class,
        top_names=top_names,
        largest_position=largest_position,
        largest_sector=largest_sector,
        effective_holdings=float(effective),
    )


def snapshot(
    weights: Mapping[str, float], market: MarketData, volatility: float | None = None, cov: object = None
) -> Snapshot:
    """Look-through exposures of any weights dict (fractions of total value, `CASH` allowed).

    volatility: used as given when not None; otherwise computed from `cov` (a pandas DataFrame indexed
    and columned by ticker, an `engine.risk.RiskModel`, or an `engine.market.MarketSnapshot`, whose risk
    model is sliced: the cheap way for many weights); otherwise estimated from `market.prices` with the
    engine's risk model (about 3 years of daily returns).
    """
    tickers = [t for t, v in weights.items() if t != CASH and abs(float(v)) > 0]
    w = np.array([float(weights[t]) for t in tickers])
    cash_weight = float(weights.get(CASH, 0.0))
    model = exposure_model(tickers, market)
    if volatility is None:
        volatility = _volatility(tickers, w, market, cov)
    return snapshot_from_model(w, cash_weight, model, volatility)


def _volatility(tickers: list[str], w: np.ndarray, market: MarketData, cov: object) -> float:
    from engine.market import MarketSnapshot
    from engine.risk import RiskModel, estimate_risk_model

    if not tickers:
        return 0.0
    if isinstance(cov, MarketSnapshot):
        cov = cov.risk_model(tickers)
    if cov is None:
        cov = estimate_risk_model(market.prices, tickers, market.securities)
    if isinstance(cov, RiskModel):
        return cov.volatility_of(dict(zip(tickers, w, strict=True)))
    import pandas as pd

    if isinstance(cov, pd.DataFrame):
        known = [t for t in tickers if t in cov.index]
        sub = cov.loc[known, known].to_numpy(dtype=float)
        wk = np.array([w[tickers.index(t)] for t in known])
        return float(np.sqrt(max(wk @ sub @ wk, 0.0)))
    raise TypeError("cov must be a pandas DataFrame or an engine.risk.RiskModel")
