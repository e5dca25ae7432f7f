"""The drift check (writes): measure every portfolio against its target in one vectorised pass
(engine.drift), record a `DriftCheck` per portfolio, and when a portfolio leaves its band or breaks a
limit, request a recompute and mail its owner (once per breach per week, unless it gets worse).

Call point: `drift_after_refresh()` once after each price refresh (the refresh task does it).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db import connection, transaction
from django.utils import timezone

from engine import drift as engine_drift
from engine.errors import EngineError
from engine.exposures import ExposureCatalog
from engine.market import last_prices
from engine.profiles import profile_get
from engine.risk import covariance_estimate
from engine.target import build_target
from engine.types import CASH, MarketData
from portfolios.drift.selectors import PortfolioRows, alert_modes, drift_last_alerts, drift_portfolio_rows
from portfolios.marketdata.selectors import market_data_for, menu_tickers
from portfolios.models import DriftAlertSetting, DriftCheck, Portfolio, RebalanceRun
from portfolios.targets import target_effective, target_views

logger = logging.getLogger(__name__)
REPEAT_AFTER = dt.timedelta(days=7)
WORSE_BY = 0.01  # a breach already mailed is mailed again within the week only if it grew by a point
RISK_YEARS = 3.0
STATUS_RANK = {DriftCheck.Status.IN_BAND: 0, DriftCheck.Status.DRIFTED: 1, DriftCheck.Status.BREAKS_LIMIT: 2}
BULK = 2000


@dataclass(frozen=True)
class DriftOutcome:
    """What one check did: the checks written (in portfolio id order) and the ones raised as alerts."""

    checks: list[DriftCheck]
    names: dict[int, str]
    alerts: list[DriftCheck]


@dataclass(frozen=True)
class _Market:
    data: MarketData
    universe: list[str]  # priced tickers, the columns of every matrix
    prices: np.ndarray  # (n,) last close
    menu: list[str]


def _market(rows: PortfolioRows) -> _Market:
    held = {t for shares in rows.shares for t in shares} | {t for w in rows.plan_weights for t in w if t != CASH}
    menu = menu_tickers()
    data = market_data_for(tickers=sorted(held | set(menu)), years=RISK_YEARS)
    last = last_prices(data.prices)
    universe = list(last)
    prices = np.array([last[t] for t in universe])
    return _Market(data=data, universe=universe, prices=prices, menu=[t for t in menu if t in set(universe)])


def _targets(rows: PortfolioRows, market: _Market) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(K, n) distinct target weights, (K,) their cash, (P,) which target each portfolio uses."""
    from portfolios.recommendations.engine_feed import _views  # the one loader of the dated views

    index = {t: j for j, t in enumerate(market.universe)}
    keys: dict[str, int] = {}
    vectors: list[np.ndarray] = []
    of = np.zeros(len(rows.ids), dtype=int)
    for i, (profile, target, use_views) in enumerate(zip(rows.profiles, rows.targets, rows.use_views, strict=True)):
        effective = target_effective(target=target, use_views=use_views)
        key = json.dumps([profile, effective], sort_keys=True)
        if key not in keys:
            built = build_target(profile=profile_get(profile), views=target_views(effective, _views()),
                                 menu=market.menu, market=market.data)
            vector = np.zeros(len(market.universe))
            for ticker, weight in built.weights.items():
                if ticker in index:
                    vector[index[ticker]] += weight
            keys[key] = len(vectors)
            vectors.append(vector)
        of[i] = keys[key]
    targets = np.vstack(vectors) if vectors else np.zeros((0, len(market.universe)))
    return targets, 1.0 - targets.sum(axis=1), of


def _limits(profiles: list[str]) -> engine_drift.LimitArrays:
    found = [profile_get(p) for p in profiles]
    return engine_drift.LimitArrays(
        max_single_stock=np.array([p.max_single_stock for p in found]),
        max_sector=np.array([p.max_sector for p in found]),
        min_small_cap=np.array([p.min_small_cap for p in found]),
        min_financials=np.array([p.min_financials for p in found]),
        vol_cap=np.array([p.vol_cap for p in found]),
    )


def _band(bands: Mapping[str, Any], key: str) -> float:
    value = bands.get(key)
    return float(value) if isinstance(value, int | float) else engine_drift.DEFAULT_BANDS[key]


