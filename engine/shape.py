"""Plans a person can execute (issue 15): the no-trade band, few funds and orders, new cash spread.

`shape_plan(request, prep, data, solve)` stands in for the one solve of `engine.pipeline.rebalance`:

1. The band (`plan_mode`). A portfolio that breaks no limit (by more than `engine.drift.LIMIT_TOLERANCE`),
   has no withdrawal to raise and is not mostly cash is left (nearly) alone:
   - every sleeve within its band of the target (`engine.drift.bands`, the 5/25 rule): HOLD, nothing to do;
     or CASH when cash was added or idle cash is out of its own band: buys paid from that cash, no sale;
   - else TOUCH: one small step toward the target, at most TOUCH_ORDERS orders and TOUCH_TURNOVER of value.
   Any other portfolio gets the FULL plan the limits need.
2. The solve of that mode's problem (`mode_problem`: HOLD closes every pair, CASH every sale and every buy
   of a fund the target does not hold, TOUCH bounds the buy and sell budgets).
3. The restricted re-solve, only when the first plan breaks a cap (`pick_orders`): keep the largest buys
   in at most `Options.max_funds` funds, at most MAX_BOND_FUNDS of them bond or cash funds, each in one
   account (`_accounts`: the one with its largest buy, then a fund moved or the one split while that
   covers better what each account spends), the sales of at least the minimum order, at most MAX_ORDERS
   (TOUCH_ORDERS) orders in all, the smallest dropped first (orders that help a limit the plan sits on
   count HELP_WEIGHT times). Every other pair is closed and the problem solved again (`resolve`, on the
   assets that may trade: `reduced_problem`), so limits and cash are re-balanced over what is kept. When
   that meets a limit less well, the sales and funds it needs come back (orders beyond MAX_ORDERS only
   there); when new cash would land in fewer than two funds, the largest buy is capped so that a second
   fund (one that helps a binding limit, else the target's core) gets it. The rounding repair may trade
   only the kept pairs (`Prepared.buy_open`, `Prepared.sell_open`).

Units: inside, amounts are fractions of V (the value after the cash change), as in `engine.problem`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from engine.drift import DEFAULT_BANDS, LIMIT_TOLERANCE, bands, exposures, features
from engine.errors import DataError
from engine.explain import pct, usd
from engine.limits import breaches, measure
from engine.problem import ProblemData, Solution
from engine.risk import SampleRisk
from engine.roles import BOND_ROLES
from engine.types import RebalanceRequest, RebalanceResult

if TYPE_CHECKING:
    from engine.prepare import Prepared

# solves a problem with its volatility cap held on the risk model and on the plain sample estimate given
# (engine.problem.solve_on_both_estimates, bound to the run's cache and margin by engine.pipeline)
Solver = Callable[[ProblemData, SampleRisk], Solution]

HOLD, CASH, TOUCH, FULL = "hold", "cash", "touch", "full"
MAX_ORDERS = 12
MAX_BOND_FUNDS = 2  # bond and cash funds bought in one plan
TOUCH_ORDERS = 3  # a plan for a portfolio that meets every limit
TOUCH_TURNOVER = 0.10  # of value: (buys + sells) / 2, cash flows included
ROUNDING_ROOM = 0.005  # of value: the solver stays this far inside TOUCH_TURNOVER, whole shares may round up
BUILD_CASH_SHARE = 0.5  # a portfolio more in cash than this is being built, not rebalanced: the FULL plan
HELP_WEIGHT = 2.0  # an order that helps a limit the plan sits on counts this much more when orders are dropped
HARVEST_WEIGHT = 4.0  # a sale that realises a loss in a taxable account (a harvest) counts this much more
SALE_HELPS, BUY_HELPS = 0.2, 0.5  # see `_helps`
PARKED_SHARE = 0.01  # cash the caps leave uninvested, over this share of value and of the target's cash: a note
SPREAD = 1.5  # minimum orders left to a second fund when new cash would land in one
SLACK_TOLERANCE = 1e-3  # a limit met 0.1 point less well than by the first plan is "worse"
DUST = 1e-6  # fraction of V under which a continuous trade counts as none


@dataclass(frozen=True)
class Caps:
    """What one plan may hold: distinct funds bought, bond/cash funds among them, orders
    (buys + sells), funds to keep when there are buys (2 with new cash); min_order a fraction of V."""

    funds: int
    bond_funds: int
    orders: int
    min_funds: int
    min_order: float


@dataclass(frozen=True)
class Shaped:
    """The plan to round: its (restricted) inputs and certified solution, its mode and the planner's notes."""

    prep: Prepared
    solution: Solution
    mode: str
    notes: tuple[str, ...]
    data: ProblemData  # the problem the solution solves (the mode's, every pair not kept closed)
    resolves: int  # restricted solves after the first (0 when the first plan already met the caps)


