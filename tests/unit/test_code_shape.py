"""The code keeps the shape STYLE asks for: short functions, thin Lambda handlers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_PACKAGES = ("ledger", "projections", "archive", "handlers", "devstack", "cli")
FUNCTION_LINES_MAX = 70
HANDLER_MODULE_LINES_MAX = 400


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def long_functions(source: str) -> list[tuple[str, int]]:
    """(name, lines) of every function in ``source`` longer than the limit, decorators included."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            first = min([node.lineno, *(decorator.lineno for decorator in node.decorator_list)])
            assert node.end_lineno is not None
            lines = node.end_lineno - first + 1
            if lines > FUNCTION_LINES_MAX:
                found.append((node.name, lines))
    return found


@pytest.mark.parametrize("package", PRODUCTION_PACKAGES)
def test_no_production_function_is_longer_than_the_limit(package: str) -> None:
    modules = _modules(package)
    assert modules, f"{package}/ has no modules: the guard would check nothing"
    found = {
        str(path.relative_to(ROOT)): functions
        for path in modules
        if (functions := long_functions(path.read_text(encoding="utf-8")))
    }
    assert found == {}


def test_no_handler_module_is_longer_than_the_limit() -> None:
    found = {
        str(path.relative_to(ROOT)): lines
        for path in _modules("handlers")
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > HANDLER_MODULE_LINES_MAX
    }
    assert found == {}


def test_a_function_one_line_over_the_limit_is_found() -> None:
    body = "\n".join(f"    value_{index} = {index}" for index in range(FUNCTION_LINES_MAX - 2))
    decorated = f"@staticmethod\ndef under() -> None:\n{body}\n"
    over = f"@staticmethod\n@staticmethod\ndef over() -> None:\n{body}\n"
    assert long_functions(decorated) == []
    assert long_functions(over) == [("over", FUNCTION_LINES_MAX + 1)]
