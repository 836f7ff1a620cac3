"""Simulated wards end to end: real firmware on the host -> Mosquitto -> gateway -> InfluxDB."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from provisioning.stack.services import wait_until
from provisioning.stack.ward import Ward

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


def test_raw_fidelity_ward_measures_its_patients_through_the_real_algorithm(tmp_path):
    scenario = tmp_path / "raw.toml"
    scenario.write_text(
        'default = "stable"\n[[bed]]\nbeds = [1]\nbaseline = { hr = 64, spo2 = 97, temp = 36.9 }\n'
        '[[bed]]\nbeds = [2]\nbaseline = { hr = 118, spo2 = 89, temp = 38.6 }\n'
        '[[bed]]\nbeds = [3]\nscenario = "probe_off"\n'
    )
    with Ward(tmp_path, "raw", beds=3) as ward:
        sim = ward.start_sim("--fidelity", "raw", "--duration", "30", "--scenario", str(scenario))
        sim.wait(timeout=90)
        check_exactly_once(ward, sim.summary())
        influx = ward.stack.influx
        # After the oximeter has had 15 s of beats, bed 1 and 2 read their patients' vitals.
        for bed, hr, spo2, temp in (("01", 64, 97, 36.9), ("02", 118, 89, 38.6)):
            rows = influx.rows(f"SELECT hr, spo2, temp FROM vitals WHERE bed='{bed}' AND ward='raw' ORDER BY time DESC LIMIT 10")
            measured = [r for r in rows if r["hr"] is not None]
            assert len(measured) >= 7, rows
            assert abs(sorted(r["hr"] for r in measured)[len(measured) // 2] - hr) <= 8
            assert abs(sorted(r["spo2"] for r in measured)[len(measured) // 2] - spo2) <= 3
            assert all(abs(r["temp"] - temp) < 1.0 for r in rows)
        probe = influx.rows("SELECT probe FROM vitals WHERE bed='03' AND ward='raw'")
        assert {r["probe"] for r in probe} >= {"off"}


def test_a_broker_killed_under_load_loses_no_reading_the_devices_still_hold(tmp_path):
    # 30 beds at 10 Hz: 300 readings/s. The broker is SIGKILLed and restarted on its
    # persistence directory; it saves only hourly here, so it forgets everything it had
    # acknowledged and the gateway's session too. Devices keep each reading until the
    # gateway's watermark covers it, so every one of them is stored, once.
    ward = Ward(tmp_path, "kill", beds=30)
    ward.stack.mosquitto.autosave = ("autosave_interval 3600",)  # the broker never saves in time
    with ward:
        sim = ward.start_sim("--duration", "30", "--rate", "10", "--flush-timeout", "40")
        ward.wait_for_beds()
        time.sleep(8)  # under load, and every device has heard its watermark
        ward.stack.mosquitto.stop(kill=True)
        time.sleep(3)
        ward.stack.mosquitto.start()
        sim.wait(timeout=150)
        summary = sim.summary()
        assert all(s["dropped"] == 0 and s["outbox"] == 0 and s["lost"] == 0 for s in summary.values())
        total = check_exactly_once(ward, summary, timeout=90)
        assert total >= 30 * 30 * 10 * 0.9
        assert sum(s["resent"] for s in summary.values()) > 0  # the broker did forget some
