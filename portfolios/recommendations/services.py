"""Rebalance runs: request (create or supersede the pending run), compute, record.

Call points for other areas:
- `rebalance_run_request(portfolio=..., trigger=...)` after an import is confirmed, holdings or cash
  are edited, or options change. Queues the task with `transaction.on_commit`.
- `recompute_after_price_refresh(tickers=...)` after a price refresh changed those tickers' prices.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from django.db import IntegrityError, transaction

from portfolios.models import Portfolio, RebalanceRun


def run_inputs_for(portfolio: Portfolio) -> dict:
    """The options a run will use, taken from the portfolio's current settings."""
    return {
        "profile": portfolio.profile,
        "cash": float(portfolio.cash_change_usd),
        "buy_only": portfolio.buy_only,
        "keep": portfolio.keep_list,
        "fractional": portfolio.fractional,
        "max_turnover": portfolio.max_turnover,
        "use_views": portfolio.use_views,
    }


def rebalance_run_request(
    *, portfolio: Portfolio, trigger: str = RebalanceRun.Trigger.MANUAL, inputs: dict | None = None
) -> RebalanceRun:
    """Create the pending run for `portfolio`, or supersede the one already pending.

    At most one pending run exists per portfolio (a database constraint); a newer trigger updates
    its inputs. The task is queued once the surrounding transaction commits.
    """
    inputs = inputs if inputs is not None else run_inputs_for(portfolio)
    profile = inputs.get("profile", portfolio.profile)
    with transaction.atomic():
        run = (
            RebalanceRun.objects.select_for_update()
            .filter(portfolio=portfolio, status=RebalanceRun.Status.PENDING)
            .first()
        )
        if run is not None:
            run.inputs, run.trigger, run.profile = inputs, trigger, profile
            run.save(update_fields=["inputs", "trigger", "profile"])
        else:
            try:
                with transaction.atomic():
                    run = RebalanceRun.objects.create(
                        portfolio=portfolio, trigger=trigger, profile=profile, inputs=inputs
                    )
            except IntegrityError:  # a concurrent request created it first
                run = RebalanceRun.objects.get(portfolio=portfolio, status=RebalanceRun.Status.PENDING)
                run.inputs, run.trigger, run.profile = inputs, trigger, profile
                run.save(update_fields=["inputs", "trigger", "profile"])
        run_id = run.pk
        transaction.on_commit(lambda: _enqueue(run_id))
    return run


def _enqueue(run_id: int) -> None:
    from portfolios.recommendations.tasks import rebalance_run_execute

    try:
        rebalance_run_execute.delay(run_id)
    except Exception:  # broker down: the run stays pending and the page says "recompute pending"
        import logging

        logging.getLogger(__name__).warning("could not queue run %s: broker unavailable", run_id)


def recompute_after_price_refresh(*, tickers: Iterable[str], chunk_size: int = 25, batch_size: int = 1000) -> int:
    """Queue a run for every portfolio holding any of `tickers`, fanned out in chunks.

    Pending runs are created (or superseded) in bulk, `batch_size` portfolios per transaction; as each
    batch commits, its run ids go to the workers as Celery chunks (so the workers start on the first
    batch while the next is written), and each worker process solves many portfolios in a row,
    keeping its compiled optimisation problems. Returns how many portfolios were queued.
    """
    tickers = list(tickers)
    if not tickers:
        return 0
    portfolio_ids = list(
        Portfolio.objects.filter(accounts__holdings__security__ticker__in=tickers)
        .values_list("id", flat=True)
        .distinct()
    )
    for start in range(0, len(portfolio_ids), batch_size):
        batch = Portfolio.objects.filter(id__in=portfolio_ids[start : start + batch_size])
        with transaction.atomic():
            pending = {
                run.portfolio_id: run
                for run in RebalanceRun.objects.select_for_update().filter(
                    portfolio__in=batch, status=RebalanceRun.Status.PENDING
                )
            }
            new_runs = []
            for portfolio in batch:
                if portfolio.id not in pending:
                    new_runs.append(
                        RebalanceRun(
                            portfolio=portfolio,
                            trigger=RebalanceRun.Trigger.PRICES,
                            profile=portfolio.profile,
                            inputs=run_inputs_for(portfolio),
                        )
                    )
                # A pending run keeps the options it was asked with; it will simply see the new prices.
            if pending:
                RebalanceRun.objects.filter(pk__in=[r.pk for r in pending.values()]).update(
                    trigger=RebalanceRun.Trigger.PRICES
                )
            created = RebalanceRun.objects.bulk_create(new_runs)
            run_ids = [run.pk for run in pending.values()] + [run.pk for run in created]
            transaction.on_commit(functools.partial(_enqueue_chunks, run_ids, chunk_size))
    return len(portfolio_ids)


def _enqueue_chunks(run_ids: list[int], chunk_size: int) -> None:
    from portfolios.recommendations.tasks import rebalance_run_execute

    if not run_ids:
        return
    try:
        rebalance_run_execute.chunks([(run_id,) for run_id in run_ids], chunk_size).apply_async()
    except Exception:
        import logging

        logging.getLogger(__name__).warning("could not queue %s runs: broker unavailable", len(run_ids))
