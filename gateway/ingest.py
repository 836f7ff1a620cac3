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
import re
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
from .contract import Rejected, decode_reading, decode_status, ident_of, parse_topic
from .dedup import Dedup
from .lag import LagMeter
from .mqtt_fast import FastClient
from .watermark import Watermarks
from .logs import RateLimitedLog
from .registry import Registry

log = logging.getLogger("wardwatch.ingest")


class Outcome:
    """What became of one message: ``kind`` is stored | duplicate | status | ignored | rejected."""

    __slots__ = ("kind", "line", "reason", "detail", "ward", "message", "handled")

    def __init__(self, kind: str, line: str | None = None, reason: str = "", detail: str = "", ward: str = "",
                 message=None, handled: tuple[str, int, int] | None = None):
        self.kind = kind
        self.line = line
        self.reason = reason
        self.detail = detail
        self.ward = ward
        # The decoded Reading or Status, for the listeners (the alarm engine).
        self.message = message
        # (device, seq, low) of a reading whose device takes part in end-to-end delivery
        # (it sent ``low``): once durable, it moves the device's watermark.
        self.handled = handled


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
                handled = (r.dev, r.seq, r.low) if r.low is not None else None
                if self.dedup.is_duplicate(r.dev, r.seq, r.ts):
                    return Outcome("duplicate", ward=ward, handled=handled)
                # A point's identity in InfluxDB is (series, time). The sub-millisecond part
                # carries seq, so two readings stamped in the same ms never overwrite each
                # other, while a redelivered copy (same seq and ts) lands on itself. A clock
                # that went back could repeat an older reading's ms (and seq mod 10^6), so
                # such a reading is stamped on receipt, as with tq=0 (ts is ms since boot).
                if r.tq == 1 and not self.dedup.clock_went_back:
                    t = r.ts * 1_000_000 + r.seq % 1_000_000
                else:
                    t = self._unique_ns(now_ns)
                line = lineproto.vitals(r, ward, self.registry.bed_of(ward, device), t)
                return Outcome("stored", line, ward=ward, message=r, handled=handled)
            if kind == "status":
                s = decode_status(payload, device)
                return Outcome("status", lineproto.device(s, ward, self._unique_ns(now_ns)), ward=ward, message=s)
            return Outcome("ignored")
        except Rejected as rej:
            line = lineproto.rejected(rej.reason, ward, device, payload, self._unique_ns(now_ns))
            # A rejected reading is handled too (counted with its reason): the device must not
            # send it again forever.
            ident = ident_of(payload) if device and rej.reason != "device_mismatch" else None
            handled = (ident.dev, ident.seq, ident.low) if ident is not None and ident.dev == device else None
            return Outcome("rejected", line, rej.reason, rej.detail, ward=ward, handled=handled)


Listener = Callable[[Outcome, int], None]  # (outcome of a reading or status, receipt epoch ms)
Handler = Callable[[str, bytes, int], None]  # (topic, payload, receipt epoch ms)


