"""The virtual board (virtualboard.py, mpy/virtualboard.mjs) is driven by real mpremote like
a board on a serial port: CLI and Python API list, copy, hash and make directories on its
flash, run code, reset it (files survive, boots are counted), import mpy-cross output, and
its boot runs the firmware's config check (``main.check()``) and shows what it printed."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading

import pytest
import serial
from mpremote.transport_serial import SerialTransport

from provisioning.stack.services import wait_until

from .virtualboard import VirtualBoard

UID = bytes.fromhex("3c71bf0a1b2c")
# Every byte value, the REPL's control characters included, in a file bigger than a chunk.
BLOB = bytes(range(256)) * 12 + b"\x01\x02\x03\x04\x05A\x01\r\n"


@pytest.fixture
def board(tmp_path):
    with VirtualBoard(tmp_path / "flash", unique_id=UID) as b:
        # mpremote blocks on a pty read with no timeout: if the board stops answering,
        # closing it ends that read with an error, so the test fails instead of hanging.
        guard = threading.Timer(25, b.close)
        guard.start()
        try:
            yield b
        finally:
            guard.cancel()


def mpremote(board, *args, check=True):
    r = subprocess.run([sys.executable, "-m", "mpremote", "connect", board.port, *args],
                       capture_output=True, text=True, timeout=20)
    if check:
        assert r.returncode == 0, (args, r.stdout, r.stderr, board.transcript()[-500:])
    return r


def booted(board, n):
    """Wait for the n-th hard boot to reach the friendly REPL prompt."""
    wait_until(lambda: board.boots == n and board.transcript().endswith(b">>> "), 10, f"boot {n} prompt")


def test_mpremote_cli_lists_copies_hashes_runs_and_resets(board, tmp_path):
    booted(board, 1)
    local = tmp_path / "app.py"
    local.write_bytes(b"VALUE = 41\n" + (b"# " + bytes(range(32, 127)) + b"\n") * 4)  # > 256 B: chunks
    digest = hashlib.sha256(local.read_bytes()).hexdigest()

    mpremote(board, "fs", "mkdir", ":lib")
    mpremote(board, "fs", "cp", str(local), ":lib/app.py")
    assert (board.flash_dir / "lib" / "app.py").read_bytes() == local.read_bytes()  # written through
    listing = mpremote(board, "fs", "ls", ":lib").stdout
    assert f"{local.stat().st_size} app.py" in listing
    assert digest in mpremote(board, "fs", "sha256sum", ":lib/app.py").stdout
    assert "lib/" in mpremote(board, "fs", "ls").stdout
    out = mpremote(board, "exec", "import machine, sys; sys.path.insert(0, '/lib'); import app; "
                   "print(machine.unique_id().hex(), app.VALUE + 1)").stdout
    assert out.split() == [UID.hex(), "42"]
    missing = mpremote(board, "fs", "cat", ":nope.txt", check=False)
    assert missing.returncode != 0 and "No such file" in missing.stderr + missing.stdout
    again = mpremote(board, "fs", "mkdir", ":lib", check=False)
    assert again.returncode != 0 and "exists" in (again.stderr + again.stdout).lower()
    assert board.boots == 1 and board.soft_reboots >= 1  # mpremote soft-resets before fs commands

    mpremote(board, "reset")
    booted(board, 2)
    assert digest in mpremote(board, "sha256sum", ":lib/app.py").stdout
    assert board.exit_code is None, board.node_errors()


def test_serial_transport_api_and_hard_reset(board):
    booted(board, 1)
    t = SerialTransport(board.port)
    try:
        t.enter_raw_repl(soft_reset=False)
        assert t.eval("__import__('sys').implementation._mpy") == 774
        assert t.eval("__import__('machine').unique_id()") == UID
        t.fs_mkdir("/cfg")
        t.fs_writefile("/cfg/blob.bin", BLOB)
        assert t.fs_hashfile("/cfg/blob.bin", "sha256") == hashlib.sha256(BLOB).digest()
        assert t.fs_readfile("/cfg/blob.bin") == BLOB
        assert [(e.name, e.st_mode, e.st_size) for e in t.fs_listdir("/cfg")] == [("blob.bin", 0x8000, len(BLOB))]
        assert t.fs_stat("/cfg/blob.bin").st_size == len(BLOB)
        assert t.fs_isdir("/cfg") and not t.fs_isdir("/cfg/blob.bin")
        with pytest.raises(FileNotFoundError):
            t.fs_stat("/cfg/missing.json")
        with pytest.raises(FileExistsError):
            t.fs_mkdir("/cfg")
        # relative paths resolve against the board's cwd, as on a board
        assert t.eval("(__import__('os').chdir('/cfg'), open('blob.bin', 'rb').read(3), __import__('os').getcwd())") \
            == (None, b"\x00\x01\x02", "/cfg")
        # what mpremote's `reset` does: no reply is awaited, the board is gone
        t.exec_raw_no_follow("import machine; machine.reset()")
    finally:
        t.close()
    booted(board, 2)

    t = SerialTransport(board.port)
    try:
        t.enter_raw_repl(soft_reset=False)
        assert t.fs_hashfile("/cfg/blob.bin", "sha256") == hashlib.sha256(BLOB).digest()
        assert t.eval("__import__('os').getcwd()") == "/"  # a fresh interpreter
        t.exec("marker = 1")
        t.enter_raw_repl(soft_reset=True)  # Ctrl-D: "soft reboot", back in the raw REPL
        assert t.eval("'marker' in globals()") is False
        assert t.eval("__import__('machine').unique_id()") == UID
        t.exit_raw_repl()
    finally:
        t.close()
    assert board.boots == 2 and board.soft_reboots == 1 and board.exit_code is None
    assert board.transcript().count(b"MPY: soft reboot\r\n") == 1


def test_mpy_cross_output_imports_from_flash(board, tmp_path):
    src = tmp_path / "vitalsfmt.py"
    src.write_text("def bpm(beats, seconds):\n    return beats * 60 // seconds\n")
    subprocess.run([sys.executable, "-m", "mpy_cross", "-o", str(tmp_path / "vitalsfmt.mpy"), str(src)],
                   check=True, timeout=30)
    booted(board, 1)
    t = SerialTransport(board.port)
    try:
        t.enter_raw_repl(soft_reset=True)
        t.fs_mkdir("/lib")
        t.fs_writefile("/lib/vitalsfmt.mpy", (tmp_path / "vitalsfmt.mpy").read_bytes())
        t.exec("import vitalsfmt")
        assert t.eval("vitalsfmt.__file__") == "/lib/vitalsfmt.mpy"
        assert t.eval("vitalsfmt.bpm(18, 15)") == 72
    finally:
        t.close()


def test_boot_runs_the_config_check_and_prints_errors(tmp_path):
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "config.json").write_text('{"dev": "bed-07", "ward": "w2"}')
    (flash / "main.py").write_text(
        "import json, machine\n"
        "def check():\n"
        "    cfg = json.load(open('config.json'))\n"
        "    print('CHECK would run', cfg['dev'], 'in', cfg['ward'], 'uid', machine.unique_id().hex())\n")
    with VirtualBoard(flash, unique_id=UID) as board:
        booted(board, 1)
        text = board.transcript().decode()
        assert f"CHECK would run bed-07 in w2 uid {UID.hex()}" in text
        assert text.index("CHECK") < text.index("MicroPython v1.27")  # before the banner

        (flash / "main.py").write_text("import json\n")  # no check() yet
        board_t = SerialTransport(board.port)
        try:
            board_t.enter_raw_repl(soft_reset=False)
            board_t.exec_raw_no_follow("import machine; machine.reset()")
        finally:
            board_t.close()
        booted(board, 2)
        after = board.transcript().decode()[len(text):]
        assert "AttributeError" in after and "check" in after, after
        assert "CHECK" not in after

        # Ctrl-D at the friendly prompt: a soft reboot runs the check again, as main.py would
        (flash / "main.py").write_text("def check():\n    print('CHECK again')\n")
        seen = len(board.transcript())
        with serial.Serial(board.port, 115200, timeout=5) as port:
            port.write(b"\x04")
            wait_until(lambda: board.transcript()[seen:].endswith(b">>> "), 10, "soft reboot prompt")
        assert b"MPY: soft reboot\r\nCHECK again" in board.transcript()[seen:]
        assert board.boots == 2 and board.soft_reboots == 1
