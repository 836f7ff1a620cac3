"""Waiting for a freshly flashed board's first ``online`` status on the broker.

The board publishes a retained ``online`` status on every connect. A status retained from
before the flash proves nothing, so the watch subscribes *before* the board is reset and
counts only messages the broker forwards live (MQTT 3.1.1 clears the retain flag on
messages delivered to an existing subscription). One connection serves a whole batch.
"""

from __future__ import annotations

import json
import secrets
import ssl
import threading
import time

from .board_link import BoardError


class StatusWatch:
    """Who calls it: ``provisioning.device`` with ``--wait-status``; ``watch(entry)`` right
    before the board's reset, then ``Watcher.wait()``."""

    def __init__(self, host: str, port: int, user: str, password: str, prefix: str, timeout_s: float,
                 tls: bool = False, cafile: str | None = None):
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.prefix = prefix
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._waiting: dict[str, tuple[threading.Event, dict]] = {}
        self._subacks: dict[int, threading.Event] = {}
        self._c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"wardwatch-provision-{secrets.token_hex(4)}")
        self._c.username_pw_set(user, password)
        if tls:
            self._c.tls_set(ca_certs=cafile or None)
        connected = threading.Event()
        refused: list[str] = []

        def on_connect(c, userdata, flags, rc, props):
            if rc.is_failure:
                refused.append(str(rc))
            connected.set()

        self._c.on_connect = on_connect
        self._c.on_message = self._on_message
        self._c.on_subscribe = self._on_subscribe
        try:
            self._c.connect(host, port, keepalive=30)
        except (OSError, ssl.SSLError) as exc:
            raise BoardError(f"cannot reach the broker at {host}:{port} to watch statuses: {exc}") from None
        self._c.loop_start()
        if not connected.wait(10) or refused:
            self.close()
            raise BoardError(f"the broker at {host}:{port} refused the status watch: "
                             f"{refused[0] if refused else 'no CONNACK'}")

    def close(self) -> None:
        self._c.disconnect()
        self._c.loop_stop()

    def _on_subscribe(self, c, userdata, mid, reason_codes, props):
        with self._lock:  # taken while watch() files the mid: a fast SUBACK waits for it
            ev = self._subacks.get(mid)
        if ev is not None:
            ev.set()

    def _on_message(self, c, userdata, msg):
        if msg.retain:
            return
        with self._lock:
            slot = self._waiting.get(msg.topic)
        if slot is None:
            return
        try:
            doc = json.loads(msg.payload)
        except ValueError:
            return
        if isinstance(doc, dict) and doc.get("state") == "online":
            slot[1].update(doc)
            slot[0].set()

    def watch(self, entry) -> "Watcher":
        topic = f"{self.prefix}/{entry.ward}/{entry.id}/status"
        done = threading.Event()
        suback = threading.Event()
        with self._lock:
            self._waiting[topic] = (done, {})
            rc, mid = self._c.subscribe(topic, qos=1)
            self._subacks[mid] = suback
        if not suback.wait(10):
            raise BoardError(f"no SUBACK for {topic}: is this account allowed to read it?")
        return Watcher(topic, done, self._waiting[topic][1], self.timeout_s)


class Watcher:
    """One board's wait; ``doc`` is filled with the status when it arrives."""

    def __init__(self, topic: str, done: threading.Event, doc: dict, timeout_s: float):
        self.topic, self._done, self._doc, self._timeout_s = topic, done, doc, timeout_s
        self._since = time.monotonic()

    def wait(self) -> str:
        """"online after 4.2 s, fw 0.1.0"; BoardError if nothing came within the timeout."""
        if not self._done.wait(self._timeout_s):
            raise BoardError(f"no online status on {self.topic} within {self._timeout_s:.0f} s "
                             "(check Wi-Fi, the broker address and the device's password)")
        return f"online after {time.monotonic() - self._since:.1f} s, fw {self._doc.get('fw')}"
