"""The package's folders read as the pipeline, and each layer imports only those below it.

extract → warehouse (load) → metrics → checks → alerts → report, with flows and the
CLI on top; ``common`` and ``config`` are the ground every layer stands on, and the
demo source systems stand aside (they import nothing of the pipeline, so they stay
an honest outside server). Only the CLI starts the demo.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import rulewatch

PACKAGE = Path(rulewatch.__file__).resolve().parent
LAYERS = [
    "common",
    "config",
    "extract",
    "warehouse",
    "metrics",
    "checks",
    "alerts",
    "report",
    "flows",
    "cli",
]
RANK = {"common": 0, "config": 0, **{name: i for i, name in enumerate(LAYERS) if i >= 2}}


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rulewatch"):
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("rulewatch")]
    return found


def test_no_module_sits_loose_at_the_package_root() -> None:
    loose = [p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"]
    assert loose == []
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert folders == set(LAYERS) | {"demo"}


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_module_imports_only_its_layer_and_those_below(path: Path) -> None:
    layer = path.relative_to(PACKAGE).parts[0]
    if layer == "__init__.py":
        return
    wrong = []
    for line, module in _imports(path):
        parts = module.split(".")
        if len(parts) < 2:
            wrong.append(f"line {line}: {module}")
            continue
        other = parts[1]
        if layer == "demo":
            allowed = other == "demo"
        elif other == "demo":
            allowed = layer == "cli"
        else:
            allowed = RANK[other] <= RANK[layer]
        if not allowed:
            wrong.append(f"line {line}: {layer} imports {module}")
    assert wrong == []
