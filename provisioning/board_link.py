"""A MicroPython board on a serial port, driven through mpremote's transport.

mpremote (``mpremote.transport_serial.SerialTransport``) does the raw-REPL protocol; this
module adds the few things flashing needs, each in as few round trips as possible over a
115200-baud line: identify the board, hash many files in one go, write files, run the
firmware's config check, reset. Who calls it: ``provisioning.device``, one link per board
and thread. The same code drives a real port (/dev/ttyUSB0) and a pseudo-terminal.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass

from mpremote.transport import TransportError
from mpremote.transport_serial import SerialTransport

# Every serial read gives up after this long: a board that stops answering fails its
# provisioning with a reason instead of hanging the batch.
READ_TIMEOUT_S = 10


class BoardError(Exception):
    """The board did not do what was asked; the message says what and why."""


@dataclass(frozen=True)
class BoardInfo:
    platform: str  # sys.platform: esp32, rp2 (others: emulated or unknown boards)
    version: str  # sys.version, e.g. "3.4.0; MicroPython v1.24.1 on 2024-11-29"
    mpy: int  # sys.implementation._mpy
    unique_id: str  # machine.unique_id() as hex, "" where unavailable

    @property
    def micropython(self) -> str:
        """"MicroPython v1.24.1" out of sys.version."""
        return self.version.split(";", 1)[-1].strip().split(" on ")[0] or self.version


# Runs on the board: sha256 of each path, or None when it is missing or a directory.
_HASHES = """
import hashlib, binascii
def _h(p):
    try:
        f = open(p, 'rb')
    except OSError:
        return None
    h = hashlib.sha256()
    b = bytearray(512)
    m = memoryview(b)
    while True:
        n = f.readinto(b)
        if not n:
            break
        h.update(m[:n])
    f.close()
    return binascii.hexlify(h.digest()).decode()
print(repr({p: _h(p) for p in %r}))
"""

# Runs on the board: every file under a folder, recursively, as paths.
_WALK = """
import os
def _w(d, out):
    try:
        items = list(os.ilistdir(d))
    except OSError:
        return out
    for it in items:
        p = d + '/' + it[0]
        if it[1] & 0x4000:
            _w(p, out)
        else:
            out.append(p)
    return out
print(repr(_w(%r, [])))
"""


class BoardLink:
    """An open raw-REPL session with one board. Use as a context manager."""

    def __init__(self, port: str):
        self.port = port
        try:
            self._t = SerialTransport(port, baudrate=115200, timeout=READ_TIMEOUT_S)
        except (TransportError, OSError) as exc:
            raise BoardError(f"cannot open {port}: {exc}") from None
        try:
            # soft_reset: a fresh interpreter, whatever the board was running before.
            self._t.enter_raw_repl(soft_reset=True)
        except (TransportError, OSError) as exc:
            self._t.close()
            raise BoardError(f"no MicroPython raw REPL on {port}: {exc}") from None

    def __enter__(self) -> "BoardLink":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._t.close()
        except OSError:
            pass

    def run(self, code: str, timeout: float = 30) -> str:
        """Execute ``code`` on the board; its printed output. BoardError with the board's
        traceback if it raised."""
        try:
            out, err = self._t.exec_raw(code, timeout=timeout)
        except (TransportError, OSError) as exc:
            raise BoardError(f"{self.port}: lost the board: {exc}") from None
        if err:
            raise BoardError(err.decode(errors="replace").strip().splitlines()[-1])
        return out.decode(errors="replace")

    def value(self, code: str, timeout: float = 30):
        """``code`` must print one Python literal last; that value."""
        text = self.run(code, timeout).strip().splitlines()
        try:
            return ast.literal_eval(text[-1])
        except (IndexError, SyntaxError, ValueError):
            raise BoardError(f"unexpected answer from the board: {text[-1:]!r}") from None

    def identify(self) -> BoardInfo:
        mpy, version, platform, uid = self.value(
            "import sys\n"
            "try:\n import machine, binascii\n u = binascii.hexlify(machine.unique_id()).decode()\n"
            "except Exception:\n u = ''\n"
            "print(repr((getattr(sys.implementation, '_mpy', 0), sys.version, sys.platform, u)))")
        return BoardInfo(platform, version, mpy, uid)

    def hashes(self, paths: list[str]) -> dict[str, str | None]:
        """sha256 hex of each path on the board (None: missing), in one round trip."""
        return self.value(_HASHES % (list(paths),), timeout=120)

    def files_under(self, folder: str) -> list[str]:
        return self.value(_WALK % (folder,))

    def write(self, path: str, data: bytes, progress: Callable[[int], None] | None = None) -> None:
        """Write ``data`` to ``path``, creating its folders; ``progress(bytes)`` per chunk."""
        folders = _parents(path)
        if folders:
            self.run("import os\nfor d in %r:\n try:\n  os.mkdir(d)\n except OSError:\n  pass\n" % (folders,))
        done = 0

        def chunk(sent: int, _total: int) -> None:
            nonlocal done
            if progress:
                progress(sent - done)
            done = sent

        try:
            self._t.fs_writefile(path, data, progress_callback=chunk)
        except (TransportError, OSError) as exc:
            raise BoardError(f"writing {path}: {exc}") from None

    def remove(self, path: str) -> None:
        self.run("import os\nos.remove(%r)" % (path,))

    def check(self) -> list[str]:
        """Run the firmware's config check (``main.check()``); its output lines. The board's
        ``/lib`` must already hold the firmware it is checking."""
        return self.run("import main\nmain.check()", timeout=60).splitlines()

    def reset(self) -> None:
        """Hard reset: the board boots into main.py. The link is closed afterwards."""
        try:
            self._t.exec_raw_no_follow("import machine\nmachine.reset()")
        except (TransportError, OSError):
            pass  # the board may reset before it answers
        self.close()


def _parents(path: str) -> list[str]:
    """"/lib/bedside/drivers/x.mpy" -> ["/lib", "/lib/bedside", "/lib/bedside/drivers"]."""
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]

