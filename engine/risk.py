"""Risk model: shrunk covariance of daily returns in factor form.

Method (documented choices):
1. Window: the last `window` (default 756, about 3 years) daily adjusted closes; prices are
   forward-filled inside the window (never before a ticker's first price).
2. Short histories: a ticker with fewer returns than the window has its missing returns filled from a
   proxy (its GICS sector SPDR for stocks, a size/region/asset-class fund for ETFs, else the market:
   SPY or the universe average) scaled by its beta to that proxy on the overlap; with fewer than 20
   returns it takes the proxy's returns outright. Each case adds a warning.
3. Volatility of each asset comes from its own returns (at least 60 of them); with 20-59 own returns
   the larger of own and filled-series volatility is used (conservative).
4. Correlation: Ledoit-Wolf shrinkage (scikit-learn) of the standardised returns, i.e. shrinkage toward
   zero correlation that leaves every variance exact (shrinking raw covariances toward a common
   variance would inflate bond variances toward stock variances in a mixed universe).
5. Annualised covariance = 252 * D C D; then factor form: the top `n_factors` eigenvectors plus a
   diagonal specific variance that keeps each asset's variance exact. Positive semi-definite by
   construction; with n <= n_factors the form is exact.

Volatility of weights w (fractions of value, cash riskless) = sqrt(|loadings @ w|^2 + |specific * w|^2).

A second, plain estimate (`sample_model`, a `SampleRisk`): the sample covariance of the same filled returns,
without shrinkage (annualised, ddof 1). The volatility cap must hold on both estimates (issue 15: a plan tuned
to sit on the cap of the shrunk model sat 0.3-0.9 points above it on the plain 3-year sample). The frame keeps
the sample covariance of all its columns, so a universe's is a slice; its exact factor R (R'R = the
covariance, from a Cholesky factorisation) is computed only when a solve or the rounding repair needs it.

Sharing: the engine estimates ONE model per price frame, over all of its columns (`frame_model`), and
slices it for the tickers asked (the rows/columns of a PSD model form a PSD model; each variance stays
exact). The frame's model lives in the `engine.market.MarketSnapshot` of that market data, so every
portfolio a worker computes reuses the same Ledoit-Wolf fit and eigendecomposition. Tickers missing from
the frame make a model of their own (as in 1-5).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from sklearn.covariance import ledoit_wolf

from engine.errors import DataError
from engine.types import SecurityInfo

TRADING_DAYS = 252
DEFAULT_WINDOW = 756
N_FACTORS = 20
MIN_OWN_RETURNS = 20  # below this the proxy's returns are used outright
FULL_VOL_RETURNS = 60  # from this many own returns the own volatility is trusted as is
MIN_WINDOW_RETURNS = 30  # fewer rows than this in the whole window: unusable

SECTOR_PROXY: Mapping[str, str] = {
    "Communication Services": "XLC",
    "Consumer Discretionary": "XLY",
    "Consumer Staples": "XLP",
    "Energy": "XLE",
    "Financials": "XLF",
    "Health Care": "XLV",
    "Industrials": "XLI",
    "Information Technology": "XLK",
    "Materials": "XLB",
    "Real Estate": "XLRE",
    "Utilities": "XLU",
}
_CLASS_PROXIES: Mapping[str, tuple[str, ...]] = {
    "bond": ("BND", "AGG", "IEF"),
    "commodity": ("GLD", "IAU"),
    "cash": ("BIL", "SHY"),
}
_SIZE_PROXIES: Mapping[str, tuple[str, ...]] = {"small": ("IWM", "IJR", "VB"), "mid": ("MDY", "IJH", "VO")}
_REGION_PROXIES: Mapping[str, tuple[str, ...]] = {
    "international": ("VXUS", "IXUS", "EFA"),
    "developed": ("EFA", "VEA", "VXUS"),
    "emerging": ("VWO", "IEMG", "VXUS"),
}
_MARKET_PROXIES: tuple[str, ...] = ("SPY", "IVV", "VOO", "VTI", "ITOT")


@dataclass(frozen=True)
class RiskModel:
    """Annualised risk of n assets in factor form.

    loadings: (k, n), factor risk of weights w is |loadings @ w|; specific: (n,) specific volatility.
    shrinkage: the Ledoit-Wolf intensity applied to correlations (0..1).
    """

    tickers: tuple[str, ...]
    loadings: np.ndarray
    specific: np.ndarray
    warnings: tuple[str, ...] = ()
    shrinkage: float = 0.0

    def covariance(self) -> np.ndarray:
        """(n, n) annualised covariance matrix (PSD)."""
        return self.loadings.T @ self.loadings + np.diag(self.specific**2)

    def covariance_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.covariance(), index=list(self.tickers), columns=list(self.tickers))

    def volatility(self, w: np.ndarray) -> float:
        """Annualised volatility of weights w (n,) over `tickers` (fractions of value)."""
        w = np.asarray(w, dtype=float)
        factor = self.loadings @ w
        specific = self.specific * w
        return float(np.sqrt(factor @ factor + specific @ specific))

    def volatility_of(self, weights: Mapping[str, float]) -> float:
        """Volatility of a {ticker: weight} dict; tickers outside the model are ignored."""
        index = {t: i for i, t in enumerate(self.tickers)}
        w = np.zeros(len(self.tickers))
        for ticker, weight in weights.items():
            if ticker in index:
                w[index[ticker]] += float(weight)
        return self.volatility(w)


def proxy_candidates(info: SecurityInfo | None) -> tuple[str, ...]:
    """Tickers whose returns stand in for `ticker`'s missing history, best first."""
    if info is None:
        return _MARKET_PROXIES
    if info.asset_class in _CLASS_PROXIES:
        return _CLASS_PROXIES[info.asset_class]
    if info.region in _REGION_PROXIES:
        return _REGION_PROXIES[info.region] + _MARKET_PROXIES
    if info.kind == "stock" and info.sector in SECTOR_PROXY:
        return (SECTOR_PROXY[info.sector], *_MARKET_PROXIES)
    if info.size in _SIZE_PROXIES:
        return _SIZE_PROXIES[info.size] + _MARKET_PROXIES
    return _MARKET_PROXIES