class MqttIngest:
    """The MQTT shell. ``submit(line, token)`` is the writer's; PUBACKs go out in ``on_durable``."""

    def __init__(self, cfg: Config, processor: Processor, submit: Callable[[str | None, object], None]):
        self.cfg = cfg
        self.processor = processor
        self.submit = submit
        self.lag = LagMeter()
        self.watermarks = Watermarks(interval_ms=cfg.mqtt.watermark_interval_ms)
        self._wm_lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._routes: list[tuple[str, Handler, str]] = []
        self._route_re: re.Pattern | None = None  # matches a topic of any route
        self.counts: Counter = Counter()
        self.rejects: Counter = Counter()
        self.connected = threading.Event()
        self._generation = 0
        self._paused = False
        self._reject_log = RateLimitedLog(log)
        m = cfg.mqtt
        # paho with a lean receive path and batched PUBACKs (gateway/mqtt_fast.py): QoS 1
        # messages come to _on_publish; QoS 0 ones through paho's on_message.
        self.client = FastClient(
            CallbackAPIVersion.VERSION2, client_id=m.client_id, protocol=mqtt.MQTTv5, manual_ack=True
        )
        self.client.on_publish_fast = self._on_publish
        self.client.username_pw_set(m.username, cfg.mqtt_password() or None)
        if m.tls:
            self.client.tls_set(ca_certs=m.cafile or None)
        # Back within a second of the broker: devices replay into it as soon as it listens,
        # and until the gateway has subscribed again nothing takes their readings.
        self.client.reconnect_delay_set(1, 1)
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

        self._routes.append((topic_filter, handler, kind))
        # Topic matching, as MQTT does it, for every message: one regex over all route filters
        # (paho's matcher walks a trie per message; the readings match none).
        self._route_re = re.compile("|".join(f"(?:{_filter_re(f)})" for f, _, _ in self._routes))

    def topics(self) -> list[str]:
        p = self.cfg.mqtt.prefix
        devices = [f"{p}/{ward}/{kind}" for ward in self.cfg.mqtt.wards for kind in ("+/vitals", "+/status")]
        return devices + [f for f, _, _ in self._routes]

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
        """paho's path: QoS 0 messages (no acknowledgement)."""
        self._dispatch(msg.topic, msg.payload, msg.mid, msg.qos)

    def _on_publish(self, topic: str, payload: bytes, mid: int) -> None:
        """FastClient's path: every QoS 1 message."""
        self._dispatch(topic, payload, mid, 1)

    def _routed(self, topic: str, payload: bytes, mid: int, qos: int) -> bool:
        """Hand a message of a routed topic to its handler; False if no route takes it."""
        for topic_filter, handler, kind in self._routes:
            if mqtt.topic_matches_sub(topic_filter, topic):
                try:
                    handler(topic, payload, time.time_ns() // 1_000_000)
                except Exception:
                    log.exception("%s handler failed on %s", kind, topic)
                self.counts[kind] += 1
                self.submit(None, (self._generation, mid, qos, "", None))
                return True
        return False

    def _dispatch(self, topic: str, payload: bytes, mid: int, qos: int) -> None:
        if self._paused:
            return  # not acknowledged: the broker keeps it for the next run
        if self._route_re is not None and self._route_re.fullmatch(topic) and self._routed(topic, payload, mid, qos):
            return
        now_ns = time.time_ns()
        outcome = self.processor.process(topic, payload, now_ns)
        self.counts[outcome.kind] += 1
        if outcome.kind == "stored" and outcome.message.tq == 1:
            r = outcome.message
            self.lag.observe(outcome.ward, r.dev, now_ns // 1_000_000 - r.ts, r.sim, now_ns // 1_000_000)
        if outcome.message is not None:
            for listener in self._listeners:
                try:
                    listener(outcome, now_ns // 1_000_000)
                except Exception:
                    log.exception("listener failed on %s", topic)
        if outcome.kind == "rejected":
            self.rejects[outcome.reason] += 1
            self._reject_log.warning(
                outcome.reason, "rejected %s on %s: %s", outcome.reason, topic, outcome.detail,
                reason=outcome.reason,
            )
        self.submit(outcome.line, (self._generation, mid, qos, outcome.ward, outcome.handled))

    def publish(self, topic: str, payload: bytes, retain: bool) -> None:
        """Publish at QoS 1 (alarm events, active sets, replies); paho queues it, never blocks."""
        self.client.publish(topic, payload, qos=1, retain=retain)

    def on_durable(self, tokens: list) -> None:
        """Writer callback: the batch holding these messages is durable; acknowledge them,
        and move the watermarks of the devices whose readings they were."""
        generation = self._generation
        acked = 0
        handled = []
        mids = []
        for token in tokens:
            if token is None:  # the gateway's own metrics line: nothing to acknowledge
                continue
            gen, mid, qos, ward, reading = token
            if qos and gen == generation:
                mids.append(mid)
            if reading is not None:
                handled.append((ward, reading))
            acked += 1
        # One write for the batch's PUBACKs, in receipt order.
        self.client.ack_many(mids)
        self.counts["acked"] += acked
        if handled:
            with self._wm_lock:
                for ward, (device, seq, low) in handled:
                    self.watermarks.handled(ward, device, seq, low)
            self.publish_watermarks(int(time.time() * 1000))

    def publish_watermarks(self, now_ms: int) -> None:
        """Publish the watermarks that moved and are due (retained, QoS 1); the service's 1 s
        loop calls it too, for those held back by the interval."""
        with self._wm_lock:
            due = self.watermarks.due(now_ms)
        prefix = self.cfg.mqtt.prefix
        for ward, device, mark, top in due:
            payload = b'{"v":1,"dev":"%s","seq":%d,"top":%d}' % (device.encode(), mark, top)
            self.client.publish(f"{prefix}/{ward}/{device}/durable", payload, qos=1, retain=True)
        self.counts["watermarks"] += len(due)


def _filter_re(topic_filter: str) -> str:
    """A regex matching the topics of an MQTT topic filter (``+`` one level, ``#`` the rest)."""
    parts = []
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if level == "#":
            # "a/#" matches "a" too.
            return "/".join(parts) + ("(?:/.*)?" if parts else ".*")
        parts.append("[^/]*" if level == "+" else re.escape(level))
    return "/".join(parts)
