"""On-disk spool for batches the database could not take.

influxdb-client drops a batch once its retries run out and keeps nothing on disk, so the
gateway keeps its own: one file per batch, written to a temporary name, fsynced, then
renamed, so a batch is either wholly in the spool or not at all. Only after ``append``
returns may the caller acknowledge the batch's MQTT messages.

Files are named by a monotonically increasing number, so draining goes oldest first. The
directory is listed once, at start; after that an in-memory index (oldest first) says what
is there, so neither appending nor draining lists or sorts the directory again.

Thread-safe: the writer appends while the drainer reads and removes.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from pathlib import Path

SUFFIX = ".lp"


class SpoolError(Exception):
    """The batch is not in the spool (full, or the disk failed); the caller must not
    acknowledge it. ``str()`` says why, for the log."""


class SpoolFull(SpoolError):
    """The spool reached its size limit."""


class Spool:
    """A directory of line-protocol batch files.

    ``max_bytes`` caps the spool; past it ``append`` raises SpoolFull so that the
    messages stay unacknowledged in the broker (back-pressure instead of loss). Any I/O
    error while appending (a full disk: ENOSPC, a read-only or failed filesystem) is handled
    the same way: the partial file is removed and ``SpoolError`` raised.
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
        files = sorted(self.dir.glob("*" + SUFFIX))
        self._index: deque[tuple[Path, int]] = deque((f, f.stat().st_size) for f in files)
        self._next = int(files[-1].stem) + 1 if files else 0
        self._bytes = sum(size for _, size in self._index)

    @property
    def bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._index)

    def append(self, payload: bytes) -> Path:
        """Durably store one batch (newline-separated line protocol).

        Raises SpoolFull past ``max_bytes``, SpoolError when the disk refuses it; in both
        cases nothing of the batch is left in the spool.
        """
        with self._lock:
            if self._bytes + len(payload) > self.max_bytes:
                raise SpoolFull(f"spool {self.dir} holds {self._bytes} bytes; limit {self.max_bytes}")
            number = self._next
            self._next += 1
        final = self.dir / f"{number:016d}{SUFFIX}"
        tmp = final.with_suffix(".tmp")
        try:
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
        except OSError as exc:
            for leftover in (tmp, final):
                try:
                    leftover.unlink()
                except OSError:
                    pass
            raise SpoolError(f"spool {self.dir}: cannot store a batch of {len(payload)} bytes: "
                             f"{exc.strerror or exc}") from None
        with self._lock:
            self._index.append((final, len(payload)))
            self._bytes += len(payload)
        return final

    def oldest(self) -> tuple[Path, bytes] | None:
        """The oldest batch and its content, or None when the spool is empty."""
        with self._lock:
            if not self._index:
                return None
            path = self._index[0][0]
        return path, path.read_bytes()

    def oldest_run(self, max_bytes: int) -> tuple[list[Path], bytes]:
        """The oldest batches, at least one and together at most ``max_bytes`` (unless the
        first alone is larger), joined into one payload; ``([], b"")`` when empty. Draining
        several small batches per database write is what makes a backlog drain fast."""
        with self._lock:
            paths, total = [], 0
            for path, size in self._index:
                if paths and total + size + 1 > max_bytes:
                    break
                paths.append(path)
                total += size + 1
        return paths, b"\n".join(p.read_bytes() for p in paths)

    def remove(self, path: Path) -> None:
        """Delete a batch once the database has accepted it (the oldest ones, in order)."""
        path.unlink()
        self._forget(path)

    def set_aside(self, path: Path) -> Path:
        """Move a batch the database refuses (HTTP 400) to ``rejected/`` for an operator."""
        aside = self.dir / "rejected"
        aside.mkdir(exist_ok=True)
        target = aside / path.name
        os.replace(path, target)
        self._forget(path)
        return target

    def _forget(self, path: Path) -> None:
        with self._lock:
            for i, (p, size) in enumerate(self._index):
                if p == path:
                    del self._index[i]
                    self._bytes -= size
                    return
