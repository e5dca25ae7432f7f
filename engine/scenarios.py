"""Stress tests: past storms replayed on real prices, and the storms the thesis fears, as stated shocks.

Historical episodes (``historical_stress``)
    Buy-and-hold of the ``before`` and the ``after`` weights from the episode's start to its end:
    ``return = Σ_i w_i · (P_i(end) / P_i(start) - 1)`` over the non-cash tickers, cash earning 0.
    ``start``/``end`` are moved to the last trading day on or before each and reported as used.
    A ticker without a price on the start day (not yet listed, or absent from the prices) is listed
    under ``"missing"`` and its weight is held as cash (0% return) for the episode; the item's
    ``"note"`` says so with the weight concerned. A ticker priced at the start but not at the end is
    valued at its last price on or before the end. An episode the prices do not cover (it starts
    before the first price date or ends after the last) gets ``None`` figures and a note.

Hypothetical scenarios (``hypothetical_stress``)
    Each scenario states instantaneous shocks (fractions: -0.2 = -20%) keyed by a GICS sector name
    (``GICS_SECTORS``), a size bucket (``"large"``, ``"mid"``, ``"small"``) or a non-equity asset class
    (``"bond"``, ``"commodity"``, ``"cash"``). A key that is not stated is a 0 shock. Using the look-through
    exposures of a ``Snapshot``:

        equity_return    = Σ_s sectors[s] · shock[s]  +  Σ_z size[z] · shock[z]
        portfolio_return = asset_class["equity"] · equity_return
                           + Σ_{c in bond, commodity, cash} asset_class[c] · shock[c]

    where ``sectors`` and ``size`` are fractions of the equity part and ``asset_class`` fractions of total
    value. Sector and size shocks add up: a small-cap industrial under ``{"Industrials": -0.12,
    "small": -0.08}`` moves -20%, a large-cap one -12% (the sector shock is the move of the sector's large
    companies, the size shock the extra move of smaller ones). Equity without a GICS sector or size
    bucket, and asset classes other than those above, get no shock; the item's ``"note"`` says how much.
    If the snapshot has no ``asset_class`` split, ``CASH`` is taken as cash and everything else as equity
    (noted).

The episodes and scenarios are data (``data/scenarios.json``, read by ``load_scenarios``), each with a
plain-words description, so the assumptions can be shown beside the results and edited.
Weights follow ``engine.backtest.weights_normalise``: they must sum to 1 within 1% (renormalised),
otherwise they are refused.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.backtest import (
    PriceHistory,
    as_date,
    history_of,
    iso,
    round6,
    weights_normalise,
)
from engine.types import CASH, GICS_SECTORS, SIZES, Snapshot

SCENARIOS_PATH = Path(__file__).resolve().parent.parent / "data" / "scenarios.json"
SIZE_BUCKETS = SIZES
SHOCKED_ASSET_CLASSES = ("bond", "commodity", "cash")
SHOCK_KEYS = frozenset(GICS_SECTORS + SIZE_BUCKETS + SHOCKED_ASSET_CLASSES)
COVERAGE_TOLERANCE = 0.005  # unshocked exposure below this is not worth a note


class ScenarioDataError(ValueError):
    """The scenarios file, an episode or a scenario is malformed; the message names the entry and field."""


def _percent(value: float) -> str:
    return f"{value * 100:.1f}%"


def _text(entry: Mapping[str, Any], field: str, where: str) -> str:
    value = entry.get(field)
    if not isinstance(value, str) or not value.strip():
        raise ScenarioDataError(f"{where}: field {field!r} must be a non-empty string")
    return value.strip()


def episode_check(*, episode: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Validate one historical episode ``{"name", "start", "end", "description"?}``.

    Returns ``{"name": str, "start": date, "end": date, "description": str}``.
    Raises ScenarioDataError naming ``where`` and the field.
    """
    if not isinstance(episode, Mapping):
        raise ScenarioDataError(f"{where}: must be an object with name, start and end")
    name = _text(episode, "name", where)
    days: dict[str, dt.date] = {}
    for field in ("start", "end"):
        raw = episode.get(field)
        try:
            days[field] = as_date(raw)
        except (TypeError, ValueError):
            raise ScenarioDataError(f"{where} ({name}): field {field!r} must be an ISO date, not {raw!r}")
    if days["start"] >= days["end"]:
        raise ScenarioDataError(
            f"{where} ({name}): field 'end' ({days['end']}) must be after 'start' ({days['start']})"
        )
    description = episode.get("description", "")
    if not isinstance(description, str):
        raise ScenarioDataError(f"{where} ({name}): field 'description' must be a string")
    return {"name": name, "start": days["start"], "end": days["end"], "description": description.strip()}


