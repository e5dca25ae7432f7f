"""The engine's entry point is light and unambiguous: `engine.types` and `engine.profiles` load without
cvxpy, names load lazily, and no public name of the package is also the name of one of its modules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import engine

ROOT = Path(__file__).resolve().parent.parent


def _imports_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print(' '.join(sorted(sys.modules)))"],
                         cwd=ROOT, capture_output=True, text=True, check=True, timeout=120)
    return set(out.stdout.split())


def test_types_and_profiles_import_without_cvxpy():
    loaded = _imports_after("import engine.types, engine.profiles, engine.tickers, engine.errors")
    assert "engine.types" in loaded and "engine.profiles" in loaded
    assert "cvxpy" not in loaded and "clarabel" not in loaded and "engine.pipeline" not in loaded


def test_the_rebalance_function_loads_the_pipeline_on_first_use():
    loaded = _imports_after("import engine; engine.rebalance")
    assert "engine.pipeline" in loaded


def test_no_public_name_shadows_a_module():
    modules = {path.stem for path in (ROOT / "engine").glob("*.py")}
    assert not set(engine.__all__) & modules
    assert callable(engine.rebalance) and engine.rebalance.__module__ == "engine.pipeline"
    assert sorted(engine.__all__) == sorted(set(engine.__all__))
    for name in engine.__all__:
        assert getattr(engine, name) is not None


def test_an_unknown_name_is_an_attribute_error():
    try:
        engine.not_a_name  # noqa: B018
    except AttributeError as exc:
        assert "not_a_name" in str(exc)
    else:
        raise AssertionError("engine.not_a_name should not exist")
