"""gateway.mqtt_fast.FastClient against a real Mosquitto: every message arrives once, whole
and in order (small ones many to a read, a large one across reads, QoS 0 through paho's
path), and ``ack_many`` acknowledges exactly the packet ids given: after a reconnect to the
persistent session the broker redelivers the others and only those."""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.mqtt_fast import READ_BYTES, FastClient
from provisioning.stack.services import TESTER_USER, wait_until

from .publisher import Publisher

pytestmark = pytest.mark.services


class Receiver:
    def __init__(self, stack, client_id: str = "fast-test"):
        self.got: list[tuple[str, bytes, int]] = []
        self.qos0: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = FastClient(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5,
                                 manual_ack=True)
        self.client.username_pw_set(TESTER_USER, stack.password(TESTER_USER))
        self.client.on_publish_fast = self.on_fast
        self.client.on_message = lambda c, u, msg: self.qos0.append((msg.topic, msg.payload))
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_connect = lambda c, u, flags, rc, props: c.subscribe("wardwatch/fast/#", qos=1)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect("127.0.0.1", stack.mosquitto.port, clean_start=False, properties=props)
        self.client.loop_start()
        assert self.subscribed.wait(10)

    def on_fast(self, topic: str, payload: bytes, mid: int) -> None:
        with self.lock:
            self.got.append((topic, payload, mid))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_receives_everything_in_order_and_acks_exactly_the_given_ids(stack):
    rx = Receiver(stack)
    pub = Publisher(stack)
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

    rx2 = Receiver(stack)  # same client id: the session and its unacknowledged messages
    pub.publish("wardwatch/fast/marker", b"after the redelivery")
    wait_until(lambda: any(t == "wardwatch/fast/marker" for t, _, _ in rx2.got), 30, "the marker after the redelivery")
    again = [(t, p) for t, p, _ in rx2.got if t != "wardwatch/fast/marker"]
    assert again == unacked
    rx2.client.ack_many([mid for _, _, mid in rx2.got])
    wait_until(lambda: not rx2.client._out_packet, 10, "the PUBACKs written")
    rx2.close()
    pub.close()

    # Everything is acknowledged now: a third connection gets nothing but what comes next.
    rx3 = Receiver(stack)
    pub = Publisher(stack, client_id="test-publisher-2")
    pub.publish("wardwatch/fast/last", b"last")
    wait_until(lambda: rx3.got, 30, "the last message")
    assert [(t, p) for t, p, _ in rx3.got] == [("wardwatch/fast/last", b"last")]
    rx3.close()
    pub.close()