def shape_plan(request: RebalanceRequest, prep: Prepared, data: ProblemData, solve: Solver) -> Shaped:
    """Solve the plan of the portfolio's mode and, when it breaks a cap, re-solve it on the pairs kept."""
    options = request.options
    if options.max_funds is not None and options.max_funds < 1:
        raise DataError("options: max_funds must be at least 1 (or None for no cap)", field="max_funds")
    mode, gap = plan_mode(prep)
    data = mode_problem(prep, data, mode)
    first = solve(data, prep.risk_sample)
    notes = (_mode_note(mode, gap),) if mode != FULL else ()
    if mode == HOLD:
        return Shaped(prep, first, mode, notes, data=data, resolves=0)
    caps = _caps(prep, options.max_funds, mode)
    bond_like = _bond_like(prep, (first.buys.sum(axis=1) > DUST) | (prep.target_vec > 0))
    buy_open, sell_open = pick_orders(first, data, caps, bond_like, prep.target_vec)
    second, buy_open, sell_open, resolves = _resolved(first, data, caps, bond_like, buy_open, sell_open,
                                                      solve, prep.risk_sample)
    if int(buy_open.sum() + sell_open.sum()) > caps.orders:
        notes = (*notes, f"This plan has more than {caps.orders} orders: with {caps.orders}, some of your limits "
                         f"would be met less well.")
    parked = float((second.cash - first.cash).sum()) * prep.value
    above_target = float(second.cash.sum()) / second.total > 1.0 - float(prep.target_vec.sum()) + PARKED_SHARE
    if above_target and parked > max(PARKED_SHARE * prep.value, 2 * prep.min_order):
        notes = (*notes, f"Kept to {caps.orders} orders and {caps.funds} funds, the plan leaves about "
                         f"{usd(parked)} more in cash than a plan with more orders would; a next run can invest it.")
    closed = replace(data, buy_max=np.where(buy_open, data.buy_max, 0.0),
                     sell_max=np.where(sell_open, data.sell_max, 0.0))
    return Shaped(_restricted(prep, buy_open, sell_open), second, mode, notes, data=closed, resolves=resolves)


