"""On-disk spool for batches the database could not take.

influxdb-client drops a batch once its retries run out and keeps nothing on disk, so the
gateway keeps its own: one file per batch, written to a temporary name, fsynced, then
renamed, so a batch is either wholly in the spool or not at all. Only after ``append``
returns may the caller acknowledge the batch's MQTT messages.

Files are named by a monotonically increasing number, so draining goes oldest first.
Thread-safe: the writer appends while the drainer reads and removes.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

SUFFIX = ".lp"


class SpoolFull(Exception):
    """The spool reached its size limit; the caller must not acknowledge the batch."""


class Spool:
    """A directory of line-protocol batch files.

    ``max_bytes`` caps the spool; past it ``append`` raises SpoolFull so that the
    messages stay unacknowledged in the broker (back-pressure instead of loss).
    """

    def __init__(self, directory: Path, max_bytes: int):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        # A crash between write and rename leaves a .tmp whose messages were never acked:
        # the broker redelivers them, so the partial file is garbage.
        for tmp in self.dir.glob("*.tmp"):
            tmp.unlink()
        files = self._files()
        self._next = int(files[-1].stem) + 1 if files else 0
        self._bytes = sum(f.stat().st_size for f in files)

    def _files(self) -> list[Path]:
        return sorted(self.dir.glob("*" + SUFFIX))

    @property
    def bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._files())

    def append(self, payload: bytes) -> Path:
        """Durably store one batch (newline-separated line protocol). Raises SpoolFull."""
        with self._lock:
            if self._bytes + len(payload) > self.max_bytes:
                raise SpoolFull(f"spool {self.dir} holds {self._bytes} bytes; limit {self.max_bytes}")
            number = self._next
            self._next += 1
        final = self.dir / f"{number:016d}{SUFFIX}"
        tmp = final.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
        dir_fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        with self._lock:
            self._bytes += len(payload)
        return final

    def oldest(self) -> tuple[Path, bytes] | None:
        """The oldest batch and its content, or None when the spool is empty."""
        files = self._files()
        if not files:
            return None
        return files[0], files[0].read_bytes()

    def remove(self, path: Path) -> None:
        """Delete a batch once the database has accepted it."""
        size = path.stat().st_size
        path.unlink()
        with self._lock:
            self._bytes -= size

    def set_aside(self, path: Path) -> Path:
        """Move a batch the database refuses (HTTP 400) to ``rejected/`` for an operator."""
        aside = self.dir / "rejected"
        aside.mkdir(exist_ok=True)
        size = path.stat().st_size
        target = aside / path.name
        os.replace(path, target)
        with self._lock:
            self._bytes -= size
        return target
