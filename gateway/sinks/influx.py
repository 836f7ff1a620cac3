"""Batched InfluxDB writer with a disk spool: a batch is either in the database or on disk.

Who calls it: the ingest callback ``submit()``s one line (or none) plus an acknowledgement
token per MQTT message. A writer thread cuts batches (at most ``batch_size`` messages, or
what came within ``flush_interval_ms`` of the first), writes them through influxdb-client's
synchronous v2 write API with gzip, and only then hands the batch's tokens to ``on_durable``
(which sends the PUBACKs). When the write fails, the batch goes to the spool first and is
acknowledged after that; from then on new batches go straight to the spool (no time lost on
a dead database) until a drainer thread has emptied the spool into the database again.

When the spool cannot take a batch either (full, or the disk fails), the writer holds it:
nothing is acknowledged, so the broker keeps the messages (back-pressure), and every second
it tries the database again, then the spool. Batches stay bounded meanwhile: what arrives
waits for the next batch.

Both threads beat a heartbeat; ``alive()`` is false once one has died or stalled, and the
service then fails ``/healthz`` and stops the systemd watchdog, so systemd restarts it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from ..logs import RateLimitedLog
from .spool import Spool, SpoolError

log = logging.getLogger("wardwatch.influx")

# How often the drainer tries a dead database at the most, and how much one drain write
# carries (several spooled batches joined; InfluxDB's default body limit is 25 MB).
DRAIN_BACKOFF_MAX_S = 2.0
DRAIN_WRITE_BYTES = 4 * 1024 * 1024


class WriteRejected(Exception):
    """The database refused the batch itself (HTTP 400): retrying cannot help."""


class InfluxWriter:
    """See the module docstring. ``on_durable`` is given to ``start()``."""

    def __init__(
        self,
        url: str,
        token: str,
        org: str,
        bucket: str,
        spool: Spool,
        batch_size: int = 5000,
        flush_interval_ms: int = 100,
        timeout_ms: int = 10_000,
        drain_interval_s: float = 1.0,
        backpressure_retry_s: float = 1.0,
    ):
        self._client = InfluxDBClient(url=url, token=token, org=org, enable_gzip=True, timeout=timeout_ms)
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)
        self._bucket = bucket
        self._org = org
        self.spool = spool
        self.batch_size = batch_size
        self.flush_interval = flush_interval_ms / 1000
        self.drain_interval = drain_interval_s
        self.backpressure_retry_s = backpressure_retry_s
        # A thread that has not beaten for this long is stalled: a database write is bounded
        # by the client timeout, every wait by a second or the drain backoff.
        self.stall_s = max(30.0, 3 * timeout_ms / 1000)
        self._beats = {"writer": time.monotonic(), "drainer": time.monotonic()}
        self._trouble = RateLimitedLog(log)
        self.backpressure = False  # a batch is held: neither the database nor the spool took it
        self._lines: list[str] = []
        self._tokens: list = []
        self._first_at = 0.0
        self._cond = threading.Condition()
        self._stopping = False
        self._stopped = threading.Event()
        # False while the spool holds batches: new batches then go straight to disk.
        self.db_ok = not len(spool)
        self.stats = {"written_lines": 0, "spooled_lines": 0, "drained_batches": 0, "write_errors": 0, "batches": 0,
                      "backpressure_waits": 0}
        self.last_write_ms = 0.0
        # Called with each successful write's duration in seconds (the /metrics histogram).
        self.on_write: Callable[[float], None] | None = None
        self._writer: threading.Thread | None = None
        self._drainer = threading.Thread(target=self._drain_loop, name="spool-drainer", daemon=True)

    # -- called from the MQTT thread -------------------------------------------------------

    def submit(self, line: str | None, token) -> None:
        """Queue one line (None for an ack-only message) and its acknowledgement token."""
        with self._cond:
            if not self._tokens:
                # Wake the writer so that it starts the flush-interval clock for this batch.
                self._first_at = time.monotonic()
                self._cond.notify()
            # Parallel lists, one entry per submit, so a batch cut at batch_size entries
            # keeps each line with its token.
            self._lines.append(line)
            self._tokens.append(token)
            if len(self._tokens) == self.batch_size:
                self._cond.notify()

    def submit_line(self, line: str) -> None:
        """Queue a line of the gateway's own (alarm events, metrics): nothing to acknowledge."""
        self.submit(line, None)

    @property
    def pending(self) -> int:
        return len(self._tokens)

    # -- threads ----------------------------------------------------------------------------

    def alive(self, now: float | None = None) -> str:
        """``""`` while both threads run and beat; else which one died or stalled, and how."""
        now = time.monotonic() if now is None else now
        for name, thread in (("writer", self._writer), ("drainer", self._drainer)):
            if thread is None or not thread.is_alive():
                return f"{name} thread is not running"
            if now - self._beats[name] > self.stall_s:
                return f"{name} thread stalled for {now - self._beats[name]:.0f} s"
        return ""

    def start(self, on_durable: Callable[[list], None]) -> None:
        """Start the writer and drainer threads; ``on_durable(tokens)`` runs on the writer
        thread after each batch is in the database or the spool (it sends the PUBACKs)."""
        self._writer = threading.Thread(target=self._write_loop, args=(on_durable,), name="influx-writer", daemon=True)
        self._writer.start()
        self._drainer.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Flush what is pending (to the database or the spool), then stop both threads."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._stopped.set()
        if self._writer is not None:
            self._writer.join(timeout)
        self._drainer.join(timeout)
        self._client.close()

    def _take_batch(self) -> tuple[list[str], list] | None:
        """The next batch: at most ``batch_size`` entries, the rest wait for the next one."""
        with self._cond:
            while True:
                self._beats["writer"] = time.monotonic()
                if self._tokens:
                    due = self._first_at + self.flush_interval - time.monotonic()
                    if len(self._tokens) >= self.batch_size or due <= 0 or self._stopping:
                        break
                    self._cond.wait(due)
                elif self._stopping:
                    return None
                else:
                    self._cond.wait(0.5)
            n = self.batch_size
            lines, tokens = self._lines[:n], self._tokens[:n]
            del self._lines[:n], self._tokens[:n]
            if self._tokens:
                self._first_at = time.monotonic()  # the rest starts its own flush interval
            return [line for line in lines if line is not None], tokens

    def _write_loop(self, on_durable: Callable[[list], None]) -> None:
        try:
            while (batch := self._take_batch()) is not None:
                lines, tokens = batch
                if lines and not self._store(lines):
                    return  # stopping while held: unacknowledged, the broker redelivers
                on_durable(tokens)
        except Exception:
            # One JSON line, not a bare traceback; alive() now reports the dead thread, so
            # /healthz fails and the watchdog stops: systemd restarts the gateway.
            log.critical("writer thread died; nothing more is stored or acknowledged", exc_info=True)

    def _store(self, lines: list[str]) -> bool:
        """Write to the database, else to the spool. True once the batch is durable; False
        only when the gateway stops while neither would take it."""
        payload = "\n".join(lines).encode()
        self.stats["batches"] += 1
        if self.db_ok:
            try:
                self._write(payload)
                self.stats["written_lines"] += len(lines)
                return True
            except WriteRejected as exc:
                log.error("database rejected a batch of %d lines: %s", len(lines), exc)
            except Exception as exc:  # connection refused, timeout, 5xx, auth: keep it on disk
                self.stats["write_errors"] += 1
                log.warning("database write failed (%s); spooling from now on", _short(exc))
            self.db_ok = False
        while True:
            try:
                self.spool.append(payload)
                self.stats["spooled_lines"] += len(lines)
                self.backpressure = False
                return True
            except SpoolError as exc:
                # Back-pressure: the MQTT messages stay unacknowledged in the broker. Try the
                # database again first: it may be back while the spool is still full.
                self.backpressure = True
                self.stats["backpressure_waits"] += 1
                self._trouble.warning("spool", "%s; holding the batch and retrying the database", exc,
                                      spool_bytes=self.spool.bytes, lines=len(lines))
            with self._cond:
                if self._stopping:
                    return False
                self._cond.wait(self.backpressure_retry_s)
                self._beats["writer"] = time.monotonic()
            try:
                self._write(payload)
                self.stats["written_lines"] += len(lines)
                self.backpressure = False
                return True
            except WriteRejected as exc:
                log.error("database rejected a held batch of %d lines: %s", len(lines), exc)
            except Exception as exc:
                self._trouble.warning("database", "database still unavailable (%s)", _short(exc))

    def _write(self, payload: bytes) -> None:
        t0 = time.perf_counter()
        try:
            self._write_api.write(bucket=self._bucket, org=self._org, record=payload, write_precision=WritePrecision.NS)
        except ApiException as exc:
            if exc.status == 400:
                raise WriteRejected(str(exc.body)[:300]) from None
            raise
        seconds = time.perf_counter() - t0
        self.last_write_ms = seconds * 1000
        if self.on_write is not None:
            self.on_write(seconds)

    def _drain_loop(self) -> None:
        backoff = self.drain_interval
        # The drainer waits on its own event: sharing the writer's condition would let
        # submit()'s notify() wake the drainer instead of the writer.
        while not self._stopped.wait(backoff):
            self._beats["drainer"] = time.monotonic()
            if self.drain_once():
                backoff = self.drain_interval
            else:
                # Probe a dead database often: every second it is back but unused is a second
                # more of backlog to drain.
                backoff = min(backoff * 2, DRAIN_BACKOFF_MAX_S)

    def drain_once(self) -> bool:
        """Move spooled batches into the database, oldest first, several per write. False if
        the database failed."""
        while True:
            paths, payload = self.spool.oldest_run(DRAIN_WRITE_BYTES)
            if not paths:
                break
            self._beats["drainer"] = time.monotonic()
            try:
                self._write(payload)
            except WriteRejected as exc:
                if len(paths) > 1:
                    if not self._drain_each(paths):
                        return False
                    continue
                kept = self.spool.set_aside(paths[0])
                log.error("database rejected spooled batch; kept for an operator in %s: %s", kept, exc)
                continue
            except Exception as exc:
                self._trouble.warning("drain", "spool drain paused, database unavailable (%s)", _short(exc))
                return False
            for path in paths:
                self.spool.remove(path)
            self.stats["drained_batches"] += len(paths)
            self.stats["written_lines"] += payload.count(b"\n") + 1
        if not self.db_ok:
            log.warning("spool drained; writing to the database directly again")
        self.db_ok = True
        return True

    def _drain_each(self, paths: list) -> bool:
        """One batch per write, to find the one the database refuses and set it aside."""
        for path in paths:
            payload = path.read_bytes()
            try:
                self._write(payload)
            except WriteRejected as exc:
                kept = self.spool.set_aside(path)
                log.error("database rejected spooled batch; kept for an operator in %s: %s", kept, exc)
                continue
            except Exception:
                return False
            self.spool.remove(path)
            self.stats["drained_batches"] += 1
            self.stats["written_lines"] += payload.count(b"\n") + 1
        return True


def _short(exc: Exception) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text.splitlines()[0][:200]

