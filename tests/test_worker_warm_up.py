"""A worker warms the engine's market caches at start, before its pool forks."""

from __future__ import annotations

import pytest

from portfolios.recommendations import engine_feed


def test_warm_up_builds_the_shared_frames_that_runs_then_reuse(market):
    engine_feed._frames = None
    message = engine_feed.warm_up()
    assert message.startswith("engine warmed in"), message
    frames = engine_feed._frames
    assert frames is not None and len(frames.menu) >= 2
    assert engine_feed._market_frames() is frames  # a run after the warm-up finds them built


@pytest.mark.django_db(transaction=True)
def test_warm_up_on_an_empty_database_says_so_and_does_not_raise():
    engine_feed._frames = None
    assert engine_feed.warm_up() == "engine warm-up skipped: no priced menu funds yet"


def test_warm_up_never_raises(monkeypatch):
    def broken():
        raise RuntimeError("database is not migrated")

    monkeypatch.setattr(engine_feed, "_market_frames", broken)
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