def drift_inputs(rows: PortfolioRows, market: _Market) -> tuple[engine_drift.DriftInputs, np.ndarray]:
    """The engine's arrays for `rows`, and (P,) whether each portfolio has any value to measure."""
    shares = engine_drift.sparse_rows(rows.shares, market.universe)
    values = shares.multiply(market.prices[None, :]).tocsr()
    cash = np.array(rows.cash)
    totals = np.asarray(values.sum(axis=1)).ravel() + cash
    valued = totals > 0
    scale = np.divide(1.0, totals, out=np.zeros_like(totals), where=valued)
    weights = values.multiply(scale[:, None]).tocsr()
    plan = engine_drift.sparse_rows(rows.plan_weights, market.universe)
    plan_cash = np.array([float(w.get(CASH, 0.0)) for w in rows.plan_weights])
    has_plan = np.array([bool(w) for w in rows.plan_weights])
    targets, target_cash, target_of = _targets(rows, market)
    covariance = None
    if len(market.universe) and len(market.data.prices) > 60:
        # the engine's shrunk covariance without its factor form (an eigendecomposition 5x the cost; the
        # volatilities agree to a few hundredths of a point): the check compares like with like anyway
        covariance, _, _ = covariance_estimate(market.data.prices[market.universe], market.universe,
                                               market.data.securities)
    inputs = engine_drift.DriftInputs(
        weights=weights, cash=cash * scale, targets=targets, target_cash=target_cash, target_of=target_of,
        plan=plan, plan_cash=plan_cash, has_plan=has_plan,
        absolute=np.array([_band(b, "absolute") for b in rows.bands]),
        relative=np.array([_band(b, "relative") for b in rows.bands]),
        limits=_limits(rows.profiles), covariance=covariance,
    )
    return inputs, valued


def drift_check_run(
    *, portfolio_ids: Iterable[int] | None = None, send: bool = False, now: dt.datetime | None = None
) -> DriftOutcome:
    """Measure, record and (with `send`) raise alerts: recompute requested and the owner mailed."""
    now = now or timezone.now()
    rows = drift_portfolio_rows(portfolio_ids=portfolio_ids)
    if not rows.ids:
        return DriftOutcome(checks=[], names={}, alerts=[])
    market = _market(rows)
    inputs, valued = drift_inputs(rows, market)
    feats = engine_drift.features(ExposureCatalog(market.data).models(market.universe, engine_drift.NAME_THRESHOLD)[0])
    report = engine_drift.drift_check(inputs, feats)
    checks = [
        DriftCheck(
            portfolio_id=pk, prices_as_of=market.data.as_of, status=report.status[i],
            largest=float(report.largest[i]), largest_label=report.largest_label[i][:80],
            since_plan=None if np.isnan(report.since_plan[i]) else float(report.since_plan[i]),
            items=report.items[i], limits=report.limits[i], plan_run_id=rows.plan_run[i],
        )
        for i, pk in enumerate(rows.ids)
        if valued[i]
    ]
    with transaction.atomic():
        alerts = _alerts_raise(checks, now) if send else []
        checks_write(checks, now)
        if alerts:
            _emails_queue(alerts, rows)
    return DriftOutcome(checks=checks, names=dict(zip(rows.ids, rows.names, strict=True)), alerts=alerts)


_COPY_COLUMNS = ("id", "portfolio_id", "checked_at", "prices_as_of", "status", "largest", "largest_label",
                 "since_plan", "items", "limits", "plan_run_id", "recompute_run_id", "alerted_at")


def checks_write(checks: list[DriftCheck], now: dt.datetime) -> None:
    """Insert the checks (their ids set): on PostgreSQL with COPY and ids drawn from the sequence first
    (ten times faster than a bulk INSERT of JSON rows), elsewhere with bulk_create."""
    for check in checks:
        check.checked_at = now
    if connection.vendor != "postgresql" or not checks:
        DriftCheck.objects.bulk_create(checks, batch_size=BULK)
        return
    table = DriftCheck._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                       [table, len(checks)])
        for check, (pk,) in zip(checks, cursor.fetchall(), strict=True):
            check.pk = pk
        copy = f"COPY {connection.ops.quote_name(table)} ({', '.join(_COPY_COLUMNS)}) FROM STDIN"
        with cursor.cursor.copy(copy) as sink:
            for c in checks:
                sink.write_row((c.pk, c.portfolio_id, c.checked_at, c.prices_as_of, c.status, c.largest,
                                c.largest_label, c.since_plan, json.dumps(c.items), json.dumps(c.limits),
                                c.plan_run_id, c.recompute_run_id, c.alerted_at))


