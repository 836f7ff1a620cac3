"""The notification shell (gateway/sinks/notify.py) on its own: real SQLite outbox, real
apprise, a real local webhook receiver; no broker needed. What the end-to-end test cannot
stage: a crash *during* a send, a target that hangs, giving up after the last attempt, and the
rate-limit summary reaching the receiver."""

from __future__ import annotations

import logging
import socket
import sqlite3
import time

from gateway.clinical.engine import Alarm, AlarmEvent
from gateway.notify_policy import Retry, Route
from gateway.sinks.notify import Notifier
from provisioning.stack.services import free_port, wait_until

from .test_notify import Webhook

SECRET = "tok-9f8e7d6c"


def event(bed: str, at_ms: int) -> AlarmEvent:
    a = Alarm(id=f"w1/{bed}/spo2_desat/{at_ms}", ward="w1", bed=bed, device=f"d{bed}", code="spo2_desat",
              kind="physiological", priority="high", state="active", message="SpO2 75 < 80", since_ms=at_ms - 5000,
              raised_ms=at_ms, value=75, limit=80, simulated=True)
    return AlarmEvent("raised", at_ms, a)


def notifier(tmp_path, port: int, rate: int = 100, retry: Retry = Retry(100, 0.1, 0.2), clock=time.time) -> Notifier:
    route = Route("r", (), rate_per_min=rate, remind_s=0)
    return Notifier([(route, [f"json://u:{SECRET}@127.0.0.1:{port}/hook"])], retry, tmp_path, clock=clock)


def test_a_row_left_sending_by_a_crash_is_sent_again_once(tmp_path, caplog):
    hook = Webhook(free_port())
    n = notifier(tmp_path, hook.port)  # not started: the row stays queued
    n.submit(event("01", 1_000))
    # What a crash between "mark sending" and "mark sent" leaves behind.
    n.db.execute("UPDATE outbox SET state = 'sending'")
    n.db.close()
    hook.start()
    try:
        with caplog.at_level(logging.INFO, logger="wardwatch.notify"):
            again = notifier(tmp_path, hook.port)
            again.start()
            wait_until(lambda: again.health()["pending"] == 0, 10, "the resend")
            again.stop()
        assert again.counts["resent_after_crash"] == 1 and again.counts["sent"] == 1
        assert len(hook.posts) == 1
        assert "may get them twice" in caplog.text
        db = sqlite3.connect(tmp_path / "notify.sqlite")
        assert db.execute("SELECT state, attempts FROM outbox").fetchall() == [("sent", 1)]
    finally:
        hook.stop()


def test_a_hanging_target_never_slows_the_alarm_path(tmp_path):
    # A listener that never accepts: apprise's POST waits for its own timeout.
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(1)
    n = notifier(tmp_path, hang.getsockname()[1], rate=1000)
    n.start()
    try:
        n.submit(event("00", 1_000))
        def sending():
            with n._lock:  # the notifier's connection: take its lock
                return n.db.execute("SELECT count(*) FROM outbox WHERE state = 'sending'").fetchone()[0]

        wait_until(sending, 5, "a send in flight")
        worst = 0.0
        for i in range(1, 200):
            t0 = time.perf_counter()
            n.submit(event(f"{i:02d}", 1_000 + i))
            worst = max(worst, time.perf_counter() - t0)
        print(f"submit while the sender hangs: worst {worst * 1000:.1f} ms over 199 events")
        assert worst < 0.5  # blocking on the sender would take apprise's multi-second socket timeout
        assert n.health()["queued"] == 200
    finally:
        n.stop()
        hang.close()


def test_the_last_failed_attempt_is_logged_and_counted_without_the_secret(tmp_path, caplog):
    n = notifier(tmp_path, free_port(), retry=Retry(3, 0.05, 0.1))  # nothing listens there
    with caplog.at_level(logging.INFO, logger="wardwatch.notify"):
        n.start()
        n.submit(event("01", 1_000))
        wait_until(lambda: n.counts["failed"] == 1, 10, "the notification to fail")
        n.stop()
    assert n.counts["retries"] == 2 and n.counts["sent"] == 0
    db = sqlite3.connect(tmp_path / "notify.sqlite")
    assert db.execute("SELECT state, attempts FROM outbox").fetchall() == [("failed", 3)]
    assert "notification FAILED after 3 attempts to r #1 json://127.0.0.1" in caplog.text
    assert SECRET not in caplog.text
    assert SECRET not in (tmp_path / "notify.sqlite").read_bytes().decode("latin-1")


def test_the_rate_limit_summary_reaches_the_receiver(tmp_path):
    hook = Webhook(free_port())
    hook.start()
    now = [1_796_000_000.0]
    n = notifier(tmp_path, hook.port, rate=2, clock=lambda: now[0])
    n.start()
    try:
        for i in range(5):
            n.submit(event(f"{i:02d}", int(now[0] * 1000)))
        wait_until(lambda: len(hook.posts) == 2, 10, "two notifications")
        now[0] += 61
        wait_until(lambda: len(hook.posts) == 3, 10, "the summary")
        title = hook.posts[2][1]["title"]
        assert title == "3 more alarms suppressed by the rate limit (r)"
        assert "w1/04 high SpO2 75 < 80 [SIMULATED]" in hook.posts[2][1]["message"]
        assert n.health()["suppressed"] == 3
    finally:
        n.stop()
        hook.stop()
