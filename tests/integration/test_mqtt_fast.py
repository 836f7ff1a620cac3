"""gateway.mqtt_fast.FastClient against a real Mosquitto, over plain TCP (the stack's broker)
and over TLS (a Mosquitto with a TLS listener and a test CA): every message arrives once,
whole and in order (small ones many to a read, a large one across reads, QoS 0 through
paho's path), and ``ack_many`` acknowledges exactly the packet ids given: after a reconnect
to the persistent session the broker redelivers the others and only those."""

from __future__ import annotations

import getpass
import os
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.mqtt_fast import READ_BYTES, FastClient
from provisioning.stack.services import TESTER_USER, _binary, _port_open, free_port, terminate, wait_until
from provisioning.tls import make_test_ca

pytestmark = pytest.mark.services


@dataclass
class Broker:
    port: int
    user: str | None = None
    password: str | None = None
    cafile: Path | None = None

    def setup(self, client: mqtt.Client) -> None:
        if self.user:
            client.username_pw_set(self.user, self.password)
        if self.cafile:
            client.tls_set(ca_certs=str(self.cafile))


@pytest.fixture(params=["plain", "tls"])
def broker(request, tmp_path):
    if request.param == "plain":
        stack = request.getfixturevalue("stack")
        yield Broker(stack.mosquitto.port, TESTER_USER, stack.password(TESTER_USER))
        return
    tls = make_test_ca(tmp_path / "tls", ["127.0.0.1"])
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    # Anonymous on loopback, for this test only; in-flight and queue room for the whole test.
    conf.write_text(f"listener {port} 127.0.0.1\ncafile {tls.ca_cert}\ncertfile {tls.server_cert}\n"
                    f"keyfile {tls.server_key}\nallow_anonymous true\nmax_inflight_messages 1000\n"
                    "max_queued_messages 10000\n"
                    # As root, Mosquitto would switch to its own user, which cannot read tmp_path.
                    + (f"user {getpass.getuser()}\n" if os.geteuid() == 0 else ""))
    with open(tmp_path / "mosquitto.log", "wb") as log:
        proc = subprocess.Popen([_binary("mosquitto"), "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        wait_until(lambda: _port_open(port), 10, "the TLS listener")
        yield Broker(port, cafile=tls.ca_cert)
    finally:
        terminate(proc)


class Publisher:
    """QoS 1 publisher; ``acked`` counts PUBACKs."""

    def __init__(self, broker: Broker, client_id: str = "test-publisher"):
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        broker.setup(self.client)
        self.client.max_queued_messages_set(0)
        self.client.max_inflight_messages_set(1000)
        self.acked = 0
        self.client.on_publish = self._on_publish
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()

    def _on_publish(self, *args) -> None:
        self.acked += 1

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1)

    def wait_acked(self, n: int) -> None:
        wait_until(lambda: self.acked >= n, 60, f"{n} PUBACKs from the broker")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Receiver:
    def __init__(self, broker: Broker, client_id: str = "fast-test"):
        self.got: list[tuple[str, bytes, int]] = []
        self.qos0: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = FastClient(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5,
                                 manual_ack=True)
        broker.setup(self.client)
        self.client.on_publish_fast = self.on_fast
        self.client.on_message = lambda c, u, msg: self.qos0.append((msg.topic, msg.payload))
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_connect = lambda c, u, flags, rc, props: c.subscribe("wardwatch/fast/#", qos=1)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect("127.0.0.1", broker.port, clean_start=False, properties=props)
        self.client.loop_start()
        assert self.subscribed.wait(10)

    def on_fast(self, topic: str, payload: bytes, mid: int) -> None:
        with self.lock:
            self.got.append((topic, payload, mid))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_receives_everything_in_order_and_acks_exactly_the_given_ids(broker):
    rx = Receiver(broker)
    pub = Publisher(broker)
    # Sizes around the remaining-length steps (127/128, 16383/16384 bytes) and one larger
    # than a whole read, among many small ones.
    sizes = [10, 120, 127, 128, 300, 16_000, 16_383, 16_384, READ_BYTES + 5000] + [40 + i % 200 for i in range(591)]
    sent = [(f"wardwatch/fast/{i % 7}/x", bytes([65 + i % 26]) * n) for i, n in enumerate(sizes)]
    for topic, payload in sent:
        pub.publish(topic, payload)
    pub.client.publish("wardwatch/fast/q0", b"qos zero", qos=0)
    pub.wait_acked(len(sent))
    wait_until(lambda: len(rx.got) >= len(sent) and rx.qos0, 30, "every message at the fast client")
    assert [(t, p) for t, p, _ in rx.got] == sent
    assert rx.qos0 == [("wardwatch/fast/q0", b"qos zero")]

    # Acknowledge every other message (one write), then drop the connection without more.
    acked = {mid for k, (_, _, mid) in enumerate(rx.got) if k % 2 == 0}
    unacked = [(t, p) for k, (t, p, _) in enumerate(rx.got) if k % 2 == 1]
    rx.client.ack_many([mid for k, (_, _, mid) in enumerate(rx.got) if k % 2 == 0])
    # The PUBACKs are written by the network thread: wait until its queue is empty.
    wait_until(lambda: not rx.client._out_packet, 10, "the PUBACKs written")
    assert acked
    rx.close()

    rx2 = Receiver(broker)  # same client id: the session and its unacknowledged messages
    pub.publish("wardwatch/fast/marker", b"after the redelivery")
    wait_until(lambda: any(t == "wardwatch/fast/marker" for t, _, _ in rx2.got), 30, "the marker after the redelivery")
    again = [(t, p) for t, p, _ in rx2.got if t != "wardwatch/fast/marker"]
    assert again == unacked
    rx2.client.ack_many([mid for _, _, mid in rx2.got])
    wait_until(lambda: not rx2.client._out_packet, 10, "the PUBACKs written")
    rx2.close()
    pub.close()

    # Everything is acknowledged now: a third connection gets nothing but what comes next.
    rx3 = Receiver(broker)
    pub = Publisher(broker, client_id="test-publisher-2")
    pub.publish("wardwatch/fast/last", b"last")
    wait_until(lambda: rx3.got, 30, "the last message")
    assert [(t, p) for t, p, _ in rx3.got] == [("wardwatch/fast/last", b"last")]
    rx3.close()
    pub.close()
