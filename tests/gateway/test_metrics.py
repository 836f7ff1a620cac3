"""gateway/metrics.py's pure core: a snapshot of the gateway's figures -> metric families,
rendered in Prometheus' text format and parsed back with prometheus_client's own parser."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics import Snapshot, families


def scrape(s: Snapshot) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value, as a Prometheus server would read it."""

    class One:
        def collect(self):
            return families(s)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(One())
    text = generate_latest(registry).decode()
    return {(smp.name, tuple(sorted(smp.labels.items()))): smp.value
            for fam in text_string_to_metric_families(text) for smp in fam.samples}


BUSY = Snapshot(
    messages={"stored": 900, "duplicate": 7, "rejected": 3, "status": 12, "command": 2, "acked": 920, "watermarks": 40},
    rejects={"not_json": 2, "range": 1},
    writer={"written_lines": 950, "spooled_lines": 100, "write_errors": 1, "batches": 30, "backpressure_waits": 0},
    pending=5, spool_bytes=4096, spool_segments=2, lag_ms={"w1": 250, "w2": 1500},
    mqtt_connected=True, influx_ok=False, healthy=True, broker_stored=17, devices_registered=24,
    alarms_enabled=True, alarms_active={("w1", "high"): 1, ("w1", "medium"): 2},
    alarm_events={("w1", "physiological", "raised"): 3, ("w1", "technical", "cleared"): 1},
    version="0.1.0",
)


@pytest.mark.parametrize(("name", "labels", "value"), [
    ("wardwatch_readings_received_total", (), 910),  # stored + duplicate + rejected
    ("wardwatch_readings_stored_total", (), 900),
    ("wardwatch_readings_duplicate_total", (), 7),
    ("wardwatch_readings_rejected_total", (("reason", "not_json"),), 2),
    ("wardwatch_readings_rejected_total", (("reason", "range"),), 1),
    ("wardwatch_messages_received_total", (("kind", "status"),), 12),
    ("wardwatch_messages_received_total", (("kind", "command"),), 2),
    ("wardwatch_messages_acked_total", (), 920),
    ("wardwatch_watermarks_published_total", (), 40),
    ("wardwatch_influx_lines_written_total", (), 950),
    ("wardwatch_influx_lines_spooled_total", (), 100),
    ("wardwatch_influx_write_errors_total", (), 1),
    ("wardwatch_writer_pending", (), 5),
    ("wardwatch_spool_bytes", (), 4096),
    ("wardwatch_spool_segments", (), 2),
    ("wardwatch_ingest_lag_seconds", (("ward", "w1"),), 0.25),
    ("wardwatch_ingest_lag_seconds", (("ward", "w2"),), 1.5),
    ("wardwatch_ingest_lag_max_seconds", (), 1.5),
    ("wardwatch_mqtt_connected", (), 1),
    ("wardwatch_influx_up", (), 0),
    ("wardwatch_healthy", (), 1),
    ("wardwatch_broker_stored_messages", (), 17),
    ("wardwatch_devices_registered", (), 24),
    ("wardwatch_alarms_active", (("priority", "high"), ("ward", "w1")), 1),
    ("wardwatch_alarms_active", (("priority", "medium"), ("ward", "w1")), 2),
    ("wardwatch_alarm_events_total", (("event", "raised"), ("kind", "physiological"), ("ward", "w1")), 3),
    ("wardwatch_alarm_events_total", (("event", "cleared"), ("kind", "technical"), ("ward", "w1")), 1),
    ("wardwatch_build_info", (("version", "0.1.0"),), 1),
])
def test_each_figure_is_a_conventionally_named_sample(name, labels, value):
    assert scrape(BUSY)[(name, labels)] == value


def test_acks_and_watermarks_are_not_messages_received():
    kinds = {dict(labels).get("kind") for (name, labels) in scrape(BUSY) if name == "wardwatch_messages_received_total"}
    assert kinds == {"stored", "duplicate", "rejected", "status", "command"}


def test_a_fresh_gateway_exposes_zeros_and_leaves_out_what_it_does_not_know():
    got = scrape(Snapshot())
    assert got[("wardwatch_readings_stored_total", ())] == 0
    assert got[("wardwatch_ingest_lag_max_seconds", ())] == 0
    assert not any(name == "wardwatch_broker_stored_messages" for name, _ in got)  # no $SYS figure yet
    assert not any(name.startswith("wardwatch_alarm") for name, _ in got)  # alarms disabled
