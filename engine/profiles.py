"""Risk profiles: the per-profile limits and the strategic mix, as typed data.

Limits (all look-through; fractions, annualised volatility):

| profile      | vol cap | single stock | sector | small caps >= | financials >= | turnover <= |
| conservative | 12%     | 5%           | 25%    | 8%            | 12%           | 30%         |
| moderate     | 16%     | 8%           | 30%    | 10%           | 14%           | 40%         |
| aggressive   | 20%     | 12%          | 35%    | 12%           | 16%           | 50%         |

Units: `vol_cap` is annualised volatility of the whole portfolio (cash counts as riskless);
`max_single_stock` is a fraction of total value (a name held directly plus inside ETFs counts once);
`max_sector`, `min_small_cap`, `min_financials` are fractions of the EQUITY part (bonds, gold and cash
are not equity); `max_turnover` is turnover per run = max(buys - cash on hand, sales - withdrawal) / value:
the larger of the money moved by sales and by buys, not counting buys paid from cash already there (or
added) nor the sales that raise a withdrawal. Without cash flows that is the usual sum|trades| / 2 / value.

Why these numbers (evidence from the bundled 2023-2025 daily closes; `bench/optimizer.py --evidence`
prints the figures again):
- Realised 3-year volatility: SPY 15.4%, equal-weight RSP 14.5%, IWM 21.2%, XLF 16.6%, XLK 23.1%,
  QQQ 20.0%, BND 5.9%, VXUS 13.9%; NVDA 50.2%, AAPL 25.6%. The moderate cap of 16% is the S&P 500's own
  recent volatility: a portfolio riskier than the index is not "moderate". Conservative 12% sits above
  where a 60/40 mix lands (9.8% here for 60% SPY, 40% BND), with room for the tilt; aggressive 20%
  allows an all-equity portfolio with a small-cap tilt (IWM alone is 21%) but not a tech-concentrated
  one (XLK 23%, NVDA 50%).
- The strategic mixes below (with the January 2026 views, over the default menu) have 3-year
  volatility of 7.9% (conservative, 50% equity), 10.6% (moderate, 70%) and 13.3% (aggressive, 90%),
  so each target sits well inside its cap and the cap only binds for portfolios far from target.
- Sector caps: Information Technology is 34.4% of SPY (equal-weight RSP: 14.5%) by the late-2025 fact
  sheets; capping a sector at 25/30/35% of equity forces diversification below the cap-weighted
  index's own tech weight for the first two profiles, which is the point of the January 2026 thesis.
- Minimum financials 12/14/16% of equity: Financials are 13.0% of SPY and 15.1% of RSP; the floor
  keeps about index weight, above it for the more aggressive tilt (the views' target holds 20%).
- Minimum small caps 8/10/12% of equity: small caps are roughly 10% of the US total market (the
  70/20/10 large/mid/small split of total-market funds); the floors hold near-market weight.
- Single stock 5/8/12%: NVDA, the largest name, is 7.8% of SPY, 9.9% of QQQ and 14.6% of XLK; 8% for
  moderate stops a portfolio being more concentrated in one name than the broad index is.
- Turnover 30/40/50% per run: enough to fix most drift in one or two runs while bounding costs and
  taxes; a run that cannot reach a limit within it says so and the next run continues.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class Profile:
    """One risk profile: hard-ish limits plus the strategic mix the target is built from."""

    name: str
    vol_cap: float  # annualised volatility, whole portfolio
    max_single_stock: float  # fraction of total value, look-through
    max_sector: float  # fraction of the equity part, look-through
    min_small_cap: float  # fraction of the equity part
    min_financials: float  # fraction of the equity part
    max_turnover: float  # one-sided, fraction of value, per run
    equity_share: float  # strategic mix: equity fraction of total value
    bond_share: float  # strategic mix: bond fraction of total value
    cash_share: float  # strategic mix: cash fraction of total value
    bond_sleeve: Mapping[str, float] = field(default_factory=dict)  # preferred bond ETFs, weights sum to 1


PROFILES: Mapping[str, Profile] = MappingProxyType(
    {
        "conservative": Profile(
            name="conservative",
            vol_cap=0.12,
            max_single_stock=0.05,
            max_sector=0.25,
            min_small_cap=0.08,
            min_financials=0.12,
            max_turnover=0.30,
            equity_share=0.50,
            bond_share=0.45,
            cash_share=0.05,
            bond_sleeve=MappingProxyType({"BND": 0.5, "SHY": 0.3, "TIP": 0.2}),
        ),
        "moderate": Profile(
            name="moderate",
            vol_cap=0.16,
            max_single_stock=0.08,
            max_sector=0.30,
            min_small_cap=0.10,
            min_financials=0.14,
            max_turnover=0.40,
            equity_share=0.70,
            bond_share=0.27,
            cash_share=0.03,
            bond_sleeve=MappingProxyType({"BND": 0.7, "TIP": 0.15, "SHY": 0.15}),
        ),
        "aggressive": Profile(
            name="aggressive",
            vol_cap=0.20,
            max_single_stock=0.12,
            max_sector=0.35,
            min_small_cap=0.12,
            min_financials=0.16,
            max_turnover=0.50,
            equity_share=0.90,
            bond_share=0.08,
            cash_share=0.02,
            bond_sleeve=MappingProxyType({"BND": 1.0}),
        ),
    }
)

# The neutral equity mix used when the views are switched off: the US total market plus international,
# roughly market-cap weighted. Data, like the views; the target builder finds substitutes in the menu.
NEUTRAL_EQUITY_CORE: Mapping[str, float] = MappingProxyType({"VTI": 0.8, "VXUS": 0.2})


@dataclass(frozen=True)
class CostModel:
    """Trading cost and objective weights.

    Transaction cost of a trade = (commission_bps + spread_bps[kind]) / 1e4 * amount (USD).
    The objective adds one-off costs and taxes divided by `horizon_years` to `te_aversion` times the
    annual tracking-error variance to the target, plus `small_trade_penalty` per unit of value traded
    (an l1 term that makes the solver prefer fewer, larger trades), plus the yearly tax drag of holding
    income in a taxable account (asset location: bonds go to IRAs first, broad equity to taxable).
    """

    commission_bps: float = 5.0
    spread_bps_etf: float = 1.0
    spread_bps_stock: float = 2.0
    spread_bps_other: float = 10.0  # small caps, unknown securities
    horizon_years: float = 3.0
    te_aversion: float = 4.0  # per unit of annual tracking-error variance
    exposure_aversion: float = 1.0  # per unit of squared look-through sector/size gap (fractions of value)
    weight_aversion: float = 0.05  # per unit of squared weight gap to the target's funds
    cash_drag: float = 0.04  # per unit of cash held per year (expected return given up)
    small_trade_penalty: float = 0.002  # per unit traded: no trade is worth less than 20 bp of its size
    bond_yield: float = 0.04  # income of bond and cash funds, taxed yearly at short_term_rate in taxable accounts
    dividend_yield: float = 0.015  # equity dividends, taxed yearly at long_term_rate in taxable accounts
    short_term_rate: float = 0.35
    long_term_rate: float = 0.15
    unknown_basis_gain_fraction: float = 0.5  # unknown basis: assume half the value is gain


DEFAULT_COSTS = CostModel()


INCOME_CLASSES = frozenset({"bond", "cash"})  # asset classes whose income is taxed yearly at short_term_rate


def tax_drag(asset_class: str, account_taxable: bool, costs: CostModel = DEFAULT_COSTS) -> float:
    """Yearly tax on the income of holding one unit of `asset_class` in an account (fraction of value)."""
    if not account_taxable:
        return 0.0
    if asset_class in INCOME_CLASSES:
        return costs.bond_yield * costs.short_term_rate
    if asset_class == "equity":
        return costs.dividend_yield * costs.long_term_rate
    return 0.0


def profile_get(name: str) -> Profile:
    """The profile called `name`; raises `DataError` naming the valid choices otherwise."""
    from engine.errors import DataError

    try:
        return PROFILES[name]
    except KeyError:
        raise DataError(
            f"unknown risk profile {name!r}: choose one of {', '.join(PROFILES)}", field="profile"
        ) from None
