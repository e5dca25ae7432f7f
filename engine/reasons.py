"""A reason per trade: what that trade alone changes, a limit only where it binds, location and tax in words.

Each number in a reason is measured on the portfolio before the plan and on the same portfolio plus this one
trade (nothing else), as fractions of V (the value after the cash change, cash counted) or of its stocks. So a
reason never credits one trade with what the whole plan does.

The grammar (bench/advice.py and tests/test_engine_explain.py parse it; keep them in step):
- a change reads "<verb> <subject> from X% to Y%[ of the portfolio| of stocks]": the verb is one of
  DOWN_VERBS when Y < X and of UP_VERBS when Y > X;
- a limit is quoted in two forms only, where it binds: ", within your 8.0% limit" (", meeting your 14%
  minimum") right after a change that alone brings a breach back within it; and "the plan leaves <subject>
  at 7.9% (your limit: 8.0%)" when the whole plan ends within BIND_BAND of it ("cap" for volatility);
- clauses are separated by "; ".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from engine.explain import from_to, pct, usd
from engine.exposures import GICS_SECTORS, SIZES, ExposureModel
from engine.limits import FINANCIALS, SMALL, TOLERANCE, Limits
from engine.risk import RiskModel
from engine.target import Target
from engine.tax import Realisation
from engine.types import SecurityInfo

DOWN_VERBS: tuple[str, ...] = ("cuts", "lowers")
UP_VERBS: tuple[str, ...] = ("raises",)
BIND_BAND = 0.0025  # the plan "ends at" a limit when within a quarter point of it (whole shares stop short)
MATERIAL = 0.0005  # a change under 0.05 points is not worth a clause
MID = SIZES.index("mid")
BOND, CASH_CLASS = 1, 3  # rows of ExposureModel.asset_class
DOMESTIC_REGIONS = frozenset({"", "us"})

TAX_FREE_LABELS: Mapping[str, str] = {
    "traditional_ira": "a traditional IRA",
    "roth_ira": "a Roth IRA",
    "401k": "a 401(k)",
}
SHELTER_NAMES: Mapping[str, str] = {"traditional_ira": "the IRA", "401k": "the 401(k)", "roth_ira": "the Roth"}


@dataclass(frozen=True)
class Bound:
    """A limit on a quantity: its kind (max | min), how a person calls it, its value, and the plan's end value."""

    kind: str
    label: str  # limit | minimum | cap
    value: float
    plan_end: float

    def crossed(self, before: float, after: float) -> bool:
        """This change alone brings a breach back within the limit."""
        if self.kind == "max":
            return before > self.value + TOLERANCE and after <= self.value + TOLERANCE
        return before < self.value - TOLERANCE and after >= self.value - TOLERANCE

    def plan_ends_at(self) -> bool:
        if self.kind == "max":
            return self.value - BIND_BAND <= self.plan_end <= self.value + TOLERANCE
        return self.value - TOLERANCE <= self.plan_end <= self.value + BIND_BAND


@dataclass(frozen=True)
class Change:
    """One quantity this trade moves (fractions), how it reads, and its limit (if any)."""

    subject: str
    before: float
    after: float
    unit: str = ""  # " of the portfolio" | " of stocks" | ""
    note: str = ""  # e.g. " (target 14%)"
    bound: Bound | None = None

    @property
    def material(self) -> bool:
        return abs(self.after - self.before) >= MATERIAL

    def text(self) -> str:
        down = self.after < self.before
        verb = ("lowers" if self.subject == "volatility" else "cuts") if down else "raises"
        words = f"{verb} {self.subject} {from_to(self.before, self.after)}{self.unit}"
        b = self.bound
        if b is not None and (b.kind == "max") != down:  # a cap matters to a cut, a minimum to a raise
            b = None
        if b is not None and b.crossed(self.before, self.after):
            return words + (f", within your {pct(b.value)} {b.label}" if b.kind == "max"
                            else f", meeting your {pct(b.value)} minimum")
        if b is not None and b.plan_ends_at():
            limit = pct(b.value)
            exact = pct(b.plan_end) == limit
            where = f"your {limit} {b.label}" if exact else f"{pct(b.plan_end, b.value)} (your {b.label}: {limit})"
            return f"{words}{self.note}; the plan leaves {self.subject} at {where}"
        return words + self.note


