"""Asset location (engine.location): the rules on their own, and on random multi-account households planned on
the bundled market: bonds go to tax-deferred accounts first, never to a Roth while a traditional IRA exists,
and the swap into bonds inside the IRA does not use up the turnover limit."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

import engine
from engine.location import TAX_DEFERRED, asset_location, is_income
from engine.market import MarketSnapshot
from engine.menu import default_menu
from engine.prepare import prepare
from engine.sample_data import load_bundled_market
from engine.types import AccountCash, Options, Position, RebalanceRequest, SecurityInfo

SECURITIES = {
    "BND": SecurityInfo("BND", "etf", "bond"),
    "BIL": SecurityInfo("BIL", "etf", "cash"),
    "SPY": SecurityInfo("SPY", "etf", "equity"),
}


def location(account_types, slots, *, target_bonds=0.4, value=100.0, cash=None):
    """asset_location for slots [(ticker, account index, value)]."""
    return asset_location(
        slot_ticker=[t for t, _, _ in slots],
        slot_account=np.array([a for _, a, _ in slots]),
        account_types=account_types,
        slot_value_usd=np.array([v for _, _, v in slots], dtype=float),
        cash_usd=np.zeros(len(account_types)) if cash is None else np.asarray(cash, dtype=float),
        can_sell=np.ones(len(slots), dtype=bool),
        target_weights={"BND": target_bonds, "SPY": 1.0 - target_bonds},
        securities=SECURITIES,
        value_usd=value,
    )


def test_bonds_are_not_bought_in_taxable_when_the_ira_can_hold_the_bond_target():
    slots = [("SPY", 0, 50.0), ("BND", 0, 0.0), ("SPY", 1, 50.0), ("BND", 1, 0.0)]
    loc = location(["taxable", "traditional_ira"], slots)
    assert loc.buyable.tolist() == [True, False, True, True]
    assert loc.taxable_closed
    # the IRA's swap into bonds and its sales do not count as turnover; everything else does
    assert loc.buy_counted.tolist() == [True, True, True, False]
    assert loc.sell_counted.tolist() == [True, True, False, False]


def test_bonds_may_be_bought_in_taxable_when_the_ira_is_too_small_but_never_in_the_roth():
    slots = [("SPY", 0, 80.0), ("BND", 0, 0.0), ("SPY", 1, 10.0), ("BND", 1, 0.0), ("BIL", 2, 0.0)]
    loc = location(["taxable", "traditional_ira", "roth_ira"], slots)
    assert not loc.taxable_closed and loc.roth_closed
    assert loc.buyable.tolist() == [True, True, True, True, False]


def test_without_a_tax_deferred_account_nothing_changes():
    slots = [("SPY", 0, 50.0), ("BND", 0, 0.0), ("BND", 1, 0.0)]
    loc = location(["taxable", "roth_ira"], slots)
    assert loc.buyable.all() and loc.buy_counted.all() and loc.sell_counted.all()


def test_a_roth_and_a_small_ira_alone_may_still_hold_bonds_in_the_roth():
    slots = [("SPY", 0, 90.0), ("BND", 0, 0.0), ("SPY", 1, 10.0), ("BND", 1, 0.0)]
    loc = location(["roth_ira", "401k"], slots)
    assert loc.buyable.all()


# ---------------------------------------------------------------- planned households

MARKET = load_bundled_market(years=3)
SNAPSHOT = MarketSnapshot.build(MARKET)
MENU = default_menu(MARKET.securities, MARKET.etf_sectors)
VIEWS = engine.load_views()
LAST = MARKET.prices.ffill().iloc[-1]
STOCKS = ["AAPL", "MSFT", "NVDA", "JNJ", "KO", "PG", "XOM", "WMT"]


def household(seed: int) -> RebalanceRequest:
    """A taxable account of stocks, a traditional IRA of stock funds, sometimes a Roth: seeded at random."""
    rng = np.random.default_rng(seed)
    value = float(rng.uniform(200_000, 2_000_000))
    ira_share = float(rng.uniform(0.25, 0.6))
    with_roth = bool(rng.random() < 0.6)
    roth_share = 0.12 if with_roth else 0.0
    as_of = MARKET.as_of

    def lot(ticker: str, account: str, kind: str, usd: float, basis: float | None) -> Position:
        price = float(LAST[ticker])
        shares = float(max(1, round(usd / price)))
        return Position(ticker, account, kind, shares, price,
                        cost_basis=None if basis is None else basis * shares * price,
                        acquired=as_of - dt.timedelta(days=2000))

    taxable = value * (1 - ira_share - roth_share)
    names = rng.choice(STOCKS, size=4, replace=False)
    positions = [lot(str(t), "Brokerage", "taxable", taxable * w, float(rng.uniform(0.3, 1.2)))
                 for t, w in zip(names, rng.dirichlet(np.ones(4)), strict=True)]
    positions += [lot("SPY", "IRA", "traditional_ira", value * ira_share * 0.7, None),
                  lot("QQQ", "IRA", "traditional_ira", value * ira_share * 0.3, None)]
    if with_roth:
        positions.append(lot("QQQ", "Roth", "roth_ira", value * roth_share, None))
    cash = [AccountCash("Brokerage", "taxable", 2_000.0), AccountCash("IRA", "traditional_ira", 1_000.0)]
    profile = str(rng.choice(["conservative", "moderate"]))
    return RebalanceRequest(positions, cash, MENU, MARKET, Options(profile=profile), VIEWS)


@pytest.mark.parametrize("seed", range(6))
def test_households_put_bonds_in_the_ira_first_and_never_in_the_roth(seed):
    req = household(seed)
    result = engine.rebalance(req, snapshot=SNAPSHOT)
    types = {p.account: p.account_type for p in req.positions}
    income_buys = [t for t in result.trades if t.action == "buy" and is_income(t.ticker, MARKET.securities)]
    assert not [t for t in income_buys if types[t.account] == "roth_ira"], "bonds bought in a Roth"
    held: dict[tuple[str, str], float] = {}
    for p in req.positions:
        held[(p.account, p.ticker)] = held.get((p.account, p.ticker), 0.0) + p.shares
    for t in result.trades:
        signed = t.shares if t.action == "buy" else -t.shares
        held[(t.account, t.ticker)] = held.get((t.account, t.ticker), 0.0) + signed
    closed = prepare(req, SNAPSHOT).location.taxable_closed  # the IRA can hold the whole bond target
    ira_equity_left = any(shares > 1e-9 and types.get(account) in TAX_DEFERRED
                          and not is_income(ticker, MARKET.securities) for (account, ticker), shares in held.items())
    taxable_bonds = [t for t in income_buys if types[t.account] == "taxable"]
    if taxable_bonds:  # only when the IRA cannot hold the bond target, and then the IRA keeps no stock funds
        assert not closed
        assert not ira_equity_left, "bonds bought in taxable while the IRA keeps stock funds"
    if any(types[t.account] in TAX_DEFERRED for t in income_buys):
        assert any("IRA" in note and "not taxed" in note for note in result.notes)
