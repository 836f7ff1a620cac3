"""Fixtures for the firmware tests: an asyncio loop in a thread (the device side), a
broker with device users (the ``stack`` fixture's Mosquitto), and a paho subscriber.

Device apps and MQTT clients run on ``aloop``; the test body runs in the main thread and
waits for conditions with ``wait_until``, as an outside observer of a real broker would.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from provisioning.stack.services import TESTER_USER, wait_until

REPO = Path(__file__).resolve().parents[2]
FIRMWARE = REPO / "firmware"
WARD = "w1"
_sub_ids = itertools.count(1)
DEVICES = {"dev-01": "pw-dev-01", "dev-02": "pw-dev-02", "dev-03": "pw-dev-03", "dev-04": "pw-dev-04"}


class LoopThread:
    """An asyncio event loop running in a daemon thread."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="device-loop", daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float = 30):
        """Run ``coro`` on the loop and return its result (blocking the test thread)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def spawn(self, coro):
        """Start ``coro`` as a task on the loop; returns a concurrent future."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, fn, *args):
        """Call ``fn(*args)`` on the loop thread and return its result."""

        async def _call():
            return fn(*args)

        return self.run(_call())

    def close(self):
        async def _cancel_all():
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            self.run(_cancel_all(), timeout=10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


@pytest.fixture
def aloop():
    lt = LoopThread()
    yield lt
    lt.close()


class Broker:
    """The stack's Mosquitto with the DEVICES users added."""

    def __init__(self, stack):
        self.stack = stack
        self.mosquitto = stack.mosquitto
        self.port = stack.mosquitto.port

    def device_cfg(self, dev: str, **over) -> dict:
        """A bedside config dict for ``dev`` on this broker (fast backoff for tests)."""
        cfg = {
            "dev": dev,
            "ward": WARD,
            "broker": {"host": "127.0.0.1", "port": self.port, "password": DEVICES.get(dev),
                       "keepalive": 5, "backoff_min_ms": 100, "backoff_max_ms": 500, "timeout_ms": 2000},
            "rate_hz": 20,
            "sim": True,
            "seed": 1,
        }
        broker_over = over.pop("broker", {})
        cfg.update(over)
        cfg["broker"].update(broker_over)
        return cfg

    def subscriber(self, topic: str, **kw) -> "Subscriber":
        return Subscriber(self.port, self.stack.password(TESTER_USER), topic, **kw)

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-publisher")
        c.username_pw_set(TESTER_USER, self.stack.password(TESTER_USER))
        c.connect("127.0.0.1", self.port)
        c.loop_start()
        try:
            c.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)
        finally:
            c.disconnect()
            c.loop_stop()

    def restart(self) -> None:
        self.mosquitto.stop()
        self.mosquitto.start()


@pytest.fixture
def broker(stack):
    stack.mosquitto.add_users(DEVICES)
    stack.mosquitto.stop()
    stack.mosquitto.start()  # same port: the fixture's Mosquitto, now with device users
    return Broker(stack)


class Subscriber:
    """A paho subscriber collecting (topic, payload, retained) in arrival order.

    ``persistent=True`` gives a persistent session (clean_session off) that survives a
    broker restart with its queued QoS 1 messages, and reconnects quickly."""

    def __init__(self, port: int, password: str, topic: str, persistent: bool = False, client_id: str | None = None):
        client_id = client_id or f"test-sub-{next(_sub_ids)}"
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=not persistent)
        self.client.username_pw_set(TESTER_USER, password)
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise TimeoutError("subscriber got no SUBACK")

    def _on_message(self, client, userdata, msg):
        with self._lock:
            self.messages.append((msg.topic, msg.payload, msg.retain))

    def payloads(self, suffix: str) -> list[dict]:
        with self._lock:
            return [json.loads(p) for t, p, r in self.messages if t.endswith(suffix)]

    def seqs(self) -> list[int]:
        return [m["seq"] for m in self.payloads("/vitals")]

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def first_occurrences(seqs: list[int]) -> list[int]:
    """``seqs`` without repeats (QoS 1 may deliver a retransmitted reading twice)."""
    seen, out = set(), []
    for s in seqs:
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out


def wait(pred, timeout: float, what: str):
    return wait_until(pred, timeout, what, interval=0.02)


def monotonic() -> float:
    return time.monotonic()


MPY = Path(__file__).resolve().parent / "mpy"


@pytest.fixture(scope="session")
def micropython():
    """``run(script) -> stdout``: a script on real MicroPython 1.27 (WebAssembly port under
    Node, tests/firmware/mpy/run_pure.mjs) with firmware/bedside importable."""
    import shutil
    import subprocess

    assert shutil.which("node"), "node is needed: run 'make deps'"
    package = MPY / "node_modules" / "@micropython" / "micropython-webassembly-pyscript"
    assert package.is_dir(), "MicroPython (npm) is not installed: run 'make npm' (make test does)"

    def run(script):
        r = subprocess.run(["node", "run_pure.mjs", str(FIRMWARE / "bedside"), str(script)],
                           cwd=MPY, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        return r.stdout

    return run
