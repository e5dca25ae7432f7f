"""Words: a reason per trade, a message per relaxed limit and its cause, a warning on idle cash, a one-sentence
summary."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache, partial
from typing import TYPE_CHECKING

import numpy as np

from engine.exposures import GICS_SECTORS, ExposureModel
from engine.limits import FINANCIALS, SMALL, TOLERANCE, Breach, Limits, Metrics
from engine.target import Target
from engine.tax import Realisation
from engine.tickers import ticker_key
from engine.types import Options, SecurityInfo

if TYPE_CHECKING:
    from engine.prepare import Prepared
    from engine.problem import Solution

IDLE_CASH_SHARE = 0.005  # cash kept beyond what the person had, over this share of V (and over what no order can
# invest: the cheapest buyable share or the minimum trade in each account), is explained in a warning

ACCOUNT_LABELS: Mapping[str, str] = {
    "traditional_ira": "a traditional IRA",
    "roth_ira": "a Roth IRA",
    "401k": "a 401(k)",
}
LIMIT_LABELS: Mapping[str, str] = {
    "volatility_cap": "volatility cap",
    "min_financials": "Financials minimum",
    "min_small_cap": "small-cap minimum",
    "max_turnover": "turnover limit",
    "cash_withdrawal": "withdrawal",
}


def _round(x: float, decimals: int) -> float:
    """round(x, decimals) as Python does it for x's type, faster for numpy floats: numpy rounds a float64 by
    scaling with the power of ten, rounding half to even and scaling back (not decimally, as Python does)."""
    if type(x) is np.float64 and math.isfinite(x):
        scale = 10.0**decimals
        return round(float(x) * scale) / scale
    return round(x, decimals)


@lru_cache(maxsize=4096, typed=True)  # a pure function of its arguments (typed: numpy and python floats round apart)
def pct(x: float, other: float | None = None) -> str:
    """A percentage for people: whole percent from 10% up, one decimal below; when `other` is given and
    differs, as many decimals (up to 3) as it takes for the two to read differently."""
    decimals = 0 if abs(x) >= 0.0995 else 1
    if other is not None and abs(x - other) > 1e-9:
        while decimals < 3 and _round(x * 100, decimals) == _round(other * 100, decimals):
            decimals += 1
    return f"{x * 100:.{decimals}f}%"


def points(gap: float) -> str:
    """A difference of two fractions in percentage points, e.g. "3.0 points", "0.002 points"."""
    value = abs(gap) * 100
    decimals = 1 if value >= 0.05 else 3
    return f"{value:.{decimals}f} points"


def from_to(before: float, after: float) -> str:
    return f"from {pct(before, after)} to {pct(after, before)}"


def usd(x: float) -> str:
    return f"${x:,.0f}" if abs(x) >= 100 else f"${x:,.2f}"


def limit_label(limit: str) -> str:
    if limit.startswith("max_sector:"):
        return f"{limit.split(':', 1)[1]} cap"
    if limit.startswith("max_single_stock:"):
        return f"single-stock cap on {limit.split(':', 1)[1]}"
    return LIMIT_LABELS.get(limit, limit)


@dataclass(frozen=True)
class Context:
    """Everything a reason may quote: limits, before/after metrics (opt exposures), target, cash change."""

    limits: Limits
    before: Metrics
    after: Metrics
    exposures: ExposureModel
    bonds_before: float  # fraction of total value in bond funds
    bonds_after: float
    target: Target
    cash_change: float
    securities: Mapping[str, SecurityInfo]
    top_name_before: tuple[str, float]
    top_name_after: tuple[str, float]

    @cached_property
    def names_over(self) -> np.ndarray:
        """(L,) single names over their cap before."""
        return self.before.names > self.limits.max_single_stock + TOLERANCE

    @cached_property
    def sectors_over(self) -> np.ndarray:
        """(11,) sectors over their cap before."""
        return self.before.sectors > self.limits.max_sector + TOLERANCE

    @cached_property
    def asset_facts(self) -> tuple[list[int], list[float], list[bool]]:
        """Per asset: its largest sector, that sector's share, whether it holds any single name."""
        e = self.exposures
        return (e.sectors.argmax(axis=0).tolist(), e.sectors.max(axis=0).tolist(),
                (e.names_matrix.sum(axis=0) > 0).tolist())


