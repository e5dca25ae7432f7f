"""Tax lots: ordering, realised gains, the convex tax curve the optimizer uses."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from engine.profiles import DEFAULT_COSTS
from engine.tax import holding_lots, is_taxable, realise, tax_curve
from engine.types import Position

AS_OF = dt.date(2025, 12, 31)


def lots(*specs: tuple[float, float | None, dt.date | None], price: float = 100.0):
    positions = [Position("X", "Taxable", "taxable", s, price, cost_basis=b, acquired=a) for s, b, a in specs]
    return holding_lots(positions, price=price, as_of=AS_OF, costs=DEFAULT_COSTS)


def test_high_basis_lots_are_sold_first_within_a_holding_period():
    ordered = lots((10, 200.0, dt.date(2019, 1, 1)), (10, 900.0, dt.date(2019, 1, 1)), (10, 500.0, dt.date(2019, 1, 1)))
    assert [lot.basis_per_share for lot in ordered] == [90.0, 50.0, 20.0]


def test_losses_come_first_then_the_cheapest_tax_per_dollar():
    ordered = lots(
        (10, 1200.0, dt.date(2019, 1, 1)), (10, 500.0, dt.date(2025, 6, 1)), (10, 300.0, dt.date(2019, 1, 1))
    )
    # loss (basis 120), long-term gain 70% at 15% (10.5c/$), short-term gain 50% at 35% (17.5c/$)
    assert [lot.basis_per_share for lot in ordered] == [120.0, 30.0, 50.0]


def test_realising_splits_long_and_short_term_and_taxes_each():
    ordered = lots((10, 500.0, dt.date(2019, 1, 1)), (10, 800.0, dt.date(2025, 10, 1)))
    r = realise(ordered, 15)
    # short-term lot (basis 80, 35%: 7c/$) before long-term (basis 50, 15%: 7.5c/$)
    assert r.short_term_gain == pytest.approx(10 * 20)
    assert r.long_term_gain == pytest.approx(5 * 50)
    assert r.tax == pytest.approx(0.35 * 200 + 0.15 * 250)


def test_unknown_basis_assumes_half_the_value_is_gain_and_unknown_dates_are_long_term():
    (lot,) = lots((10, None, None))
    assert not lot.basis_known and not lot.date_known
    assert lot.long_term and lot.rate == 0.15
    assert realise([lot], 10).gain == pytest.approx(500.0)


def test_the_tax_curve_is_convex_and_matches_realised_tax_at_breakpoints():
    ordered = lots((10, 500.0, dt.date(2019, 1, 1)), (10, 800.0, dt.date(2025, 10, 1)), (10, 950.0, None))
    value = 10_000.0
    slopes, intercepts = tax_curve(ordered, value)
    assert np.all(np.diff(slopes[slopes > 0]) >= 0)
    for shares in (5, 10, 20, 30):
        sold = shares * 100 / value
        curve = max(0.0, float(np.max(slopes * sold + intercepts)))
        assert curve * value == pytest.approx(realise(ordered, shares).tax, rel=1e-9, abs=1e-9)


def test_retirement_accounts_are_not_taxed():
    assert not is_taxable("roth_ira") and not is_taxable("traditional_ira") and not is_taxable("401k")
    assert is_taxable("taxable") and is_taxable("other")


def test_losses_are_free_in_the_curve_but_offset_gains_when_realised():
    ordered = lots((10, 1100.0, dt.date(2019, 1, 1)), (10, 500.0, dt.date(2019, 1, 1)))
    slopes, intercepts = tax_curve(ordered, 2_000.0)
    sold_loss_lot = 1_000.0 / 2_000.0
    assert max(0.0, float(np.max(slopes * sold_loss_lot + intercepts))) == 0.0  # no reward for harvesting
    r = realise(ordered, 20)
    assert r.gain == pytest.approx(-100 + 500)
    assert r.tax == pytest.approx(0.15 * 400)
