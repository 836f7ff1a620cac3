"""The provisioned unit's watchdog rule against the real gateway (real Mosquitto and InfluxDB):
the gateway's 1 s main loop is the watchdog's heartbeat, so a hung loop goes silent and
systemd (WatchdogSec=) restarts it. READY, WATCHDOG..., STOPPING in order on a real datagram
socket: test_gateway_faults.py::test_gateway_tells_systemd_it_is_ready_and_alive."""

from __future__ import annotations

import socket
import threading

import pytest

from gateway import config
from gateway.service import Gateway
from provisioning.stack.gateway_proc import GatewayProcess

pytestmark = pytest.mark.services


def drain(sock: socket.socket) -> list[bytes]:
    """What has already arrived, without waiting."""
    got = []
    sock.setblocking(False)
    try:
        while True:
            got.append(sock.recv(64))
    except BlockingIOError:
        return got
    finally:
        sock.setblocking(True)


def test_a_hung_main_loop_stops_the_watchdog_pings(stack, tmp_path, monkeypatch):
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(10)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    gwp = GatewayProcess(stack, tmp_path / "gw")  # writes the config; not started
    gateway = Gateway(config.load(gwp.config, env={}))
    assert gateway.alarms is not None
    stuck, release = threading.Event(), threading.Event()
    tick = gateway.alarms.tick

    def hanging_tick(*args, **kwargs):
        stuck.set()
        release.wait()  # a deadlock in the alarm shell, say

    gateway.start()
    try:
        assert notify.recv(64) == b"READY=1" and notify.recv(64) == b"WATCHDOG=1"
        gateway.alarms.tick = hanging_tick
        assert stuck.wait(10), "the main loop never reached the alarm tick"
        drain(notify)  # pings sent before the loop entered the tick
        notify.settimeout(3)
        with pytest.raises(TimeoutError):
            notify.recv(64)  # 3 s without WATCHDOG=1: systemd (WatchdogSec) restarts the gateway
        assert gateway.health()[1]["mqtt_connected"] is True  # the rest of the gateway still runs

        # The loop, unstuck, pets the watchdog again.
        gateway.alarms.tick = tick
        release.set()
        notify.settimeout(10)
        assert notify.recv(64) == b"WATCHDOG=1"
    finally:
        release.set()
        gateway.stop()
        notify.close()
