"""Nothing lost, nothing silent: the gateway on a full disk, with a spool smaller than the
outage, and with a writer thread that dies; real Mosquitto and InfluxDB throughout."""

from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest

from gateway import config
from gateway.service import Gateway
from provisioning.stack.gateway_proc import GatewayProcess
from provisioning.stack.services import wait_until

from .publisher import Publisher, reading, stored_seqs, stream
from .test_gateway_faults import assert_exactly_once

pytestmark = pytest.mark.services


@pytest.fixture
def small_disk(tmp_path):
    """A 512 KiB tmpfs (the tests run as root): the gateway's state_dir on a disk that fills."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_holds_readings_unacknowledged_then_stores_every_one(stack, tmp_path, small_disk):
    state = small_disk / "state"
    with GatewayProcess(stack, tmp_path / "gw", state_dir=str(state)) as gw:
        stack.influx.stop()
        pub = Publisher(stack)
        n = 6000  # about 1.2 MB of line protocol: more than the disk holds
        feeder = threading.Thread(target=stream, args=(pub, "w1", "dev-01", n, 1000))
        feeder.start()
        held = wait_until(lambda: (lambda h: h if h.get("status") == "holding" else None)(gw.health()), 60,
                          "the gateway to hold batches the full disk refuses")
        assert held["mqtt_connected"] is True and held["writer"]["backpressure_waits"] > 0
        assert not list((state / "spool").glob("*.tmp")), "a partial batch file was left behind"
        log = [json.loads(line) for line in gw.log.read_text().splitlines() if line.startswith("{")]
        trouble = [e for e in log if "holding the batch" in e["msg"]]
        assert trouble and trouble[0]["level"] == "warning" and "No space left on device" in trouble[0]["msg"]
        feeder.join()
        time.sleep(3)  # the outage goes on: the log line is rate-limited, the process alive
        assert gw.proc.poll() is None
        assert len([e for e in gw.log.read_text().splitlines() if "holding the batch" in e]) <= 2

        stack.influx.start()
        assert_exactly_once(stack.influx, "dev-01", n, timeout=90)
        wait_until(lambda: gw.health().get("status") == "ok", 60, "the gateway to report ok again")
        assert gw.health()["spool_batches"] == 0
        pub.close()


def test_a_spool_smaller_than_the_outage_recovers_and_stores_every_reading(stack, tmp_path):
    # 300 readings/s with the database down for 45 s is about 13,500 readings (2.7 MB of line
    # protocol) against a 400 kB spool: most of the outage waits unacknowledged in the broker.
    with GatewayProcess(stack, tmp_path / "gw", spool_max_bytes=400_000) as gw:
        pub = Publisher(stack)
        rate, seconds = 300, 60
        feeder = threading.Thread(target=stream, args=(pub, "w1", "dev-01", rate * seconds, rate))
        feeder.start()
        wait_until(lambda: len(stored_seqs(stack.influx, "dev-01")) > 300, 20, "first readings stored")
        stack.influx.stop()
        down_at = time.monotonic()
        wait_until(lambda: gw.health().get("status") == "holding", 40, "the spool to fill")
        time.sleep(max(0.0, 45 - (time.monotonic() - down_at)))
        stack.influx.start()
        feeder.join()
        assert_exactly_once(stack.influx, "dev-01", rate * seconds, timeout=120)
        health = gw.health()
        assert health["writer"]["backpressure_waits"] > 0
        # Batches stayed bounded while the backlog waited: no write carried the whole backlog.
        assert health["writer"]["batches"] >= rate * seconds / 5000
        pub.close()


def test_a_dead_writer_thread_fails_healthz_and_stops_the_watchdog(stack, tmp_path, caplog, monkeypatch):
    # The gateway in this process, so that its acknowledgement path can be broken: a bug that
    # kills the writer thread must not leave /healthz saying "ok", nor systemd's watchdog fed.
    import socket

    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(3)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    gwp = GatewayProcess(stack, tmp_path / "gw")  # writes the config; not started
    gateway = Gateway(config.load(gwp.config, env={}))
    gateway.start()
    try:
        wait_until(lambda: gateway.health()[1]["status"] == "ok", 30, "the gateway to connect")
        assert notify.recv(64) == b"READY=1" and notify.recv(64) == b"WATCHDOG=1"

        def broken_ack(mids):
            raise RuntimeError("a bug in the acknowledgement path")

        gateway.ingest.client.ack_many = broken_ack
        pub = Publisher(stack)
        pub.publish("wardwatch/v1/w1/dev-01/vitals", reading("dev-01", 0))
        code, body = wait_until(lambda: (lambda h: h if h[1]["status"] == "failed" else None)(gateway.health()), 30,
                                "healthz to report the dead writer")
        assert code == 503 and body["failure"] == "writer thread is not running"
        died = [r for r in caplog.records if r.name == "wardwatch.influx" and r.levelname == "CRITICAL"]
        assert died and "writer thread died" in died[0].getMessage() and died[0].exc_info
        # Drain what was sent before the failure was seen, then: silence for the watchdog.
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            try:
                notify.recv(64)
            except TimeoutError:
                break
        with pytest.raises(TimeoutError):
            notify.recv(64)  # 3 s without WATCHDOG=1: systemd (WatchdogSec) restarts the gateway
        pub.close()
    finally:
        gateway.stop()
        notify.close()


def test_a_stalled_writer_is_reported_from_its_heartbeat(stack, tmp_path):
    gwp = GatewayProcess(stack, tmp_path / "gw")
    gateway = Gateway(config.load(gwp.config, env={}))
    gateway.start()
    try:
        writer = gateway.writer
        assert writer.alive() == ""
        later = time.monotonic() + writer.stall_s + 1  # a clock that jumped past the stall bound
        assert writer.alive(now=later).startswith("writer thread stalled for ")
    finally:
        gateway.stop()
