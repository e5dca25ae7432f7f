"""Dated investment views: data files (data/views/*.json), never constants in the solver.

A views document (JSON object):
- ``as_of`` (ISO date), ``title`` (str), ``facts`` (list of str, figures included), ``risks`` (list of str),
- ``tilts``: ``core`` {ETF ticker: weight} (weights > 0, sum 1: the neutral equity mix the tilts apply to),
  ``sectors`` {GICS sector: over/underweight as a fraction of equity, -0.5..0.5}, optional ``size``
  {large, mid, small: target fractions of equity, sum 1}, optional ``vehicles`` {GICS sector or size:
  [ETF tickers]} (the funds the tilts should use, best first), optional ``notes`` (list of str).
- optional ``id``, ``summary``, ``source``, ``disclaimer`` (str).

The target builder (`engine.target`) turns the tilts into a target weight vector over the menu.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.errors import ViewsError
from engine.exposures import GICS_SECTORS, SIZES

DEFAULT_VIEWS_PATH = Path(__file__).resolve().parent.parent / "data" / "views" / "2026-01-rotation.json"


def load_views(path: str | Path = DEFAULT_VIEWS_PATH) -> dict[str, Any]:
    """Read and validate a views file; returns the JSON object (as_of stays an ISO string).

    Raises `ViewsError` (a `DataError`) naming the file and the field when the file cannot be used.
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ViewsError(f"{path}: views file not found", field="path") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ViewsError(f"{path}: not valid JSON ({exc})", field="path") from None
    try:
        return views_validate(raw)
    except ViewsError as exc:
        raise ViewsError(f"{path}: {exc}", field=exc.field) from None


def views_validate(views: Any) -> dict[str, Any]:
    """Check the shape of a views object; returns it as a plain dict or raises `ViewsError`."""
    if not isinstance(views, Mapping):
        raise ViewsError("views must be a JSON object", field="views")
    views = dict(views)
    _require_str(views, "title")
    as_of = _require_str(views, "as_of")
    try:
        dt.date.fromisoformat(as_of)
    except ValueError:
        raise ViewsError(f"as_of {as_of!r} is not an ISO date (YYYY-MM-DD)", field="as_of") from None
    for key in ("facts", "risks"):
        items = views.get(key)
        if not isinstance(items, list) or not items or not all(isinstance(s, str) and s.strip() for s in items):
            raise ViewsError(f"{key} must be a non-empty list of sentences", field=key)
    for key in ("id", "summary", "source", "disclaimer"):
        if key in views and not isinstance(views[key], str):
            raise ViewsError(f"{key} must be a string", field=key)
    tilts = views.get("tilts")
    if not isinstance(tilts, Mapping):
        raise ViewsError("tilts must be an object with core, sectors and optional size", field="tilts")
    _check_core(tilts.get("core"))
    _check_sectors(tilts.get("sectors", {}))
    if "size" in tilts:
        _check_size(tilts["size"])
    _check_vehicles(tilts.get("vehicles", {}))
    notes = tilts.get("notes", [])
    if not isinstance(notes, list) or not all(isinstance(s, str) for s in notes):
        raise ViewsError("tilts.notes must be a list of strings", field="tilts.notes")
    return views


def _require_str(views: Mapping[str, Any], key: str) -> str:
    value = views.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ViewsError(f"{key} is required and must be a non-empty string", field=key)
    return value


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise ViewsError(f"{field} must be a number, got {value!r}", field=field)
    return float(value)


def _check_core(core: Any) -> None:
    if not isinstance(core, Mapping) or not core:
        raise ViewsError("tilts.core must map ETF tickers to weights", field="tilts.core")
    total = 0.0
    for ticker, weight in core.items():
        w = _number(weight, f"tilts.core.{ticker}")
        if w <= 0:
            raise ViewsError(f"tilts.core.{ticker} must be positive", field=f"tilts.core.{ticker}")
        total += w
    if abs(total - 1.0) > 1e-3:
        raise ViewsError(f"tilts.core weights must sum to 1, got {total:.4f}", field="tilts.core")


def _check_sectors(sectors: Any) -> None:
    if not isinstance(sectors, Mapping):
        raise ViewsError("tilts.sectors must map GICS sectors to over/underweights", field="tilts.sectors")
    for sector, tilt in sectors.items():
        if sector not in GICS_SECTORS:
            raise ViewsError(
                f"tilts.sectors: {sector!r} is not a GICS sector ({', '.join(GICS_SECTORS)})",
                field=f"tilts.sectors.{sector}",
            )
        value = _number(tilt, f"tilts.sectors.{sector}")
        if not -0.5 <= value <= 0.5:
            raise ViewsError(f"tilts.sectors.{sector} must be between -0.5 and 0.5", field=f"tilts.sectors.{sector}")


def _check_vehicles(vehicles: Any) -> None:
    if not isinstance(vehicles, Mapping):
        raise ViewsError("tilts.vehicles must map sectors or sizes to lists of tickers", field="tilts.vehicles")
    for key, tickers in vehicles.items():
        if key not in GICS_SECTORS and key not in SIZES:
            raise ViewsError(
                f"tilts.vehicles: {key!r} is neither a GICS sector nor a size", field=f"tilts.vehicles.{key}"
            )
        if not isinstance(tickers, list) or not tickers or not all(isinstance(t, str) and t for t in tickers):
            raise ViewsError(f"tilts.vehicles.{key} must be a non-empty list of tickers", field=f"tilts.vehicles.{key}")


def _check_size(size: Any) -> None:
    if not isinstance(size, Mapping) or set(size) != set(SIZES):
        raise ViewsError(f"tilts.size must give exactly {', '.join(SIZES)}", field="tilts.size")
    values = [_number(size[k], f"tilts.size.{k}") for k in SIZES]
    if min(values) < 0 or abs(sum(values) - 1.0) > 1e-3:
        raise ViewsError("tilts.size fractions must be >= 0 and sum to 1", field="tilts.size")