@dataclass(frozen=True)
class Context:
    """The portfolio before the plan and where the plan ends, for reasons (fractions of V unless said)."""

    limits: Limits
    exposures: ExposureModel  # every look-through name
    risk: RiskModel
    value: float  # V, USD
    dollars: np.ndarray  # (n,) USD per asset before the plan
    w_after: np.ndarray  # (n,) the plan's end weights (fractions of its total)
    volatility_after: float
    target: Target
    cash_change: float  # USD, + added / - withdrawn
    securities: Mapping[str, SecurityInfo]
    account_types: frozenset[str]  # of every account of the portfolio

    @cached_property
    def w(self) -> np.ndarray:
        return self.dollars / self.value

    @cached_property
    def names(self) -> np.ndarray:
        """(L,) look-through single names before."""
        return self.exposures.names_matrix @ self.w

    @cached_property
    def volatility(self) -> float:
        return self.risk.volatility(self.w)

    @cached_property
    def international(self) -> np.ndarray:
        """(n,) equity outside the US in each asset."""
        regions = [self.securities[t].region if t in self.securities else "" for t in self.exposures.tickers]
        return np.array([r not in DOMESTIC_REGIONS for r in regions], dtype=float) * self.exposures.equity

    @cached_property
    def equity_matrix(self) -> np.ndarray:
        """(16, n) per asset: 11 sectors, 3 sizes, equity abroad, equity (fractions of the asset's value); a
        row over the last one is a share "of stocks"."""
        e = self.exposures
        return np.vstack([e.sectors, e.size, self.international, e.equity])

    @cached_property
    def equity_rows(self) -> np.ndarray:
        """(16,) USD before the plan, rows of `equity_matrix`."""
        return self.equity_matrix @ self.dollars

    @cached_property
    def equity_after(self) -> np.ndarray:
        """(16,) at the plan's end, rows of `equity_matrix` (fractions of its total)."""
        return self.equity_matrix @ self.w_after

    def target_bonds(self) -> float:
        index = self.exposures.index()
        return sum(w * float(self.exposures.asset_class[BOND, index[t]])
                   for t, w in self.target.weights.items() if t in index)


def trade_reason(
    ctx: Context, *, ticker: str, asset: int, action: str, amount: float, account_type: str,
    realisation: Realisation | None, basis_known: bool = True,
) -> str:
    """A reason for one trade of `amount` USD of `asset`: what it changes, where, and the tax."""
    delta = amount if action == "buy" else -amount
    if action == "sell":
        clauses = [c.text() for c in sell_changes(ctx, ticker, asset, delta)]
        if ctx.cash_change < 0:
            clauses.append(f"raises cash for your {usd(-ctx.cash_change)} withdrawal")
        clauses.append(tax_note(account_type, realisation, basis_known))
    else:
        clauses = [c.text() for c in buy_changes(ctx, ticker, asset, delta)]
        location = location_note(ctx, asset, account_type)
        if location:
            clauses.append(location)
    return "; ".join(clauses)


# ---------------------------------------------------------------- what one trade changes


def position_change(ctx: Context, ticker: str, a: int, delta: float) -> Change:
    """The position's own weight; for a stock, its look-through weight (held directly and inside funds)."""
    e = ctx.exposures
    row = e.names.index(ticker) if e.kinds[a] == "stock" and ticker in e.names else -1
    before = float(ctx.names[row]) if row >= 0 else float(ctx.w[a])
    after = before + delta / ctx.value
    target = ctx.target.weights.get(ticker)
    note = f" (target {pct(target)})" if target and delta > 0 else ""
    unit = " of the portfolio"
    if before - float(ctx.w[a]) >= 0.005:  # held inside funds too: the number counts them
        unit += " (including through funds)"
    bound = None
    if row >= 0:
        end = float(e.names_matrix[row] @ ctx.w_after)
        bound = Bound("max", "limit", ctx.limits.max_single_stock, end)
    return Change(ticker, before, after, unit, note, bound)


def _equity_share(ctx: Context, row: int, a: int, delta: float) -> tuple[float, float, float] | None:
    """Row `row` of `equity_rows` as a fraction of stocks: before, after this trade, at the plan's end."""
    rows = ctx.equity_rows
    column = ctx.equity_matrix[:, a]
    equity_before, equity_after = rows[-1], rows[-1] + column[-1] * delta
    if equity_before <= 1e-9 * ctx.value or equity_after <= 1e-9 * ctx.value:
        return None
    end = ctx.equity_after
    plan_end = float(end[row] / end[-1]) if end[-1] > 1e-12 else 0.0
    return float(rows[row] / equity_before), float((rows[row] + column[row] * delta) / equity_after), plan_end


