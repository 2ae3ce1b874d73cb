"""The suite's own layout. pytest collects the modules named `test_*.py` under tests/ (pyproject's
`python_files`): so a module named so holds tests, and a helper module (factories, fixtures,
fakes, support code) is named otherwise and holds none — its tests would never run."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _holds_tests(path: Path) -> bool:
    tree = ast.parse(path.read_text())
    return any(
        (isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test"))
        or (isinstance(node, ast.ClassDef) and node.name.startswith("Test"))
        for node in tree.body
    )


def test_pytest_collects_the_test_modules_under_tests():
    options = tomllib.loads((HERE.parent / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert options["testpaths"] == ["tests"]
    assert options["python_files"] == ["test_*.py"]
    assert "--strict-markers" in options["addopts"]
    assert {m.split(":")[0] for m in options["markers"]} == {"services", "slow", "e2e"}


def test_test_modules_hold_tests_and_helper_modules_hold_none():
    modules = [p for p in HERE.rglob("*.py") if "screenshots" not in p.parts]
    empty = [str(p.relative_to(HERE.parent)) for p in modules if p.name.startswith("test_") and not _holds_tests(p)]
    hidden = [str(p.relative_to(HERE.parent)) for p in modules if not p.name.startswith("test_") and _holds_tests(p)]
    assert not empty, f"named test_ but hold no tests (rename them, e.g. <topic>_support.py): {empty}"
    assert not hidden, f"hold tests pytest never collects (name them test_*.py): {hidden}"