def _worse(check: DriftCheck, last: DriftCheck | None) -> bool:
    """Whether `check` calls for an alert although `last` was mailed within the week."""
    if last is None:
        return True
    if STATUS_RANK[check.status] > STATUS_RANK[last.status]:
        return True
    return check.largest > last.largest + WORSE_BY


def _alerts_raise(checks: list[DriftCheck], now: dt.datetime) -> list[DriftCheck]:
    """Inside the check's transaction, before the checks are written: pick the ones to raise (not mailed
    within the week unless worse) and request their recomputes."""
    out = [c for c in checks if c.status != DriftCheck.Status.IN_BAND]
    last = drift_last_alerts(portfolio_ids=[c.portfolio_id for c in out], since=now - REPEAT_AFTER)
    due = [c for c in out if _worse(c, last.get(c.portfolio_id))]
    if not due:
        return []
    from portfolios.recommendations.services import recompute_request_bulk

    runs = recompute_request_bulk(portfolio_ids=[c.portfolio_id for c in due])
    for check in due:
        check.alerted_at = now
        check.recompute_run_id = runs.get(check.portfolio_id)
    return due


def _emails_queue(alerts: list[DriftCheck], rows: PortfolioRows) -> None:
    """Queue the e-mail of each written alert whose owner wants one, once the transaction commits."""
    owner = dict(zip(rows.ids, rows.owners, strict=True))
    modes = alert_modes(user_ids={owner[c.portfolio_id] for c in alerts})
    mail = [c.pk for c in alerts if modes[owner[c.portfolio_id]] == DriftAlertSetting.Mode.DRIFT]
    transaction.on_commit(lambda: _enqueue_emails(mail))


def _enqueue_emails(check_ids: list[int]) -> None:
    from django.conf import settings

    from portfolios.drift.tasks import drift_alert_email

    queue = getattr(settings, "DRIFT_EMAIL_QUEUE", None)  # None: the default queue (tests route mail apart)
    for check_id in check_ids:
        try:
            drift_alert_email.apply_async((check_id,), queue=queue)
        except Exception:  # broker down: the check stays recorded; the next breach mails again
            logger.warning("could not queue the drift e-mail of check %s", check_id)
            return


def drift_after_refresh() -> dict[str, int]:
    """The refresh task's one call: check every portfolio, raise alerts, send the weekly digests due."""
    try:
        outcome = drift_check_run(send=True)
    except EngineError as exc:  # bad market data: the prices are written; the next refresh checks again
        logger.warning("drift check skipped: %s", exc)
        return {"checked": 0, "alerts": 0, "digests": 0, "error": str(exc)}
    except Exception as exc:  # never fail the refresh (its prices are written) for the check after it
        logger.exception("drift check failed")
        return {"checked": 0, "alerts": 0, "digests": 0, "error": type(exc).__name__}
    from portfolios.drift.emails import digests_send_due

    return {"checked": len(outcome.checks), "alerts": len(outcome.alerts), "digests": digests_send_due()}


def alert_mode_set(*, user, mode: str) -> DriftAlertSetting:
    setting, _ = DriftAlertSetting.objects.update_or_create(user=user, defaults={"mode": mode})
    return setting


def portfolio_target_set(*, portfolio: Portfolio, target: dict, bands: dict | None = None) -> Portfolio:
    """Store a validated target (and bands); the thesis and neutral choices set `use_views`, as the
    options form does. A new target recomputes the suggestion when there are holdings (bands alone do not)."""
    from portfolios.models import Holding
    from portfolios.recommendations.services import rebalance_run_request

    with transaction.atomic():
        changed = target != target_effective(target=portfolio.target, use_views=portfolio.use_views)
        portfolio.target = target
        if target["kind"] != "custom":
            portfolio.use_views = target["kind"] == "thesis"
        if bands is not None:
            portfolio.bands = bands
        portfolio.save(update_fields=["target", "use_views", "bands", "updated_at"])
        if changed and Holding.objects.filter(account__portfolio=portfolio).exists():
            rebalance_run_request(portfolio=portfolio, trigger=RebalanceRun.Trigger.OPTIONS)
    return portfolio