def _resolved(first: Solution, data: ProblemData, caps: Caps, bond_like: np.ndarray, buy_open: np.ndarray,
              sell_open: np.ndarray, solve: Solver, sample: SampleRisk
              ) -> tuple[Solution, np.ndarray, np.ndarray, int]:
    """(solution, buy pairs, sell pairs, restricted solves): the re-solve on the kept pairs (none when the first
    plan trades only those); then the sales and funds the limits need back (`_pairs_limits_need`); then, when
    new cash would land in fewer than `caps.min_funds` funds, the largest buy capped to leave SPREAD minimum
    orders to the others."""
    second, resolves = first, 0
    if not _within(first, buy_open, sell_open, caps.min_order):
        second, resolves = resolve(data, buy_open, sell_open, solve, sample), 1
        more_buys, more_sells = _pairs_limits_need(first, second, data, caps, bond_like, buy_open, sell_open)
        if more_buys.any() or more_sells.any():  # at most MAX_ORDERS orders where the limits allow
            buy_open, sell_open = buy_open | more_buys, sell_open | more_sells
            second, resolves = resolve(data, buy_open, sell_open, solve, sample), resolves + 1
    bought = second.buys.sum(axis=1)
    if int((bought >= caps.min_order).sum()) < caps.min_funds <= int(buy_open.any(axis=1).sum()):
        i, j = np.unravel_index(int(np.argmax(second.buys)), second.buys.shape)
        buy_max = data.buy_max.copy()
        buy_max[i, j] = max(0.0, float(second.buys[i, j]) - SPREAD * caps.min_order)
        second, resolves = resolve(replace(data, buy_max=buy_max), buy_open, sell_open, solve, sample), resolves + 1
    return second, buy_open, sell_open, resolves


def resolve(data: ProblemData, buy_open: np.ndarray, sell_open: np.ndarray, solve: Solver,
            sample: SampleRisk) -> Solution:
    """The solution of `data` with only the pairs open in `buy_open` / `sell_open` ((n, m) bool each)."""
    small, live = reduced_problem(data, buy_open, sell_open)
    return expanded(solve(small, reduced_sample(sample, data, live)), data, live)


def _restricted(prep: Prepared, buy_open: np.ndarray, sell_open: np.ndarray) -> Prepared:
    """`prep` whose rounding may trade only the open pairs."""
    return replace(prep, buy_open=buy_open[prep.slot_asset, prep.slot_account],
                   sell_open=sell_open[prep.slot_asset, prep.slot_account])


