"""The engine's contract: plain, typed inputs and outputs (no Django).

Money is in USD, weights are fractions of total portfolio value (cash included as ``CASH``),
volatility is annualised (0.16 = 16%), dates are ``datetime.date``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

CASH = "CASH"
GICS_SECTORS: tuple[str, ...] = (
    "Communication Services",
    "Consumer Discretionary",
    "Consumer Staples",
    "Energy",
    "Financials",
    "Health Care",
    "Industrials",
    "Information Technology",
    "Materials",
    "Real Estate",
    "Utilities",
)
SIZES: tuple[str, ...] = ("large", "mid", "small")
AccountType = Literal["taxable", "traditional_ira", "roth_ira", "401k", "other"]
ProfileName = Literal["conservative", "moderate", "aggressive"]


@dataclass(frozen=True)
class Position:
    """One lot of one security in one account."""

    ticker: str
    account: str
    account_type: str  # AccountType
    shares: float
    price: float | None  # latest adjusted close; None = unpriced (held fixed, reported)
    cost_basis: float | None = None  # total cost of the lot, USD; None = unknown
    acquired: dt.date | None = None
    lot_id: str | None = None


@dataclass(frozen=True)
class AccountCash:
    account: str
    account_type: str  # AccountType
    cash: float  # USD, >= 0


@dataclass(frozen=True)
class SecurityInfo:
    ticker: str
    kind: str  # stock | etf | unknown
    asset_class: str = ""  # equity | bond | commodity | cash | ""
    sector: str = ""  # GICS sector for stocks
    size: str = ""  # large | mid | small | total | n/a | ""
    region: str = ""
    name: str = ""
    # A blended fund (e.g. a target-date fund): its value by asset class, fractions summing to 1, as
    # ((class, fraction), ...); empty = wholly `asset_class`. Its sectors, size and names then come
    # from its look-through scaled by the equity fraction.
    asset_mix: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class MarketData:
    """Prices and classifications for every ticker the engine may touch.

    prices: DataFrame indexed by date (ascending), one column per ticker, adjusted closes in USD;
        NaN before a ticker listed. About 3+ years of history for the risk model.
    etf_sectors: {etf: {GICS sector: weight}}, weights sum to 1 per ETF.
    etf_holdings: {etf: {ticker: weight}}, single-name look-through, weights are fractions.
    """

    prices: pd.DataFrame
    securities: Mapping[str, SecurityInfo]
    etf_sectors: Mapping[str, Mapping[str, float]]
    etf_holdings: Mapping[str, Mapping[str, float]]
    as_of: dt.date


@dataclass(frozen=True)
class Options:
    profile: str = "moderate"  # ProfileName
    cash_change: float = 0.0  # USD to add (+) or withdraw (-)
    buy_only: bool = False
    keep: frozenset[str] = frozenset()  # tickers never to sell
    fractional: bool = False
    max_turnover: float | None = None  # fraction of value; None = the profile's limit
    # The smallest order worth placing: the larger of min_trade_usd and min_trade_fraction of the portfolio's
    # value (a planner's rule: no $54 orders; $250 or 0.25% of value). Smaller orders are left out.
    min_trade_usd: float = 250.0
    min_trade_fraction: float = 0.0025
    use_views: bool = True
    # tickers held fixed because the market data cannot trade them (valued at the broker file's own price,
    # e.g. T-bills, options): never sold, like `keep`, but not the person's choice (reported as such)
    fixed: frozenset[str] = frozenset()
    # Estimated tax (net of harvested losses) the plan may realise, as a fraction of value per calendar year:
    # 0.01 = 1% (the default), 0 = realise no net gains, None = no limit. `tax_spent_usd` is tax already
    # realised this calendar year (executed plans), taken off the budget.
    tax_budget: float | None = 0.01
    tax_spent_usd: float = 0.0
    # At most this many distinct funds bought in one plan (None = no cap).
    max_funds: int | None = 6


@dataclass(frozen=True)
class RebalanceRequest:
    positions: list[Position]
    cash: list[AccountCash]
    menu: list[str]  # diversifier tickers the optimizer may buy
    market: MarketData  # with a MarketSnapshot: that snapshot's `market` (engine.market)
    options: Options = field(default_factory=Options)
    views: Mapping[str, Any] | None = None  # the dated investment views (data, see data/views/)


@dataclass(frozen=True)
class Trade:
    ticker: str
    account: str
    action: str  # buy | sell
    shares: float
    price: float
    amount: float  # USD, positive
    reason: str
    est_cost: float = 0.0  # USD transaction cost estimate
    # USD, taxable accounts only: this sale's share of the plan's netted tax (engine.tax.allocate_taxes; the
    # trades add up to RebalanceResult.est_taxes); negative for a sale at a loss: the tax it saves
    est_tax: float = 0.0
    realized_gain: float = 0.0  # USD, negative for a loss


@dataclass(frozen=True)
class Snapshot:
    """Exposures of one set of weights (before or after)."""

    weights: dict[str, float]  # ticker -> fraction of total value, CASH included
    sectors: dict[str, float]  # GICS look-through, fractions of the equity part
    size: dict[str, float]  # large/mid/small fractions of the equity part
    volatility: float  # annualised
    asset_class: dict[str, float] = field(default_factory=dict)  # fractions of total value
    top_names: dict[str, float] = field(default_factory=dict)  # 10 largest single names, look-through
    largest_position: tuple[str, float] = ("", 0.0)
    largest_sector: tuple[str, float] = ("", 0.0)
    effective_holdings: float = 0.0  # 1 / sum(w^2) over look-through names
    # volatility on the plain sample covariance of the last 3 years of daily returns (None: not measured)
    volatility_sample: float | None = None


@dataclass(frozen=True)
class Relaxation:
    limit: str  # e.g. "volatility_cap", "max_sector:Information Technology", "max_turnover"
    requested: float
    achieved: float
    message: str  # plain words: which limit moved, by how much, what a next run would do


@dataclass(frozen=True)
class TradeOff:
    """One row of the tax trade-off table: what a yearly tax budget would buy."""

    budget: float | None  # fraction of value (None = no limit)
    est_taxes: float  # USD
    volatility: float  # after, annualised
    limits_met: int
    limits_total: int
    current: bool = False  # the plan's own budget


@dataclass(frozen=True)
class RebalanceResult:
    as_of: dt.date
    profile: str
    status: str  # optimal | relaxed
    value: float  # total portfolio value after the cash change, USD
    trades: list[Trade]
    before: Snapshot
    after: Snapshot
    warnings: list[str]
    relaxations: list[Relaxation] = field(default_factory=list)
    summary: str = ""  # one sentence
    est_costs: float = 0.0
    est_taxes: float = 0.0  # USD, gains and losses netted by term (engine.tax.net_tax), >= 0
    timings_ms: dict[str, float] = field(default_factory=dict)
    tradeoffs: list[TradeOff] = field(default_factory=list)  # tax budget vs risk and limits (when it binds)
    notes: list[str] = field(default_factory=list)  # planner's notes: nothing to do, waits, harvests, location
