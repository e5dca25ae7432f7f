"""Words for the plan as a whole: number formats, a message per relaxed limit and its cause (only options the
person actually set are named as causes), a warning on idle cash, and the one-sentence summary.
A reason per trade is in engine.reasons."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from engine.exposures import GICS_SECTORS
from engine.limits import TOLERANCE, Breach, Metrics
from engine.tax import is_taxable
from engine.tickers import ticker_key
from engine.types import Options, Trade

if TYPE_CHECKING:
    from engine.prepare import Prepared
    from engine.problem import Solution

IDLE_CASH_SHARE = 0.005  # cash kept beyond what the person had, over this share of V (and over what no order can
# invest: the cheapest buyable share or the minimum trade in each account), is explained in a warning

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
    trades: Sequence[Trade],
    value: float,
    before: Metrics,
    after: Metrics,
    est_costs: float,
    est_taxes: float,
    relaxed: Sequence[str],
    profile: str,
    cash_before: float | None = None,
    cash_after: float | None = None,
) -> str:
    """One sentence: the orders, the holdings sold and funds bought, the main before -> after figures, and the
    estimated tax (USD and % of `value`, USD) and costs.

    `cash_before`/`cash_after` (fractions of value) are quoted only when given: when the proposal keeps
    more cash than the person had (explained in a warning).
    """
    if not trades:
        if relaxed:
            return (f"No trades: none that are allowed would help, and {len(relaxed)} {profile} limit(s) stay "
                    f"unmet (see relaxations).")
        return f"No trades: the portfolio meets the {profile} limits and no trade is worth its costs and taxes."
    sold = len({t.ticker for t in trades if t.action == "sell"})
    bought = len({t.ticker for t in trades if t.action == "buy"})
    parts = []
    if sold:
        parts.append(f"sell {_count(sold, 'holding')}")
    if bought:
        parts.append(f"buy {_count(bought, 'fund')}")
    action = " and ".join(parts)
    effects = _main_effects(before, after)
    effect = (" to " + " and ".join(effects)) if effects else ""
    text = (f"{action[0].upper()}{action[1:]} ({_count(len(trades), 'order')}){effect}; "
            f"volatility {from_to(before.volatility, after.volatility)}; {tax_phrase(est_taxes, value)}, "
            f"est. costs {usd(est_costs)}")
    if cash_before is not None and cash_after is not None:
        text += f"; cash {from_to(cash_before, cash_after)} (see warnings)"
    if relaxed:
        text += f"; {len(relaxed)} limit{'s' if len(relaxed) != 1 else ''} relaxed"
    return text + "."


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"


def _main_effects(before: Metrics, after: Metrics) -> list[str]:
    """The sector that moves most and small caps, plan-wide, with verbs from their own direction."""
    effects = []
    changes = np.abs(after.sectors - before.sectors)
    s = int(np.argmax(changes)) if len(changes) else 0
    if changes.size and changes[s] >= 0.005:
        verb = "cut" if after.sectors[s] < before.sectors[s] else "raise"
        effects.append(f"{verb} {GICS_SECTORS[s]} {from_to(before.sectors[s], after.sectors[s])} of stocks")
    if abs(after.small - before.small) >= 0.005:
        verb = "raise" if after.small > before.small else "lower"
        effects.append(f"{verb} small caps {from_to(before.small, after.small)}")
    return effects


def tax_phrase(est_taxes: float, value: float) -> str:
    """The plan's estimated tax in words, with its share of `value` (USD): a net loss is a saving."""
    share = abs(est_taxes) / value if value > 0 else 0.0
    if est_taxes >= 0.5:
        return f"est. tax {usd(est_taxes)} ({pct(share)} of value)"
    if est_taxes <= -0.5:
        return f"losses save an est. {usd(-est_taxes)} of tax ({pct(share)} of value)"
    return "no tax"


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


@dataclass(frozen=True)
class Situation:
    """What a cause may look at: the breach, the run, the solver's (continuous) portfolio, the options, and the
    plan's estimated tax (USD)."""

    breach: Breach
    prep: Prepared
    cont: Metrics
    options: Options
    est_taxes: float = 0.0
    by_budget: Cause | None = None  # engine.tradeoffs.budget_cause: the budget bound, with what a larger one buys
    budget_bound: bool = False  # the solver's net tax sat on the budget row (engine.tradeoffs.budget_binds)


CONFLICT = Cause("it conflicts with the other limits of the profile",
                 "loosen it or choose another risk profile to meet it")


def cause_of(breach: Breach, prep: Prepared, cont: Metrics, options: Options, *, est_taxes: float = 0.0,
             by_budget: Cause | None = None, budget_bound: bool = False) -> Cause:
    """Why `breach` stays: the first of `CAUSES` that applies, else a conflict between the profile's limits.

    A cause names only what the person set (buy-only, a keep, the tax budget, the turnover limit, a
    withdrawal) or what their file could not price (held fixed), never an option that was not given.
    """
    situation = Situation(breach, prep, cont, options, est_taxes, by_budget, budget_bound)
    for find in CAUSES:
        cause = find(situation)
        if cause is not None:
            return cause
    return CONFLICT


def _rounding(s: Situation) -> Cause | None:
    if not _solver_met(s.breach, s.prep, s.cont):
        return None
    fractional = s.options.fractional
    how = "leaving out trades under the minimum size" if fractional else "rounding to whole shares"
    fix = "a next run would fine-tune it" if fractional else "fractional shares would meet it exactly"
    return Cause(f"{how} and the {usd(s.prep.min_order)} minimum trade size leave it there", fix)


