"""Alarm notifications: a durable SQLite outbox and a sender thread that delivers with apprise.

Who calls it: ``gateway.service.Gateway`` builds a ``Notifier`` from ``[notify]`` and hands
``Notifier.submit`` to the alarm shell (``AlarmService(on_event=...)``), which calls it with
every alarm event, under its lock, before it saves the alarm. The decisions (routes, text,
rate limits, retry times) are ``gateway.notify_policy``'s; this module does the I/O.

- ``submit`` only asks the policy and inserts rows into ``<state_dir>/notify.sqlite`` (one
  row per notice and target, state ``pending``): no network on the alarm path.
- The sender thread takes due rows in order, marks each ``sending`` (committed), calls
  apprise, then marks it ``sent``, or ``pending`` with the next retry time, or ``failed``
  after the last attempt (logged, counted in /healthz ``notify.failed``).
- **Delivery guarantee**: at least once for every notice that reached the outbox, and
  exactly once unless the gateway dies *during* a send. A row left ``sending`` by a crash
  is sent again at the next start (logged as a possible duplicate): a notice may then
  arrive twice, never zero times. The window is one apprise call; SIGTERM waits for it to
  end. Rows waiting for a retry (target down) survive any restart, SIGKILL included, and
  are sent once the target is back. Webhook targets (``json``/``form``/``xml`` schemes) get
  the notice key as an ``X-Idempotency-Key`` header (and ``idempotency_key`` in JSON bodies),
  so a receiver can drop the duplicate; every text carries it as an ``Idempotency-Key:``
  line. Email and SMS receivers cannot dedup.
- **Secrets**: apprise URLs hold passwords and tokens. They are never written to the outbox
  (rows name a target by a hash of its URL) nor logged: logs name a target by its route,
  number and ``scheme://host`` (the host only when it looks like a host name or address),
  and apprise's own log lines are captured and scrubbed of the URL's secrets.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import apprise
import msgspec

from ..clinical.engine import Alarm, AlarmEvent
from ..notify_policy import Notice, Policy, Retry, Route, retry_at

log = logging.getLogger("wardwatch.notify")

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    key TEXT NOT NULL,           -- the notice's key (idempotency key), see notify_policy.Notice
    target TEXT NOT NULL,        -- sha256 of the apprise URL, first 16 hex digits (never the URL)
    route TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL,         -- pending | sending | sent | failed
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try_ms INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    done_ms INTEGER,
    error TEXT,
    PRIMARY KEY (key, target)
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, next_try_ms);
"""
KEEP_DONE_MS = 7 * 86400 * 1000  # sent and failed rows are kept a week, for inquiry
WEBHOOK_SCHEMES = {"json", "jsons", "form", "forms", "xml", "xmls"}
JOIN_S = 20.0  # SIGTERM waits this long for a send in flight (apprise's own timeouts are shorter)


