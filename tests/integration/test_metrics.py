"""/metrics on a running gateway (real Mosquitto, InfluxDB, simulator): scraped like
Prometheus does and parsed with prometheus_client's parser; the counters agree with what
InfluxDB holds, rejects are counted by reason, and an alarm shows per ward and priority."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from provisioning.stack.services import wait_until
from provisioning.stack.ward import Ward
from .exactly_once import check_exactly_once
from .publisher import Publisher

pytestmark = pytest.mark.services

WARD = "m1"
# Bed 1 desaturates to 75 % from 1 s: SpO2 desaturation (high, 5 s) and SpO2 low (medium, 15 s).
SCENARIO = "[[bed]]\nbeds = [1]\n[[bed.phase]]\nat_s = 1\nspo2 = 75\n"


def scrape(port: int) -> tuple[dict, str]:
    """(sample name, sorted labels) -> value, and the Content-Type."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text, ctype = r.read().decode(), r.headers["Content-Type"]
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(text) for s in fam.samples}
    return samples, ctype


def test_metrics_agree_with_the_database_rejects_and_alarms(tmp_path):
    scenario = tmp_path / "desat.toml"
    scenario.write_text(SCENARIO)
    with Ward(tmp_path / "ward", WARD, beds=3) as ward:
        ward.admit_all()
        influx, port = ward.stack.influx, ward.gateway.health_port
        sim = ward.start_sim("--scenario", str(scenario), "--duration", "20", "--rate", "5")
        pub = Publisher(ward.stack)
        pub.publish(f"wardwatch/v1/{WARD}/sim-{WARD}-02/vitals", b"{not json")
        pub.publish(f"wardwatch/v1/{WARD}/sim-{WARD}-02/vitals", b"[1, 2]")
        pub.publish(f"wardwatch/v1/{WARD}/sim-{WARD}-02/vitals", b"[3]")
        sim.wait(timeout=90)
        total = check_exactly_once(influx, WARD, sim.summary())

        def settled():
            m, _ = scrape(port)
            return m if m[("wardwatch_readings_stored_total", ())] >= total and \
                m[("wardwatch_writer_pending", ())] == 0 else None

        m = wait_until(settled, 30, "the gateway's counters to reach the stored total")
        _, ctype = scrape(port)
        assert ctype.startswith("text/plain") and "version=" in ctype
        # Every reading made was stored once (no duplicates in this run): the counter is the table.
        assert m[("wardwatch_readings_stored_total", ())] == total
        assert m[("wardwatch_readings_rejected_total", (("reason", "not_json"),))] == 1
        assert m[("wardwatch_readings_rejected_total", (("reason", "not_object"),))] == 2
        assert m[("wardwatch_readings_received_total", ())] == total + 3 + m[("wardwatch_readings_duplicate_total", ())]
        rejected_rows = influx.rows("SELECT count(count) FROM rejected GROUP BY reason")
        assert {r["reason"]: r["count"] for r in rejected_rows} == {"not_json": 1, "not_object": 2}
        assert m[("wardwatch_mqtt_connected", ())] == 1 and m[("wardwatch_healthy", ())] == 1
        assert m[("wardwatch_spool_bytes", ())] == 0 and m[("wardwatch_spool_segments", ())] == 0
        assert m[("wardwatch_influx_write_errors_total", ())] == 0
        assert 0 <= m[("wardwatch_ingest_lag_seconds", (("ward", WARD),))] < 5
        assert m[("wardwatch_devices_registered", ())] == 3
        # Each database write is one histogram observation; every line written went in some.
        writes = m[("wardwatch_influx_write_seconds_count", ())]
        assert 1 <= writes <= m[("wardwatch_influx_batches_total", ())]
        assert 0 < m[("wardwatch_influx_write_seconds_sum", ())] < writes * 5
        assert m[("wardwatch_influx_lines_written_total", ())] >= total
        assert m[("process_cpu_seconds_total", ())] > 0
        assert any(name == "wardwatch_build_info" for name, _ in m)

        # The desaturation: raised alarms agree with the alarm measurement, and bed 1's
        # desaturation (latching) is still active, high priority.
        assert m[("wardwatch_alarms_active", (("priority", "high"), ("ward", WARD)))] >= 1
        raised = influx.rows(f"SELECT count(alarm_id) FROM alarm WHERE ward='{WARD}' AND event='raised'")
        assert raised and m[("wardwatch_alarm_events_total",
                             (("event", "raised"), ("kind", "physiological"), ("ward", WARD)))] >= 2

        def agree():
            # Events counted by /metrics and events in the alarm measurement, by event name.
            in_db: dict[str, int] = {}
            for r in influx.rows(f"SELECT event FROM alarm WHERE ward='{WARD}'"):
                in_db[r["event"]] = in_db.get(r["event"], 0) + 1
            counted: dict[str, int] = {}
            for (name, labels), v in scrape(port)[0].items():
                if name == "wardwatch_alarm_events_total":
                    counted[dict(labels)["event"]] = counted.get(dict(labels)["event"], 0) + int(v)
            return in_db if in_db == counted else None

        assert wait_until(agree, 20, "alarm events in /metrics and in InfluxDB to agree")["raised"] >= 2
        pub.close()
