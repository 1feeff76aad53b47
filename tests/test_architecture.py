"""The package's wings import one way: surfaces -> report / track -> store -> config."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "flask_bitmapist"

# What each wing may import from the package, at run time or for types.
ALLOWED = {
    "store": {"config", "store"},
    "track": {"config", "state", "store", "track"},
    "report": {"config", "state", "store", "report"},
}


def imported_wings(path: Path) -> set[str]:
    """The first-level package modules that ``path`` imports."""
    module_parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = module_parts[: len(module_parts) - node.level]
                target = [*base, *(node.module or "").split(".")]
            else:
                target = (node.module or "").split(".")
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "flask_bitmapist" and len(parts) > 1:
                    found.add(parts[1])
            continue
        else:
            continue
        target = [part for part in target if part]
        if target[:1] != ["flask_bitmapist"]:
            continue
        if len(target) > 1:
            found.add(target[1])
        else:
            found.update(names)
    return found


@pytest.mark.parametrize("wing", sorted(ALLOWED))
def test_a_wing_imports_only_what_lies_below_it(wing: str) -> None:
    wrong = {
        str(path.relative_to(PACKAGE)): sorted(imported_wings(path) - ALLOWED[wing])
        for path in sorted((PACKAGE / wing).glob("*.py"))
    }
    assert {name: wings for name, wings in wrong.items() if wings} == {}


def test_state_needs_only_config_and_the_store_s_foundations_at_run_time() -> None:
    tree = ast.parse((PACKAGE / "state.py").read_text())
    runtime = {
        node.module
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.level
    }
    assert runtime == {"config", "store.backend", "store.layout", "store.systems"}
