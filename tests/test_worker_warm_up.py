"""A worker warms the engine's market caches at start, before its pool forks."""

from __future__ import annotations

import pytest

from portfolios.recommendations import engine_feed


def test_warm_up_builds_the_snapshot_that_runs_then_reuse(market):
    engine_feed._market = None
    message = engine_feed.warm_up()
    assert message.startswith("engine warmed in"), message
    current = engine_feed._market
    assert current is not None and len(current.menu) >= 2
    snapshot = current.snapshot
    assert "risk" in vars(snapshot) and "history" in vars(snapshot)  # built before any run
    assert engine_feed.market_snapshot() is snapshot  # a run after the warm-up finds it built
    request, used = engine_feed.build_request(
        lots=[engine_feed.Lot("A", "taxable", current.menu[0], 3.0)], cash=[], options=engine_feed.Options()
    )
    assert used is snapshot and request.market is snapshot.market


def test_a_new_market_data_version_swaps_the_snapshot(market, monkeypatch):
    engine_feed._market = None
    first = engine_feed.market_snapshot()
    token = first.version
    monkeypatch.setattr(engine_feed, "_version_token", lambda: (*token[:-1], "moved"))
    second = engine_feed.market_snapshot()
    assert second is not first and second.version[-1] == "moved"
    assert engine_feed.market_snapshot() is second


@pytest.mark.django_db(transaction=True)
def test_warm_up_on_an_empty_database_says_so_and_does_not_raise():
    engine_feed._market = None
    assert engine_feed.warm_up() == "engine warm-up skipped: no priced menu funds yet"


def test_warm_up_never_raises(monkeypatch):
    def broken():
        raise RuntimeError("database is not migrated")

    monkeypatch.setattr(engine_feed, "feed_market", broken)
    assert engine_feed.warm_up() == "engine warm-up skipped (RuntimeError: database is not migrated)"


@pytest.mark.broker
def test_a_worker_logs_its_warm_up_before_taking_tasks(market):
    from tests.workers import Worker

    worker = Worker(concurrency=1)
    try:
        worker.wait_ready()
        assert "engine warmed in" in worker.log()
    finally:
        worker.stop()