def trade_reason(
    ctx: Context, *, ticker: str, asset: int, action: str, account_type: str, realisation: Realisation | None,
    basis_known: bool = True,
) -> str:
    """A sentence a person understands, with the portfolio-level change this trade serves."""
    text = _sell_reason(ctx, asset) if action == "sell" else _buy_reason(ctx, ticker, asset)
    if action == "sell":
        text += "; " + _tax_note(account_type, realisation, basis_known)
    return text


def _best(options: list[tuple[float, Callable[[], str]]]) -> str:
    """The text of the highest-priority option (the first of equal ones), formatted only for it."""
    return max(options, key=lambda o: o[0])[1]()


def _cut_name(ctx: Context, i: int) -> str:
    b, af = ctx.before, ctx.after
    return (f"cuts {ctx.exposures.names[i]} (held directly and inside funds) {from_to(b.names[i], af.names[i])} of "
            f"the portfolio; your limit is {pct(ctx.limits.max_single_stock)}")


def _cut_sector(ctx: Context, j: int) -> str:
    return (f"cuts {GICS_SECTORS[j]} {from_to(ctx.before.sectors[j], ctx.after.sectors[j])}; "
            f"your limit is {pct(ctx.limits.max_sector)}")


def _sell_reason(ctx: Context, a: int) -> str:
    e, lim, b, af = ctx.exposures, ctx.limits, ctx.before, ctx.after
    options: list[tuple[float, Callable[[], str]]] = []
    top_sector, top_share, has_names = ctx.asset_facts[0][a], ctx.asset_facts[1][a], ctx.asset_facts[2][a]
    if has_names and ctx.names_over.any():
        in_asset = e.names_matrix[:, a]
        for i in np.nonzero(ctx.names_over & (in_asset >= 0.05))[0].tolist():
            options.append((120 + in_asset[i], partial(_cut_name, ctx, i)))
    if top_share >= 0.2 and ctx.sectors_over.any():
        shares = e.sectors[:, a]
        for j in np.nonzero(ctx.sectors_over & (shares >= 0.2))[0].tolist():
            options.append((100 + shares[j], partial(_cut_sector, ctx, j)))
    if b.volatility > lim.vol_cap + TOLERANCE:
        options.append((90, lambda: (f"lowers volatility {from_to(b.volatility, af.volatility)}; "
                                     f"your cap is {pct(lim.vol_cap)}")))
    if ctx.cash_change < 0:
        options.append((80, lambda: f"raises cash for your {usd(-ctx.cash_change)} withdrawal"))
    if e.equity[a] > 0.5 and top_share >= 0.2:
        s = top_sector
        target = ctx.target.sectors.get(GICS_SECTORS[s], 0.0)
        if b.sectors[s] > target + 0.01:
            options.append((50, lambda: (f"trims {GICS_SECTORS[s]} {from_to(b.sectors[s], af.sectors[s])} "
                                         f"toward the target's {pct(target)}")))
    if ctx.top_name_before[1] > ctx.top_name_after[1] + 0.005 and has_names:
        name, weight = ctx.top_name_before
        options.append((30, lambda: (f"reduces single-name concentration: {name} "
                                     f"{from_to(weight, ctx.top_name_after[1])} of the portfolio")))
    options.append((0, lambda: f"moves toward the target mix ({ctx.target.source})"))
    return _best(options)


