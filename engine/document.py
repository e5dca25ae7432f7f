"""`result_to_document`: a `RebalanceResult` as the JSON-safe DESIGN.md CLI document (+ extra keys).

Money is rounded to cents (a trade's amount is its shares times its price as shown), weights/fractions/
volatility to 6 decimals (weights keep summing to 1), shares to 6 decimals (whole shares stay integers).
"""

from __future__ import annotations

from typing import Any

from engine.types import RebalanceResult, Snapshot, Trade


def _money(x: float) -> float:
    return round(float(x), 2) + 0.0  # + 0.0 turns -0.0 into 0.0


def _frac(x: float) -> float:
    return round(float(x), 6) + 0.0


def _shares(x: float) -> int | float:
    rounded = round(float(x))
    return int(rounded) if abs(float(x) - rounded) < 1e-9 else round(float(x), 6)


def _fractions(values: dict[str, float]) -> dict[str, float]:
    return {str(k): _frac(v) for k, v in values.items()}


def _weights(values: dict[str, float]) -> dict[str, float]:
    """Weights to 6 decimals that still sum to exactly what they summed to (the rounding residue goes to
    the largest weight), so a document's weights add up to 1."""
    rounded = _fractions(values)
    if rounded:
        residue = round(sum(values.values()) - sum(rounded.values()), 6)
        largest = max(rounded, key=lambda k: rounded[k])
        rounded[largest] = round(rounded[largest] + residue, 6) + 0.0
    return rounded


def snapshot_to_document(snap: Snapshot) -> dict[str, Any]:
    """One before/after block."""
    return {
        "weights": _weights(snap.weights),
        "sectors": _fractions(snap.sectors),
        "size": _fractions(snap.size),
        "volatility": _frac(snap.volatility),
        "asset_class": _fractions(snap.asset_class),
        "top_names": _fractions(snap.top_names),
        "largest_position": {"ticker": snap.largest_position[0], "weight": _frac(snap.largest_position[1])},
        "largest_sector": {"sector": snap.largest_sector[0], "weight": _frac(snap.largest_sector[1])},
        "effective_holdings": round(float(snap.effective_holdings), 2),
        "volatility_sample": None if snap.volatility_sample is None else _frac(snap.volatility_sample),
    }


def trade_to_document(trade: Trade) -> dict[str, Any]:
    """One trade; the amount is the shares times the price as shown (cents), so a reader can check it."""
    shares = _shares(trade.shares)
    price = _money(trade.price)
    return {
        "ticker": trade.ticker,
        "account": trade.account,
        "action": trade.action,
        "shares": shares,
        "price": price,
        "amount": _money(shares * price),
        "reason": trade.reason,
        "est_cost": _money(trade.est_cost),
        "est_tax": _money(trade.est_tax),
        "realized_gain": _money(trade.realized_gain),
    }


def result_to_document(result: RebalanceResult) -> dict[str, Any]:
    """The CLI JSON document (DESIGN.md) plus summary, relaxations, estimated costs and taxes."""
    return {
        "as_of": result.as_of.isoformat(),
        "profile": result.profile,
        "status": result.status,
        "value": _money(result.value),
        "summary": result.summary,
        "trades": [trade_to_document(t) for t in result.trades],
        "before": snapshot_to_document(result.before),
        "after": snapshot_to_document(result.after),
        "est_costs": _money(result.est_costs),
        "est_taxes": _money(result.est_taxes),
        "relaxations": [
            {"limit": r.limit, "requested": _frac(r.requested), "achieved": _frac(r.achieved), "message": r.message}
            for r in result.relaxations
        ],
        "warnings": list(result.warnings),
        "notes": list(result.notes),
        "orders": len(result.trades),
        "funds_bought": len({t.ticker for t in result.trades if t.action == "buy"}),
        "tradeoffs": [
            {"budget": None if t.budget is None else _frac(t.budget), "est_taxes": _money(t.est_taxes),
             "volatility": _frac(t.volatility), "limits_met": t.limits_met, "limits_total": t.limits_total,
             "current": t.current}
            for t in result.tradeoffs
        ],
    }
