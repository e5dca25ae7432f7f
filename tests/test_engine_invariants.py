"""Property-based invariants of engine.rebalance on random feasible inputs (hypothesis).

For any portfolio the result must: reconcile trades before -> after, never short, keep cash >= 0 in
every account, respect buy-only/keep/whole shares/minimum trade, and either meet every limit within
1e-6 or report it (with the value it reached). The checks live in `check_invariants`.
"""

from __future__ import annotations

import datetime as dt

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine
from engine.types import Position
from tests.test_engine_rebalance import CACHE, LAST, check_invariants, request

TICKERS = ["TECHA", "TECHB", "BANK", "HLTH", "ENRG", "BROAD", "EQW", "SMALL", "FIN", "TECHF", "INTL", "BOND"]
ACCOUNTS = {"Taxable": "taxable", "Roth": "roth_ira", "IRA": "traditional_ira"}


@st.composite
def portfolios(draw):
    accounts = draw(st.lists(st.sampled_from(list(ACCOUNTS)), min_size=1, max_size=2, unique=True))
    positions = []
    for account in accounts:
        for ticker in draw(st.lists(st.sampled_from(TICKERS), max_size=5, unique=True)):
            fractional = draw(st.booleans()) and draw(st.booleans())
            shares = draw(st.floats(0.5, 400) if fractional else st.integers(1, 400).map(float))
            basis = draw(st.one_of(st.none(), st.floats(0.1, 1.6)))
            acquired = draw(st.one_of(st.none(), st.dates(dt.date(2018, 1, 1), dt.date(2025, 12, 30))))
            price = float(LAST[ticker])
            positions.append(Position(ticker, account, ACCOUNTS[account], shares, price,
                                      cost_basis=None if basis is None else basis * shares * price,
                                      acquired=acquired))
    cash = {a: draw(st.sampled_from([0.0, 250.0, 3000.0, 15000.0])) for a in accounts}
    value = sum(p.shares * p.price for p in positions) + sum(cash.values())
    change = draw(st.sampled_from([0.0, 0.0, 5000.0, -0.1, -0.5]))
    cash_change = change * value if change < 0 else change
    if value + cash_change <= 100:
        cash_change = 5000.0
    held = sorted({p.ticker for p in positions})
    keep = frozenset(draw(st.lists(st.sampled_from(held), max_size=2, unique=True))) if held else frozenset()
    options = {
        "profile": draw(st.sampled_from(["conservative", "moderate", "aggressive"])),
        "cash_change": cash_change,
        "buy_only": draw(st.booleans()) and draw(st.booleans()),
        "keep": keep,
        "fractional": draw(st.booleans()) and draw(st.booleans()),
        "max_turnover": draw(st.one_of(st.none(), st.sampled_from([0.05, 0.2, 1.0]))),
        "use_views": draw(st.sampled_from([True, True, False])),
    }
    return request(positions, cash, **options)


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(portfolios())
def test_every_result_keeps_its_promises(req):
    result = engine.rebalance(req, cache=CACHE)
    check_invariants(req, result)


@settings(max_examples=15, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(portfolios())
def test_fractional_runs_keep_their_promises_too(req):
    from dataclasses import replace

    req = replace(req, options=replace(req.options, fractional=True))
    result = engine.rebalance(req, cache=CACHE)
    check_invariants(req, result)
