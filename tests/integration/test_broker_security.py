"""The deployment's broker settings: no anonymous access, devices pinned to their own topics."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway import config
from provisioning.stack.services import TESTER_USER, wait_until

pytestmark = pytest.mark.services
REPO = Path(__file__).resolve().parents[2]


def connect(stack, user, password, client_id):
    result = {}
    done = threading.Event()

    def on_connect(client, userdata, flags, reason_code, properties):
        result["rc"] = reason_code
        done.set()

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    if user:
        c.username_pw_set(user, password)
    c.on_connect = on_connect
    c.connect("127.0.0.1", stack.mosquitto.port)
    c.loop_start()
    assert done.wait(10)
    return c, result["rc"]


def test_anonymous_and_wrong_password_are_refused(stack):
    c, rc = connect(stack, None, None, "anon")
    assert rc.is_failure
    c.loop_stop()
    c, rc = connect(stack, TESTER_USER, "wrong", "bad-pw")
    assert rc.is_failure
    c.loop_stop()


def test_a_device_can_publish_only_on_its_own_topics(stack):
    stack.mosquitto.add_users({"dev-aa1": "pw-a", "dev-bb2": "pw-b"})
    stack.mosquitto.stop()
    stack.mosquitto.start()
    seen = []
    watcher, rc = connect(stack, TESTER_USER, stack.password(TESTER_USER), "watcher")
    watcher.on_message = lambda c, u, m: seen.append(m.topic)
    subscribed = threading.Event()
    watcher.on_subscribe = lambda *a: subscribed.set()
    watcher.subscribe("wardwatch/#", qos=1)
    assert subscribed.wait(10)
    device, rc = connect(stack, "dev-aa1", "pw-a", "dev-aa1")
    assert not rc.is_failure
    device.publish("wardwatch/v1/w1/dev-bb2/vitals", b"{}", qos=1).wait_for_publish(10)  # someone else's
    device.publish("wardwatch/v1/w1/dev-aa1/vitals", b"{}", qos=1).wait_for_publish(10)  # its own
    wait_until(lambda: "wardwatch/v1/w1/dev-aa1/vitals" in seen, 10, "the device's own reading")
    assert "wardwatch/v1/w1/dev-bb2/vitals" not in seen
    device.loop_stop()
    watcher.loop_stop()


def test_deployment_configs_are_secure_by_default():
    conf = (REPO / "provisioning" / "mosquitto" / "wardwatch.conf").read_text()
    assert re.search(r"^allow_anonymous false$", conf, re.M)
    assert re.search(r"^listener 8883$", conf, re.M) and "certfile" in conf
    assert re.search(r"^persistence true$", conf, re.M)
    # Saved on changes, not on a timer: a killed broker still knows the gateway's session.
    assert re.search(r"^autosave_on_changes true$", conf, re.M)
    assert int(re.search(r"^autosave_interval (\d+)$", conf, re.M).group(1)) <= 1000
    queued = int(re.search(r"^max_queued_messages (\d+)$", conf, re.M).group(1))
    assert queued > 1000  # Mosquitto's default loses a ward's readings within a minute
    example = config.load(REPO / "gateway" / "gateway.example.toml", env={})
    assert example.mqtt.tls and not example.mqtt.password and not example.influx.token
    assert example.mqtt.session_expiry_s >= 3600
