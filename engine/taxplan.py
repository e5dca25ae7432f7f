"""Tax decisions taken before the solve, and the tax budget after rounding (pure, no Django).

Before the solve (`plan_lots`, called from `engine.prepare`), for each holding in a taxable account:

- **Wash sales.** Losses count in the optimizer (engine.tax), so it may sell a loser; it must then not buy
  it back. A holding with loss lots is either
  - *harvestable*: its loss lots may be sold, and the ticker and every fund of its role (engine.roles; a
    single stock's role is itself) are not bought in any account of the portfolio (IRA and Roth included).
    Chosen when blocking those buys costs nothing (none is on the menu) or the loss is large
    (`HARVEST_MIN_USD`, `HARVEST_MIN_FRACTION` of value);
  - *kept*: its loss lots are left out of what may be sold (a small loss on a fund the plan may want to
    buy, e.g. a core bond fund, or a ticker bought in the last `WASH_SALE_DAYS` days in any account: selling
    other lots of it at a loss would be a wash sale). Its gain lots may still be sold (specific lots).
- **The wait for long-term.** A short-term lot with a gain that turns long-term within `WAIT_DAYS` days is
  left out of what may be sold; the plan says which lot, when, and the tax saved by waiting.

What remains sellable of a holding is its lots in tax order (`Prepared.lots`) and their shares
(`Prepared.sellable`): the solver, the rounding and the realised tax all use them.

After rounding (`trim_to_budget`): the plan's netted tax (engine.tax.plan_tax) must not exceed the budget
(`budget_usd`); rounding and repair can push it up, so the most-taxed sells are trimmed (and the buys they
funded in that account, keeping cash >= 0 and every order at least the minimum order).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from engine.explain import usd
from engine.tax import LONG_TERM_DAYS, Lot, Realisation, allocate_taxes, plan_tax, realise
from engine.tickers import ticker_key
from engine.types import Options, Position

if TYPE_CHECKING:
    from engine.prepare import Prepared

WASH_SALE_DAYS = 30  # a purchase this close before (or after) a loss sale makes it a wash sale
WAIT_DAYS = 60  # a short-term gain lot turning long-term within this many days is not sold
HARVEST_MIN_USD = 2_500.0  # a loss at least this large (and HARVEST_MIN_FRACTION of value) is worth
HARVEST_MIN_FRACTION = 0.0025  # blocking buys of its role for; smaller ones are kept when blocking costs


@dataclass(frozen=True)
class Harvest:
    """A taxable holding that may be sold at a loss, and the tickers then not bought anywhere."""

    slot: int
    ticker: str
    account: str
    loss_usd: float  # the loss in its loss lots (USD, > 0)
    blocked: tuple[str, ...]  # other tickers (same role) not bought back


@dataclass(frozen=True)
class Wait:
    """A short-term lot with a gain left unsold until it turns long-term."""

    slot: int
    ticker: str
    account: str
    shares: float
    acquired: dt.date
    long_term_on: dt.date
    gain_usd: float
    tax_saved_usd: float
    days_left: int


@dataclass(frozen=True)
class LotPlan:
    """What each slot (K) may sell and buy once the wash-sale and wait rules are applied."""

    lots: list[list[Lot]]  # (K,) sellable lots, in sale order
    sellable: np.ndarray  # (K,) shares that may be sold (all held shares where no lot is held back)
    can_buy: np.ndarray  # (K,)
    harvests: list[Harvest] = field(default_factory=list)
    waits: list[Wait] = field(default_factory=list)
    kept_losses: list[str] = field(default_factory=list)  # notes on loss lots not sold


def budget_usd(options: Options, value: float) -> float | None:
    """The tax the plan may realise (USD): the yearly budget less what was already realised; None = no limit."""
    if options.tax_budget is None:
        return None
    return max(0.0, float(options.tax_budget) * value - float(options.tax_spent_usd))


def withdrawal_tax(*, lots: Sequence[Sequence[Lot]], sellable: np.ndarray, prices: np.ndarray,
                   slot_account: np.ndarray, can_sell: np.ndarray, cash: np.ndarray) -> float:
    """The least tax (USD, the optimizer's measure) of raising each account's cash shortfall (cash (m,) < 0: a
    withdrawal), selling that account's sellable lots with the least tax per dollar first (tax-free accounts:
    0). The budget does not count it: a withdrawal is raised whatever it costs."""
    total = 0.0
    for a in np.flatnonzero(cash < 0):
        pieces: list[tuple[float, float]] = []  # (tax per dollar, dollars)
        for j in np.flatnonzero((slot_account == a) & can_sell).tolist():
            if lots[j]:
                pieces += [(lot.tax_per_dollar, lot.shares * lot.price) for lot in lots[j]]
            else:
                pieces.append((0.0, float(sellable[j] * prices[j])))
        need = float(-cash[a])
        for per_dollar, dollars in sorted(pieces):
            take = min(dollars, need)
            total += per_dollar * take
            need -= take
            if need <= 0:
                break
    return max(total, 0.0)


def plan_lots(
    *,
    tickers: Sequence[str],
    accounts: Sequence[str],
    slot_account: np.ndarray,
    taxable: Sequence[bool],
    lots: Sequence[list[Lot]],
    shares0: np.ndarray,
    can_buy: np.ndarray,
    positions: Sequence[Position],
    roles: Mapping[str, str],
    as_of: dt.date,
    value: float,
) -> LotPlan:
    """Apply the wash-sale and wait rules (module docstring) to the slots' lots and buy flags. roles: {ticker:
    role} of the security master (engine.roles.fund_roles); a ticker without one is its own role."""
    recent = {ticker_key(p.ticker) for p in positions
              if p.acquired is not None and 0 <= (as_of - p.acquired).days <= WASH_SALE_DAYS}
    same_kind = _SameKind(tickers, roles)
    plan = LotPlan([list(slot_lots) for slot_lots in lots], shares0.astype(float).copy(), can_buy.copy())
    threshold = max(HARVEST_MIN_USD, HARVEST_MIN_FRACTION * value)
    for j, slot_lots in enumerate(lots):
        if not taxable[slot_account[j]] or not slot_lots:
            continue
        ticker, account = tickers[j], accounts[slot_account[j]]
        waiting = [lot for lot in slot_lots if _waits(lot, as_of)]
        plan.waits.extend(_wait(j, ticker, account, lot, as_of) for lot in waiting)
        keep_lots = [lot for lot in slot_lots if lot not in waiting]
        loss = sum(-lot.shares * lot.gain_per_share for lot in keep_lots if lot.gain_per_share < 0)
        if loss > 0.5:
            same = same_kind.of(j)
            blocking = same & plan.can_buy
            if ticker not in recent and (not blocking.any() or loss >= threshold):  # harvestable
                plan.can_buy[same] = False
                others = tuple(sorted({tickers[int(k)] for k in np.flatnonzero(blocking)} - {ticker}))
                plan.harvests.append(Harvest(j, ticker, account, loss, others))
            else:  # kept: its loss lots are not sold
                keep_lots = [lot for lot in keep_lots if lot.gain_per_share >= 0]
                if ticker in recent and loss >= threshold:
                    plan.kept_losses.append(f"{ticker} in {account} is not sold at a loss: it was bought within "
                                            f"{WASH_SALE_DAYS} days, so the {usd(loss)} loss would be a wash sale.")
        plan.lots[j] = keep_lots
        plan.sellable[j] = sum(lot.shares for lot in keep_lots)
    return plan


class _SameKind:
    """Which slots hold the same ticker, or a fund of the same role (engine.roles; a stock's role is itself)."""

    def __init__(self, tickers: Sequence[str], roles: Mapping[str, str]) -> None:
        self.tickers = tickers
        self.names = np.array(tickers, dtype=object)
        self.roles = roles
        self._roles: np.ndarray | None = None  # (K,) found on the first loss

    def of(self, j: int) -> np.ndarray:
        """(K,) bool: slot j's ticker or a fund of its role."""
        if self._roles is None:
            self._roles = np.array([self.roles.get(t, f"stock:{t}") for t in self.tickers], dtype=object)
        same = self.names == self.tickers[j]
        own = str(self._roles[j])
        if not own.startswith("stock:"):
            same |= self._roles == own
        return same


def _wait(j: int, ticker: str, account: str, lot: Lot, as_of: dt.date) -> Wait:
    acquired = lot.acquired or as_of
    on = acquired + dt.timedelta(days=LONG_TERM_DAYS + 1)
    gain = lot.shares * lot.gain_per_share
    # waiting taxes the gain at the long-term rate (the rate a loss is credited at) instead of `rate`
    return Wait(j, ticker, account, lot.shares, acquired, on, gain, (lot.rate - lot.loss_rate) * gain,
                (on - as_of).days)


def _waits(lot: Lot, as_of: dt.date) -> bool:
    if lot.long_term or lot.acquired is None or lot.gain_per_share <= 0:
        return False
    days_left = LONG_TERM_DAYS + 1 - (as_of - lot.acquired).days
    return 0 < days_left <= WAIT_DAYS


# ---------------------------------------------------------------- after rounding


def realisations(lots: Sequence[Sequence[Lot]], q: np.ndarray) -> dict[int, Realisation]:
    """{slot: what its sale realises} for the sells of q (K,) shares in slots with lots."""
    return {j: realise(lots[j], float(-q[j])) for j in np.flatnonzero(q < 0).tolist() if lots[j]}


def trim_to_budget(
    q: np.ndarray,
    *,
    lots: Sequence[Sequence[Lot]],
    prices: np.ndarray,
    budget: float,
    min_order: float,
    fractional: bool,
) -> np.ndarray:
    """q (K,) shares with the most-taxed sells cut until the plan's netted tax is at most `budget` (USD).

    Each sell, most tax per dollar first, is cut to the most shares that keep the plan within the budget (or,
    when none does, to the fewest-taxed size), never to an order under `min_order` (then to 0). The buys it
    funded are trimmed by the caller (engine.rounding.ensure_cash).
    """
    q = q.copy()
    trimmed: set[int] = set()
    while True:
        found = realisations(lots, q)
        if plan_tax(list(found.values())) <= budget + 0.005:
            break
        slots = list(found)
        shares = allocate_taxes([found[j] for j in slots])
        per_dollar = [tax / max(-q[j] * prices[j], 1e-9) for j, tax in zip(slots, shares, strict=True)]
        order = [slots[i] for i in np.argsort(per_dollar)[::-1] if shares[i] > 0.005 and slots[i] not in trimmed]
        if not order:
            break
        j = order[0]
        trimmed.add(j)
        q[j] = -_best_size(q, j, lots, prices[j], budget, min_order, fractional)
    return q


def _best_size(q: np.ndarray, j: int, lots: Sequence[Sequence[Lot]], price: float, budget: float,
               min_order: float, fractional: bool) -> float:
    """The largest sale of slot j (shares, a grid of 32 sizes) keeping the plan's tax within `budget`, else the
    size with the least tax; sizes under the minimum order count as 0."""
    others = [r for k, r in realisations(lots, q).items() if k != j]
    sold = float(-q[j])
    sizes = np.linspace(0.0, sold, 33)
    if not fractional:
        sizes = np.unique(np.floor(sizes))
    sizes = sizes[(sizes == 0) | (sizes * price >= min_order)]
    taxes = np.array([plan_tax([*others, realise(lots[j], float(s))]) for s in sizes])
    within = np.flatnonzero(taxes <= budget + 0.005)
    return float(sizes[within[-1]] if len(within) else sizes[int(np.argmin(taxes))])


# ---------------------------------------------------------------- notes


def tax_notes(prep: Prepared, q: np.ndarray, cont_sells: np.ndarray) -> list[str]:
    """The planner's notes on taxes: each loss harvested (and what is not bought back), each lot waited for
    (when the plan sells that holding or the solver sold all it could of it), each loss kept to avoid a wash
    sale. q (K,) the plan's shares; cont_sells (K,) the solver's shares sold."""
    plan = prep.lot_plan
    if plan is None:
        return []
    sold = realisations(prep.lots, q)
    gains = sum(max(r.short_term_gain, 0.0) + max(r.long_term_gain, 0.0) for r in sold.values())
    notes: list[str] = []
    for h in plan.harvests:
        r = sold.get(h.slot)
        if r is None or r.loss < 0.5:
            continue
        offsets = (f"it offsets {usd(min(r.loss, gains))} of this plan's gains" if gains > 0.5
                   else "it can offset future gains")
        also = f" (nor {', '.join(h.blocked)}, of the same kind)" if h.blocked else ""
        notes.append(f"Sells {h.ticker} in {h.account} at a {usd(r.loss)} loss: {offsets}; {h.ticker}{also} is not "
                     f"bought back in any account for {WASH_SALE_DAYS + 1} days (wash-sale rule).")
    for w in plan.waits:
        at_cap = cont_sells[w.slot] >= 0.99 * prep.sellable[w.slot] and prep.sellable[w.slot] > 0
        if q[w.slot] >= 0 and not at_cap and w.tax_saved_usd < 100:
            continue
        days = w.days_left
        notes.append(f"Waits to sell {w.shares:g} {w.ticker} in {w.account} bought {w.acquired.isoformat()}: they "
                     f"turn long-term on {w.long_term_on.isoformat()} (in {days} days); waiting saves about "
                     f"{usd(w.tax_saved_usd)} of tax on the {usd(w.gain_usd)} gain.")
    notes += plan.kept_losses
    return notes