def _buy_reason(ctx: Context, ticker: str, a: int) -> str:
    e, lim, b, af = ctx.exposures, ctx.limits, ctx.before, ctx.after
    info = ctx.securities.get(ticker)
    name = info.name if info and info.name else ticker
    options: list[tuple[float, Callable[[], str]]] = []
    small_share = e.size[SMALL, a]
    fin_share = e.sectors[FINANCIALS, a]
    is_bond = e.asset_class[1, a] > 0.5 or e.asset_class[3, a] > 0.5
    if small_share >= 0.5:
        if b.equity > 0 and b.small < lim.min_small_cap - TOLERANCE:
            options.append((110 + small_share, lambda: (
                f"adds small caps {pct(b.small, af.small)} -> {pct(af.small, b.small)} "
                f"of equity; the minimum is {pct(lim.min_small_cap)}")))
        options.append((60 + small_share, lambda: (
            f"adds small caps {pct(b.small, af.small)} -> {pct(af.small, b.small)} "
            f"of equity (target {pct(ctx.target.size.get('small', 0.0))})")))
    if fin_share >= 0.5:
        fb, fa = b.sectors[FINANCIALS], af.sectors[FINANCIALS]
        if b.equity > 0 and fb < lim.min_financials - TOLERANCE:
            options.append((110 + fin_share, lambda: (f"raises Financials {from_to(fb, fa)} of equity; "
                                                      f"the minimum is {pct(lim.min_financials)}")))
        options.append((60 + fin_share, lambda: (f"raises Financials {from_to(fb, fa)} of equity "
                                                 f"(target {pct(ctx.target.sectors.get('Financials', 0.0))})")))
    if is_bond:
        if b.volatility > lim.vol_cap + TOLERANCE:
            options.append((100, lambda: (
                f"adds bonds {pct(ctx.bonds_before)} -> {pct(ctx.bonds_after)} to bring volatility "
                f"{from_to(b.volatility, af.volatility)} (cap {pct(lim.vol_cap)})")))
        options.append((55, lambda: (
            f"adds bonds {pct(ctx.bonds_before)} -> {pct(ctx.bonds_after)} of the portfolio "
            f"(target {pct(sum(w for t, w in ctx.target.weights.items() if _is_bond(ctx, t)))})")))
    top_sector, top_share = ctx.asset_facts[0][a], ctx.asset_facts[1][a]
    if e.equity[a] > 0.5 and top_share < 0.4 and small_share < 0.5:
        region = info.region if info else ""
        where = "international stocks" if region and region != "us" else "the broad market"
        options.append((40, lambda: (f"adds {name}, diversified across {where}; the largest single name goes "
                                     f"{from_to(ctx.top_name_before[1], ctx.top_name_after[1])} of the portfolio")))
    if e.equity[a] > 0.5 and top_share >= 0.5:
        s = top_sector
        options.append((35, lambda: (f"adds {GICS_SECTORS[s]} {from_to(b.sectors[s], af.sectors[s])} of equity "
                                     f"(target {pct(ctx.target.sectors.get(GICS_SECTORS[s], 0.0))})")))
    if ctx.cash_change > 0:
        options.append((20, lambda: f"invests your new {usd(ctx.cash_change)} toward the target mix"))
    options.append((0, lambda: f"moves toward the target mix ({ctx.target.source})"))
    return _best(options)


def _is_bond(ctx: Context, ticker: str) -> bool:
    info = ctx.securities.get(ticker)
    return info is not None and info.asset_class in ("bond", "cash")


def _tax_note(account_type: str, r: Realisation | None, basis_known: bool) -> str:
    if account_type in ACCOUNT_LABELS:
        return f"no tax in {ACCOUNT_LABELS[account_type]}"
    if r is None or abs(r.gain) < 0.5:
        return "no gain to tax"
    estimate = "" if basis_known else " (cost basis unknown: estimate)"
    if r.gain < 0:  # r.tax: this sale's share of the plan's netted tax (engine.tax.allocate_taxes)
        saves = (f", saving an est. {usd(-r.tax)} of tax on this plan's gains" if r.tax < -0.5
                 else " that can offset future gains")
        return f"realises a {usd(-r.gain)} loss{saves}{estimate}"
    if r.short_term_gain > 0.5 and r.long_term_gain > 0.5:
        kind = f"gain ({usd(r.short_term_gain)} short-term)"
    elif r.short_term_gain > 0.5:
        kind = "short-term gain"
    else:
        kind = "long-term gain"
    return f"realises {usd(r.gain)} {kind}, est. tax {usd(r.tax)}{estimate}"


@dataclass(frozen=True)
class Cause:
    """Why a limit could not be met, and what a next run would do."""

    why: str
    next_run: str


def relaxation_message(breach: Breach, cause: Cause) -> str:
    label = limit_label(breach.limit)
    direction = "over" if breach.kind == "max" else "short"
    return (
        f"The {label} of {pct(breach.requested)} was relaxed to {pct(breach.achieved, breach.requested)} "
        f"({points(breach.achieved - breach.requested)} {direction}) because {cause.why}; {cause.next_run}."
    )


def withdrawal_message(requested: float, raised: float, why: str) -> str:
    return (
        f"The withdrawal of {usd(requested)} was reduced to {usd(raised)} because {why}; "
        f"allow sales or add cash in that account to raise the rest."
    )


def idle_cash_message(*, cash_usd: float, share: float, extra_usd: float, had_usd: float, why: str) -> str:
    """Why the proposal keeps more cash than the person holds now (`why` completes "because ...")."""
    return (f"The proposal keeps {usd(cash_usd)} ({pct(share)} of the portfolio) in cash, {usd(extra_usd)} more than "
            f"the {usd(had_usd)} you hold now, because {why}.")


