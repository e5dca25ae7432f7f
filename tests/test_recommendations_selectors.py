"""Selectors behind the portfolio page, and the number filters its templates use."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from django.utils import timezone

from portfolios.models import Portfolio, RebalanceRun
from portfolios.recommendations.forms import RebalanceOptionsForm
from portfolios.recommendations.selectors import (
    limit_label,
    portfolio_page_state,
    result_display,
    run_inputs_display,
    run_price_warnings,
)
from portfolios.templatetags.rec_format import change_class, pct, pct_signed, pp_change, shares, usd

FIXTURE = Path(__file__).parent / "fixtures" / "sample_result.json"


def sample() -> dict:
    return json.loads(FIXTURE.read_text())


def test_the_fixture_is_consistent():
    """The sample document keeps its own promises, so tests built on it mean something."""
    result = sample()
    for trade in result["trades"]:
        assert trade["amount"] == pytest.approx(trade["shares"] * trade["price"], abs=0.01)
        assert trade["action"] in ("buy", "sell")
    assert result["est_taxes"] == pytest.approx(sum(t["est_tax"] for t in result["trades"]))
    for side in ("before", "after"):
        assert sum(result[side]["weights"].values()) == pytest.approx(1.0, abs=0.002)
        assert sum(result[side]["sectors"].values()) == pytest.approx(1.0, abs=0.002)
    curve = result["backtest"]["curve"]
    assert len(curve["dates"]) == len(curve["before"]) == len(curve["after"])


def test_result_display_totals_and_ordering():
    display = result_display(result=sample())
    buys = sum(t["amount"] for t in sample()["trades"] if t["action"] == "buy")
    assert display.totals.buys_usd == pytest.approx(buys)
    assert display.totals.net_cash_usd == pytest.approx(display.totals.sells_usd - buys)
    sectors = next(b for b in display.exposures if b.key == "sectors")
    assert sectors.rows[0].label == "Information Technology"  # largest first
    size = next(b for b in display.exposures if b.key == "size")
    assert [r.label for r in size.rows] == ["Large cap", "Small cap"]  # fixed order, empty mid left out
    assert size.rows[1].before == 0.0  # absent from 'before' means none held
    top = next(b for b in display.exposures if b.key == "top_names")
    jpm = next(r for r in top.rows if r.label == "JPM")
    assert jpm.before is None and jpm.change is None  # outside the top 10: unknown, not zero
    ai = next(s for s in display.stress_hypothetical if s.name == "AI acceleration")
    assert ai.assumptions[0] == ("Information Technology", 0.2)  # largest shock first
    assert display.backtest["note_repeats_caveat"] is True


@pytest.mark.parametrize(
    "broken",
    [
        {"trades": "oops", "before": [], "after": None, "stress": "x", "backtest": [1], "views": "v"},
        {"trades": [{"ticker": "X", "amount": "n/a"}], "relaxations": [None, {"limit": 3}]},
        {"before": {"largest_position": ["NVDA", 0.3]}, "after": {"largest_position": {"ticker": "NVDA"}},
         "backtest": {"curve": {"dates": ["2024-01-02"], "before": [1.0], "after": []}}},
    ],
)
def test_result_display_survives_odd_shapes(broken):
    display = result_display(result=broken)
    assert display is not None
    if isinstance(broken.get("backtest"), dict):
        assert display.backtest["curve"] is None  # mismatched lengths: no chart rather than a wrong one


def test_result_display_reads_pairs_as_lists_too():
    display = result_display(result={"before": {"largest_position": ["NVDA", 0.3]},
                                      "after": {"largest_position": {"ticker": "NVDA", "weight": 0.18}}})
    row = display.risk[0]
    assert (row.before, row.after, row.better) == ("NVDA 30.0%", "NVDA 18.0%", True)


def test_limit_labels():
    assert limit_label("max_sector:Information Technology") == "Maximum sector weight (Information Technology)"
    assert limit_label("volatility_cap") == "Volatility cap"
    assert limit_label("max_single_stock:NVDA") == "Maximum single-stock weight (NVDA)"
    assert limit_label("something_new") == "Something new"


@pytest.mark.django_db
def test_page_state_picks_active_shown_and_failed_runs(alice):
    portfolio = Portfolio.objects.create(owner=alice, name="P")

    def run(status, minutes_ago, **extra):
        r = RebalanceRun.objects.create(portfolio=portfolio, status=status, profile="moderate", **extra)
        RebalanceRun.objects.filter(pk=r.pk).update(created_at=timezone.now() - dt.timedelta(minutes=minutes_ago))
        return r

    old_failure = run("failed", 50, error="old")
    done = run("done", 40, result=sample())
    state = portfolio_page_state(portfolio=portfolio)
    assert state.shown_run == done and state.failed_run is None and state.active_run is None
    assert not state.has_holdings and not state.polling

    failure = run("failed", 30, error="new")
    running = run("running", 20)
    pending = run("pending", 10)
    state = portfolio_page_state(portfolio=portfolio)
    assert state.failed_run == failure != old_failure
    assert state.active_run == pending and state.queued_after_active is True
    assert state.shown_run == done
    assert state.polling and state.pending_slow and state.poll_seconds == 10
    assert [r.pk for r in state.history] == [pending.pk, running.pk, failure.pk, done.pk, old_failure.pk]


@pytest.mark.django_db
def test_price_warnings(alice):
    portfolio = Portfolio.objects.create(owner=alice, name="P")
    today = dt.date.today()
    fresh = RebalanceRun(portfolio=portfolio, profile="moderate", prices_as_of=today)
    assert run_price_warnings(run=fresh, latest_prices_as_of=today) == []
    old = RebalanceRun(portfolio=portfolio, profile="moderate", prices_as_of=today - dt.timedelta(days=30))
    messages = run_price_warnings(run=old, latest_prices_as_of=today)
    assert len(messages) == 2 and "more than 5 trading days old" in messages[0] and "Newer prices" in messages[1]
    from_result = RebalanceRun(portfolio=portfolio, profile="moderate", result={"as_of": "2020-01-02"})
    assert "2020-01-02" in run_price_warnings(run=from_result, latest_prices_as_of=None)[0]


def test_run_inputs_display():
    run = RebalanceRun(profile="moderate", inputs={"profile": "aggressive", "cash": -500.0, "keep": ["AAPL"],
                                                  "max_turnover": 0.3, "use_views": False})
    rows = dict(run_inputs_display(run=run))
    assert rows["Risk profile"] == "Aggressive"
    assert rows["Cash change"] == "withdraw $500.00"
    assert rows["Keep"] == "AAPL" and rows["Max turnover"] == "30%" and rows["Dated views"] == "off"


@pytest.mark.parametrize("raw,expected", [("brk.b brk/b", "BRK-B"), (" bf/b ", "BF-B"), ("spy", "SPY")])
def test_keep_tickers_are_normalised_the_importer_way(raw, expected):
    form = RebalanceOptionsForm(data={"profile": "moderate", "cash_change_usd": "0", "keep_tickers": raw})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["keep_tickers"] == expected


def test_keep_tickers_refuse_formulas():
    form = RebalanceOptionsForm(data={"profile": "moderate", "cash_change_usd": "0", "keep_tickers": "AAPL =cmd()"})
    assert not form.is_valid()
    assert "=cmd()" in str(form.errors["keep_tickers"])


def test_keep_tickers_are_deduplicated_and_capped():
    form = RebalanceOptionsForm(data={"profile": "moderate", "cash_change_usd": "0", "keep_tickers": "a a B, b"})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["keep_tickers"] == "A, B"
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    too_many = " ".join(a + b + c for a in letters[:5] for b in letters[:5] for c in letters[:6])  # 150 tickers
    form = RebalanceOptionsForm(data={"profile": "moderate", "cash_change_usd": "0", "keep_tickers": too_many})
    assert not form.is_valid() and "Too many tickers" in form.errors["keep_tickers"][0]


def test_number_filters():
    assert pct(0.1234) == "12.3%" and pct(-0.3) == "−30.0%" and pct(None) == "—" and pct(-0.00001) == "0.0%"
    assert pct_signed(0.05) == "+5.0%" and pct_signed(-0.05, 0) == "−5%" and pct_signed(0) == "0.0%"
    assert pp_change(0.031) == "+3.1 pp" and pp_change(-0.0002) == "0.0 pp"
    assert usd(1234.4) == "$1,234" and usd(1234.6) == "$1,235"
    assert usd(-12.0) == "−$12" and usd(82.414, 2) == "$82.41"
    assert shares(150.0) == "150" and shares(1.23456) == "1.2346" and shares(0.5) == "0.5"
    assert change_class(0.01) == "up" and change_class(-0.01) == "down" and change_class(-0.0002) == ""