def returns_window(prices: pd.DataFrame, window: int) -> pd.DataFrame:
    """Daily simple returns of the last `window` rows (prices forward-filled after listing)."""
    frame = prices.iloc[-(window + 1) :]
    filled = frame.ffill()
    values = filled.to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = values[1:] / values[:-1] - 1.0
    returns[~np.isfinite(returns)] = np.nan
    return pd.DataFrame(returns, index=frame.index[1:], columns=frame.columns)


def _filled_returns(
    prices: pd.DataFrame, tickers: Sequence[str], securities: Mapping[str, SecurityInfo], window: int
) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
    """(T, n) returns with short histories filled, (n,) daily vols, and a warning (or None) per ticker."""
    if len(prices) < MIN_WINDOW_RETURNS + 1:
        raise DataError(
            f"need at least {MIN_WINDOW_RETURNS + 1} days of prices for the risk model, got {len(prices)}",
            field="prices",
        )
    all_returns = returns_window(prices, window)
    n_rows = len(all_returns)
    warnings: list[str | None] = []
    columns: list[np.ndarray] = []
    vols: list[float] = []
    market_fallback: np.ndarray | None = None
    for ticker in tickers:
        own = all_returns[ticker].to_numpy() if ticker in all_returns.columns else np.full(n_rows, np.nan)
        observed = np.isfinite(own)
        n_obs = int(observed.sum())
        if n_obs == n_rows:
            columns.append(own)
            vols.append(float(np.std(own, ddof=1)))
            warnings.append(None)
            continue
        proxy_name, proxy = _proxy_returns(ticker, securities.get(ticker), all_returns)
        if proxy is None:
            if market_fallback is None:
                market_fallback = _universe_average(all_returns, tickers)
            proxy_name, proxy = "the average of the other holdings", market_fallback
        filled, vol, message = _fill_short_history(ticker, own, observed, n_obs, proxy, proxy_name, prices)
        columns.append(filled)
        vols.append(vol)
        warnings.append(message)
    returns = np.column_stack(columns) if columns else np.zeros((n_rows, 0))
    return returns, np.array(vols, dtype=float), warnings