def summary_sentence(
    *,
    n_sells: int,
    n_buys: int,
    before: Metrics,
    after: Metrics,
    est_costs: float,
    est_taxes: float,
    relaxed: Sequence[str],
    profile: str,
    cash_before: float | None = None,
    cash_after: float | None = None,
) -> str:
    """One sentence: what the trades do, with the main before -> after figures.

    `cash_before`/`cash_after` (fractions of value) are quoted only when given: when the proposal keeps
    more cash than the person had (explained in a warning).
    """
    if n_sells + n_buys == 0:
        if relaxed:
            return (f"No trades: none that are allowed would help, and {len(relaxed)} {profile} limit(s) stay "
                    f"unmet (see relaxations).")
        return f"No trades: the portfolio meets the {profile} limits and no trade is worth its costs and taxes."
    changes = np.abs(after.sectors - before.sectors)
    s = int(np.argmax(changes)) if len(changes) else 0
    effects = []
    if changes.size and changes[s] >= 0.005:
        verb = "cut" if after.sectors[s] < before.sectors[s] else "raise"
        effects.append(f"{verb} {GICS_SECTORS[s]} {from_to(before.sectors[s], after.sectors[s])} of equity")
    if abs(after.small - before.small) >= 0.005:
        verb = "raise" if after.small > before.small else "lower"
        effects.append(f"{verb} small caps {from_to(before.small, after.small)}")
    parts = []
    if n_sells:
        parts.append(f"sell {n_sells} position{'s' if n_sells != 1 else ''}")
    if n_buys:
        parts.append(f"buy {n_buys} fund{'s' if n_buys != 1 else ''}")
    action = " and ".join(parts)
    effect = (" to " + " and ".join(effects)) if effects else ""
    text = (f"{action[0].upper()}{action[1:]}{effect}; volatility {from_to(before.volatility, after.volatility)}; "
            f"est. costs {usd(est_costs)} and taxes {usd(est_taxes)}")
    if cash_before is not None and cash_after is not None:
        text += f"; cash {from_to(cash_before, cash_after)} (see warnings)"
    if relaxed:
        text += f"; {len(relaxed)} limit{'s' if len(relaxed) != 1 else ''} relaxed"
    return text + "."


# ---------------------------------------------------------------- causes and idle cash


def idle_cash_warning(
    prep: Prepared, options: Options, solution: Solution, cont: Metrics, cash_after: np.ndarray, total_after: float
) -> str | None:
    """Plain words on cash kept beyond what the person had (cash added is to be invested; a withdrawal is
    raised by sales), or None when it is only a rounding remainder (see IDLE_CASH_SHARE).
    cash_after (m,) USD; total_after USD."""
    had = prep.cash_start
    extra = cash_after - had
    m = len(prep.accounts)
    uninvestable = np.full(m, np.inf)  # USD per account that no order could invest
    for a in range(m):
        buy = prep.can_buy & (prep.slot_account == a)
        if buy.any():
            share = 0.0 if options.fractional else float((prep.prices[buy] * (1 + prep.cost_rate[buy])).min())
            uninvestable[a] = max(prep.min_order, share)
    tolerance = max(IDLE_CASH_SHARE * prep.value, float(uninvestable[np.isfinite(uninvestable)].sum()))
    if extra.sum() <= tolerance:
        return None
    lim = prep.limits
    target_cash = prep.target.cash
    solver_extra = float((solution.cash * prep.value - had).sum())
    stuck = [prep.accounts[a] for a in range(m) if not np.isfinite(uninvestable[a]) and extra[a] > 1.0]
    if stuck:
        why = f"nothing on the menu can be bought in {', '.join(stuck)}; add funds to the menu to invest it"
    elif cash_after.sum() <= target_cash * total_after + tolerance:
        why = f"the {prep.profile.name} target mix keeps {pct(target_cash)} of the portfolio in cash"
    elif solver_extra <= tolerance:
        how = "whole shares" if not options.fractional else "trade sizes"
        why = (f"rounding to {how} and the {usd(prep.min_order)} minimum trade size, while keeping your "
               f"limits, left it uninvested; a next run would invest it")
    elif float(solution.buys.sum()) >= lim.max_turnover + prep.cash_in() / prep.value - 1e-6:
        why = (f"the turnover limit of {pct(lim.max_turnover)} per run caps purchases (buys paid from sales count "
               f"toward it); a next run would invest it")
    elif cont.volatility >= lim.vol_cap - 1e-4:
        why = (f"holding it as cash is what keeps volatility within your {pct(lim.vol_cap)} cap with the funds on "
               f"the menu")
    else:
        why = "no purchase within your limits was worth its trading costs"
    return idle_cash_message(cash_usd=float(cash_after.sum()), share=float(cash_after.sum()) / total_after,
                             extra_usd=float(extra.sum()), had_usd=float(had.sum()), why=why)


