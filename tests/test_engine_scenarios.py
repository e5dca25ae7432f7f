"""Stress tests: historical episodes on hand-built and real prices, hypothetical shock propagation, the data file."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.backtest import WeightsError
from engine.scenarios import (
    GICS_SECTORS,
    SCENARIOS_PATH,
    ScenarioDataError,
    historical_stress,
    hypothetical_stress,
    load_scenarios,
)
from engine.types import CASH, Snapshot

PRICES_PATH = Path(__file__).resolve().parent.parent / "data" / "market" / "prices_daily.csv.gz"
NAN = float("nan")


@pytest.fixture(scope="module")
def real_prices() -> pd.DataFrame:
    return pd.read_csv(PRICES_PATH, index_col="date", parse_dates=True)


@pytest.fixture
def tiny_prices() -> pd.DataFrame:
    """Five trading days (Tue 2024-01-02 .. Mon 2024-01-08, weekend in between); C lists on 01-04."""
    dates = pd.to_datetime(["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05", "2024-01-08"])
    return pd.DataFrame(
        {
            "A": [100.0, 90.0, 80.0, 85.0, 70.0],
            "B": [50.0, 51.0, 52.0, 53.0, 55.0],
            "C": [NAN, NAN, 10.0, 12.0, 9.0],
            "D": [20.0, 21.0, 22.0, NAN, 25.0],  # one gap, filled forward
        },
        index=dates,
    )


def _episode(start: str, end: str, name: str = "test storm") -> dict:
    return {"name": name, "start": start, "end": end}


def test_it_replays_buy_and_hold_between_the_start_and_end_closes(tiny_prices):
    before = {"A": 0.6, "B": 0.3, CASH: 0.1}
    after = {"B": 0.5, "C": 0.2, CASH: 0.3}
    [item] = historical_stress(
        before=before, after=after, prices=tiny_prices, episodes=[_episode("2024-01-03", "2024-01-08")]
    )
    # By hand: A 90 -> 70, B 51 -> 55; C has no price on 01-03, so its 20% sits in cash.
    expected_before = 0.6 * (70 / 90 - 1) + 0.3 * (55 / 51 - 1)
    expected_after = 0.5 * (55 / 51 - 1)
    assert item["kind"] == "historical"
    assert (item["start"], item["end"]) == ("2024-01-03", "2024-01-08")
    assert item["before"] == pytest.approx(expected_before, abs=1e-6)
    assert item["after"] == pytest.approx(expected_after, abs=1e-6)
    assert item["missing"] == ["C"]
    assert "C" in item["note"] and "held as cash" in item["note"] and "after 20.0%" in item["note"]


def test_it_uses_the_last_trading_day_on_or_before_each_date(tiny_prices):
    # Saturday 01-06 -> Friday 01-05; Sunday 01-07 end is not allowed before start, so end on Monday.
    [item] = historical_stress(
        before={"A": 1.0},
        after={"B": 1.0},
        prices=tiny_prices,
        episodes=[{"name": "weekend", "start": dt.date(2024, 1, 6), "end": "2024-01-08"}],
    )
    assert item["start"] == "2024-01-05"
    assert item["before"] == pytest.approx(70 / 85 - 1, abs=1e-6)
    assert item["after"] == pytest.approx(55 / 53 - 1, abs=1e-6)
    assert "last trading days on or before" in item["note"]
    assert item["missing"] == []


def test_it_reports_tickers_absent_from_the_prices_and_fills_gaps_forward(tiny_prices):
    [item] = historical_stress(
        before={"D": 0.5, "ZZZ": 0.5},
        after={CASH: 1.0},
        prices=tiny_prices,
        episodes=[_episode("2024-01-02", "2024-01-05")],
    )
    # D has no close on 01-05: its last price on or before the end (22 on 01-04) is used.
    assert item["before"] == pytest.approx(0.5 * (22 / 20 - 1), abs=1e-6)
    assert item["after"] == 0.0
    assert item["missing"] == ["ZZZ"]
    assert "before 50.0%" in item["note"]


def test_cash_only_portfolios_do_not_move(tiny_prices):
    [item] = historical_stress(
        before={CASH: 1.0}, after={CASH: 1.0}, prices=tiny_prices, episodes=[_episode("2024-01-02", "2024-01-08")]
    )
    assert (item["before"], item["after"], item["missing"]) == (0.0, 0.0, [])
    assert "note" not in item


def test_weights_off_by_rounding_are_renormalised_and_others_refused(tiny_prices):
    episodes = [_episode("2024-01-02", "2024-01-08")]
    [item] = historical_stress(before={"A": 0.497, "B": 0.497}, after={"A": 1.0}, prices=tiny_prices, episodes=episodes)
    assert item["before"] == pytest.approx(0.5 * (70 / 100 - 1) + 0.5 * (55 / 50 - 1), abs=1e-6)
    with pytest.raises(WeightsError, match=r"after weights sum to 0\.600000"):
        historical_stress(before={"A": 1.0}, after={"A": 0.4, "B": 0.2}, prices=tiny_prices, episodes=episodes)
    with pytest.raises(WeightsError, match="not finite"):
        historical_stress(before={"A": NAN, "B": 1.0}, after={"A": 1.0}, prices=tiny_prices, episodes=episodes)
    with pytest.raises(WeightsError, match="empty"):
        historical_stress(before={}, after={"A": 1.0}, prices=tiny_prices, episodes=episodes)


def test_episodes_the_prices_do_not_cover_get_no_figures_and_a_note(tiny_prices):
    items = historical_stress(
        before={"A": 1.0},
        after={"B": 1.0},
        prices=tiny_prices,
        episodes=[_episode("2023-12-01", "2024-01-05", "too early"), _episode("2024-01-03", "2024-02-01", "too late")],
    )
    for item in items:
        assert item["before"] is None and item["after"] is None
        assert item["note"].startswith("Not replayed")
    json.dumps(items, allow_nan=False)


def test_a_malformed_episode_is_refused_with_its_field(tiny_prices):
    with pytest.raises(ScenarioDataError, match=r"episode 0 .*'end'"):
        historical_stress(
            before={"A": 1.0}, after={"A": 1.0}, prices=tiny_prices, episodes=[_episode("2024-01-05", "2024-01-02")]
        )


def test_spy_fell_about_a_third_in_the_covid_episode(real_prices):
    episodes = load_scenarios()["historical"]
    items = historical_stress(before={"SPY": 1.0}, after={"SPY": 0.5, CASH: 0.5}, prices=real_prices, episodes=episodes)
    covid = next(i for i in items if i["name"] == "COVID crash")
    assert (covid["start"], covid["end"]) == ("2020-02-19", "2020-03-23")
    assert -0.36 < covid["before"] < -0.30
    assert covid["after"] == pytest.approx(covid["before"] / 2, abs=1e-6)
    assert all(i["before"] is not None and i["missing"] == [] for i in items)
    json.dumps(items, allow_nan=False)


def test_tickers_listed_after_an_episode_start_are_reported_on_real_prices(real_prices):
    [item] = historical_stress(
        before={"SPY": 0.9, "GEV": 0.1},
        after={"SPY": 1.0},
        prices=real_prices,
        episodes=[_episode("2023-03-08", "2023-05-04")],
    )
    spy = real_prices["SPY"]
    assert item["missing"] == ["GEV"]
    assert item["before"] == pytest.approx(0.9 * (spy["2023-05-04"] / spy["2023-03-08"] - 1), abs=1e-6)


# --- the data file -------------------------------------------------------------------------------------------


def test_the_bundled_file_holds_the_four_episodes_and_four_scenarios():
    data = load_scenarios(SCENARIOS_PATH)
    episodes = {e["name"]: (e["start"].isoformat(), e["end"].isoformat()) for e in data["historical"]}
    assert episodes == {
        "COVID crash": ("2020-02-19", "2020-03-23"),
        "2022 rate-hike bear market": ("2022-01-03", "2022-10-12"),
        "2023 regional-bank stress": ("2023-03-08", "2023-05-04"),
        "2025 tariff shock": ("2025-02-19", "2025-04-08"),
    }
    names = [s["name"] for s in data["hypothetical"]]
    assert names == ["AI acceleration", "Recession", "Tariff shock", "Rate cuts deliver"]
    assert all(len(item["description"]) > 40 for item in data["historical"] + data["hypothetical"])
    shocks = {s["name"]: s["assumptions"] for s in data["hypothetical"]}
    assert shocks["AI acceleration"]["Information Technology"] > 0 > shocks["AI acceleration"]["small"]
    assert shocks["Recession"]["Financials"] < 0 and shocks["Recession"]["small"] < 0
    assert shocks["Tariff shock"]["Industrials"] < 0 and shocks["Tariff shock"]["Materials"] < 0
    assert shocks["Rate cuts deliver"]["small"] > 0 and shocks["Rate cuts deliver"]["Financials"] > 0


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            '{"historical": [], "hypothetical": [\n{"name": "X", "description": "d", "assumptions": {"Tech": 0.1}}]}',
            r"hypothetical\[0\] \(X\): assumption 'Tech' is not a GICS sector",
        ),
        (
            '{"historical": [{"name": "E", "start": "2020-13-01", "end": "2020-03-01"}], "hypothetical": []}',
            r"historical\[0\] \(E\): field 'start' must be an ISO date",
        ),
        (
            '{"historical": [], "hypothetical": [{"name": "X", "assumptions": {"small": 0.1}}]}',
            r"hypothetical\[0\] \(X\): field 'description'",
        ),
        (
            '{"historical": [], "hypothetical": [{"name": "X", "description": "d", "assumptions": {"small": 3}}]}',
            r"'small' = 3 is outside -1 \.\. 1",
        ),
        ('{"historical": [],\n "hypothetical": [,]}', r"line 2: invalid JSON"),
        ('{"historical": []}', r"field 'hypothetical' must be a list"),
    ],
)
def test_a_malformed_file_is_refused_naming_entry_and_field(tmp_path, document, message):
    path = tmp_path / "scenarios.json"
    path.write_text(document)
    with pytest.raises(ScenarioDataError, match=message):
        load_scenarios(path)


# --- hypothetical propagation --------------------------------------------------------------------------------

# A portfolio of known holdings: (weight of total value, asset class, GICS sector, size).
HOLDINGS = [
    (0.35, "equity", "Information Technology", "large"),
    (0.10, "equity", "Information Technology", "small"),
    (0.15, "equity", "Financials", "large"),
    (0.10, "equity", "Industrials", "small"),
    (0.05, "equity", "Health Care", "mid"),
    (0.15, "bond", "", ""),
    (0.04, "commodity", "", ""),
    (0.06, "cash", "", ""),
]


def _snapshot_of(holdings: list[tuple[float, str, str, str]]) -> Snapshot:
    """Look-through exposures as the engine reports them: sectors/size of the equity part, classes of total."""
    equity = sum(w for w, cls, _, _ in holdings if cls == "equity")
    sectors: dict[str, float] = {}
    size: dict[str, float] = {}
    classes: dict[str, float] = {}
    for weight, cls, sector, bucket in holdings:
        classes[cls] = classes.get(cls, 0.0) + weight
        if cls == "equity":
            sectors[sector] = sectors.get(sector, 0.0) + weight / equity
            size[bucket] = size.get(bucket, 0.0) + weight / equity
    return Snapshot(weights={}, sectors=sectors, size=size, volatility=0.2, asset_class=classes)


def _holding_by_holding(holdings: list[tuple[float, str, str, str]], shocks: dict[str, float]) -> float:
    """Independent check: each holding moves by its sector shock plus its size shock (or its class shock)."""
    total = 0.0
    for weight, cls, sector, bucket in holdings:
        move = shocks.get(sector, 0.0) + shocks.get(bucket, 0.0) if cls == "equity" else shocks.get(cls, 0.0)
        total += weight * move
    return total


def test_shocks_propagate_through_the_look_through_exposures():
    shocks = {
        "Information Technology": 0.2,
        "Financials": -0.1,
        "Industrials": -0.14,
        "small": -0.05,
        "mid": -0.02,
        "bond": 0.03,
        "commodity": 0.05,
    }
    snapshot = _snapshot_of(HOLDINGS)
    [item] = hypothetical_stress(
        before=snapshot,
        after=_snapshot_of([(1.0, "cash", "", "")]),
        scenarios=[{"name": "mix", "description": "a mix", "assumptions": shocks}],
    )
    # By hand: 0.35*0.2 + 0.10*(0.2-0.05) + 0.15*(-0.1) + 0.10*(-0.14-0.05) + 0.05*(-0.02) + 0.15*0.03 + 0.04*0.05
    by_hand = 0.07 + 0.015 - 0.015 - 0.019 - 0.001 + 0.0045 + 0.002
    assert item["before"] == pytest.approx(by_hand, abs=1e-9)
    assert item["before"] == pytest.approx(_holding_by_holding(HOLDINGS, shocks), abs=1e-6)
    assert item["after"] == 0.0
    assert item == {
        "name": "mix",
        "kind": "hypothetical",
        "before": item["before"],
        "after": 0.0,
        "assumptions": shocks,
        "description": "a mix",
    }


@settings(max_examples=40, deadline=None)
@given(
    weights=st.lists(st.floats(0.01, 1.0), min_size=8, max_size=8),
    shocks=st.lists(st.floats(-0.5, 0.5), min_size=len(GICS_SECTORS) + 5, max_size=len(GICS_SECTORS) + 5),
)
def test_propagation_matches_holding_by_holding_sums(weights, shocks):
    total = sum(weights)
    holdings = [(w / total, cls, sector, size) for w, (_, cls, sector, size) in zip(weights, HOLDINGS, strict=True)]
    keys = [*GICS_SECTORS, "large", "mid", "small", "bond", "commodity"]
    assumptions = dict(zip(keys, shocks, strict=True))
    snapshot = _snapshot_of(holdings)
    [item] = hypothetical_stress(
        before=snapshot, after=snapshot, scenarios=[{"name": "s", "description": "d", "assumptions": assumptions}]
    )
    assert item["before"] == pytest.approx(_holding_by_holding(holdings, assumptions), abs=2e-6)


def test_unclassified_exposure_and_a_missing_class_split_are_noted():
    snapshot = Snapshot(
        weights={"X": 0.8, CASH: 0.2},
        sectors={"Energy": 0.6, "Other": 0.4},
        size={"large": 1.0},
        volatility=0.2,
    )
    [item] = hypothetical_stress(
        before=snapshot,
        after=snapshot,
        scenarios=[{"name": "oil", "description": "oil falls", "assumptions": {"Energy": -0.3, "cash": 0.0}}],
    )
    assert item["before"] == pytest.approx(0.8 * 0.6 * -0.3, abs=1e-9)
    assert "no asset-class split" in item["note"]
    assert "40.0% of the equity part has no GICS sector" in item["note"]


def test_a_scenario_with_an_unknown_key_is_refused():
    snapshot = _snapshot_of(HOLDINGS)
    with pytest.raises(ScenarioDataError, match="'Technology' is not a GICS sector"):
        hypothetical_stress(
            before=snapshot,
            after=snapshot,
            scenarios=[{"name": "typo", "description": "d", "assumptions": {"Technology": 0.2}}],
        )


def test_the_bundled_scenarios_separate_a_tech_heavy_and_a_tilted_portfolio():
    tech_heavy = _snapshot_of(
        [
            (0.7, "equity", "Information Technology", "large"),
            (0.25, "equity", "Communication Services", "large"),
            (0.05, "cash", "", ""),
        ]
    )
    tilted = _snapshot_of(
        [
            (0.3, "equity", "Information Technology", "large"),
            (0.25, "equity", "Financials", "large"),
            (0.25, "equity", "Industrials", "small"),
            (0.15, "bond", "", ""),
            (0.05, "cash", "", ""),
        ]
    )
    items = hypothetical_stress(before=tech_heavy, after=tilted, scenarios=load_scenarios()["hypothetical"])
    by_name = {i["name"]: i for i in items}
    assert by_name["AI acceleration"]["before"] > by_name["AI acceleration"]["after"]
    assert by_name["Rate cuts deliver"]["after"] > by_name["Rate cuts deliver"]["before"]
    assert by_name["Tariff shock"]["after"] < by_name["Tariff shock"]["before"]
    for item in items:
        assert math.isfinite(item["before"]) and math.isfinite(item["after"])
        assert item["assumptions"] and item["description"]
    json.dumps(items, allow_nan=False)
    assert np.isclose(
        by_name["Recession"]["after"],
        _holding_by_holding(
            [
                (0.3, "equity", "Information Technology", "large"),
                (0.25, "equity", "Financials", "large"),
                (0.25, "equity", "Industrials", "small"),
                (0.15, "bond", "", ""),
                (0.05, "cash", "", ""),
            ],
            by_name["Recession"]["assumptions"],
        ),
        atol=1e-6,
    )
