"""A site broker bridged to a central one (both real Mosquittos, configured by
provisioning.broker): a simulated ward publishes to the site, the gateway subscribes at the
central broker. The central broker is stopped for 10 s; every reading is stored exactly once,
and the gateway's watermarks come back across the bridge, so the devices' outboxes drain."""

from __future__ import annotations

import json
import secrets
import threading
import time
from types import SimpleNamespace

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from provisioning import broker
from provisioning.stack.gateway_proc import GatewayProcess, write_registry
from provisioning.stack.services import TESTER_USER, Mosquitto, Stack, wait_until
from provisioning.stack.ward import SimProcess, sim_device_ids, write_credentials

from .exactly_once import check_exactly_once, stored

pytestmark = pytest.mark.services

WARD, BEDS = "b1", 4
BRIDGE_USER = "bridge-site1"


def site_watermarks(site: Mosquitto) -> dict[str, int]:
    """The retained watermarks at the site broker (device -> seq), as the devices hear them."""
    marks: dict[str, int] = {}
    done = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.username_pw_set(TESTER_USER, site.users[TESTER_USER])
    client.on_connect = lambda c, *a: c.subscribe(f"wardwatch/v1/{WARD}/+/durable", qos=1)
    client.on_subscribe = lambda *a: threading.Timer(1.0, done.set).start()  # retained arrive at once

    def on_message(c, u, msg):
        body = json.loads(msg.payload)
        marks[body["dev"]] = body["seq"]

    client.on_message = on_message
    client.connect("127.0.0.1", site.port)
    client.loop_start()
    try:
        done.wait(10)
    finally:
        client.disconnect()
        client.loop_stop()
    return marks


def test_a_central_outage_behind_a_bridge_loses_nothing_and_watermarks_come_back(tmp_path):
    password = secrets.token_urlsafe(18)
    creds_file = tmp_path / "devices.credentials"
    creds = write_credentials(creds_file, sim_device_ids(WARD, BEDS))
    registry = write_registry(tmp_path / "devices.toml", WARD, BEDS)
    central = Stack(tmp_path / "central", users={BRIDGE_USER: password})
    central.mosquitto.bridge_accounts = (broker.BridgeAccount(BRIDGE_USER, (WARD,)),)
    site = Mosquitto(tmp_path / "site", users=creds)
    with central:
        site.bridge = broker.Bridge("site1", f"127.0.0.1:{central.mosquitto.port}", (WARD,), BRIDGE_USER, password)
        gw = sim = None
        try:
            site.start()
            gw = GatewayProcess(central, tmp_path / "gw", registry, wards=[WARD]).start()
            # The devices know only the site broker.
            sim = SimProcess(SimpleNamespace(mosquitto=site), tmp_path, WARD, BEDS, creds_file,
                             "--duration", "30", "--rate", "5", "--flush-timeout", "60").start()
            wait_until(lambda: stored(central.influx, WARD) >= BEDS * 10, 30, "readings across the bridge")

            central.mosquitto.stop()  # SIGTERM: persistence saved, the bridge's session kept
            down_at = time.monotonic()
            before = stored(central.influx, WARD)
            wait_until(lambda: time.monotonic() - down_at >= 10, 15, "10 s of central outage", interval=0.5)
            # Nothing reached the database while the central broker was down: the gateway saw none.
            assert stored(central.influx, WARD) - before <= BEDS * 5 * 2  # at most its in-flight tail
            central.mosquitto.start()

            sim.wait(timeout=150)
            summary = sim.summary()
            assert len(summary) == BEDS
            # Watermarks crossed back: every outbox emptied, nothing dropped or lost.
            assert all(s["outbox"] == 0 and s["dropped"] == 0 and s["lost"] == 0 for s in summary.values()), summary
            total = check_exactly_once(central.influx, WARD, summary, timeout=90)
            assert total >= BEDS * 30 * 5 * 0.9
            assert gw.health()["counts"]["watermarks"] > 0
            # ...because the gateway's watermarks crossed the bridge: at the site, each device's
            # retained watermark covers its last reading (without them a device would fall back
            # to releasing readings on the site broker's PUBACK alone).
            last = {dev: s["seq_next"] - 1 for dev, s in summary.items()}
            wait_until(lambda: site_watermarks(site) == last, 30, f"the site's watermarks to reach {last}")
        finally:
            if sim:
                sim.stop()
            if gw:
                gw.stop()
            site.stop()
