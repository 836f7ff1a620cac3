"""A virtual MicroPython board behind a pseudo-terminal, for tests that flash boards.

``VirtualBoard(flash_dir)`` runs real MicroPython 1.27 (the WebAssembly port under Node,
``mpy/virtualboard.mjs``) and bridges its serial bytes to a pty: ``.port`` is the slave's
path (``/dev/pts/N``), which mpremote (CLI or ``SerialTransport(port)``) opens like a board's
serial port. The board's filesystem is ``flash_dir`` on the host, so files survive resets and
a test can look at them directly; ``machine.unique_id()`` returns ``unique_id``.

Resets: ``machine.reset()`` ends the Node process with RESET_EXIT and the bridge starts a new
one (a hard boot: ``.boots`` counts them, the first included); Ctrl-D ends it with SOFT_EXIT or
SOFT_RAW_EXIT and the bridge starts a soft reboot (not counted). The pty stays open across
both; bytes sent while the board restarts wait in the pty, as in a UART's receive buffer.

``.transcript()`` is everything the board wrote to its serial line since start, including the
firmware's boot-time config check (``main.check()``) and mpremote's traffic.

Used by tests only (tests/firmware/test_virtualboard.py and the flashing tests).
"""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import threading
import tty
from pathlib import Path

MJS = Path(__file__).resolve().parent / "mpy" / "virtualboard.mjs"

# Exit codes of virtualboard.mjs; keep in step with it.
RESET_EXIT = 75
SOFT_EXIT = 76
SOFT_RAW_EXIT = 77
_BOOT_MODE = {RESET_EXIT: "hard", SOFT_EXIT: "soft", SOFT_RAW_EXIT: "soft-raw"}

DEFAULT_UID = bytes.fromhex("a4cf12345678")


class VirtualBoard:
    """One virtual board; a context manager (``close()`` on exit)."""

    def __init__(self, flash_dir: Path, unique_id: bytes = DEFAULT_UID):
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("node is not installed (make deps)")
        self.flash_dir = Path(flash_dir)
        self.flash_dir.mkdir(parents=True, exist_ok=True)
        self._cmd = [node, str(MJS), "--flash", str(self.flash_dir), "--uid", unique_id.hex()]
        self._master, self._slave = pty.openpty()
        # Raw: mpremote's Ctrl-A..E and every byte of a file pass unmodified, and no echo.
        # We keep the slave open so that the master never reads EIO between connections.
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._lock = threading.Lock()
        self._transcript = bytearray()
        self._node_errors = bytearray()
        self.boots = 0
        self.soft_reboots = 0
        self.exit_code: int | None = None  # set if Node ended without a reset (a crash)
        self._closing = False
        self._proc = self._start("hard")
        self._thread = threading.Thread(target=self._bridge, name="virtualboard", daemon=True)
        self._thread.start()

    def __enter__(self) -> VirtualBoard:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def transcript(self) -> bytes:
        """Every byte the board printed on its serial line since start."""
        with self._lock:
            return bytes(self._transcript)

    def node_errors(self) -> str:
        """Node's stderr (a crash of the virtual board itself, not MicroPython output)."""
        with self._lock:
            return self._node_errors.decode(errors="replace")

    def _start(self, boot: str) -> subprocess.Popen:
        if boot == "hard":
            self.boots += 1
        else:
            self.soft_reboots += 1
        proc = subprocess.Popen(self._cmd + ["--boot", boot], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd=MJS.parent, bufsize=0)
        threading.Thread(target=self._drain_stderr, args=(proc,), daemon=True).start()
        return proc

    def _drain_stderr(self, proc: subprocess.Popen) -> None:
        for chunk in iter(lambda: proc.stderr.read(4096), b""):
            with self._lock:
                self._node_errors += chunk

    def _to_pty(self, data: bytes) -> None:
        # Blocks while the pty is full (mpremote reads byte by byte); if nobody reads for 2 s
        # the rest is dropped, as a UART drops what no one receives.
        while data:
            _, w, _ = select.select([], [self._master], [], 2)
            if not w:
                return
            data = data[os.write(self._master, data):]

    def _bridge(self) -> None:
        proc = self._proc
        out = proc.stdout.fileno()
        while not self._closing:
            r, _, _ = select.select([self._master, out], [], [], 0.1)
            if out in r:
                data = os.read(out, 65536)
                if data:
                    with self._lock:
                        self._transcript += data
                    self._to_pty(data)
                    continue
                rc = proc.wait()
                proc.stdout.close()
                proc.stdin.close()
                if self._closing or rc not in _BOOT_MODE:
                    self.exit_code = rc
                    return
                proc = self._proc = self._start(_BOOT_MODE[rc])
                out = proc.stdout.fileno()
                continue
            if self._master in r:
                data = os.read(self._master, 4096)
                try:
                    proc.stdin.write(data)  # unbuffered (bufsize=0): all or an exception
                except BrokenPipeError:
                    pass  # the board is resetting: lost, as on a board

    def close(self) -> None:
        """Stop the board (kill Node) and close the pty."""
        if self._closing:
            return
        self._closing = True
        self._thread.join(5)
        proc = self._proc
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)
        for f in (proc.stdin, proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        os.close(self._master)
        os.close(self._slave)
