"""The clinical core (``gateway.clinical``: alarm rules, alarm engine, NEWS2, alarm load
arithmetic) is pure: no network, database, terminal, command-line or file I/O, time passed in.

Two checks that fail as soon as someone adds I/O to the core: what importing the core loads in
a fresh interpreter (transitively), and what the core's own source imports and calls.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "gateway" / "clinical"
MODULES = sorted(f"gateway.clinical.{p.stem}" for p in CORE.glob("*.py") if p.stem != "__init__")

# Top-level modules the core must never load, directly or through what it imports.
FORBIDDEN = {
    "paho", "sqlite3", "_sqlite3", "influxdb_client", "rich", "argparse", "socket", "_socket", "ssl",
    "urllib", "http", "subprocess", "pathlib", "shutil", "tempfile", "threading", "logging", "asyncio",
}
# What the core's own modules may import: pure standard library, msgspec, itself, and the pure
# gateway modules it builds on (the contract's structs and ids, the TOML key locator).
ALLOWED = {
    "__future__", "collections", "copy", "dataclasses", "datetime", "enum", "functools", "itertools",
    "math", "re", "statistics", "tomllib", "typing", "msgspec",
    "gateway.clinical", "gateway.contract", "gateway.tomlkeys",
}
# Calls that do I/O or read a clock.
FORBIDDEN_CALLS = {"open", "print", "input", "__import__", "exec", "eval"}
FORBIDDEN_ATTRS = {("time", "time"), ("time", "time_ns"), ("time", "monotonic"), ("datetime", "now"),
                   ("datetime", "utcnow"), ("date", "today")}


def test_the_core_modules_are_found():
    assert {"gateway.clinical.engine", "gateway.clinical.rules", "gateway.clinical.news2",
            "gateway.clinical.alarmload"} <= set(MODULES)


def test_importing_the_core_loads_no_io_library():
    # msgspec is allowed, and what it loads itself (typing_extensions loads _socket) is its own.
    code = (
        "import sys, json, msgspec; before = set(sys.modules)\n"
        + "".join(f"import {m}\n" for m in MODULES)
        + "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = {name.split(".")[0] for name in json.loads(out)}
    assert not loaded & FORBIDDEN, f"the clinical core loads {sorted(loaded & FORBIDDEN)}"


def _imports(tree: ast.Module, module: str) -> set[str]:
    package = module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                found.add(".".join(base + ([node.module] if node.module else [])))
            else:
                found.add(node.module or "")
    return found


def _allowed(name: str) -> bool:
    return any(name == a or name.startswith(a + ".") for a in ALLOWED)


def test_the_core_source_imports_and_calls_nothing_that_does_io():
    problems = []
    for path in sorted(CORE.glob("*.py")):
        module = f"gateway.clinical.{path.stem}"
        tree = ast.parse(path.read_text(), str(path))
        for name in _imports(tree, module):
            # A type-only import (under TYPE_CHECKING) is allowed to name the shell's types.
            if not _allowed(name) and not _type_only(tree, name, module):
                problems.append(f"{path.name} imports {name}")
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                f = node.func
                if isinstance(f, ast.Name) and f.id in FORBIDDEN_CALLS:
                    problems.append(f"{path.name}:{node.lineno} calls {f.id}()")
                if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and (f.value.id, f.attr) in FORBIDDEN_ATTRS:
                    problems.append(f"{path.name}:{node.lineno} reads the clock: {f.value.id}.{f.attr}()")
    assert not problems, "\n".join(problems)


def _type_only(tree: ast.Module, name: str, module: str) -> bool:
    for node in tree.body:
        if (isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
            inner = ast.Module(body=node.body, type_ignores=[])
            if name in _imports(inner, module):
                return True
    return False


def test_the_rule_catches_a_forbidden_import(tmp_path):
    # The checker itself can fail: a core-like module that imports sqlite3 is reported.
    tree = ast.parse("import sqlite3\nfrom ..contract import Reading\nfrom pathlib import Path\n")
    names = _imports(tree, "gateway.clinical.x")
    assert {n for n in names if not _allowed(n)} == {"sqlite3", "pathlib"}