def covariance_estimate(
    prices: pd.DataFrame,
    tickers: Sequence[str],
    securities: Mapping[str, SecurityInfo],
    *,
    window: int = DEFAULT_WINDOW,
) -> tuple[np.ndarray, tuple[str, ...], float]:
    """(n, n) annualised shrunk covariance for `tickers`, warnings, shrinkage intensity."""
    returns, vols, warnings = _filled_returns(prices, tickers, securities, window)
    cov, shrinkage = _covariance(returns, vols)
    return cov, tuple(w for w in warnings if w), shrinkage


def _covariance(returns: np.ndarray, vols: np.ndarray) -> tuple[np.ndarray, float]:
    """Annualised covariance from filled returns (T, n) and daily vols (n,): shrunk correlation * vols."""
    correlation, shrinkage = _shrunk_correlation(returns)
    sigma = vols * np.sqrt(TRADING_DAYS)
    cov = correlation * np.outer(sigma, sigma)
    return (cov + cov.T) / 2.0, shrinkage


def _proxy_returns(
    ticker: str, info: SecurityInfo | None, returns: pd.DataFrame
) -> tuple[str, np.ndarray | None]:
    for candidate in proxy_candidates(info):
        if candidate != ticker and candidate in returns.columns:
            series = returns[candidate].to_numpy()
            if np.isfinite(series).all():
                return candidate, series
    return "", None


def _universe_average(returns: pd.DataFrame, tickers: Sequence[str]) -> np.ndarray:
    full = [t for t in tickers if t in returns.columns and np.isfinite(returns[t].to_numpy()).all()]
    if not full:
        full = [t for t in returns.columns if np.isfinite(returns[t].to_numpy()).all()]
    if not full:
        raise DataError("no ticker has a complete price history in the risk window", field="prices")
    return returns[full].to_numpy().mean(axis=1)


def _fill_short_history(
    ticker: str,
    own: np.ndarray,
    observed: np.ndarray,
    n_obs: int,
    proxy: np.ndarray,
    proxy_name: str,
    prices: pd.DataFrame,
) -> tuple[np.ndarray, float, str]:
    """Fill a short history from a proxy; returns (filled returns, daily vol, warning)."""
    if n_obs < MIN_OWN_RETURNS:
        vol = float(np.std(proxy, ddof=1))
        return proxy.copy(), vol, f"{ticker} has no usable price history: its risk is taken from {proxy_name}."
    x, y = proxy[observed], own[observed]
    var_x = float(np.var(x, ddof=1))
    beta = float(np.cov(x, y, ddof=1)[0, 1] / var_x) if var_x > 0 else 1.0
    filled = np.where(observed, own, beta * proxy)
    own_vol = float(np.std(y, ddof=1))
    vol = own_vol if n_obs >= FULL_VOL_RETURNS else max(own_vol, float(np.std(filled, ddof=1)))
    first = prices[ticker].first_valid_index() if ticker in prices.columns else None
    listed = f", first price {first.date().isoformat()}" if first is not None else ""
    message = (
        f"{ticker} has only {n_obs} days of returns{listed}: the rest of its 3-year history is filled "
        f"from {proxy_name} scaled by its beta ({beta:.2f})."
    )
    return filled, vol, message