def _turnover_itself(s: Situation) -> Cause | None:
    if s.breach.limit != "max_turnover":
        return None
    withdrawal = s.prep.cash_out()
    needs = f"raising your {usd(withdrawal)} withdrawal and meeting" if withdrawal > 0.005 else "meeting"
    return Cause(f"{needs} the other limits needs more trading than that",
                 "the turnover limit applies again on the next run")


def _buy_only(s: Situation) -> Cause | None:
    if not s.options.buy_only:
        return None
    return Cause("buy-only mode allows no sales and the cash available is not enough",
                 "add cash or switch off buy-only to meet it")


def _kept_or_fixed(s: Situation) -> Cause | None:
    """Holdings the person asked to keep, or that are held fixed (no price), feed the breached limit."""
    kept, fixed = unsellable_holdings(s.prep, s.options, lambda a: _feeds(s.breach, s.prep, a))
    if not kept and not fixed:
        return None
    parts = []
    if kept:
        parts.append(f"you asked to keep {', '.join(kept)}")
    if fixed:
        parts.append(f"{', '.join(fixed)} {'is' if len(fixed) == 1 else 'are'} held fixed at the value your file "
                     f"gave (no market price to trade at)")
    fix = "allow selling them to meet it" if kept else "sell or replace them yourself to meet it"
    return Cause(", and ".join(parts), fix)


def _tax_budget(s: Situation) -> Cause | None:
    """The budget's own runs say it bound, and what a larger budget buys (`by_budget`); else the plan spends the
    budget (the solver's tax sat on the budget row, or the plan's tax is at the budget after rounding) and a
    holding in a taxable account with a gain feeds the breach, or could pay for a minimum (no figures: the runs
    of the other budgets did not meet it either, so only "a next run" is promised)."""
    if s.by_budget is not None:
        return s.by_budget
    budget = s.options.tax_budget
    if budget is None:
        return None
    budget_usd = max(0.0, budget * s.prep.value - s.options.tax_spent_usd)
    slack = max(1.0, 0.02 * budget_usd)
    if not (s.budget_bound or budget_usd - slack <= s.est_taxes <= budget_usd + slack):
        return None
    prep = s.prep
    taxed = any(
        prep.can_sell[j] and prep.shares0[j] > 0 and is_taxable(prep.account_types[prep.slot_account[j]])
        and any(lot.tax_per_dollar > 0 for lot in prep.lots[j])
        and (s.breach.limit.startswith("min_") or _feeds(s.breach, prep, int(prep.slot_asset[j])))
        for j in range(len(prep.slot_ticker))
    )
    if not taxed:
        return None
    spent = "allows no net gains this year" if budget_usd <= 0.5 else f"of {usd(budget_usd)} this year is spent"
    return Cause(f"your tax budget ({pct(budget)} of value a year) {spent}",
                 "a next run with a larger tax budget, or next calendar year's, can continue")


def _turnover_reached(s: Situation) -> Cause | None:
    lim = s.prep.limits
    if s.cont.turnover < lim.max_turnover - 1e-4:
        return None
    return Cause(f"the turnover limit of {pct(lim.max_turnover)} per run was reached",
                 f"a next run would continue from here and bring it to {pct(s.breach.requested)}")


CAUSES: tuple[Callable[[Situation], Cause | None], ...] = (
    _rounding, _turnover_itself, _buy_only, _kept_or_fixed, _tax_budget, _turnover_reached)


def withdrawal_cause(prep: Prepared, options: Options, accounts: Sequence[int]) -> str:
    """Why a withdrawal could not be raised in full from `accounts` (indices): completes "because ..."."""
    if options.buy_only:
        return "buy-only mode allows no sales"
    kept, fixed = unsellable_holdings(prep, options, None, accounts=accounts)
    if kept:
        return f"you asked to keep {', '.join(kept)}"
    if fixed:
        return f"{', '.join(fixed)} {'is' if len(fixed) == 1 else 'are'} held fixed at the value your file gave"
    return "there is not enough to sell in that account"


def unsellable_holdings(
    prep: Prepared, options: Options, feeds: Callable[[int], bool] | None, accounts: Sequence[int] | None = None
) -> tuple[list[str], list[str]]:
    """(kept, fixed): held tickers the person asked to keep, and those held fixed, whose asset `feeds` (None:
    any), in `accounts` (indices; None: every account)."""
    keep = {ticker_key(t) for t in options.keep}
    fixed = {ticker_key(t) for t in options.fixed}
    kept_found: list[str] = []
    fixed_found: list[str] = []
    for j, ticker in enumerate(prep.slot_ticker):
        if prep.shares0[j] <= 0 or (accounts is not None and int(prep.slot_account[j]) not in accounts):
            continue
        found = kept_found if ticker in keep else fixed_found if ticker in fixed else None
        if found is not None and ticker not in found and (feeds is None or feeds(int(prep.slot_asset[j]))):
            found.append(ticker)
    return kept_found, fixed_found


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


def _feeds(breach: Breach, prep: Prepared, a: int) -> bool:
    """Asset `a` feeds the breached limit: selling it would help (max limits and the volatility cap)."""
    e = prep.exposures
    if breach.limit.startswith("max_sector:"):
        return bool(e.sectors[GICS_SECTORS.index(breach.limit.split(":", 1)[1]), a] > 0.2)
    if breach.limit.startswith("max_single_stock:"):
        return bool(e.names_matrix[e.names.index(breach.limit.split(":", 1)[1]), a] > 0.02)
    if breach.limit == "volatility_cap":
        return bool(e.equity[a] > 0.5)
    return False
