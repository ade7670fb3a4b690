"""The package's layering holds (issue 12): the import-linter contracts of pyproject.toml
(api -> engine -> net | store -> core, core pure, engine/services.py the only composition
root, Cluster importing only leaf modules), and no import dodges them.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.support.paths import REPO as ROOT

SRC = ROOT / "src" / "miroir"


def test_import_contracts_kept():
    # The source tree of this checkout, whatever is installed.
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    script = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    r = subprocess.run(
        [sys.executable, "-c", script, "--no-cache"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "0 broken" in r.stdout


def _python_files(*parts: str) -> list[Path]:
    return sorted(p for part in parts for p in (SRC / part).rglob("*.py"))


def test_no_import_dodges_the_layering():
    """No `TYPE_CHECKING` block and no function-level import of our own modules in the
    engine and the API: both hid the cycle the contracts now forbid."""
    found: list[str] = []
    for path in _python_files("engine", "api"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                found.append(f"{path.relative_to(SRC)}:{node.lineno}: TYPE_CHECKING")
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.ImportFrom) and (inner.module or "").startswith("miroir"):
                        found.append(f"{path.relative_to(SRC)}:{inner.lineno}: import inside {node.name}()")
    assert not found, found


def test_cluster_is_typed_everywhere():
    """The cluster is passed as `Cluster`, and services never attach themselves to it."""
    pattern = re.compile(r"cluster: Any|setattr\(cluster|getattr\(cluster")
    found = [
        f"{path.relative_to(SRC)}:{i}: {line.strip()}"
        for path in _python_files(".")
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line) or (path.parent.name == "api" and "engine: Any" in line)
    ]
    assert not found, found
