"""Drift: how far each portfolio has moved from its target, for many portfolios at once (no solver).

Every portfolio is a row of weights over one universe of n tickers (fractions of its value; cash apart).
One feature matrix F (n, f) turns weights into exposures, so all portfolios' exposures are one sparse
product W @ F. The features (the "sleeves"):
- asset class: stocks, bonds, commodities, cash (fractions of total value);
- look-through GICS sector and size (fractions of the EQUITY part, as the profile limits are);
- single names held directly or through funds (fractions of total value; only names that weigh at least
  `NAME_THRESHOLD` in some asset or are held directly can become large).

A sleeve is out of its band when |current - target| > band, where band = max(min(absolute, relative *
target), MIN_BAND) (the "5/25" rule: 5 points, or 25% of a small target, whichever is tighter; never below
one point, so a sleeve the target leaves empty is not flagged for dust). The last suggestion is the best
point the optimizer could reach given taxes, turnover and limits, so a sleeve counts as drifted only if it
is also out of band around where the last plan left it (`plan`): executing the plan is not drift.

A profile limit is broken when the portfolio violates it by more than the last plan did plus
`LIMIT_TOLERANCE` (the plan may itself relax a limit, with reported slack).

Units: all fractions (0.05 = 5 points). Shapes: P portfolios, n tickers, K distinct targets, f features.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from engine.exposures import ExposureModel
from engine.types import GICS_SECTORS, SIZES

ASSET_CLASS_LABELS: tuple[str, ...] = ("stocks", "bonds", "commodities", "cash")
DEFAULT_BANDS: Mapping[str, float] = {"absolute": 0.05, "relative": 0.25}
MIN_BAND = 0.01
LIMIT_TOLERANCE = 0.005
NAME_THRESHOLD = 0.01
ITEMS_KEPT = 5  # out-of-band sleeves reported per portfolio (largest first)

IN_BAND, DRIFTED, BREAKS_LIMIT = "in_band", "drifted", "breaks_limit"


@dataclass(frozen=True)
class Features:
    """The feature matrix over a universe: `matrix` (n, f), one label (group, name) per column."""

    tickers: tuple[str, ...]
    labels: tuple[tuple[str, str], ...]
    matrix: np.ndarray
    cash_column: int
    equity_column: int
    share_of_equity: np.ndarray  # (f,) bool: sector and size columns (divided by the equity share)


@dataclass(frozen=True)
class LimitArrays:
    """Each portfolio's profile limits, (P,) each (see engine.profiles for units)."""

    max_single_stock: np.ndarray
    max_sector: np.ndarray
    min_small_cap: np.ndarray
    min_financials: np.ndarray
    vol_cap: np.ndarray


@dataclass(frozen=True)
class DriftInputs:
    """Everything the check needs, as arrays.

    weights: (P, n) sparse, fractions of each portfolio's value; cash: (P,) fraction in cash.
    targets: (K, n) dense target weights, target_cash (K,); target_of: (P,) int index into targets.
    plan: (P, n) sparse weights after the last suggestion, plan_cash (P,), has_plan (P,) bool.
    absolute, relative: (P,) bands. covariance: (n, n) annualised, or None to skip the volatility cap.
    """

    weights: sp.csr_matrix
    cash: np.ndarray
    targets: np.ndarray
    target_cash: np.ndarray
    target_of: np.ndarray
    plan: sp.csr_matrix
    plan_cash: np.ndarray
    has_plan: np.ndarray
    absolute: np.ndarray
    relative: np.ndarray
    limits: LimitArrays
    covariance: np.ndarray | None = None


@dataclass(frozen=True)
class DriftReport:
    """Per portfolio (P,): status, the largest distance of any sleeve from its target (whether or not it
    counts as drift) and the largest move since the last plan (fractions), the out-of-band sleeves and
    broken limits (lists of plain dicts, JSON-ready)."""

    status: list[str]
    largest: np.ndarray
    largest_label: list[str]
    since_plan: np.ndarray
    items: list[list[dict]]
    limits: list[list[dict]]


