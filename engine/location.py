"""Asset location: where income funds (bond and cash funds) may be bought, in one place.

A planner fills tax-deferred accounts (traditional IRA, 401(k)) with bonds first: their interest is taxed
yearly as income in a taxable account but not at all inside the IRA, and stocks' gains in a taxable account
are taxed later and at the lower long-term rate. The Roth is kept for the funds expected to grow most: its
growth is never taxed. The optimizer's holding drag (`engine.profiles.tax_drag`) prices this, but a drag of
about 1% a year loses against the turnover limit and the exposure pull, so the rules are applied before the
solve (`asset_location`, called once by `engine.prepare.prepare`):

1. No income fund is bought in a Roth while a tax-deferred account exists (unless there is no taxable
   account and the tax-deferred ones cannot hold the income target).
2. No income fund is bought in a taxable account when the tax-deferred accounts can hold the whole income
   target (their income funds, cash and sellable other holdings together reach it).
3. A swap into income funds inside a tax-deferred account (selling its stock funds to buy bonds: no tax, costs
   of a few basis points) does not count against the turnover limit: buys of income funds there and sales there
   are left out of the turnover sums (`Location.buy_counted`, `sell_counted`). Turnover is max(buys, sales), so
   a swap between stock funds inside the IRA still counts once, through its buys. Without this, the turnover the
   taxable account's sales already use leaves no room to move bonds into the IRA, and the bonds end up bought
   in the taxable account (the cause of issue 15's "$539k of bonds in taxable, $5k in the IRA").

`location_notes` says in plain words what the plan did about it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from engine.profiles import INCOME_CLASSES
from engine.tax import is_taxable
from engine.types import SecurityInfo, Trade

TAX_DEFERRED = frozenset({"traditional_ira", "401k"})
ROTH = "roth_ira"


@dataclass(frozen=True)
class Location:
    """What asset location allows (slots K, accounts m)."""

    buyable: np.ndarray  # (K,) False where location rules out buying the slot's fund
    buy_counted: np.ndarray  # (K,) False: the slot's buys are left out of turnover (income funds, tax-deferred)
    sell_counted: np.ndarray  # (K,) False: the slot's sales are left out of turnover (tax-deferred accounts)
    roth_closed: bool  # rule 1 applies
    taxable_closed: bool  # rule 2 applies


def is_income(ticker: str, securities: Mapping[str, SecurityInfo]) -> bool:
    """A bond or cash fund (its interest is taxed yearly as income in a taxable account)."""
    info = securities.get(ticker)
    return info is not None and info.asset_class in INCOME_CLASSES


def asset_location(
    *,
    slot_ticker: Sequence[str],
    slot_account: np.ndarray,
    account_types: Sequence[str],
    slot_value_usd: np.ndarray,
    cash_usd: np.ndarray,
    can_sell: np.ndarray,
    target_weights: Mapping[str, float],
    securities: Mapping[str, SecurityInfo],
    value_usd: float,
) -> Location:
    """The location rules (module docstring) for K slots over m accounts.

    slot_value_usd (K,): value held in each slot; cash_usd (m,): cash in each account after the cash change;
    target_weights: the target's funds (fractions of value); value_usd: the portfolio value V."""
    n_slots = len(slot_ticker)
    income = np.array([is_income(t, securities) for t in slot_ticker], dtype=bool)
    deferred_account = np.array([t in TAX_DEFERRED for t in account_types], dtype=bool)
    if not deferred_account.any() or n_slots == 0:
        every = np.ones(n_slots, dtype=bool)
        return Location(every, every, every, False, False)
    deferred = deferred_account[slot_account]
    target_income = value_usd * sum(w for t, w in target_weights.items() if is_income(t, securities))
    income_held = float(slot_value_usd[deferred & income].sum())
    cash_there = float(np.clip(cash_usd[deferred_account], 0.0, None).sum())
    sellable_other = float(slot_value_usd[deferred & ~income & can_sell].sum())
    room = income_held + cash_there + sellable_other
    has_taxable = any(is_taxable(t) for t in account_types)
    taxable_closed = target_income > 0 and room >= target_income
    roth_closed = has_taxable or taxable_closed
    kind = np.array(account_types, dtype=object)[slot_account]
    closed = (kind == ROTH) & roth_closed
    if taxable_closed:
        closed |= np.array([is_taxable(str(k)) for k in kind], dtype=bool)
    return Location(~(income & closed), ~(income & deferred), ~deferred, roth_closed, taxable_closed)


def location_notes(trades: Sequence[Trade], account_types: Mapping[str, str], location: Location,
                   securities: Mapping[str, SecurityInfo]) -> list[str]:
    """Plain-words notes on where the plan put income funds ({account name: type} of the request)."""
    bought = [t for t in trades if t.action == "buy" and is_income(t.ticker, securities)]
    deferred = sorted({t.account for t in bought if account_types.get(t.account) in TAX_DEFERRED})
    notes: list[str] = []
    if deferred:
        where = " and ".join(deferred)
        notes.append(f"Bonds go in the {where}: their interest is not taxed there, while in a taxable account it "
                     f"would be taxed every year as income.")
        if any(t.action == "sell" and account_types.get(t.account) in TAX_DEFERRED for t in trades):
            notes.append(f"Swapping stock funds for bonds inside the {where} costs no tax, so it is not counted "
                         f"against the turnover limit.")
    if bought and location.roth_closed and ROTH in account_types.values():
        notes.append("No bonds are bought in the Roth: its growth is never taxed, so it is kept for the funds "
                     "expected to grow most.")
    return notes