def sector_change(ctx: Context, j: int, a: int, delta: float) -> Change | None:
    shares = _equity_share(ctx, j, a, delta)
    if shares is None:
        return None
    before, after, end = shares
    note = f" (target {pct(ctx.target.sectors.get(GICS_SECTORS[j], 0.0))})"
    return Change(GICS_SECTORS[j], before, after, " of stocks", note,
                  Bound("max", "limit", ctx.limits.max_sector, end))


def size_change(ctx: Context, size: int, a: int, delta: float) -> Change | None:
    shares = _equity_share(ctx, len(GICS_SECTORS) + size, a, delta)
    if shares is None:
        return None
    before, after, end = shares
    label = {SMALL: "small caps", MID: "mid caps"}.get(size, "large caps")
    note = f" (target {pct(ctx.target.size.get(SIZES[size], 0.0))})"
    bound = Bound("min", "minimum", ctx.limits.min_small_cap, end) if size == SMALL else None
    return Change(label, before, after, " of stocks", note, bound)


def international_change(ctx: Context, a: int, delta: float) -> Change | None:
    shares = _equity_share(ctx, len(GICS_SECTORS) + len(SIZES), a, delta)
    return None if shares is None else Change("international stocks", shares[0], shares[1], " of stocks")


def financials_change(ctx: Context, a: int, delta: float) -> Change | None:
    change = sector_change(ctx, FINANCIALS, a, delta)
    if change is None or change.bound is None:
        return None
    return Change(change.subject, change.before, change.after, change.unit, change.note,
                  Bound("min", "minimum", ctx.limits.min_financials, change.bound.plan_end))


def bonds_change(ctx: Context, a: int, delta: float) -> Change:
    before = float(ctx.exposures.asset_class[BOND] @ ctx.w)
    after = before + float(ctx.exposures.asset_class[BOND, a]) * delta / ctx.value
    return Change("bonds", before, after, " of the portfolio", f" (target {pct(ctx.target_bonds())})")


def volatility_change(ctx: Context, a: int, delta: float) -> Change:
    w = ctx.w.copy()
    w[a] += delta / ctx.value
    return Change("volatility", ctx.volatility, ctx.risk.volatility(w), "", "",
                  Bound("max", "cap", ctx.limits.vol_cap, ctx.volatility_after))


def sell_changes(ctx: Context, ticker: str, a: int, delta: float) -> list[Change]:
    """The position's weight, then the exposure this sale serves best: a single name or sector over its cap,
    volatility over its cap, or a sector above its target (each only if this sale lowers it)."""
    own = position_change(ctx, ticker, a, delta)
    options: list[tuple[float, Change]] = []
    e, lim = ctx.exposures, ctx.limits
    for i in np.nonzero((ctx.names > lim.max_single_stock + TOLERANCE) & (e.names_matrix[:, a] >= 0.05))[0]:
        if e.names[i] != ticker:
            end = float(e.names_matrix[i] @ ctx.w_after)
            options.append((120 + e.names_matrix[i, a], Change(
                e.names[i], float(ctx.names[i]), float(ctx.names[i] + e.names_matrix[i, a] * delta / ctx.value),
                " of the portfolio", "", Bound("max", "limit", lim.max_single_stock, end))))
    for j in np.nonzero(e.sectors[:, a] >= 0.2)[0]:
        change = sector_change(ctx, int(j), a, delta)
        if change is not None and change.before > lim.max_sector + TOLERANCE:
            options.append((100 + e.sectors[j, a], change))
        elif change is not None and change.before > ctx.target.sectors.get(GICS_SECTORS[j], 0.0) + 0.01:
            options.append((50 + e.sectors[j, a], change))
    if ctx.volatility > lim.vol_cap + TOLERANCE and e.equity[a] > 0.5:
        options.append((90, volatility_change(ctx, a, delta)))
    useful = [(p, c) for p, c in options if c.material and c.after < c.before]
    if not useful:
        return [own]
    return [own, max(useful, key=lambda pc: pc[0])[1]]


