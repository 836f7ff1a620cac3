"""A paho publisher standing in for devices in gateway-only tests (the tester user may
publish on any device's topic; firmware-driven tests use the real simulator instead)."""

from __future__ import annotations

import json
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from provisioning.stack.services import TESTER_USER, wait_until


# Readings 1 ms apart from an hour ago: a point's identity in InfluxDB is (series, time), so
# two readings of one device must never share a millisecond (real boards sample at <= 1 kHz).
START_MS = int(time.time() * 1000) - 3_600_000


def reading(dev: str, seq: int, ts: int | None = None, **kw) -> bytes:
    doc = {"v": 1, "dev": dev, "seq": seq, "ts": ts if ts is not None else START_MS + seq, "tq": 1,
           "hr": 60 + seq % 40, "spo2": 90 + seq % 10, "temp": 36.5, "pi": 2.0, "sqi": 0.9, "probe": "ok",
           "batt": None, "rssi": None, "sim": True}
    doc.update(kw)
    return json.dumps(doc).encode()


class Publisher:
    """QoS 1 publisher; ``acked`` counts PUBACKs from the broker."""

    def __init__(self, stack, client_id: str = "test-publisher"):
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.username_pw_set(TESTER_USER, stack.password(TESTER_USER))
        self.client.max_queued_messages_set(0)
        self.client.max_inflight_messages_set(1000)
        self.acked = 0
        self._lock = threading.Lock()
        self.client.on_publish = self._on_publish
        self.client.connect("127.0.0.1", stack.mosquitto.port)
        self.client.loop_start()

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        with self._lock:
            self.acked += 1

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1)

    def wait_acked(self, n: int, timeout: float = 60) -> None:
        wait_until(lambda: self.acked >= n, timeout, f"{n} PUBACKs from the broker")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def stream(pub: Publisher, ward: str, dev: str, count: int, rate_hz: float, start_seq: int = 0) -> None:
    """Publish ``count`` readings at ``rate_hz``, real-time paced (ts = now)."""
    t0 = time.monotonic()
    for i in range(count):
        pub.publish(f"wardwatch/v1/{ward}/{dev}/vitals", reading(dev, start_seq + i))
        delay = t0 + (i + 1) / rate_hz - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def stored_seqs(influx, dev: str) -> list[int]:
    return [r["seq"] for r in influx.rows(f"SELECT seq FROM vitals WHERE device='{dev}'")]
