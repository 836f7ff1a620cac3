"""Simulated wards end to end: real firmware on the host -> Mosquitto -> gateway -> InfluxDB."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from wardstack.services import wait_until
from wardstack.ward import Ward

pytestmark = pytest.mark.services


def check_exactly_once(ward: Ward, summary: dict, timeout: float = 60) -> int:
    """Every reading each device made is in InfluxDB exactly once; returns the total."""
    made = {dev: s["seq_next"] for dev, s in summary.items()}
    total = sum(made.values())
    influx = ward.stack.influx

    def stored() -> int:
        rows = influx.rows(f"SELECT count(seq) FROM vitals WHERE ward='{ward.ward}'")
        return rows[0]["count"] if rows else 0

    wait_until(lambda: stored() >= total, timeout, f"{total} readings in InfluxDB")
    for dev, n in made.items():
        counts = Counter(r["seq"] for r in influx.rows(f"SELECT seq FROM vitals WHERE device='{dev}'"))
        assert sorted(counts) == list(range(n)), f"{dev}: missing or extra seqs"
        assert max(counts.values()) == 1, f"{dev}: duplicates"
    assert stored() == total
    return total


def test_twenty_beds_for_fifteen_seconds_are_stored_exactly_once(tmp_path):
    with Ward(tmp_path, "e2e", beds=20) as ward:
        sim = ward.start_sim("--duration", "15", "--rate", "2")
        sim.wait(timeout=90)
        summary = sim.summary()
        assert len(summary) == 20
        assert all(s["dropped"] == 0 and s["outbox"] == 0 for s in summary.values())
        total = check_exactly_once(ward, summary)
        assert total >= 20 * 15 * 2 * 0.9
        # The registry put every device in its bed, and statuses reached the device measurement.
        beds = {r["bed"] for r in ward.stack.influx.rows("SELECT last(seq) FROM vitals GROUP BY bed")}
        assert beds == {f"{n:02d}" for n in range(1, 21)}
        states = ward.stack.influx.rows("SELECT last(state) FROM device GROUP BY device")
        assert len(states) == 20


def test_broker_down_for_ten_seconds_outboxes_replay_without_loss(tmp_path):
    with Ward(tmp_path, "e2e", beds=6) as ward:
        sim = ward.start_sim("--duration", "25", "--rate", "5")
        ward.wait_for_beds()
        ward.stack.mosquitto.stop()
        down_at = time.monotonic()
        # Ten seconds of readings pile up in the device outboxes.
        wait_until(lambda: time.monotonic() - down_at >= 10, 15, "10 s of broker outage", interval=0.5)
        ward.stack.mosquitto.start()
        sim.wait(timeout=120)
        summary = sim.summary()
        assert all(s["dropped"] == 0 for s in summary.values())
        check_exactly_once(ward, summary, timeout=90)
        # The gateway came back on its own (persistent session, reconnect).
        assert ward.gateway.health()["mqtt_connected"] is True
