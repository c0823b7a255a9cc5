"""The package's layers read top to bottom, and no module imports itself round a circle.

The layer contracts live in ``pyproject.toml`` (``[tool.importlinter]``); imports inside functions
and under ``TYPE_CHECKING`` count, as grimp records them all.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.timeout(120)


def test_import_contracts_hold():
    """``lint-imports`` with the project's contracts (no cache: nothing is written into the tree)."""
    proc = subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()",
         "--no-logo", "--no-cache", str(ROOT / "pyproject.toml")],
        cwd=ROOT, capture_output=True, text=True, timeout=110, check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"an import contract is broken (pyproject.toml, [tool.importlinter]):\n{proc.stdout}{proc.stderr}",
                    pytrace=False)


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """One shortest circle through each import that lies on one, each circle reported once."""
    cycles: dict[frozenset[str], list[str]] = {}
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is not None:
                cycle = [importer, *back]
                cycles.setdefault(frozenset(cycle), cycle)
    return list(cycles.values())


def _describe(graph: grimp.ImportGraph, cycle: list[str]) -> str:
    steps = []
    for importer, imported in zip(cycle, cycle[1:]):
        lines = sorted({d["line_number"] for d in graph.get_import_details(importer=importer, imported=imported)})
        steps.append(f"  {importer} (line {', '.join(map(str, lines))}) imports {imported}")
    return " -> ".join(cycle) + "\n" + "\n".join(steps)


def test_no_import_cycles():
    graph = grimp.build_graph("thinksafe", cache_dir=None)
    cycles = import_cycles(graph)
    if cycles:
        pytest.fail("import circles among thinksafe's modules (move code to the layer it belongs to):\n"
                    + "\n".join(_describe(graph, c) for c in cycles), pytrace=False)
