"""The layers, read from the source: the ledger sits at the bottom and imports nothing above it.

``notifier/ledger/`` is told plans, the channel rule and the copy's fingerprint as data (``ledger.plans``); it never
reaches up for the planner, the renderer or anything built on them. Every ``import`` counts, at module level or
inside a function, absolute or relative.
"""

from __future__ import annotations

import ast
from pathlib import Path

import notifier

PACKAGE = Path(notifier.__file__).parent
LEDGER = PACKAGE / "ledger"
ABOVE_THE_LEDGER = ("notifier.render", "notifier.planner", "notifier.dispatch", "notifier.maintenance",
                    "notifier.channels", "notifier.web", "notifier.studio", "notifier.cli", "notifier.reports",
                    "notifier.distributed")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module an ``import`` in ``source`` names (``from a import b`` names ``a`` and ``a.b``), relative ones
    resolved against ``module``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, *([base] if base else [])])
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def above_the_ledger(names: set[str]) -> set[str]:
    return {name for name in names for layer in ABOVE_THE_LEDGER if name == layer or name.startswith(layer + ".")}


def test_no_ledger_module_imports_the_planner_the_renderer_or_any_layer_above_the_ledger() -> None:
    found = {}
    modules = sorted(LEDGER.rglob("*.py"))
    for path in modules:
        names = imported(path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py")
        if above_the_ledger(names):
            found[str(path.relative_to(PACKAGE.parent))] = sorted(above_the_ledger(names))
    assert LEDGER / "queries.py" in modules and LEDGER / "migrations" / "env.py" in modules
    assert found == {}


def test_the_layer_check_sees_imports_inside_functions_from_the_package_and_relative_ones() -> None:
    source = ("import notifier.channels.base\n"
              "from notifier import render\n"
              "from .. import planner\n"
              "def later():\n"
              "    from notifier.web.app import create_app\n"
              "from notifier.campaign import Campaign\n"
              "from notifier.ledger import models\n")
    assert above_the_ledger(imported(source, "notifier.ledger.queries")) == {
        "notifier.channels.base", "notifier.render", "notifier.planner", "notifier.web.app",
        "notifier.web.app.create_app"}
