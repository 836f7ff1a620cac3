"""The firmware type-checks against MicroPython's board stubs (micropython-esp32-stubs and
micropython-rp2-stubs, installed by `make stubs` into .stubs/), with pyright (`make npm`).

The stubs replace Python's standard library with MicroPython's, so a call a board does not
have (a CPython-only module or function) fails here, not on the ward. The rules are pyright's
"basic" set without the Optional-narrowing checks: the app's state machine guards those at
run time (e.g. the outbox exists only while powered).
"""

from __future__ import annotations

import json
import subprocess

import pytest

from .conftest import REPO

HERE = REPO / "tests" / "firmware" / "typecheck"


@pytest.mark.parametrize("board", ["esp32", "rp2"])
def test_firmware_type_checks_against_board_stubs(board):
    pyright = HERE / "node_modules" / ".bin" / "pyright"
    assert pyright.exists(), "pyright is not installed: run 'make npm' (make test does)"
    stubs = REPO / ".stubs" / board / "machine.pyi"
    assert stubs.exists(), f"{board} stubs are not installed: run 'make stubs' (make test does)"
    r = subprocess.run([str(pyright), "-p", f"pyrightconfig.{board}.json", "--outputjson"],
                       cwd=HERE, capture_output=True, text=True, timeout=300)
    report = json.loads(r.stdout)
    errors = [f"{d['file'].replace(str(REPO) + '/', '')}:{d['range']['start']['line'] + 1}: {d['message']}"
              for d in report["generalDiagnostics"] if d["severity"] == "error"]
    assert report["summary"]["filesAnalyzed"] >= 10
    assert errors == [], "\n".join(errors)