def features(model: ExposureModel) -> Features:
    """Build the feature matrix from an exposure model (names restricted as the model was built)."""
    n = len(model.tickers)
    labels: list[tuple[str, str]] = [("asset class", c) for c in ASSET_CLASS_LABELS]
    labels += [("sector", s) for s in GICS_SECTORS] + [("size", s) for s in SIZES]
    labels += [("name", name) for name in model.names]
    blocks = [model.asset_class.T, model.sectors.T, model.size.T, model.names_matrix.T]
    matrix = np.hstack(blocks) if n else np.zeros((0, len(labels)))
    share = np.zeros(len(labels), dtype=bool)
    share[len(ASSET_CLASS_LABELS): len(ASSET_CLASS_LABELS) + len(GICS_SECTORS) + len(SIZES)] = True
    return Features(
        tickers=tuple(model.tickers), labels=tuple(labels), matrix=matrix,
        cash_column=ASSET_CLASS_LABELS.index("cash"), equity_column=0, share_of_equity=share,
    )


def exposures(weights: sp.spmatrix | np.ndarray, cash: np.ndarray, feats: Features) -> np.ndarray:
    """(rows, f) exposures: asset classes and names as fractions of value, sectors and size of equity."""
    x = np.asarray(weights @ feats.matrix, dtype=float)
    x[:, feats.cash_column] += cash
    equity = x[:, feats.equity_column]
    scale = np.divide(1.0, equity, out=np.zeros_like(equity), where=equity > 1e-9)
    x[:, feats.share_of_equity] *= scale[:, None]
    return x


def bands(target: np.ndarray, absolute: np.ndarray, relative: np.ndarray) -> np.ndarray:
    """(P, f) band half-widths: max(min(absolute, relative * |target|), MIN_BAND)."""
    return np.maximum(np.minimum(absolute[:, None], relative[:, None] * np.abs(target)), MIN_BAND)


def drift_check(inputs: DriftInputs, feats: Features) -> DriftReport:
    """Drift of every portfolio from its target (see the module docstring)."""
    x = exposures(inputs.weights, inputs.cash, feats)
    t = exposures(inputs.targets, inputs.target_cash, feats)[inputs.target_of]
    a = exposures(inputs.plan, inputs.plan_cash, feats)
    d = x - t
    band = bands(t, inputs.absolute, inputs.relative)
    moved = np.abs(x - a)
    out = (np.abs(d) > band) & ((moved > band) | ~inputs.has_plan[:, None])
    since_plan = np.where(inputs.has_plan, moved.max(axis=1, initial=0.0), np.nan)
    excess_now = _limit_excess(x, inputs.weights, feats, inputs.limits, inputs.covariance)
    excess_plan = _limit_excess(a, inputs.plan, feats, inputs.limits, inputs.covariance)
    excess_plan = np.where(inputs.has_plan[:, None], excess_plan, 0.0)
    broken = excess_now > excess_plan + LIMIT_TOLERANCE
    largest_col = np.abs(d).argmax(axis=1) if d.shape[1] else np.zeros(len(x), dtype=int)
    rows = np.arange(len(x))
    largest = np.abs(d[rows, largest_col]) if len(x) else np.zeros(0)
    status = [
        BREAKS_LIMIT if broken[i].any() else DRIFTED if out[i].any() else IN_BAND for i in range(len(x))
    ]
    items = [_items(i, out, x, t, d, band, feats) if out[i].any() else [] for i in range(len(x))]
    limits = [_limits(i, broken, excess_now, inputs) if broken[i].any() else [] for i in range(len(x))]
    return DriftReport(
        status=status,
        largest=largest,
        largest_label=[_label(feats.labels[c]) for c in largest_col] if len(x) else [],
        since_plan=since_plan,
        items=items,
        limits=limits,
    )


