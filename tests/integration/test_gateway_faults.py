"""The gateway against real Mosquitto and InfluxDB: hostile input, database outage, crash."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from provisioning.stack.gateway_proc import GatewayProcess
from provisioning.stack.services import wait_until

from .publisher import Publisher, reading, stored_seqs, stream

pytestmark = pytest.mark.services


@pytest.fixture
def gateway(stack, tmp_path):
    with GatewayProcess(stack, tmp_path / "gw") as gw:
        yield gw


def assert_exactly_once(influx, dev: str, n: int, timeout: float = 60) -> None:
    wait_until(lambda: len(stored_seqs(influx, dev)) >= n, timeout, f"{n} readings of {dev} in InfluxDB")
    counts = Counter(stored_seqs(influx, dev))
    assert sorted(counts) == list(range(n)), "missing or unexpected seqs"
    assert max(counts.values()) == 1, "duplicates stored"


HOSTILE = {
    "not_json": b"hello",
    "not_json ": b'{"v":1,"hr":NaN}',
    "not_object": b"[]",
    "missing_key": b'{"v":1,"dev":"dev-01"}',
    "wrong_type": reading("dev-01", 1, hr="fast"),
    "out_of_range": reading("dev-01", 1, spo2=130),
    "oversize": b"{" + b" " * 600 + b"}",
    "device_mismatch": reading("dev-99", 1),
    "future_ts": reading("dev-01", 1, ts=4_000_000_000_000),
    "bad_version": reading("dev-01", 1, v=7),
    "deeply nested": b'{"x":' * 60 + b"0" + b"}" * 60,
}


def test_hostile_payloads_are_rejected_counted_and_valid_traffic_flows(stack, gateway):
    pub = Publisher(stack)
    n_valid = 200
    for i in range(n_valid):
        pub.publish("wardwatch/v1/w1/dev-01/vitals", reading("dev-01", i))
        if i % 10 == 0:
            for payload in HOSTILE.values():
                pub.publish("wardwatch/v1/w1/dev-01/vitals", payload)
    pub.publish("wardwatch/v1/w1/UPPER/vitals", reading("dev-01", 0))
    sent_hostile = 20 * len(HOSTILE) + 1
    pub.wait_acked(n_valid + sent_hostile)

    assert_exactly_once(stack.influx, "dev-01", n_valid)
    expected = Counter({"not_json": 40, "not_object": 20, "missing_key": 40, "wrong_type": 20, "out_of_range": 20,
                        "oversize": 20, "device_mismatch": 20, "future_ts": 20, "bad_version": 20, "bad_topic": 1})

    def stored_rejects():
        return {r["reason"]: r["sum"] for r in stack.influx.rows("SELECT sum(count) FROM rejected GROUP BY reason")}

    wait_until(lambda: stored_rejects() == dict(expected), 30, "reject counts in InfluxDB")
    health = gateway.health()
    assert health["rejected"] == dict(expected)
    assert health["status"] == "ok"
    pub.close()


def test_database_outage_is_spooled_then_drained_without_loss(stack, gateway):
    pub = Publisher(stack)
    rate, seconds = 100, 40
    feeder = threading.Thread(target=stream, args=(pub, "w1", "dev-01", rate * seconds, rate))
    feeder.start()
    wait_until(lambda: len(stored_seqs(stack.influx, "dev-01")) > 100, 20, "first readings stored")
    stack.influx.stop()
    wait_until(lambda: gateway.health().get("spool_batches", 0) > 5, 20, "the gateway to spool")
    outage_start = gateway.health()
    assert outage_start["influx_ok"] is False and outage_start["status"] == "degraded"
    # Keep the database down for 30 s while readings keep coming.
    wait_until(lambda: gateway.health()["writer"]["spooled_lines"] >= 30 * rate * 0.9, 40, "30 s of spooled readings")
    stack.influx.start()
    feeder.join()
    assert_exactly_once(stack.influx, "dev-01", rate * seconds, timeout=90)
    wait_until(lambda: gateway.health()["spool_batches"] == 0, 30, "the spool to drain")
    health = gateway.health()
    assert health["influx_ok"] is True and health["writer"]["drained_batches"] > 0 and health["status"] == "ok"
    pub.close()


def test_gateway_sigkill_mid_stream_loses_and_duplicates_nothing(stack, gateway):
    pub = Publisher(stack)
    rate, seconds = 500, 8
    feeder = threading.Thread(target=stream, args=(pub, "w1", "dev-01", rate * seconds, rate))
    feeder.start()
    wait_until(lambda: len(stored_seqs(stack.influx, "dev-01")) > 500, 20, "readings flowing")
    gateway.kill()
    killed_at = len(stored_seqs(stack.influx, "dev-01"))
    wait_until(lambda: pub.acked > killed_at + 1000, 20, "the broker to queue readings for the dead gateway")
    gateway.start()
    feeder.join()
    assert_exactly_once(stack.influx, "dev-01", rate * seconds, timeout=60)
    pub.close()


def test_gateway_tells_systemd_it_is_ready_and_alive(stack, tmp_path):
    import socket

    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(10)
    env = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "2000000"}
    with GatewayProcess(stack, tmp_path / "gw", env=env):
        messages = [sock.recv(256), sock.recv(256)]
    assert messages == [b"READY=1", b"WATCHDOG=1"]
    rest = []
    while b"STOPPING=1" not in rest:
        rest.append(sock.recv(256))  # times out (fails) if the gateway never says it stops
    assert set(rest) <= {b"WATCHDOG=1", b"STOPPING=1"}
    sock.close()
