"""`make test` (scripts/run_tests.py) runs ruff, mypy and `makemigrations --check` before pytest, and any of
them failing fails the run without starting pytest."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "run_tests.py"


@pytest.fixture
def run_tests():
    spec = importlib.util.spec_from_file_location("run_tests_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("failing", ["ruff", "mypy", "makemigrations"])
def test_a_failing_check_stops_the_run(run_tests, monkeypatch, failing):
    ran: list[str] = []

    def call(command, **kwargs):
        text = " ".join(map(str, command))
        ran.append(text)
        return 1 if failing in text else 0

    monkeypatch.setattr(run_tests.subprocess, "call", call)
    assert run_tests.static_checks({"PATH": ""}) is False
    assert not any("pytest" in command for command in ran)
    assert failing in ran[-1]


def test_all_three_checks_run_when_they_pass(run_tests, monkeypatch):
    ran: list[str] = []
    monkeypatch.setattr(run_tests.subprocess, "call", lambda command, **kwargs: ran.append(" ".join(command)) or 0)
    assert run_tests.static_checks({"PATH": ""}) is True
    assert [next(w for w in ("ruff", "mypy", "makemigrations") if w in c) for c in ran] == [
        "ruff", "mypy", "makemigrations"]
