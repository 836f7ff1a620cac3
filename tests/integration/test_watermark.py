"""End-to-end delivery, the gateway's side: a device that sends ``low`` gets a retained
watermark on its own ``durable`` topic, which only it may read and only the gateway write."""

from __future__ import annotations

import json
import threading

import pytest

from provisioning.stack.gateway_proc import GatewayProcess
from provisioning.stack.services import wait_until

from .publisher import reading
from .test_broker_security import connect

pytestmark = pytest.mark.services


def test_the_watermark_covers_what_is_durable_and_only_its_device_reads_it(stack, tmp_path):
    stack.mosquitto.add_users({"dev-wm1": "pw-1", "dev-wm2": "pw-2"})
    stack.mosquitto.stop()
    stack.mosquitto.start()
    with GatewayProcess(stack, tmp_path / "gw") as gw:
        marks: dict[str, list[int]] = {"dev-wm1": [], "dev-wm2": []}
        lock = threading.Lock()

        def device(name: str, password: str):
            c, rc = connect(stack, name, password, name)
            assert not rc.is_failure

            def on_message(client, userdata, msg):
                with lock:
                    marks[name].append((msg.topic, json.loads(msg.payload)))

            c.on_message = on_message
            c.subscribe("wardwatch/v1/w1/+/durable", qos=1)  # both topics: the ACL must filter
            return c

        one, two = device("dev-wm1", "pw-1"), device("dev-wm2", "pw-2")
        # dev-wm1 holds 10..59 and sends them with a gap (30 comes last); one is rejected.
        seqs = [s for s in range(10, 60) if s != 30] + [30]
        for s in seqs:
            payload = reading("dev-wm1", s, low=10) if s != 45 else reading("dev-wm1", s, low=10, spo2=130)
            one.publish("wardwatch/v1/w1/dev-wm1/vitals", payload, qos=1)
        # Its watermark reaches 59 only once 30 is in: every reading up to it is handled.
        wait_until(lambda: any(m["seq"] == 59 for _, m in marks["dev-wm1"]), 20, "watermark 59 for dev-wm1")
        with lock:
            got = [(t, m) for t, m in marks["dev-wm1"]]
        assert all(t == "wardwatch/v1/w1/dev-wm1/durable" and m["dev"] == "dev-wm1" for t, m in got)
        # Nothing past the gap was covered before 30 arrived.
        assert got[-1][1]["seq"] == 59 and all(m["seq"] <= 29 for _, m in got[:-1])
        assert marks["dev-wm2"] == []  # another device's watermark is not readable
        # A device cannot forge its own watermark (only the gateway writes it).
        two.publish("wardwatch/v1/w1/dev-wm2/durable", b'{"v":1,"dev":"dev-wm2","seq":999}', qos=1).wait_for_publish(10)
        # Older firmware sends no low: no watermark for it.
        two.publish("wardwatch/v1/w1/dev-wm2/vitals", reading("dev-wm2", 0), qos=1).wait_for_publish(10)
        wait_until(lambda: gw.health()["counts"].get("stored", 0) >= 50, 20, "the readings stored")
        late, rc = connect(stack, "dev-wm2", "pw-2", "dev-wm2-again")
        retained = []
        late.on_message = lambda c, u, m: retained.append(m.payload)
        late.subscribe("wardwatch/v1/w1/dev-wm2/durable", qos=1)
        one_more, rc = connect(stack, "dev-wm1", "pw-1", "dev-wm1-again")
        kept = []
        one_more.on_message = lambda c, u, m: kept.append(json.loads(m.payload))
        one_more.subscribe("wardwatch/v1/w1/dev-wm1/durable", qos=1)
        wait_until(lambda: kept, 10, "dev-wm1's retained watermark")
        assert kept[-1]["seq"] == 59 and retained == []
        assert gw.health()["rejected"] == {"out_of_range": 1}
        for c in (one, two, late, one_more):
            c.loop_stop()
