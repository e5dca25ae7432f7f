"""Tax lots: ordering, realised gains, the convex tax curve the optimizer uses."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from engine.profiles import DEFAULT_COSTS
from engine.tax import Realisation, allocate_taxes, holding_lots, is_taxable, net_tax, plan_tax, realise, tax_curve
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
        curve = float(np.max(slopes * sold + intercepts))
        assert curve * value == pytest.approx(realise(ordered, shares).tax, rel=1e-9, abs=1e-9)


def test_retirement_accounts_are_not_taxed():
    assert not is_taxable("roth_ira") and not is_taxable("traditional_ira") and not is_taxable("401k")
    assert is_taxable("taxable") and is_taxable("other")


def test_losses_count_in_the_curve_and_net_against_gains_when_realised():
    ordered = lots((10, 1100.0, dt.date(2019, 1, 1)), (10, 500.0, dt.date(2019, 1, 1)))
    value = 2_000.0
    slopes, intercepts = tax_curve(ordered, value)
    assert slopes[0] == pytest.approx(0.15 * (1 - 110 / 100)) and np.all(np.diff(slopes) >= 0)
    for shares in (5, 10, 15, 20):  # the optimizer's curve is the realised tax before the floor at 0
        curve = float(np.max(slopes * shares * 100 / value + intercepts)) * value
        gains = sum(min(max(shares - 10 * i, 0), 10) * (100 - b) for i, b in enumerate((110.0, 50.0)))
        assert curve == pytest.approx(0.15 * gains, abs=1e-9)
    assert float(np.max(slopes * 0.5 + intercepts)) < 0  # selling the loss lot lowers the tax
    r = realise(ordered, 20)
    assert r.gain == pytest.approx(-100 + 500) and r.loss == pytest.approx(100)
    assert r.tax == pytest.approx(0.15 * 400)
    assert realise(ordered, 10).tax == 0.0  # a net loss is no tax (not a negative one)


def test_a_curve_without_losses_keeps_its_zero_floor_pieces():
    slopes, intercepts = tax_curve(lots((10, 500.0, dt.date(2019, 1, 1))), 1_000.0)
    assert slopes[1:].tolist() == [0.0, 0.0, 0.0] and intercepts.tolist() == [0.0] * 4
    loss_slopes, _ = tax_curve(lots((10, 1500.0, dt.date(2019, 1, 1))), 1_000.0)
    assert np.all(loss_slopes == loss_slopes[0]) and loss_slopes[0] < 0  # no (0, 0) piece to floor it


def test_short_term_losses_are_credited_at_the_long_term_rate_in_the_optimizer():
    (lot,) = lots((10, 1500.0, dt.date(2025, 10, 1)))  # short-term, a 50% loss
    assert lot.rate == 0.35 and lot.tax_per_dollar == pytest.approx(0.15 * -0.5)


@pytest.mark.parametrize("seed", range(20))
def test_each_sale_carries_its_share_of_the_netted_tax(seed):
    rng = np.random.default_rng(seed)
    sales = [Realisation(0.0, lt, st, net_tax(st, lt), max(-st, 0) + max(-lt, 0))
             for st, lt in rng.normal(0.0, 1_000.0, (int(rng.integers(1, 6)), 2))]
    shares = allocate_taxes(sales)
    assert sum(shares) == pytest.approx(plan_tax(sales), abs=1e-6)
    total_st, total_lt = sum(r.short_term_gain for r in sales), sum(r.long_term_gain for r in sales)
    assert plan_tax(sales) == pytest.approx(net_tax(total_st, total_lt)) and plan_tax(sales) >= 0
    # the optimizer's linear measure (losses at 15%) is never below the netted tax
    linear = sum(0.35 * r.short_term_gain if r.short_term_gain > 0 else 0.15 * r.short_term_gain for r in sales)
    linear += sum(0.15 * r.long_term_gain for r in sales)
    assert plan_tax(sales) <= max(linear, 0.0) + 1e-9
    for r, share in zip(sales, shares, strict=True):
        if r.short_term_gain >= 0 and r.long_term_gain >= 0:
            assert share == pytest.approx(0.35 * r.short_term_gain + 0.15 * r.long_term_gain)  # a gain pays its own