def _shrunk_correlation(returns: np.ndarray) -> tuple[np.ndarray, float]:
    """Ledoit-Wolf shrunk correlation of the columns of `returns` (T, n); riskless columns get 0."""
    n = returns.shape[1]
    if n == 0:
        return np.zeros((0, 0)), 0.0
    std = returns.std(axis=0, ddof=0)
    live = std > 1e-12
    z = np.zeros_like(returns)
    z[:, live] = (returns[:, live] - returns[:, live].mean(axis=0)) / std[live]
    if n == 1:
        return np.ones((1, 1)) * float(live[0]), 0.0
    shrunk, shrinkage = ledoit_wolf(z, assume_centered=True)
    d = np.sqrt(np.clip(np.diag(shrunk), 1e-18, None))
    corr = shrunk / np.outer(d, d)
    corr[~live, :] = 0.0
    corr[:, ~live] = 0.0
    np.fill_diagonal(corr, live.astype(float))
    return corr, float(shrinkage)


def factor_form(cov: np.ndarray, n_factors: int = N_FACTORS) -> tuple[np.ndarray, np.ndarray]:
    """Split a PSD covariance (n, n) into loadings (k, n), k = min(n, n_factors), and specific vol (n,).

    loadings.T @ loadings + diag(specific**2) has exactly the diagonal of `cov`.
    """
    n = cov.shape[0]
    if n == 0:
        return np.zeros((0, 0)), np.zeros(0)
    values, vectors = np.linalg.eigh(cov)
    values = np.clip(values, 0.0, None)
    k = min(n, n_factors)
    top = np.argsort(values)[::-1][:k]
    loadings = (vectors[:, top] * np.sqrt(values[top])).T
    residual = np.diag(cov) - (loadings**2).sum(axis=0)
    specific = np.sqrt(np.clip(residual, 0.0, None))
    if k == n:
        specific = np.zeros(n)
    return loadings, specific


def estimate_risk_model(
    prices: pd.DataFrame,
    tickers: Sequence[str],
    securities: Mapping[str, SecurityInfo],
    *,
    window: int = DEFAULT_WINDOW,
    n_factors: int = N_FACTORS,
) -> RiskModel:
    """The engine's risk model for `tickers` (see the module docstring): a slice of the frame's model
    when every ticker is a column of `prices`, else a model of `tickers` alone. Estimates the frame's model
    on every call: a caller with many universes over one frame uses `engine.market.MarketSnapshot`."""
    tickers = tuple(tickers)
    columns = [c for c in prices.columns if isinstance(c, str)]
    unique = len(columns) == len(prices.columns) and len(set(columns)) == len(columns)
    if tickers and unique and set(tickers) <= set(columns):
        return frame_model(prices, securities, window=window, n_factors=n_factors).slice(tickers)
    return universe_risk_model(prices, tickers, securities, window=window, n_factors=n_factors)


def universe_risk_model(
    prices: pd.DataFrame,
    tickers: Sequence[str],
    securities: Mapping[str, SecurityInfo],
    *,
    window: int = DEFAULT_WINDOW,
    n_factors: int = N_FACTORS,
) -> RiskModel:
    """A risk model estimated on `tickers` alone (shrinkage and factors of that universe)."""
    cov, warnings, shrinkage = covariance_estimate(prices, tickers, securities, window=window)
    loadings, specific = factor_form(cov, n_factors)
    return RiskModel(tuple(tickers), loadings, specific, warnings, shrinkage)


@dataclass(frozen=True)
class FrameModel:
    """The risk model of every column of one price frame; `slice` gives a universe's model."""

    index: Mapping[str, int]
    loadings: np.ndarray  # (k, N)
    specific: np.ndarray  # (N,)
    warnings: Mapping[str, str]
    shrinkage: float
    sample: np.ndarray  # (N, N) annualised plain sample covariance of the filled returns (no shrinkage)

    def slice(self, tickers: Sequence[str]) -> RiskModel:
        at = self._at(tickers)
        warnings = tuple(self.warnings[t] for t in dict.fromkeys(tickers) if t in self.warnings)
        return RiskModel(tuple(tickers), self.loadings[:, at], self.specific[at], warnings, self.shrinkage)

    def sample_slice(self, tickers: Sequence[str]) -> SampleRisk:
        """The plain sample estimate of `tickers` (`sample_model` on the frame's filled returns)."""
        at = self._at(tickers)
        return SampleRisk(tuple(tickers), self.sample[np.ix_(at, at)])

    def _at(self, tickers: Sequence[str]) -> np.ndarray:
        return np.fromiter((self.index[t] for t in tickers), dtype=np.intp, count=len(tickers))