def assumptions_check(*, assumptions: Any, where: str) -> dict[str, float]:
    """Validate the shocks of one scenario: keys in ``SHOCK_KEYS``, values finite numbers in [-1, 1].

    Returns {key: shock as float}. Raises ScenarioDataError naming ``where`` and the key.
    """
    if not isinstance(assumptions, Mapping) or not assumptions:
        raise ScenarioDataError(f"{where}: field 'assumptions' must be a non-empty object of shocks")
    shocks: dict[str, float] = {}
    for key, value in assumptions.items():
        if key not in SHOCK_KEYS:
            raise ScenarioDataError(
                f"{where}: assumption {key!r} is not a GICS sector, a size bucket (large, mid, small) "
                f"or an asset class ({', '.join(SHOCKED_ASSET_CLASSES)})"
            )
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ScenarioDataError(f"{where}: assumption {key!r} must be a number, not {value!r}")
        if not -1.0 <= value <= 1.0:
            raise ScenarioDataError(f"{where}: assumption {key!r} = {value} is outside -1 .. 1 (a fraction)")
        shocks[key] = float(value)
    return shocks


def scenario_check(*, scenario: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Validate one hypothetical scenario ``{"name", "description", "assumptions": {key: shock}}``."""
    if not isinstance(scenario, Mapping):
        raise ScenarioDataError(f"{where}: must be an object with name, description and assumptions")
    name = _text(scenario, "name", where)
    return {
        "name": name,
        "description": _text(scenario, "description", f"{where} ({name})"),
        "assumptions": assumptions_check(assumptions=scenario.get("assumptions"), where=f"{where} ({name})"),
    }


def load_scenarios(path: str | Path = SCENARIOS_PATH) -> dict[str, list[dict[str, Any]]]:
    """Read and validate the scenarios file.

    Returns ``{"historical": [{"name", "start": date, "end": date, "description"}],
    "hypothetical": [{"name", "description", "assumptions": {key: shock}}]}``.
    Raises ScenarioDataError (with the JSON line for syntax errors, else the entry and field).
    """
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ScenarioDataError(f"{path.name} line {error.lineno}: invalid JSON ({error.msg})")
    if not isinstance(document, dict):
        raise ScenarioDataError(f"{path.name}: must hold an object with 'historical' and 'hypothetical' lists")
    for section in ("historical", "hypothetical"):
        if not isinstance(document.get(section), list):
            raise ScenarioDataError(f"{path.name}: field {section!r} must be a list")
    historical = [
        episode_check(episode=e, where=f"{path.name} historical[{i}]") for i, e in enumerate(document["historical"])
    ]
    hypothetical = [
        scenario_check(scenario=s, where=f"{path.name} hypothetical[{i}]")
        for i, s in enumerate(document["hypothetical"])
    ]
    for section, items in (("historical", historical), ("hypothetical", hypothetical)):
        names = [item["name"] for item in items]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ScenarioDataError(f"{path.name} {section}: duplicate name {duplicates[0]!r}")
    return {"historical": historical, "hypothetical": hypothetical}


def _buy_and_hold(*, weights: Mapping[str, float], moves: Mapping[str, float]) -> tuple[float, float]:
    """(return, weight held as cash because unpriced at the start) of fixed weights between two closes.

    moves: {ticker priced at the start: end price / start price - 1} (``_episode_prices``).
    """
    total = 0.0
    unpriced = 0.0
    for ticker, weight in weights.items():
        if ticker == CASH:
            continue
        move = moves.get(ticker)
        if move is None:
            unpriced += weight
            continue
        total += weight * move
    return total, unpriced


@dataclass(frozen=True)
class _EpisodePrices:
    """One episode on one price frame: the trading days used and every ticker's price move (``_episode_prices``)."""

    start: str  # ISO: the trading day used, or the requested start when not replayed
    end: str
    note: str | None  # why the episode is not replayed (then no moves), or that its dates were moved
    replayed: bool
    moves: dict[str, float]  # {ticker priced at the start: end price / start price - 1}


def _episode_prices(history: PriceHistory, start: dt.date, end: dt.date) -> _EpisodePrices:
    """The episode ``start`` .. ``end`` on the frame, every column at once (forward-filled: a ticker priced at
    the start but not at the end is valued at its last price on or before the end)."""
    index = history.index
    first_day = history.last_trading_day(start) if not history.empty else None
    if history.empty or first_day is None or index[-1].date() < end:
        covered = "no prices" if history.empty else f"prices run {iso(index[0])} .. {iso(index[-1])}"
        note = f"Not replayed: {covered}, which do not cover {start} .. {end}."
        return _EpisodePrices(start.isoformat(), end.isoformat(), note, False, {})
    last_day = history.last_trading_day(end)
    if last_day is None or last_day <= first_day:
        note = f"Not replayed: no trading day between {start} and {end}."
        return _EpisodePrices(start.isoformat(), end.isoformat(), note, False, {})

    filled = history.filled
    start_prices = filled[index.get_loc(first_day)]
    end_prices = filled[index.get_loc(last_day)]
    priced = ~np.isnan(start_prices)
    tickers = [t for t, ok in zip(history.positions, priced.tolist(), strict=True) if ok]
    moves = dict(zip(tickers, (end_prices[priced] / start_prices[priced] - 1.0).tolist(), strict=True))
    moved = None
    if first_day.date() != start or last_day.date() != end:
        moved = (
            f"Replayed from {iso(first_day)} to {iso(last_day)}, the last trading days on or before {start} and {end}."
        )
    return _EpisodePrices(iso(first_day), iso(last_day), moved, True, moves)


def _episode_replay(
    *, episode: dict[str, Any], weights: dict[str, dict[str, float]], held: list[str], history: PriceHistory
) -> dict[str, Any]:
    start, end = episode["start"], episode["end"]
    prices: _EpisodePrices = history.memo(("episode", start, end), lambda: _episode_prices(history, start, end))
    item: dict[str, Any] = {
        "name": episode["name"],
        "kind": "historical",
        "start": prices.start,
        "end": prices.end,
        "before": None,
        "after": None,
        "missing": [],
    }
    if not prices.replayed:
        item["note"] = prices.note
        return item

    moves = prices.moves
    item["missing"] = [t for t in held if t not in moves]
    notes = [prices.note] if prices.note else []
    unpriced_share: dict[str, float] = {}
    for label, w in weights.items():
        ret, unpriced = _buy_and_hold(weights=w, moves=moves)
        item[label] = round6(ret)
        unpriced_share[label] = unpriced
    if item["missing"]:
        notes.append(
            f"No price on {prices.start} for {', '.join(item['missing'])}: that weight (before "
            f"{_percent(unpriced_share['before'])}, after {_percent(unpriced_share['after'])}) is held as "
            "cash (0% return) for this episode."
        )
    if notes:
        item["note"] = " ".join(notes)
    return item


def historical_stress(
    *,
    before: Mapping[str, float],
    after: Mapping[str, float],
    episodes: Sequence[Mapping[str, Any]],
    prices: pd.DataFrame | None = None,
    history: PriceHistory | None = None,
) -> list[dict[str, Any]]:
    """Buy-and-hold return of the ``before`` and ``after`` weights over each past episode.

    before/after: {ticker: fraction of total value}, ``CASH`` included (earns 0).
    prices: DataFrame indexed by date, one column per ticker, adjusted closes in USD, NaN = no price; not
    modified. Or history: the ``PriceHistory`` of such a frame (a ``MarketSnapshot``'s): each episode's
    price moves are then computed once for every portfolio.
    episodes: [{"name", "start", "end", "description"?}] with ISO strings or dates (as ``load_scenarios``).
    Returns one JSON-safe dict per episode, in order: ``{"name", "kind": "historical", "start", "end",
    "before", "after", "missing": [tickers unpriced at start], "note"?}``; returns are fractions (6 dp),
    ``start``/``end`` the trading days used. Raises WeightsError / ScenarioDataError on bad input.
    """
    weights = {
        "before": weights_normalise(weights=before, label="before"),
        "after": weights_normalise(weights=after, label="after"),
    }
    checked = [episode_check(episode=e, where=f"episode {i}") for i, e in enumerate(episodes)]
    held = sorted({t for w in weights.values() for t in w if t != CASH})
    history = history_of(prices, history)
    return [_episode_replay(episode=e, weights=weights, held=held, history=history) for e in checked]


def _snapshot_shock(*, snapshot: Snapshot, shocks: Mapping[str, float]) -> tuple[float, list[str]]:
    """(portfolio return, notes on unshocked exposure) of one snapshot under one set of shocks."""
    notes: list[str] = []
    asset_class = dict(snapshot.asset_class)
    if not asset_class:
        cash = float(snapshot.weights.get(CASH, 0.0))
        asset_class = {"equity": 1.0 - cash, "cash": cash}
        notes.append(f"no asset-class split: {CASH} taken as cash, the rest as equity")
    equity = float(asset_class.get("equity", 0.0))
    sector_part = sum(float(snapshot.sectors.get(s, 0.0)) * shocks.get(s, 0.0) for s in GICS_SECTORS)
    size_part = sum(float(snapshot.size.get(z, 0.0)) * shocks.get(z, 0.0) for z in SIZE_BUCKETS)
    other_part = sum(float(asset_class.get(c, 0.0)) * shocks.get(c, 0.0) for c in SHOCKED_ASSET_CLASSES)

    if equity > COVERAGE_TOLERANCE:
        no_sector = 1.0 - sum(float(snapshot.sectors.get(s, 0.0)) for s in GICS_SECTORS)
        if no_sector > COVERAGE_TOLERANCE and any(s in shocks for s in GICS_SECTORS):
            notes.append(f"{_percent(no_sector)} of the equity part has no GICS sector and gets no sector shock")
        no_size = 1.0 - sum(float(snapshot.size.get(z, 0.0)) for z in SIZE_BUCKETS)
        if no_size > COVERAGE_TOLERANCE and any(z in shocks for z in SIZE_BUCKETS):
            notes.append(f"{_percent(no_size)} of the equity part has no size bucket and gets no size shock")
    unshocked = sum(float(v) for c, v in asset_class.items() if c != "equity" and c not in SHOCKED_ASSET_CLASSES)
    if abs(unshocked) > COVERAGE_TOLERANCE:
        notes.append(f"{_percent(unshocked)} of value is in other asset classes and gets no shock")
    return equity * (sector_part + size_part) + other_part, notes


def hypothetical_stress(
    *, before: Snapshot, after: Snapshot, scenarios: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Return of the ``before`` and ``after`` portfolios under each stated scenario (rule: module docstring).

    before/after: Snapshots whose ``sectors``/``size`` are fractions of the equity part and whose
    ``asset_class`` holds fractions of total value.
    scenarios: [{"name", "description", "assumptions": {sector | size | asset class: shock fraction}}].
    Returns one JSON-safe dict per scenario: ``{"name", "kind": "hypothetical", "before", "after",
    "assumptions", "description", "note"?}``; returns are fractions rounded to 6 dp.
    Raises ScenarioDataError on a malformed scenario.
    """
    results: list[dict[str, Any]] = []
    for index, raw in enumerate(scenarios):
        scenario = scenario_check(scenario=raw, where=f"scenario {index}")
        item: dict[str, Any] = {"name": scenario["name"], "kind": "hypothetical"}
        notes: list[str] = []
        for label, snapshot in (("before", before), ("after", after)):
            value, snapshot_notes = _snapshot_shock(snapshot=snapshot, shocks=scenario["assumptions"])
            item[label] = round6(value)
            notes.extend(f"{label}: {n}." for n in snapshot_notes)
        item["assumptions"] = dict(scenario["assumptions"])
        item["description"] = scenario["description"]
        if notes:
            item["note"] = " ".join(notes)
        results.append(item)
    return results