def _pairs_limits_need(first: Solution, second: Solution, data: ProblemData, caps: Caps, bond_like: np.ndarray,
                       buy_open: np.ndarray, sell_open: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(buy pairs, sell pairs) (n, m) of the first plan left out that help a limit row the re-solve meets less
    well than the first plan (by more than SLACK_TOLERANCE): every such sale, and such funds (largest first,
    each in the account of its largest buy) while the fund caps allow."""
    more_buys, more_sells = np.zeros_like(buy_open), np.zeros_like(sell_open)
    grown = second.limit_slack - first.limit_slack > SLACK_TOLERANCE
    if not grown.any():
        return more_buys, more_sells
    sale_helps, buy_helps = _helps(data.dense_limits()[0], grown)
    more_sells = (first.sells >= caps.min_order) & ~sell_open & sale_helps[:, None]
    funds = [int(i) for i in np.flatnonzero(buy_open.any(axis=1))]
    amount = first.buys.sum(axis=1)
    for i in map(int, np.argsort(-amount, kind="stable")):
        bonds = sum(bool(bond_like[k]) for k in funds)
        if (buy_helps[i] and i not in funds and amount[i] >= caps.min_order and len(funds) < caps.funds
                and not (bond_like[i] and bonds >= caps.bond_funds)):
            more_buys[i, int(np.argmax(first.buys[i]))] = True
            funds.append(i)
    return more_buys, more_sells


def _helps(matrix: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sale helps, buy helps), (n,) bool each, for the rows `rows` (mask) of the sector and single-name
    limit rows `matrix` (`ProblemData.dense_limits`): a sale helps a row the asset weighs in by more than
    SALE_HELPS (a stock in its own name cap or its sector's cap), a buy one it lowers by more than BUY_HELPS
    (a financials fund the financials minimum)."""
    chosen = matrix[rows]
    return (chosen > SALE_HELPS).any(axis=0), (chosen < -BUY_HELPS).any(axis=0)


def annotate(result: RebalanceResult, shaped: Shaped) -> RebalanceResult:
    """The result with the planner's notes first in `notes` and, for a portfolio within its limits, the
    mode's one-line reason leading the summary (the whole summary when nothing is traded)."""
    lead = {CASH: "Every limit is met and the portfolio is within its bands: only the cash is placed.",
            TOUCH: "Every limit is met: one small step toward the target."}.get(shaped.mode)
    summary = result.summary
    if shaped.mode == HOLD or (shaped.mode in (CASH, TOUCH) and not result.trades):
        summary = shaped.notes[0]
    elif lead:
        summary = f"{lead} {result.summary}"
    return replace(result, notes=[*shaped.notes, *result.notes], summary=summary)


# ---------------------------------------------------------------- 1. the band


def plan_mode(prep: Prepared) -> tuple[str, str]:
    """(HOLD | CASH | TOUCH | FULL, a words on the sleeve furthest out of its band, or "")."""
    vb = prep.value_before
    cash_now = float(prep.cash_start.sum())
    if vb <= 0 or prep.cash_out() > 0 or prep.cash_in() > BUILD_CASH_SHARE * prep.value:
        return FULL, ""
    w = np.bincount(prep.slot_asset, weights=prep.shares0 * prep.prices, minlength=len(prep.universe)) / vb
    broken = [b for b in breaches(measure(w, prep.risk, prep.exposures), prep.limits, prep.exposures)
              if abs(b.achieved - b.requested) > LIMIT_TOLERANCE]
    if broken:
        return FULL, ""
    feats = features(prep.exposures)
    target_cash = np.array([max(0.0, 1.0 - float(prep.target_vec.sum()))])
    x = exposures(w[None, :], np.array([cash_now / vb]), feats)[0]
    t = exposures(prep.target_vec[None, :], target_cash, feats)[0]
    band = bands(t[None, :], np.array([DEFAULT_BANDS["absolute"]]), np.array([DEFAULT_BANDS["relative"]]))[0]
    out = np.abs(x - t) > band
    idle = bool(out[feats.cash_column] and x[feats.cash_column] > t[feats.cash_column])
    out[feats.cash_column] = False  # cash is placed, never traded for
    if out.any():
        c = int(np.argmax(np.where(out, np.abs(x - t), -np.inf)))
        group, name = feats.labels[c]
        label = f"{name} caps" if group == "size" else name
        whose = " of equity" if feats.share_of_equity[c] else ""
        return TOUCH, f"{label} is furthest from it, {pct(float(x[c]))} against {pct(float(t[c]))}{whose}"
    return (CASH if idle or float(prep.cash_change.sum()) > 0 else HOLD), ""


def mode_problem(prep: Prepared, data: ProblemData, mode: str) -> ProblemData:
    """The problem of `mode`: HOLD closes every pair, CASH every sale and every buy of a fund the target does not
    hold, TOUCH bounds turnover (buys and
    sells beyond the cash flows) to TOUCH_TURNOVER of value counted as (buys + sells) / 2."""
    if mode == HOLD:
        return replace(data, buy_max=np.zeros_like(data.buy_max), sell_max=np.zeros_like(data.sell_max))
    if mode == CASH:  # the cash goes to the target's own funds
        buy_max = np.where((prep.target_vec > 0)[:, None], data.buy_max, 0.0)
        return replace(data, buy_max=buy_max, sell_max=np.zeros_like(data.sell_max))
    if mode == TOUCH:
        cash_in, cash_out = prep.cash_in() / prep.value, prep.cash_out() / prep.value
        extra = max(0.0, TOUCH_TURNOVER - ROUNDING_ROOM - (cash_in + cash_out) / 2)
        return replace(data, buy_budget=min(data.buy_budget, cash_in + extra),  # every trade counts here, tax-free
                       sell_budget=min(data.sell_budget, cash_out + extra),  # swaps included (engine.location)
                       turnover_buy=None, turnover_sell=None)
    return data


def _mode_note(mode: str, gap: str) -> str:
    if mode == HOLD:
        return ("Nothing to do: every limit is met and every part of the portfolio is within its band of the "
                "target (5 points, or a quarter of a small target).")
    if mode == CASH:
        return ("Every limit is met and every part of the portfolio is within its band of the target: the plan "
                "only puts cash to work and sells nothing.")
    return (f"Every limit is met, so the plan only takes one small step toward the target (at most "
            f"{TOUCH_ORDERS} orders, {pct(TOUCH_TURNOVER)} of the value); {gap}.")


# ---------------------------------------------------------------- 3. the pairs kept


def _caps(prep: Prepared, max_funds: int | None, mode: str) -> Caps:
    orders = MAX_ORDERS if mode == FULL else TOUCH_ORDERS
    funds = orders if max_funds is None else min(max_funds, orders)
    min_order = prep.min_order / prep.value
    new_cash = float(prep.cash_change.sum()) / prep.value
    min_funds = 2 if new_cash >= 2 * min_order and funds >= 2 else 1
    return Caps(funds, MAX_BOND_FUNDS, orders, min_funds, min_order)


def _bond_like(prep: Prepared, among: np.ndarray) -> np.ndarray:
    """(n,) True for the bond and cash funds (engine.roles) of the universe `among` (mask) marks."""
    found = np.zeros(len(prep.universe), dtype=bool)
    for i in np.flatnonzero(among):
        role = prep.roles.get(prep.universe[i], "")
        found[i] = role in BOND_ROLES or role.startswith("cash:")
    return found


def pick_orders(first: Solution, data: ProblemData, caps: Caps, bond_like: np.ndarray,
                target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(buy pairs, sell pairs) kept open, (n, m) bool each: see the module docstring, step 3. Orders are
    ranked by amount, those that help a limit row the first plan sits on (`_helps`) counted twice. A second
    fund for new cash is the stock fund that helps such a limit, else the target's largest (its core). A sale
    whose first lots are at a loss in a taxable account (a harvest: the tax curve starts below 0) counts
    HARVEST_WEIGHT times."""
    buys, sells = first.buys, first.sells
    matrix, rhs = data.dense_limits()
    sale_helps, buy_helps = _helps(matrix, matrix @ first.w - rhs * first.total >= -1e-6)
    fund_worth = buys.sum(axis=1) * np.where(buy_helps, HELP_WEIGHT, 1.0)
    harvest = data.tax_slopes[0] < 0 if data.tax_slopes.size else np.zeros_like(sells, dtype=bool)  # loss lots
    sale_worth = sells * np.where(sale_helps, HELP_WEIGHT, 1.0)[:, None] * np.where(harvest, HARVEST_WEIGHT, 1.0)
    second_choice = np.where((data.buy_max > 0).any(axis=1) & ~bond_like, target + buy_helps, -1.0)
    second_fund = int(np.argmax(second_choice)) if second_choice.max(initial=-1.0) > 0 else -1
    funds = _ranked_funds(buys.sum(axis=1), fund_worth, caps, bond_like, second_fund)
    sell_pairs = [(int(i), int(j)) for i, j in zip(*np.nonzero(sells >= caps.min_order), strict=True)]
    sell_pairs.sort(key=lambda p: -sale_worth[p])
    splits = 0  # buy orders beyond one per fund, known once the accounts are chosen
    while True:
        if len(funds) + splits + len(sell_pairs) <= caps.orders or len(funds) + len(sell_pairs) <= 1:
            buy_open = _accounts(buys, data, funds, caps.min_order)
            splits = int(buy_open.sum()) - len(funds)
            if len(funds) + splits + len(sell_pairs) <= caps.orders or len(funds) + len(sell_pairs) <= 1:
                sell_open = np.zeros_like(sells, dtype=bool)
                for p in sell_pairs:
                    sell_open[p] = True
                return buy_open, sell_open
        smallest_fund = fund_worth[funds[-1]] if len(funds) > caps.min_funds else np.inf
        if sell_pairs and sale_worth[sell_pairs[-1]] <= smallest_fund:
            sell_pairs.pop()
        else:
            funds.pop()


def _ranked_funds(amount: np.ndarray, worth: np.ndarray, caps: Caps, bond_like: np.ndarray,
                  second_fund: int) -> list[int]:
    """Funds to buy, most worth first: a continuous buy of at least the minimum order each, within the caps;
    then topped up to `caps.min_funds` with smaller buys, then `second_fund` (-1: none)."""
    order = [int(i) for i in np.argsort(-worth, kind="stable") if amount[i] > DUST]
    kept: list[int] = []

    def fits(i: int) -> bool:
        bonds = sum(bool(bond_like[k]) for k in kept)
        return i >= 0 and i not in kept and not (bond_like[i] and bonds >= caps.bond_funds)

    for i in order:
        if len(kept) < caps.funds and amount[i] >= caps.min_order and fits(i):
            kept.append(i)
    for i in [*order, second_fund]:
        if len(kept) < min(caps.funds, caps.min_funds) and fits(i):
            kept.append(i)
    return kept


def _accounts(buys: np.ndarray, data: ProblemData, funds: list[int], min_order: float) -> np.ndarray:
    """(n, m) buy pairs: each fund in one account, one fund at most in a second one.

    Starts from each fund in the account with its largest continuous buy, then moves a fund or opens the
    one split while that raises `_coverage` (an account whose open funds bought less than half of what it
    spends in the continuous plan would park the rest in cash or in the wrong funds)."""
    open_ = data.buy_max > 0
    home = {i: int(np.argmax(np.where(open_[i], buys[i] + 1e-12 * data.cash0, -np.inf))) for i in funds}
    second: dict[int, int] = {}
    best = _coverage(buys, home, second)
    for _ in range(len(funds) + 1):
        options = []
        for i in funds:
            for j in map(int, np.flatnonzero(open_[i] & (buys[i] >= min_order))):
                if j != home[i] and i not in second:
                    options.append(({**home, i: j}, second))
                    if not second:
                        options.append((home, {i: j}))
        scored = [(_coverage(buys, h, s), h, s) for h, s in options]
        top = max(scored, key=lambda x: x[0], default=None)
        if top is None or top[0] <= best + 1e-12:
            break
        best, home, second = top
    buy_open = np.zeros_like(open_)
    for i, j in [*home.items(), *second.items()]:
        buy_open[i, j] = True
    return buy_open


def _coverage(buys: np.ndarray, home: dict[int, int], second: dict[int, int]) -> float:
    """The continuous buys of the open pairs, plus each account's up to half of what it spends, counted twice."""
    captured = np.zeros(buys.shape[1])
    for i, j in [*home.items(), *second.items()]:
        captured[j] += buys[i, j]
    return float(captured.sum() + np.minimum(buys.sum(axis=0), 2.0 * captured).sum())


def _within(first: Solution, buy_open: np.ndarray, sell_open: np.ndarray, min_order: float) -> bool:
    """True when the first plan already trades only kept pairs, each at least the minimum order."""
    for trades, kept in ((first.buys, buy_open), (first.sells, sell_open)):
        traded = trades > DUST
        if (traded & ~kept).any() or (traded & (trades < min_order)).any():
            return False
    return True


# ---------------------------------------------------------------- the re-solve, on the assets that trade


def reduced_problem(data: ProblemData, buy_open: np.ndarray, sell_open: np.ndarray) -> tuple[ProblemData, np.ndarray]:
    """The problem with only the kept pairs open, written on the assets that may trade: (problem, live (n,)).

    An asset that may not trade holds x0 whatever the solve does, so the ones held are summed into one
    asset (x0 per account, loadings, base and name rows weighted by what is held; specific risk the norm
    of theirs: the volatility cone sees the same vector norm) and the target weights of every asset left
    out go to a last asset held at 0 whose loadings are their factor mix (the tracking term sees the same
    target). Same optimum for every asset kept, the cash and the total; the objective differs by a constant.
    """
    live = np.asarray(buy_open.any(axis=1) | sell_open.any(axis=1), dtype=bool)
    x0 = np.clip(data.x0, 0.0, None)
    held = x0[~live].sum(axis=1)  # (n - live,) what each fixed asset holds
    scale = held / max(float(held.sum()), 1e-12)
    out = ~live

    def columns(matrix: np.ndarray, ghost: np.ndarray) -> np.ndarray:
        return np.column_stack([matrix[:, live], matrix[:, out] @ scale, ghost])

    def rows(matrix: np.ndarray, fixed: np.ndarray | None = None) -> np.ndarray:
        m = matrix.shape[1]
        return np.vstack([matrix[live], np.zeros((1, m)) if fixed is None else fixed[None, :], np.zeros((1, m))])

    tax = np.zeros((data.tax_slopes.shape[0], 2, data.x0.shape[1]))
    specific_fixed = float(np.sqrt(((data.specific[out] * held) ** 2).sum()) / max(float(held.sum()), 1e-12))
    small = replace(
        data,
        loadings=columns(data.loadings, data.loadings[:, out] @ data.target[out]),
        specific=np.concatenate([data.specific[live], [specific_fixed, 0.0]]),
        target=np.concatenate([data.target[live], [0.0, 1.0]]),
        base=columns(data.base, np.zeros(data.base.shape[0])),
        name_matrix=columns(data.name_matrix, np.zeros(data.name_matrix.shape[0])),
        x0=rows(x0, x0[out].sum(axis=0)),
        buy_max=rows(np.where(buy_open, data.buy_max, 0.0)),
        sell_max=rows(np.where(sell_open, data.sell_max, 0.0)),
        cost_rate=rows(data.cost_rate),
        trade_cost=rows(data.trade_cost),
        holding_drag=rows(data.holding_drag),
        turnover_buy=None if data.turnover_buy is None else rows(data.turnover_buy),
        turnover_sell=None if data.turnover_sell is None else rows(data.turnover_sell),
        sample_loadings=(columns(data.sample_loadings, np.zeros(data.sample_loadings.shape[0]))
                         if data.sample_loadings.size else data.sample_loadings),
        tax_slopes=np.concatenate([data.tax_slopes[:, live], tax], axis=1),
        tax_intercepts=np.concatenate([data.tax_intercepts[:, live], tax], axis=1),
    )
    return small, live


def reduced_sample(sample: SampleRisk, data: ProblemData, live: np.ndarray) -> SampleRisk:
    """`sample` on `reduced_problem`'s assets: the kept ones, the fixed ones summed with the weights of what they
    hold (their covariance is T' C T for that map T), and the last asset (held at 0)."""
    if not len(sample.tickers):
        return sample
    held = np.clip(data.x0, 0.0, None)[~live].sum(axis=1)
    k = int(live.sum())
    T = np.zeros((len(live), k + 2))
    T[np.flatnonzero(live), np.arange(k)] = 1.0
    T[~live, k] = held / max(float(held.sum()), 1e-12)
    names = (*[t for t, kept in zip(sample.tickers, live, strict=True) if kept], "(held)", "(rest)")
    return SampleRisk(names, T.T @ sample.covariance @ T)


def expanded(small: Solution, data: ProblemData, live: np.ndarray) -> Solution:
    """`reduced_problem`'s solution on every asset again (the ones that may not trade hold x0)."""
    k = int(live.sum())
    buys, sells = np.zeros_like(data.x0), np.zeros_like(data.x0)
    buys[live], sells[live] = small.buys[:k], small.sells[:k]
    x = np.clip(np.clip(data.x0, 0.0, None) + buys - sells, 0.0, None)
    w = x.sum(axis=1)
    w[live] = small.w[:k]
    return replace(small, x=x, buys=buys, sells=sells, w=w)
