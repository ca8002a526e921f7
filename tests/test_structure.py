"""The shape of the code: small files, short functions, no import cycles, and the import contracts kept."""

from __future__ import annotations

import ast
import graphlib
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("reptile_engine", "reptile_gui")
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60
SOURCES = sorted(path for package in PACKAGES for path in (REPO / package).rglob("*.py"))


def _relative(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def _functions(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def test_the_packages_have_sources():
    assert {_relative(path).split("/")[0] for path in SOURCES} == set(PACKAGES)


def test_no_source_file_is_too_long():
    long_files = []
    for path in SOURCES:
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_FILE_LINES:
            long_files.append(f"{_relative(path)}: {lines} lines")
    assert not long_files, f"files over {MAX_FILE_LINES} lines (split them):\n  " + "\n  ".join(long_files)


def test_no_function_is_too_long():
    long_functions = []
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _functions(tree):
            lines = node.end_lineno - node.lineno + 1
            if lines > MAX_FUNCTION_LINES:
                long_functions.append(f"{_relative(path)}:{node.lineno} {node.name}: {lines} lines")
    assert not long_functions, (f"functions over {MAX_FUNCTION_LINES} lines (split them):\n  "
                                + "\n  ".join(long_functions))


def test_no_import_cycles_between_modules():
    grimp = pytest.importorskip("grimp", reason="grimp comes with import-linter (the dev extras)")
    # An import only a type checker follows (``if TYPE_CHECKING:``) closes no cycle at run time.
    graph = grimp.build_graph(*PACKAGES, cache_dir=None, exclude_type_checking_imports=True)
    imports = {module: {imported for imported in graph.find_modules_directly_imported_by(module)
                        if imported.split(".")[0] in PACKAGES}
               for module in graph.modules if module.split(".")[0] in PACKAGES}
    cycles = []
    while True:
        try:
            graphlib.TopologicalSorter(imports).prepare()
            break
        except graphlib.CycleError as exc:
            cycle = exc.args[1]  # each module in it is imported by the next one
            cycles.append(" -> ".join(reversed(cycle)))
            imports[cycle[1]].discard(cycle[0])
    assert not cycles, ("import cycles, each module importing the next (move the shared part down a layer):\n  "
                        + "\n  ".join(cycles))


def test_both_packages_have_layer_contracts_and_the_engine_stays_headless():
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    layered = {container for contract in contracts if contract["type"] == "layers"
               for container in contract.get("containers", [])}
    assert set(PACKAGES) <= layered
    headless = [contract for contract in contracts if contract["type"] == "forbidden"
                and contract["source_modules"] == ["reptile_engine"]]
    assert headless and {"reptile_gui", "PySide6", "pyqtgraph"} <= set(headless[0]["forbidden_modules"])


def test_lint_imports_keeps_every_contract():
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if lint_imports is None:
        pytest.skip("lint-imports is not installed (it comes with the dev extras)")
    result = subprocess.run([lint_imports, "--no-cache", "--no-logo"], cwd=REPO, capture_output=True, text=True,
                            timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
