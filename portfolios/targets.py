"""The portfolio's target as data: validate it, describe it, and turn it into the engine's views document.

Stored on `Portfolio.target` (JSON):
- ``{"kind": "thesis"}``: the dated views (default); ``{"kind": "neutral"}``: the neutral market mix.
  For these two, `Portfolio.use_views` is the switch (the options form toggles it too).
- ``{"kind": "custom", "mix": {"stocks": 0.6, "bonds": 0.35, "cash": 0.05},
  "funds": {"stocks": {"VTI": 0.8, "VXUS": 0.2}, "bonds": {"BND": 1.0}},
  "sectors": {"Financials": 0.05}, "size": {"large": 0.7, "mid": 0.2, "small": 0.1}}``:
  an asset-class mix (required, sums to 1), the funds of each sleeve (optional, menu funds of the right
  class, weights sum to 1; default: the neutral core and the profile's bond funds), sector tilts
  (optional, fractions of equity, -0.5..0.5) and a size mix (optional, sums to 1).
A custom target becomes a views document (`target_views`) and takes the same path through the engine's
target builder as the dated views: the solver has no special case.

`Portfolio.bands` holds the drift bands: ``{"absolute": 0.05, "relative": 0.25}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.exposures import GICS_SECTORS, SIZES
from engine.profiles import NEUTRAL_EQUITY_CORE
from engine.tickers import ticker_normalize

KINDS: tuple[str, ...] = ("thesis", "neutral", "custom")
MIX_KEYS: tuple[str, ...] = ("stocks", "bonds", "cash")
SLEEVE_CLASS: Mapping[str, str] = {"stocks": "equity", "bonds": "bond"}
SUM_TOLERANCE = 1e-3
MAX_FUNDS = 12


class TargetInvalid(ValueError):
    """Bad target or bands; `errors` maps each field at fault (e.g. "target.mix") to its message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def _number(value: Any, field: str, errors: dict[str, str], low: float, high: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        errors[field] = f"must be a number, got {value!r}"
        return None
    if not low <= float(value) <= high:
        errors[field] = f"must be between {low:g} and {high:g}, got {value:g}"
        return None
    return float(value)


def _shares(raw: Any, field: str, keys: tuple[str, ...], errors: dict[str, str]) -> dict[str, float] | None:
    """{key: fraction} with exactly `keys`, each 0..1, summing to 1."""
    if not isinstance(raw, Mapping) or set(raw) != set(keys):
        errors[field] = f"give exactly {', '.join(keys)} (fractions summing to 1)"
        return None
    values = {k: _number(raw[k], f"{field}.{k}", errors, 0.0, 1.0) for k in keys}
    if any(v is None for v in values.values()):
        return None
    total = sum(v for v in values.values() if v is not None)
    if abs(total - 1.0) > SUM_TOLERANCE:
        errors[field] = f"must sum to 100%, got {total * 100:.1f}%"
        return None
    return {k: float(v) for k, v in values.items() if v is not None}


def _funds(raw: Any, sleeve: str, menu: Mapping[str, str], errors: dict[str, str]) -> dict[str, float] | None:
    field = f"target.funds.{sleeve}"
    if not isinstance(raw, Mapping) or not raw or len(raw) > MAX_FUNDS:
        errors[field] = f"map 1 to {MAX_FUNDS} menu funds to their share of the sleeve"
        return None
    funds: dict[str, float] = {}
    for key, weight in raw.items():
        try:
            ticker = ticker_normalize(str(key))
        except ValueError:
            errors[field] = f"{key!r} is not a ticker"
            return None
        if ticker not in menu:
            errors[field] = f"{ticker} is not on the menu of funds"
            return None
        if menu[ticker] != SLEEVE_CLASS[sleeve]:
            errors[field] = f"{ticker} is a {menu[ticker] or 'unclassified'} fund, not a {sleeve} fund"
            return None
        value = _number(weight, f"{field}.{ticker}", errors, 0.0, 1.0)
        if value is None:
            return None
        if value > 0:
            funds[ticker] = funds.get(ticker, 0.0) + value
    total = sum(funds.values())
    if abs(total - 1.0) > SUM_TOLERANCE:
        errors[field] = f"shares must sum to 100%, got {total * 100:.1f}%"
        return None
    return funds


def _sectors(raw: Any, errors: dict[str, str]) -> dict[str, float]:
    if not isinstance(raw, Mapping):
        errors["target.sectors"] = "map GICS sectors to over/underweights (fractions of equity)"
        return {}
    tilts: dict[str, float] = {}
    for sector, tilt in raw.items():
        if sector not in GICS_SECTORS:
            errors["target.sectors"] = f"{sector!r} is not a GICS sector ({', '.join(GICS_SECTORS)})"
            continue
        value = _number(tilt, f"target.sectors.{sector}", errors, -0.5, 0.5)
        if value:
            tilts[sector] = value
    return tilts


def target_validate(raw: Any, *, menu: Mapping[str, str]) -> dict[str, Any]:
    """The clean target for `raw`, or `TargetInvalid` naming each field at fault.

    menu: {ticker: asset class} of the funds on the menu (the only funds a custom sleeve may use).
    """
    if not isinstance(raw, Mapping):
        raise TargetInvalid({"target": 'must be an object, e.g. {"kind": "thesis"}'})
    kind = raw.get("kind")
    if kind not in KINDS:
        raise TargetInvalid({"target.kind": f"choose one of {', '.join(KINDS)}, got {kind!r}"})
    allowed = {"kind"} | ({"mix", "funds", "sectors", "size"} if kind == "custom" else set())
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise TargetInvalid({f"target.{unknown[0]}": f"not a field of a {kind} target"})
    if kind != "custom":
        return {"kind": kind}
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {"kind": "custom", "mix": _shares(raw.get("mix"), "target.mix", MIX_KEYS, errors)}
    funds_raw = raw.get("funds") or {}
    if not isinstance(funds_raw, Mapping) or set(funds_raw) - set(SLEEVE_CLASS):
        errors["target.funds"] = "give funds for stocks and/or bonds"
    else:
        clean["funds"] = {s: _funds(v, s, menu, errors) for s, v in funds_raw.items() if v}
    clean["sectors"] = _sectors(raw.get("sectors") or {}, errors)
    if raw.get("size"):
        clean["size"] = _shares(raw["size"], "target.size", SIZES, errors)
    if errors:
        raise TargetInvalid(errors)
    return clean


def bands_validate(raw: Any) -> dict[str, float]:
    """{"absolute": 0.005..0.5, "relative": 0.01..1}, or `TargetInvalid` naming the field."""
    if not isinstance(raw, Mapping) or set(raw) != {"absolute", "relative"}:
        raise TargetInvalid({"bands": "give absolute and relative (fractions, e.g. 0.05 and 0.25)"})
    errors: dict[str, str] = {}
    absolute = _number(raw["absolute"], "bands.absolute", errors, 0.005, 0.5)
    relative = _number(raw["relative"], "bands.relative", errors, 0.01, 1.0)
    if errors or absolute is None or relative is None:
        raise TargetInvalid(errors)
    return {"absolute": absolute, "relative": relative}


def target_effective(*, target: Mapping[str, Any] | None, use_views: bool) -> dict[str, Any]:
    """The target a run uses: a custom one as stored; otherwise the thesis or neutral by `use_views`."""
    if target and target.get("kind") == "custom":
        return dict(target)
    return {"kind": "thesis" if use_views else "neutral"}


def target_views(target: Mapping[str, Any], thesis: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The views document the engine's target builder takes for `target` (None: the neutral mix)."""
    kind = target.get("kind")
    if kind == "thesis":
        return thesis
    if kind != "custom":
        return None
    funds = target.get("funds") or {}
    tilts: dict[str, Any] = {
        "core": dict(funds.get("stocks") or NEUTRAL_EQUITY_CORE),
        "sectors": dict(target.get("sectors") or {}),
        "mix": dict(target["mix"]),
    }
    if funds.get("bonds"):
        tilts["bonds"] = dict(funds["bonds"])
    if target.get("size"):
        tilts["size"] = dict(target["size"])
    return {"id": "custom", "title": "Your custom target", "label": "your custom target", "as_of": "",
            "facts": target_describe(target), "risks": [], "tilts": tilts}


def _pct(mapping: Mapping[str, float], order: tuple[str, ...] = ()) -> str:
    keys = [k for k in order if k in mapping] + [k for k in mapping if k not in order]
    return ", ".join(f"{k} {mapping[k] * 100:.0f}%" for k in keys)


def target_describe(target: Mapping[str, Any]) -> list[str]:
    """Plain sentences describing a target (for pages, e-mails and the result document)."""
    kind = target.get("kind")
    if kind == "thesis":
        return ["The dated investment views (January 2026): tilted toward financials, small caps and equal weight."]
    if kind == "neutral":
        return ["The neutral market mix: the profile's stocks and bonds, stocks spread as the market is."]
    lines = [f"Asset classes: {_pct(target['mix'], MIX_KEYS)}."]
    funds = target.get("funds") or {}
    for sleeve in ("stocks", "bonds"):
        if funds.get(sleeve):
            lines.append(f"{sleeve.capitalize()} funds: {_pct(funds[sleeve])}.")
    if target.get("sectors"):
        lines.append("Sector tilts: " + ", ".join(f"{s} {v * 100:+.0f} points" for s, v in target["sectors"].items())
                     + ".")
    if target.get("size"):
        lines.append(f"Size mix of stocks: {_pct(target['size'], SIZES)}.")
    return lines