def target_id(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def target_label(url: str) -> str:
    """``scheme://host`` of an apprise URL, for logs; the host only when it has a dot or is
    ``localhost`` (some services put a token where the host goes)."""
    parts = urllib.parse.urlsplit(url)
    try:
        host = parts.hostname or ""
    except ValueError:
        host = ""
    shown = host if ("." in host or ":" in host or host == "localhost") else ""
    return f"{parts.scheme}://{shown}" if shown else f"{parts.scheme}://..."


def _secrets_of(url: str) -> list[str]:
    """Pieces of ``url`` that must not reach a log: the URL itself, its password, user, path
    and query values."""
    parts = urllib.parse.urlsplit(url)
    pieces = [url, parts.password or "", parts.username or "", parts.path.strip("/")]
    pieces += [v for _, v in urllib.parse.parse_qsl(parts.query)]
    return sorted((p for p in pieces if len(p) >= 4), key=len, reverse=True)


def with_idempotency_key(url: str, key: str) -> str:
    """Webhook URLs carry the key as a header (and a JSON field); others are unchanged."""
    scheme = url.split("://", 1)[0].lower()
    if scheme not in WEBHOOK_SCHEMES:
        return url
    extra = {"+X-Idempotency-Key": key}
    if scheme in ("json", "jsons"):
        extra[":idempotency_key"] = key
    sep = "&" if "?" in url else "?"
    return url + sep + urllib.parse.urlencode(extra)


class _LastWarning(logging.Handler):
    """Keeps apprise's last warning or error line (the reason a send failed)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.last = ""

    def emit(self, record: logging.LogRecord) -> None:
        self.last = record.getMessage()


def send_apprise(url: str, title: str, body: str) -> bool:
    """One notification to one apprise URL; True when apprise reports success."""
    a = apprise.Apprise()
    if not a.add(url):
        return False
    return bool(a.notify(title=title, body=body, body_format=apprise.NotifyFormat.TEXT))


class Notifier:
    """See the module docstring. ``routes``: (policy route without targets, its apprise URLs)."""

    def __init__(self, routes: list[tuple[Route, list[str]]], retry: Retry, state_dir: Path,
                 send: Callable[[str, str, str], bool] = send_apprise, clock: Callable[[], float] = time.time):
        self.retry = retry
        self._send = send
        self._clock = clock
        self.urls: dict[str, str] = {}
        self.labels: dict[str, str] = {}
        policy_routes = []
        for route, urls in routes:
            ids = []
            for n, url in enumerate(urls, 1):
                tid = target_id(url)
                self.urls[tid] = url
                self.labels[tid] = f"{route.name} #{n} {target_label(url)}"
                ids.append(tid)
            policy_routes.append(msgspec.structs.replace(route, targets=tuple(ids)))
        self.policy = Policy(policy_routes)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._in_flight: str | None = None  # the label of the target being sent to, if any
        self.counts = {"queued": 0, "sent": 0, "retries": 0, "failed": 0, "resent_after_crash": 0}
        self._apprise_log = _LastWarning()
        alog = logging.getLogger("apprise")
        alog.addHandler(self._apprise_log)
        alog.setLevel(logging.WARNING)
        alog.propagate = False  # its lines may carry URL pieces; we log a scrubbed reason instead
        self.db = sqlite3.connect(Path(state_dir) / "notify.sqlite", check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)
        self._recover()

    # -- start-up -------------------------------------------------------------------------

    def _recover(self) -> None:
        now = self._now_ms()
        with self._lock:
            self.db.execute("DELETE FROM outbox WHERE state IN ('sent', 'failed') AND done_ms < ?", (now - KEEP_DONE_MS,))
            resent = self.db.execute("UPDATE outbox SET state = 'pending' WHERE state = 'sending'").rowcount
            self.counts["resent_after_crash"] = resent
            if resent:
                log.warning("%d notification(s) were being sent when the gateway stopped: sending again "
                            "(the receiver may get them twice)", resent)
            gone = [t for (t,) in self.db.execute("SELECT DISTINCT target FROM outbox WHERE state = 'pending'")
                    if t not in self.urls]
            for t in gone:
                n = self.db.execute("UPDATE outbox SET state = 'failed', done_ms = ?, error = ? WHERE state = 'pending' "
                                    "AND target = ?", (now, "target no longer configured", t)).rowcount
                self.counts["failed"] += n
                log.error("%d pending notification(s) failed: their target is no longer configured", n)
            pending = self.db.execute("SELECT count(*) FROM outbox WHERE state = 'pending'").fetchone()[0]
        if pending:
            log.info("%d notification(s) pending from before the restart", pending)

    def seed(self, alarms: list[Alarm]) -> None:
        """Unacknowledged alarms restored at start: reminders carry on for them."""
        with self._lock:
            self.policy.seed(alarms, self._now_ms())

    # -- the alarm path -------------------------------------------------------------------

    def submit(self, ev: AlarmEvent) -> None:
        """An alarm event (the alarm shell, under its lock): queue its notices. Never raises:
        a notification problem must not stop the alarm path."""
        try:
            with self._lock:
                notices = self.policy.on_event(ev, self._now_ms())
                self._enqueue(notices)
        except Exception:
            log.exception("notification not queued for alarm event %s", ev.event)
            return
        if notices:
            self._wake.set()

    def _enqueue(self, notices: list[Notice]) -> None:
        if not notices:
            return
        rows = [(n.key, t, n.route, n.title, n.body, n.at_ms, n.at_ms) for n in notices for t in n.targets]
        with self.db:  # one transaction
            self.db.execute("BEGIN")
            cur = self.db.executemany(
                "INSERT OR IGNORE INTO outbox (key, target, route, title, body, state, next_try_ms, created_ms) "
                "VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)", rows)
        self.counts["queued"] += cur.rowcount

    # -- the sender thread ----------------------------------------------------------------

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="notify", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the send in flight (if any); pending rows stay for the next start."""
        self._stop.set()
        self._wake.set()
        target = self._in_flight
        if target is not None:  # says why a stop takes a while (a slow mail server, a hung webhook)
            log.info("stopping: waiting up to %.0f s for the notification in flight to %s", JOIN_S, target)
        if self._thread is not None:
            self._thread.join(JOIN_S)
            if self._thread.is_alive():
                log.warning("stopped with a notification still in flight to %s: it is sent again at the next "
                            "start (the receiver may get it twice)", self._in_flight)
        logging.getLogger("apprise").removeHandler(self._apprise_log)
        with self._lock:
            self.db.close()

    def pending(self) -> int:
        with self._lock:
            return self.db.execute("SELECT count(*) FROM outbox WHERE state IN ('pending', 'sending')").fetchone()[0]

    def health(self) -> dict:
        return {**self.counts, "pending": self.pending(), "suppressed": self.policy.suppressed_total}

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                wait = self._step()
            except Exception:
                log.exception("notification sender error")
                wait = 1.0
            if wait:
                self._wake.wait(wait)
                self._wake.clear()

    def _step(self) -> float:
        """Queue due reminders and summaries, send one due row; return how long to wait (s)."""
        now = self._now_ms()
        with self._lock:
            self._enqueue(self.policy.tick(now))
            row = self.db.execute(
                "SELECT key, target, title, body, attempts FROM outbox WHERE state = 'pending' AND next_try_ms <= ? "
                "ORDER BY created_ms, key LIMIT 1", (now,)).fetchone()
            if row is None:
                nxt = self.db.execute("SELECT min(next_try_ms) FROM outbox WHERE state = 'pending'").fetchone()[0]
                return 0.5 if nxt is None else min(0.5, max(0.01, (nxt - now) / 1000))
            key, target, title, body, attempts = row
            self.db.execute("UPDATE outbox SET state = 'sending' WHERE key = ? AND target = ?", (key, target))
        url = self.urls[target]
        self._apprise_log.last = ""
        self._in_flight = self.labels[target]
        try:
            ok = self._send(with_idempotency_key(url, key), title, body)
        except Exception as exc:  # a plugin bug is a failed attempt, not a dead sender
            ok, self._apprise_log.last = False, f"{type(exc).__name__}: {exc}"
        finally:
            self._in_flight = None
        reason = self._scrub(self._apprise_log.last, url) or "the target refused or did not answer"
        now = self._now_ms()
        attempts += 1
        with self._lock:
            if ok:
                self.db.execute("UPDATE outbox SET state = 'sent', attempts = ?, done_ms = ?, error = NULL "
                                "WHERE key = ? AND target = ?", (attempts, now, key, target))
                self.counts["sent"] += 1
                log.info("notification sent to %s", self.labels[target], extra={"notice": key, "attempts": attempts})
                return 0
            nxt = retry_at(attempts, now, self.retry)
            if nxt is None:
                self.db.execute("UPDATE outbox SET state = 'failed', attempts = ?, done_ms = ?, error = ? "
                                "WHERE key = ? AND target = ?", (attempts, now, reason, key, target))
                self.counts["failed"] += 1
                log.error("notification FAILED after %d attempts to %s: %s", attempts, self.labels[target], reason,
                          extra={"notice": key})
                return 0
            self.db.execute("UPDATE outbox SET state = 'pending', attempts = ?, next_try_ms = ?, error = ? "
                            "WHERE key = ? AND target = ?", (attempts, nxt, reason, key, target))
            self.counts["retries"] += 1
            log.warning("notification to %s not delivered (attempt %d), retrying in %.1f s: %s", self.labels[target],
                        attempts, (nxt - now) / 1000, reason, extra={"notice": key})
        return 0

    @staticmethod
    def _scrub(text: str, url: str) -> str:
        for piece in _secrets_of(url):
            text = text.replace(piece, "***")
        return text[:300]


def unknown_urls(urls: list[str]) -> list[int]:
    """1-based positions of the URLs apprise cannot use (unknown scheme, bad syntax)."""
    bad = []
    for n, url in enumerate(urls, 1):
        a = apprise.Apprise()
        if not a.add(url):
            bad.append(n)
    return bad