def top_name(model: ExposureModel, w: np.ndarray) -> tuple[str, float]:
    if not len(model.names):
        return ("", 0.0)
    values = model.names_matrix @ w
    i = int(np.argmax(values))
    return model.names[i], float(values[i])


def cause_of(breach: Breach, prep: Prepared, cont: Metrics, options) -> Cause:
    lim = prep.limits
    solver_met = _solver_met(breach, prep, cont)
    if solver_met:
        how = "rounding to whole shares" if not options.fractional else "leaving out trades under the minimum size"
        fix = "fractional shares would meet it exactly" if not options.fractional else "a next run would fine-tune it"
        return Cause(f"{how} and the {usd(prep.min_order)} minimum trade size leave it there", fix)
    if breach.limit == "max_turnover":
        return Cause("meeting the other limits (or raising the withdrawal) needs more trading than that",
                     "the turnover limit applies again on the next run")
    blockers = _keep_blockers(breach, prep)
    fixed = [t for t in blockers if t in {ticker_key(f) for f in options.fixed}]
    if blockers and len(fixed) == len(blockers):
        verb = "is" if len(fixed) == 1 else "are"
        return Cause(f"{', '.join(fixed)} {verb} held fixed at the value your file gave (no market price to trade "
                     f"at)", "sell or replace them yourself to meet it")
    if blockers:
        return Cause(f"you asked to keep {', '.join(blockers)}", "allow selling them to meet it")
    if options.buy_only:
        return Cause("buy-only mode allows no sales and the cash available is not enough",
                     "add cash or switch off buy-only to meet it")
    if cont.turnover >= lim.max_turnover - 1e-4:
        return Cause(f"the turnover limit of {pct(lim.max_turnover)} per run was reached",
                     f"a next run would continue from here and bring it to {pct(breach.requested)}")
    return Cause("it conflicts with the other limits of the profile",
                 "loosen it or choose another risk profile to meet it")


def _solver_met(breach: Breach, prep: Prepared, cont: Metrics) -> bool:
    lim = prep.limits
    if breach.limit == "volatility_cap":
        return cont.volatility <= lim.vol_cap + TOLERANCE
    if breach.limit == "max_turnover":
        return cont.turnover <= lim.max_turnover + TOLERANCE
    if breach.limit == "min_financials":
        return cont.equity <= 1e-9 or float(cont.sectors[4]) >= lim.min_financials - TOLERANCE
    if breach.limit == "min_small_cap":
        return cont.equity <= 1e-9 or cont.small >= lim.min_small_cap - TOLERANCE
    if breach.limit.startswith("max_sector:"):
        return float(cont.sectors[GICS_SECTORS.index(breach.limit.split(":", 1)[1])]) <= lim.max_sector + TOLERANCE
    if breach.limit.startswith("max_single_stock:"):
        i = prep.exposures.names.index(breach.limit.split(":", 1)[1])
        return float(cont.names[i]) <= lim.max_single_stock + TOLERANCE
    return False


def _keep_blockers(breach: Breach, prep: Prepared) -> list[str]:
    """Held tickers that may not be sold and feed the breached (max) limit."""
    e = prep.exposures
    found: list[str] = []
    for j, ticker in enumerate(prep.slot_ticker):
        if prep.can_sell[j] or prep.shares0[j] <= 0 or ticker in found:
            continue
        a = prep.slot_asset[j]
        feeds = False
        if breach.limit.startswith("max_sector:"):
            feeds = e.sectors[GICS_SECTORS.index(breach.limit.split(":", 1)[1]), a] > 0.2
        elif breach.limit.startswith("max_single_stock:"):
            feeds = e.names_matrix[e.names.index(breach.limit.split(":", 1)[1]), a] > 0.02
        elif breach.limit == "volatility_cap":
            feeds = e.equity[a] > 0.5
        if feeds:
            found.append(ticker)
    return found