def buy_changes(ctx: Context, ticker: str, a: int, delta: float) -> list[Change]:
    """The exposure this purchase serves best (raised toward a minimum or target, or a sector over its target
    diluted), else the position's own weight."""
    e, lim = ctx.exposures, ctx.limits
    options: list[tuple[float, Change | None]] = []
    small, mid, fin = float(e.size[SMALL, a]), float(e.size[MID, a]), float(e.sectors[FINANCIALS, a])
    top = int(e.sectors[:, a].argmax())
    if small >= 0.5:
        change = size_change(ctx, SMALL, a, delta)
        short = change is not None and change.before < lim.min_small_cap - TOLERANCE
        options.append(((110 if short else 60) + small, change))
    if fin >= 0.5:
        change = financials_change(ctx, a, delta)
        short = change is not None and change.before < lim.min_financials - TOLERANCE
        options.append(((110 if short else 60) + fin, change))
    elif e.equity[a] > 0.5 and e.sectors[top, a] >= 0.5:
        options.append((60 + float(e.sectors[top, a]), sector_change(ctx, top, a, delta)))
    if mid >= 0.5 and e.sectors[top, a] < 0.5:
        options.append((58, size_change(ctx, MID, a, delta)))
    if e.asset_class[BOND, a] > 0.5:
        options.append((55, bonds_change(ctx, a, delta)))
    if ctx.international[a] > 0.5:
        options.append((45, international_change(ctx, a, delta)))
    if e.equity[a] > 0.5 and e.sectors[top, a] < 0.4:
        options.append((40, _diluted_sector(ctx, a, delta)))
    useful = [(p, c) for p, c in options if c is not None and c.material]
    if not useful:
        return [position_change(ctx, ticker, a, delta)]
    return [max(useful, key=lambda pc: pc[0])[1]]


def _diluted_sector(ctx: Context, a: int, delta: float) -> Change | None:
    """The sector this broad purchase brings closest to its target (a sector over target, diluted)."""
    best: Change | None = None
    best_gain = MATERIAL
    for j, sector in enumerate(GICS_SECTORS):
        change = sector_change(ctx, j, a, delta)
        if change is None:
            continue
        target = ctx.target.sectors.get(sector, 0.0)
        gain = abs(change.before - target) - abs(change.after - target)
        if change.before > target and gain > best_gain:
            best, best_gain = change, gain
    return best


# ---------------------------------------------------------------- where, and the tax


def location_note(ctx: Context, a: int, account_type: str) -> str:
    """Why this account, when the portfolio has a choice of account types: bonds in a tax-deferred account,
    the growth sleeve in a Roth."""
    others = ctx.account_types - {account_type}
    if not others:
        return ""
    e = ctx.exposures
    where = SHELTER_NAMES.get(account_type)
    if account_type in ("traditional_ira", "401k") and e.asset_class[BOND, a] > 0.5:
        return f"bonds in {where}: their interest is not taxed there"
    if account_type == "roth_ira" and _growth(ctx, a):
        return f"growth in {where}: it is never taxed there"
    return ""


def _growth(ctx: Context, a: int) -> bool:
    """A diversified stock fund (the growth sleeve: broad market, small or mid caps, stocks abroad), not a
    one-sector fund."""
    e = ctx.exposures
    return bool(e.equity[a] > 0.5 and float(e.sectors[:, a].max()) < 0.4)


def tax_note(account_type: str, r: Realisation | None, basis_known: bool) -> str:
    """The sale's gain or loss and its estimated tax, in words."""
    if account_type in TAX_FREE_LABELS:
        return f"no tax in {TAX_FREE_LABELS[account_type]}"
    if r is None or abs(r.gain) < 0.5:
        return "no gain to tax"
    estimate = "" if basis_known else " (cost basis unknown: estimate)"
    if r.gain < 0:
        saved = f", est. tax saved {usd(-r.tax)}" if r.tax <= -0.5 else ""
        return f"realises a {usd(-r.gain)} loss that offsets other gains{saved}{estimate}"
    if r.short_term_gain > 0.5 and r.long_term_gain > 0.5:
        kind = f"gain ({usd(r.short_term_gain)} short-term)"
    elif r.short_term_gain > 0.5:
        kind = "short-term gain"
    else:
        kind = "long-term gain"
    return f"realises {usd(r.gain)} {kind}, est. tax {usd(r.tax)}{estimate}"
