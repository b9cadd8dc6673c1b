"""The core stays pure: it imports no I/O framework and never reads the clock.

import-linter (``lint-imports``, run by ``make test``) checks the import graph transitively; this
test adds what an import graph cannot see — calls that read the wall clock — and keeps a direct
check in the pytest run so a violation is reported next to the tests.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "identity_risk"
CORE = ["domain.py", "ingest", "signals", "scoring", "policy", "engine.py"]
FORBIDDEN_IMPORTS = {
    "kopf",
    "kubernetes",
    "aiohttp",
    "requests",
    "urllib3",
    "http",
    "socket",
    "asyncio",
    "subprocess",
    "time",
}
CLOCK_CALLS = {"now", "utcnow", "today", "time", "monotonic", "perf_counter", "time_ns"}


def core_files() -> list[Path]:
    files: list[Path] = []
    for entry in CORE:
        path = PACKAGE / entry
        if path.is_dir():
            files.extend(sorted(path.rglob("*.py")))
        elif path.exists():
            files.append(path)
    return files


def test_the_core_exists() -> None:
    assert len(core_files()) >= 5


@pytest.mark.parametrize("path", core_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_core_module_imports_no_io_framework(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert imported & FORBIDDEN_IMPORTS == set()


@pytest.mark.parametrize("path", core_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_core_module_never_reads_the_clock(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    clock_reads = [
        f"line {node.lineno}: {ast.unparse(node.func)}()"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in CLOCK_CALLS
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id in {"datetime", "date", "time", "dt"}
    ]
    assert clock_reads == [], "pass `now` in instead of reading the clock"