def frame_model(
    prices: pd.DataFrame,
    securities: Mapping[str, SecurityInfo],
    *,
    window: int = DEFAULT_WINDOW,
    n_factors: int = N_FACTORS,
) -> FrameModel:
    """Estimate the model of all columns of `prices` (steps 1-5 of the module docstring)."""
    columns = [str(c) for c in prices.columns]
    returns, vols, messages = _filled_returns(prices, columns, securities, window)
    cov, shrinkage = _covariance(returns, vols)
    loadings, specific = factor_form(cov, n_factors)
    return FrameModel(
        index={t: i for i, t in enumerate(columns)},
        loadings=loadings,
        specific=specific,
        warnings={t: m for t, m in zip(columns, messages, strict=True) if m},
        shrinkage=shrinkage,
        sample=_sample_covariance(returns),
    )


def _sample_covariance(returns: np.ndarray) -> np.ndarray:
    """(n, n) annualised sample covariance (ddof 1) of returns (T, n)."""
    rows = returns.shape[0]
    centred = returns - returns.mean(axis=0)
    cov = centred.T @ centred * (TRADING_DAYS / max(rows - 1, 1))
    return (cov + cov.T) / 2.0


@dataclass(frozen=True)
class SampleRisk:
    """The plain estimate: the annualised sample covariance (n, n) of `tickers`, with its exact factor on demand."""

    tickers: tuple[str, ...]
    covariance: np.ndarray

    def volatility(self, w: np.ndarray) -> float:
        """Annualised volatility of weights w (n,) on the sample covariance."""
        w = np.asarray(w, dtype=float)
        return float(np.sqrt(max(float(w @ self.covariance @ w), 0.0)))

    @cached_property
    def factor(self) -> np.ndarray:
        """R (n, n), upper-triangular, with R'R = the covariance (+ 1e-12 of its largest variance on the diagonal,
        which keeps a singular one factorable and errs on the safe side)."""
        n = self.covariance.shape[0]
        if n == 0:
            return np.zeros((0, 0))
        jitter = 1e-12 * max(float(np.diag(self.covariance).max()), 1e-12)
        try:
            return np.linalg.cholesky(self.covariance + jitter * np.eye(n)).T
        except np.linalg.LinAlgError:
            values, vectors = np.linalg.eigh(self.covariance)
            return (vectors * np.sqrt(np.clip(values, 0.0, None))).T

    def model(self) -> RiskModel:
        """The estimate as a `RiskModel` (loadings R, no specific risk) for code written on factor models."""
        return RiskModel(self.tickers, self.factor, np.zeros(len(self.tickers)))


def sample_model(
    prices: pd.DataFrame,
    tickers: Sequence[str],
    securities: Mapping[str, SecurityInfo],
    *,
    window: int = DEFAULT_WINDOW,
) -> SampleRisk:
    """The plain estimate of `tickers`: the sample covariance (no shrinkage) of the last `window` daily returns,
    short histories filled as in step 2 (module docstring)."""
    returns, _, _ = _filled_returns(prices, tickers, securities, window)
    return SampleRisk(tuple(tickers), _sample_covariance(returns))


def risk_model_from_covariance(
    tickers: Sequence[str], cov: np.ndarray, *, n_factors: int = N_FACTORS
) -> RiskModel:
    """A `RiskModel` from a given (n, n) covariance (made symmetric; negative eigenvalues clipped)."""
    cov = np.asarray(cov, dtype=float)
    cov = (cov + cov.T) / 2.0
    loadings, specific = factor_form(cov, n_factors)
    return RiskModel(tuple(tickers), loadings, specific)
