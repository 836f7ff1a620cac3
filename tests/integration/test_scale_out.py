"""Scale-out by ward: two gateway instances on one broker and one database, each owning a
disjoint ward (its own MQTT session, client id, state directory and health port), as the
template unit wardwatch-gateway@.service runs them. Every reading is stored exactly once;
each instance raises alarms only for its ward; SIGKILL one and the other keeps storing; the
killed one resumes from its persistent session with zero loss."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from provisioning.stack.gateway_proc import GatewayProcess, write_registry
from provisioning.stack.services import Stack, wait_until
from provisioning.stack.ward import SimProcess, sim_device_ids, write_credentials

from .exactly_once import check_exactly_once, stored
from .test_metrics import scrape

pytestmark = pytest.mark.services

BEDS = 3
# Bed 1 of each ward desaturates to 75 % from 2 s: SpO2 desaturation (high, latching).
SCENARIO = "[[bed]]\nbeds = [1]\n[[bed.phase]]\nat_s = 2\nspo2 = 75\n"


def live_alarm_wards(state_dir) -> set[str]:
    """Wards of the live alarms an instance keeps in its own SQLite."""
    with sqlite3.connect(f"file:{state_dir}/alarms.sqlite?mode=ro", uri=True) as db:
        return {json.loads(body)["ward"] for (body,) in db.execute("SELECT body FROM alarms")}


def test_two_instances_on_disjoint_wards_one_killed_and_resumed(tmp_path):
    creds_file = tmp_path / "devices.credentials"
    creds = write_credentials(creds_file, sim_device_ids("w1", BEDS) + sim_device_ids("w2", BEDS))
    registry = tmp_path / "devices.toml"
    for ward in ("w1", "w2"):
        write_registry(registry, ward, BEDS)
    scenario = tmp_path / "desat.toml"
    scenario.write_text(SCENARIO)
    with Stack(tmp_path / "stack", users=creds) as stack:
        gws = {
            ward: GatewayProcess(stack, tmp_path / f"gw-{k}", registry, wards=[ward], instance=f"g{k}",
                                 client_id=f"wardwatch-gateway-g{k}")
            for k, ward in ((1, "w1"), (2, "w2"))
        }
        sims = []
        try:
            for ward, gw in gws.items():
                gw.start()
                # The command reaches the instance that owns the ward, which answers it.
                gw.cli("patients", "admit", "--ward", ward, "--bed", "01", "--patient", f"MRN-{ward}", "--user", "nurse")
            for ward in gws:
                sims.append(SimProcess(stack, tmp_path, ward, BEDS, creds_file, "--duration", "40", "--rate", "5",
                                       "--scenario", str(scenario), "--flush-timeout", "60").start())
            for ward in gws:
                wait_until(lambda w=ward: stored(stack.influx, w) >= BEDS * 15, 30, f"readings of {ward}")
            wait_until(lambda: all(live_alarm_wards(gw.workdir / "state") for gw in gws.values()), 30,
                       "each instance's desaturation alarm")

            gws["w1"].kill()  # SIGKILL: nothing flushed, nothing acknowledged after this
            killed_at = time.monotonic()
            w1_down, w2_down = stored(stack.influx, "w1"), stored(stack.influx, "w2")
            # The other instance is not disturbed: it keeps storing its ward (3 beds x 5 Hz).
            wait_until(lambda: stored(stack.influx, "w2") >= w2_down + BEDS * 5 * 4, 20, "w2 storing while g1 is down")
            wait_until(lambda: time.monotonic() - killed_at >= 6, 10, "6 s of g1 down", interval=0.5)
            assert stored(stack.influx, "w1") == w1_down  # nobody else took w1's readings
            assert gws["w2"].health()["status"] == "ok"
            gws["w1"].start()  # same client id: the broker hands it its session and backlog

            totals = {}
            for ward, sim in zip(gws, sims):
                sim.wait(timeout=150)
                summary = sim.summary()
                assert all(s["outbox"] == 0 and s["dropped"] == 0 and s["lost"] == 0 for s in summary.values())
                totals[ward] = check_exactly_once(stack.influx, ward, summary, timeout=90)
                assert totals[ward] >= BEDS * 40 * 5 * 0.9

            # Each instance holds alarm state, and raised alarms, for its own ward only.
            for ward, gw in gws.items():
                assert live_alarm_wards(gw.workdir / "state") == {ward}
                metrics, _ = scrape(gw.health_port)
                event_wards = {dict(labels)["ward"] for (name, labels) in metrics
                               if name == "wardwatch_alarm_events_total"}
                lag_wards = {dict(labels)["ward"] for (name, labels) in metrics
                             if name == "wardwatch_ingest_lag_seconds"}
                assert event_wards <= {ward} and lag_wards == {ward}
            # g2 ran through: its counter is exactly its ward's stored readings.
            assert scrape(gws["w2"].health_port)[0][("wardwatch_readings_stored_total", ())] == totals["w2"]
            rows = stack.influx.rows("SELECT last(received) FROM gateway GROUP BY instance")
            assert {r["instance"] for r in rows} == {"g1", "g2"}
        finally:
            for sim in sims:
                sim.stop()
            for gw in gws.values():
                gw.stop()
