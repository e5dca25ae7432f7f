"""The limits of one run as data, their rows in the optimizer, and their evaluation on any state.

Limit ids (stable, used in `Relaxation.limit`): ``volatility_cap``, ``max_sector:<GICS sector>``,
``min_financials``, ``min_small_cap``, ``max_single_stock:<ticker>``, ``max_turnover``, and
``cash_withdrawal`` (a withdrawal that could not be raised in full).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.exposures import GICS_SECTORS, SIZES, ExposureModel
from engine.profiles import Profile
from engine.risk import RiskModel, SampleRisk

TOLERANCE = 1e-6  # a limit "holds" when violated by at most this (fractions)
FINANCIALS = GICS_SECTORS.index("Financials")
SMALL = SIZES.index("small")

# Penalties per unit of slack: the order in which limits give way when they conflict.
# Turnover paces each run (the next run continues), so it gives way last among the soft limits;
# then the volatility cap, single-name and sector caps, and the tilt minimums first.
# They only need to exceed the largest marginal gain of the objective (about 1 per unit of value).
PENALTY_TURNOVER = 40.0
PENALTY_VOLATILITY = 20.0
PENALTY_SINGLE_STOCK = 10.0
PENALTY_SECTOR = 10.0
PENALTY_MINIMUM = 5.0
PENALTY_WITHDRAWAL = 200.0
# The rounding repair's score (engine.rounding): a cash shortfall outweighs every limit (the limits use the
# solver's penalties); the pull toward the continuous solution is small.
CASH_WEIGHT = 1e5
PULL_WEIGHT = 1e-3


@dataclass(frozen=True)
class Limits:
    """Requested limits of one run (see engine.profiles for units)."""

    vol_cap: float
    max_sector: float
    min_financials: float
    min_small_cap: float
    max_single_stock: float
    max_turnover: float

    @classmethod
    def for_profile(cls, profile: Profile, max_turnover: float | None = None) -> Limits:
        return cls(
            vol_cap=profile.vol_cap,
            max_sector=profile.max_sector,
            min_financials=profile.min_financials,
            min_small_cap=profile.min_small_cap,
            max_single_stock=profile.max_single_stock,
            max_turnover=profile.max_turnover if max_turnover is None else max_turnover,
        )


@dataclass(frozen=True)
class LimitRow:
    limit: str  # limit id
    kind: str  # max | min
    requested: float


# The look-through base rows y = base @ w that limits and exposure gaps are written on.
BASE_SECTORS = slice(0, 11)
BASE_SIZES = slice(11, 14)
BASE_EQUITY, BASE_BOND, BASE_COMMODITY, BASE_CASH = 14, 15, 16, 17
BASE_ROWS = 18


def exposure_base(exposures: ExposureModel) -> np.ndarray:
    """(18, n) look-through base rows: 11 GICS sectors, 3 sizes, 4 asset classes (fractions of each
    asset's value); y = base @ w gives them as fractions of total value."""
    return np.vstack([exposures.sectors, exposures.size, exposures.asset_class])


def base_limit_rows(limits: Limits) -> tuple[list[LimitRow], np.ndarray, np.ndarray, np.ndarray]:
    """Sector caps and the financials/small-cap minimums on the base rows: (rows, matrix (13, 18),
    rhs (13,), penalty (13,)); row r reads matrix[r] @ y <= rhs[r] * total (+ slack). All homogeneous:
    fractions of the equity part."""
    rows: list[LimitRow] = []
    matrix = np.zeros((len(GICS_SECTORS) + 2, BASE_ROWS))
    penalty: list[float] = []
    for i, sector in enumerate(GICS_SECTORS):
        rows.append(LimitRow(f"max_sector:{sector}", "max", limits.max_sector))
        matrix[i, i] = 1.0
        matrix[i, BASE_EQUITY] = -limits.max_sector
        penalty.append(PENALTY_SECTOR)
    i = len(GICS_SECTORS)
    rows.append(LimitRow("min_financials", "min", limits.min_financials))
    matrix[i, FINANCIALS] = -1.0
    matrix[i, BASE_EQUITY] = limits.min_financials
    rows.append(LimitRow("min_small_cap", "min", limits.min_small_cap))
    matrix[i + 1, BASE_SIZES.start + SMALL] = -1.0
    matrix[i + 1, BASE_EQUITY] = limits.min_small_cap
    penalty += [PENALTY_MINIMUM, PENALTY_MINIMUM]
    return rows, matrix, np.zeros(len(rows)), np.array(penalty)


def name_limit_rows(
    limits: Limits, exposures: ExposureModel, name_mask: np.ndarray | None = None
) -> tuple[list[LimitRow], np.ndarray, np.ndarray, np.ndarray]:
    """Single-name caps: (rows, matrix (L, n), rhs (L,), penalty (L,)); row reads matrix @ w <= cap * total.

    name_mask (names,) keeps only the rows that can bind (see `names_that_can_bind`).
    """
    keep = np.ones(len(exposures.names), dtype=bool) if name_mask is None else np.asarray(name_mask, dtype=bool)
    rows = [
        LimitRow(f"max_single_stock:{name}", "max", limits.max_single_stock)
        for name, k in zip(exposures.names, keep, strict=True) if k
    ]
    matrix = exposures.names_matrix[keep]
    return rows, matrix, np.full(len(rows), limits.max_single_stock), np.full(len(rows), PENALTY_SINGLE_STOCK)


def names_that_can_bind(
    exposures: ExposureModel, x0: np.ndarray, buyable: np.ndarray, cap: float
) -> np.ndarray:
    """(L,) mask of single names whose look-through weight could exceed `cap` after trading.

    A name's weight after is at most its direct holding (x0, fractions of value; unbounded when the
    stock itself may be bought) plus its largest weight inside any fund (if all money went there).
    """
    index = exposures.index()
    direct = np.array([index.get(name, -1) for name in exposures.names], dtype=int)
    matrix = exposures.names_matrix.copy()
    has_direct = direct >= 0
    matrix[np.nonzero(has_direct)[0], direct[has_direct]] = 0.0
    in_funds = matrix.max(axis=1) if matrix.shape[1] else np.zeros(len(direct))
    own = np.where(has_direct, x0[np.maximum(direct, 0)], 0.0)
    own_buyable = np.where(has_direct, buyable[np.maximum(direct, 0)], False)
    return own_buyable | (own + in_funds > cap - 1e-9)


@dataclass(frozen=True)
class Metrics:
    """Measured exposures of one state (fractions; volatility annualised)."""

    volatility: float
    sectors: np.ndarray  # (11,) fractions of equity
    small: float  # fraction of equity
    names: np.ndarray  # (L,) fractions of total value
    equity: float  # fraction of total value
    turnover: float  # one-sided, fraction of V, net of cash flows
    volatility_sample: float = 0.0  # on the plain 3-year sample estimate (0 when not measured)

    @property
    def volatility_max(self) -> float:
        """The larger of the two volatility estimates: the one the cap is held to."""
        return max(self.volatility, self.volatility_sample)


def measure(
    w: np.ndarray, risk: RiskModel, exposures: ExposureModel, turnover: float = 0.0,
    sample: SampleRisk | None = None,
) -> Metrics:
    """Metrics of asset weights w (n,) (fractions of total value); `sample`: the plain estimate, also measured."""
    equity = float(exposures.equity @ w)
    if equity > 1e-12:
        sectors = exposures.sectors @ w / equity
        small = float(exposures.size[SMALL] @ w / equity)
    else:
        sectors = np.zeros(len(GICS_SECTORS))
        small = 0.0
    vol_sample = sample.volatility(w) if sample is not None else 0.0
    return Metrics(risk.volatility(w), sectors, small, exposures.names_matrix @ w, equity, turnover, vol_sample)


@dataclass(frozen=True)
class Breach:
    limit: str
    kind: str
    requested: float
    achieved: float


def breaches(metrics: Metrics, limits: Limits, exposures: ExposureModel) -> list[Breach]:
    """Every limit the state violates by more than TOLERANCE (minimums are void without equity)."""
    found: list[Breach] = []
    if metrics.volatility_max > limits.vol_cap + TOLERANCE:
        found.append(Breach("volatility_cap", "max", limits.vol_cap, metrics.volatility_max))
    for sector, value in zip(GICS_SECTORS, metrics.sectors, strict=True):
        if value > limits.max_sector + TOLERANCE:
            found.append(Breach(f"max_sector:{sector}", "max", limits.max_sector, float(value)))
    if metrics.equity > 1e-9:
        fin = float(metrics.sectors[FINANCIALS])
        if fin < limits.min_financials - TOLERANCE:
            found.append(Breach("min_financials", "min", limits.min_financials, fin))
        if metrics.small < limits.min_small_cap - TOLERANCE:
            found.append(Breach("min_small_cap", "min", limits.min_small_cap, metrics.small))
    for name, value in zip(exposures.names, metrics.names, strict=True):
        if value > limits.max_single_stock + TOLERANCE:
            found.append(Breach(f"max_single_stock:{name}", "max", limits.max_single_stock, float(value)))
    if metrics.turnover > limits.max_turnover + TOLERANCE:
        found.append(Breach("max_turnover", "max", limits.max_turnover, metrics.turnover))
    return found
