"""Ingest: one MQTT message in, one line-protocol line (or none) out.

``Processor.process`` is the functional core: topic + payload + time in, an ``Outcome`` out,
no I/O. ``MqttIngest`` is the shell around paho-mqtt 2: a persistent MQTTv5 session
(clean start off, session expiry >= 1 h), QoS 1, manual acknowledgement. Every message,
stored, duplicate, rejected or routed, is handed to the writer with its ack token, and its
PUBACK is sent only when the writer reports the batch durable (in InfluxDB or in the spool).

Ingest knows the device topics (vitals, status) only. The gateway service adds the rest
before ``start()``: ``listen()`` hands every decoded reading and status on (the alarm
engine), and ``route()`` sends the messages of a further topic filter (the alarm commands)
to their own handler.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from . import lineproto
from .config import Config
from .contract import Rejected, decode_reading, decode_status, parse_topic
from .dedup import Dedup
from .logs import RateLimitedLog
from .registry import Registry

log = logging.getLogger("wardwatch.ingest")


class Outcome:
    """What became of one message: ``kind`` is stored | duplicate | status | ignored | rejected."""

    __slots__ = ("kind", "line", "reason", "detail", "ward", "message")

    def __init__(self, kind: str, line: str | None = None, reason: str = "", detail: str = "", ward: str = "",
                 message=None):
        self.kind = kind
        self.line = line
        self.reason = reason
        self.detail = detail
        self.ward = ward
        # The decoded Reading or Status, for the listeners (the alarm engine).
        self.message = message


class Processor:
    """Pure per-message logic. Who calls it: ``MqttIngest.on_message`` (one thread)."""

    def __init__(self, prefix: str, registry: Registry, dedup: Dedup | None = None):
        self.prefix = prefix
        self.registry = registry
        self.dedup = dedup or Dedup()
        self._last_ns = 0

    def _unique_ns(self, now_ns: int) -> int:
        # Receipt-stamped points (rejects, status, unsynced clocks) must not share a
        # timestamp within a series, or InfluxDB would overwrite one with the other.
        self._last_ns = max(now_ns, self._last_ns + 1)
        return self._last_ns

    def process(self, topic: str, payload: bytes, now_ns: int) -> Outcome:
        ward = device = ""
        try:
            ward, device, kind = parse_topic(topic, self.prefix)
            if kind == "vitals":
                r = decode_reading(payload, device, now_ns // 1_000_000)
                if self.dedup.is_duplicate(r.dev, r.seq, r.ts):
                    return Outcome("duplicate")
                # A point's identity in InfluxDB is (series, time). The sub-millisecond part
                # carries seq, so two readings stamped in the same ms never overwrite each
                # other, while a redelivered copy (same seq and ts) lands on itself.
                # tq=0: ts is ms since boot, so the gateway stamps the reading on receipt.
                t = r.ts * 1_000_000 + r.seq % 1_000_000 if r.tq == 1 else self._unique_ns(now_ns)
                line = lineproto.vitals(r, ward, self.registry.bed_of(ward, device), t)
                return Outcome("stored", line, ward=ward, message=r)
            if kind == "status":
                s = decode_status(payload, device)
                return Outcome("status", lineproto.device(s, ward, self._unique_ns(now_ns)), ward=ward, message=s)
            return Outcome("ignored")
        except Rejected as rej:
            line = lineproto.rejected(rej.reason, ward, device, payload, self._unique_ns(now_ns))
            return Outcome("rejected", line, rej.reason, rej.detail)


Listener = Callable[[Outcome, int], None]  # (outcome of a reading or status, receipt epoch ms)
Handler = Callable[[str, bytes, int], None]  # (topic, payload, receipt epoch ms)


class MqttIngest:
    """The MQTT shell. ``submit(line, token)`` is the writer's; PUBACKs go out in ``on_durable``."""

    def __init__(self, cfg: Config, processor: Processor, submit: Callable[[str | None, object], None]):
        self.cfg = cfg
        self.processor = processor
        self.submit = submit
        self._listeners: list[Listener] = []
        self._routes: list[str] = []
        self.counts: Counter = Counter()
        self.rejects: Counter = Counter()
        self.connected = threading.Event()
        self._generation = 0
        self._paused = False
        self._reject_log = RateLimitedLog(log)
        m = cfg.mqtt
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=m.client_id, protocol=mqtt.MQTTv5, manual_ack=True
        )
        self.client.username_pw_set(m.username, cfg.mqtt_password() or None)
        if m.tls:
            self.client.tls_set(ca_certs=m.cafile or None)
        self.client.reconnect_delay_set(1, 30)
        # Alarm events go out on this connection. With paho's default window of 20, their
        # PUBACKs queue behind the readings the broker has in flight to us, and a backlog
        # in ingest would hold alarms back by seconds (make bench-alarms, gateway stalled).
        self.client.max_inflight_messages_set(1000)
        self.client.on_connect = self.on_connect
        self.client.on_disconnect = self.on_disconnect
        self.client.on_message = self.on_message

    def listen(self, listener: Listener) -> None:
        """Call ``listener(outcome, now_ms)`` with every stored reading and every status, on
        receipt, before the batch is written: a display hears of an alarm without waiting for
        InfluxDB. Exceptions are logged; the message is stored and acknowledged all the same."""
        self._listeners.append(listener)

    def route(self, topic_filter: str, handler: Handler, kind: str) -> None:
        """Subscribe to ``topic_filter`` and hand its messages to ``handler`` instead of the
        processor; each is counted as ``kind`` and acknowledged in order with the readings."""

        def on_routed(client, userdata, msg) -> None:
            if self._paused:
                return
            try:
                handler(msg.topic, msg.payload, time.time_ns() // 1_000_000)
            except Exception:
                log.exception("%s handler failed on %s", kind, msg.topic)
            self.counts[kind] += 1
            self.submit(None, (self._generation, msg.mid, msg.qos))

        self._routes.append(topic_filter)
        self.client.message_callback_add(topic_filter, on_routed)

    def topics(self) -> list[str]:
        p = self.cfg.mqtt.prefix
        devices = [f"{p}/{ward}/{kind}" for ward in self.cfg.mqtt.wards for kind in ("+/vitals", "+/status")]
        return devices + self._routes

    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.cfg.mqtt.session_expiry_s
        self.client.connect_async(
            self.cfg.mqtt.host, self.cfg.mqtt.port, self.cfg.mqtt.keepalive_s, clean_start=False, properties=props
        )
        self.client.loop_start()

    def stop(self) -> None:
        """Stop taking new messages; the caller flushes the writer, then calls ``close``."""
        self._paused = True

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    # -- paho callbacks (network thread: keep them light) -----------------------------------

    def on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("MQTT connect refused: %s", reason_code)
            return
        # PUBACKs for messages of an earlier connection must not be sent on this one: the
        # broker redelivers those messages, and they are acknowledged again then.
        self._generation += 1
        client.subscribe([(t, 1) for t in self.topics()])
        self.connected.set()
        log.info(
            "MQTT connected",
            extra={"session_present": bool(flags.session_present), "topics": self.topics()},
        )

    def on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        if not self._paused:
            log.warning("MQTT disconnected: %s; reconnecting", reason_code)

    def on_message(self, client, userdata, msg) -> None:
        if self._paused:
            return  # not acknowledged: the broker keeps it for the next run
        now_ns = time.time_ns()
        outcome = self.processor.process(msg.topic, msg.payload, now_ns)
        self.counts[outcome.kind] += 1
        if outcome.message is not None:
            for listener in self._listeners:
                try:
                    listener(outcome, now_ns // 1_000_000)
                except Exception:
                    log.exception("listener failed on %s", msg.topic)
        if outcome.kind == "rejected":
            self.rejects[outcome.reason] += 1
            self._reject_log.warning(
                outcome.reason, "rejected %s on %s: %s", outcome.reason, msg.topic, outcome.detail,
                reason=outcome.reason,
            )
        self.submit(outcome.line, (self._generation, msg.mid, msg.qos))

    def publish(self, topic: str, payload: bytes, retain: bool) -> None:
        """Publish at QoS 1 (alarm events, active sets, replies); paho queues it, never blocks."""
        self.client.publish(topic, payload, qos=1, retain=retain)

    def on_durable(self, tokens: list) -> None:
        """Writer callback: the batch holding these messages is durable; acknowledge them."""
        generation = self._generation
        acked = 0
        for token in tokens:
            if token is None:  # the gateway's own metrics line: nothing to acknowledge
                continue
            gen, mid, qos = token
            if qos and gen == generation:
                self.client.ack(mid, qos)
            acked += 1
        self.counts["acked"] += acked
