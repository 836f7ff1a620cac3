"""Overload announces itself: readings that reach the gateway late raise the ward's
``alarms_delayed`` alarm, shown in /healthz, stored, and cleared when the lag recovers."""

from __future__ import annotations

import json
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from provisioning.stack.gateway_proc import GatewayProcess
from provisioning.stack.services import TESTER_USER, wait_until

from .publisher import Publisher, reading

pytestmark = pytest.mark.services


class Events:
    def __init__(self, stack, topic: str):
        self.items: list[dict] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="overload-events")
        self.client.username_pw_set(TESTER_USER, stack.password(TESTER_USER))
        self.client.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", stack.mosquitto.port)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg):
        with self.lock:
            self.items.append(json.loads(msg.payload))

    def of(self, event: str) -> list[dict]:
        with self.lock:
            return [e for e in self.items if e["code"] == "alarms_delayed" and e["event"] == event]

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def test_late_readings_raise_alarms_delayed_for_the_ward_and_recovery_clears_it(stack, tmp_path):
    with GatewayProcess(stack, tmp_path / "gw") as gw:
        events = Events(stack, "wardwatch/v1/w9/alarms/events")
        pub = Publisher(stack)
        seq = {d: 0 for d in ("dev-1a", "dev-1b", "dev-1c")}

        def burst(lag_ms: int, seconds: float) -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                for dev in seq:
                    now = int(time.time() * 1000)
                    pub.publish(f"wardwatch/v1/w9/{dev}/vitals", reading(dev, seq[dev], ts=now - lag_ms))
                    seq[dev] += 1
                time.sleep(0.1)

        burst(8_000, 3)  # every device of the ward 8 s behind: the gateway is overloaded
        raised = wait_until(lambda: events.of("raised"), 10, "alarms_delayed raised")[0]
        assert (raised["ward"], raised["bed"], raised["kind"], raised["priority"]) == ("w9", "-", "technical", "medium")
        assert raised["message"].startswith("Alarms delayed: readings reach the gateway 8.") and raised["simulated"]
        assert 7_900 <= gw.health()["ingest_lag_ms"]["w9"] <= 9_500
        assert not events.of("cleared")

        burst(50, 3)  # caught up
        wait_until(lambda: events.of("cleared"), 10, "alarms_delayed cleared")
        assert gw.health()["ingest_lag_ms"]["w9"] < 2_000
        stored = wait_until(lambda: stack.influx.rows(
            "SELECT event, state FROM alarm WHERE code='alarms_delayed' AND bed='-'"), 10, "the alarm events stored")
        assert [r["event"] for r in stored] == ["raised", "cleared"]
        events.close()
        pub.close()


def test_the_brokers_backlog_shows_in_healthz(stack, tmp_path):
    # A second gateway instance's persistent session is away: the broker queues its readings,
    # and the running gateway shows the broker's stored-message count grow.
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    with GatewayProcess(stack, tmp_path / "gw") as gw:
        first = wait_until(lambda: gw.health().get("broker_stored_messages") is not None and gw.health(), 10,
                           "the broker's stored-message count ($SYS, every 2 s here)")["broker_stored_messages"]
        away = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="gw2-away", protocol=mqtt.MQTTv5)
        away.username_pw_set(TESTER_USER, stack.password(TESTER_USER))
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        subscribed = threading.Event()
        away.on_connect = lambda c, *a: c.subscribe("wardwatch/v1/w8/+/vitals", qos=1)
        away.on_subscribe = lambda *a: subscribed.set()
        away.connect("127.0.0.1", stack.mosquitto.port, clean_start=False, properties=props)
        away.loop_start()
        assert subscribed.wait(10), "no SUBACK for the second session"
        away.disconnect()
        away.loop_stop()
        pub = Publisher(stack)
        for seq in range(500):
            pub.publish("wardwatch/v1/w8/dev-2a/vitals", reading("dev-2a", seq))
        pub.wait_acked(500)
        grown = wait_until(lambda: (lambda n: n if n is not None and n >= first + 500 else None)(
            gw.health().get("broker_stored_messages")), 10, "the queued readings in the broker's count")
        assert grown >= first + 500
        pub.close()
