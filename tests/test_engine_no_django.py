"""The engine package never imports Django (nor the Django app): parse every source file."""

from __future__ import annotations

import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parent.parent / "engine"
FORBIDDEN = ("django", "rest_framework", "portfolios", "advisor", "celery")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "__import__" and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.add(arg.value)
    return found


def test_no_engine_module_imports_django():
    files = sorted(ENGINE.rglob("*.py"))
    assert len(files) >= 10
    offenders = {
        f"{path.relative_to(ENGINE.parent)}: {module}"
        for path in files
        for module in imported_modules(path)
        if module.split(".")[0] in FORBIDDEN
    }
    assert not offenders, offenders


def test_the_checker_itself_catches_an_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from django.conf import settings\nimport os\n")
    assert "django.conf" in imported_modules(bad)