LIMIT_NAMES: tuple[str, ...] = ("single stock", "sector", "small caps", "financials", "volatility")


def _limit_excess(
    x: np.ndarray, weights: sp.spmatrix, feats: Features, limits: LimitArrays, covariance: np.ndarray | None
) -> np.ndarray:
    """(P, 5) how far each limit is exceeded (0 when met), in the limit's own units."""
    groups = np.array([g for g, _ in feats.labels])
    names = x[:, groups == "name"]
    sectors = x[:, groups == "sector"]
    size = x[:, groups == "size"]
    has_equity = x[:, feats.equity_column] > 1e-9
    fin = sectors[:, GICS_SECTORS.index("Financials")]
    small = size[:, SIZES.index("small")]
    excess = np.zeros((len(x), len(LIMIT_NAMES)))
    excess[:, 0] = np.maximum(names.max(axis=1, initial=0.0) - limits.max_single_stock, 0.0)
    excess[:, 1] = np.where(has_equity, np.maximum(sectors.max(axis=1, initial=0.0) - limits.max_sector, 0.0), 0.0)
    excess[:, 2] = np.where(has_equity, np.maximum(limits.min_small_cap - small, 0.0), 0.0)
    excess[:, 3] = np.where(has_equity, np.maximum(limits.min_financials - fin, 0.0), 0.0)
    if covariance is not None:
        excess[:, 4] = np.maximum(volatility(weights, covariance) - limits.vol_cap, 0.0)
    return excess


def volatility(weights: sp.spmatrix, covariance: np.ndarray) -> np.ndarray:
    """(P,) annualised volatility of each row of weights (cash riskless)."""
    wc = np.asarray(weights @ covariance)
    variance = np.asarray((sp.csr_matrix(weights).multiply(wc)).sum(axis=1)).ravel()
    return np.sqrt(np.clip(variance, 0.0, None))


def _label(label: tuple[str, str]) -> str:
    group, name = label
    return name if group in ("asset class", "sector") else f"{name} caps" if group == "size" else name


def _items(
    i: int, out: np.ndarray, x: np.ndarray, t: np.ndarray, d: np.ndarray, band: np.ndarray, feats: Features
) -> list[dict]:
    cols = np.flatnonzero(out[i])
    cols = cols[np.argsort(-np.abs(d[i, cols]), kind="stable")][:ITEMS_KEPT]
    return [
        {
            "group": feats.labels[c][0], "name": _label(feats.labels[c]),
            "current": round(float(x[i, c]), 4), "target": round(float(t[i, c]), 4),
            "drift": round(float(d[i, c]), 4), "band": round(float(band[i, c]), 4),
        }
        for c in cols
    ]


def _limits(
    i: int, broken: np.ndarray, excess: np.ndarray, inputs: DriftInputs
) -> list[dict]:
    lim = inputs.limits
    values = (lim.max_single_stock[i], lim.max_sector[i], lim.min_small_cap[i], lim.min_financials[i], lim.vol_cap[i])
    return [
        {"limit": LIMIT_NAMES[k], "value": round(float(values[k]), 4), "excess": round(float(excess[i, k]), 4)}
        for k in np.flatnonzero(broken[i])
    ]


def sparse_rows(rows: Sequence[Mapping[str, float]], tickers: Sequence[str]) -> sp.csr_matrix:
    """(len(rows), len(tickers)) CSR matrix from {ticker: value} dicts (tickers outside the list ignored)."""
    index = {t: j for j, t in enumerate(tickers)}
    data: list[float] = []
    cols: list[int] = []
    indptr = [0]
    for row in rows:
        for ticker, value in row.items():
            j = index.get(ticker)
            if j is not None:
                cols.append(j)
                data.append(float(value))
        indptr.append(len(cols))
    return sp.csr_matrix((data, cols, indptr), shape=(len(rows), len(tickers)))
