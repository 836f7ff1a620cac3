"""paho-mqtt's client with a lean receive path and batched PUBACKs (the gateway's ingest).

Profiled under ``make bench`` (bench/profiles/README.md), most of the gateway's CPU per
reading went to paho's per-message machinery rather than to the reading itself:

- reading: one ``select`` and three or four ``recv`` calls per packet (the fixed header
  byte, each remaining-length byte, the body), since paho reads one packet per wake-up;
- dispatch: a ``Properties`` object decoded, an ``MQTTMessage`` built and the topic
  matched against every ``message_callback_add`` filter, per message;
- acknowledging: each ``ack()`` queues one 4-byte packet, writes a wake-up byte to the loop
  thread's socket pair and costs the loop thread a ``select`` and a ``send``.

``FastClient`` keeps paho for everything else (connect, session, subscribe, keepalive,
reconnect, TLS, outgoing QoS 1 with retransmission) and changes just those three:

- ``loop_read`` takes whatever the socket has in one ``recv`` (up to READ_BYTES) and hands
  every complete packet to paho's own ``_packet_handle``; a partial packet waits in a
  buffer for the next read (the buffer belongs to one socket: a reconnect starts empty);
- an incoming QoS 1 PUBLISH goes straight to ``on_publish_fast(topic, payload, mid)``: no
  ``MQTTMessage``, no properties object (the gateway uses none), no topic matching; the
  caller dispatches. QoS 0 and 2, a topic alias (empty topic) or no ``on_publish_fast`` take
  paho's path unchanged;
- ``ack_many(mids)`` writes the PUBACKs of a batch as one packet: one wake-up, one
  ``send``, in the order given (MQTT 3.1.1 and 5 acknowledge QoS 1 in any order, the
  gateway keeps receipt order anyway).

It overrides paho internals (``loop_read``, ``_handle_publish``, ``_in_packet``,
``_packet_handle``, ``_packet_queue``), so pyproject.toml pins paho-mqtt to the minor
versions it was tested with; tests/gateway/test_mqtt_fast.py runs it against a real broker.
"""

from __future__ import annotations

import ssl
import struct
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.client import MQTTErrorCode
from paho.mqtt.enums import MQTTProtocolVersion

# One read takes at most this much; more waits for the next loop iteration, so a backlog
# never keeps paho's loop from its keepalive and outgoing work for long.
READ_BYTES = 256 * 1024
PUBACK = 0x40
_PUBACK = struct.Struct("!BBH")

FastHandler = Callable[[str, bytes, int], None]  # (topic, payload, packet id)


class FastClient(mqtt.Client):
    """See the module docstring. Set ``on_publish_fast`` before connecting."""

    on_publish_fast: FastHandler | None = None
    _rbuf: bytes = b""
    _rsock: object = None

    def ack_many(self, mids: list[int]) -> None:
        """PUBACK each packet id, in order, as one write (QoS 1, manual ack)."""
        if mids:
            self._packet_queue(PUBACK, b"".join([_PUBACK.pack(PUBACK, 2, mid) for mid in mids]), 0, 0)

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        sock = self._sock
        if sock is None:
            return MQTTErrorCode.MQTT_ERR_NO_CONN
        if sock is not self._rsock:
            self._rsock, self._rbuf = sock, b""  # a new connection: nothing of the old one
        try:
            data = sock.recv(READ_BYTES)
        except (BlockingIOError, ssl.SSLWantReadError):
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        except ssl.SSLWantWriteError:
            self._call_socket_register_write()
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        except OSError as err:  # includes timeouts and connection resets
            self._easy_log(mqtt.MQTT_LOG_ERR, "failed to receive on socket: %s", err)
            return self._loop_rc_handle(MQTTErrorCode.MQTT_ERR_CONN_LOST)
        if not data:
            return self._loop_rc_handle(MQTTErrorCode.MQTT_ERR_CONN_LOST)
        buf = self._rbuf + data if self._rbuf else data
        size = len(buf)
        pos = 0
        rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        while pos + 2 <= size:
            # Fixed header: type and flags, then the remaining length (1 to 4 bytes, base 128).
            length = shift = 0
            i = pos + 1
            complete = False
            while i < size:
                byte = buf[i]
                i += 1
                length |= (byte & 127) << shift
                if not byte & 128:
                    complete = True
                    break
                shift += 7
                if shift > 21:
                    return self._loop_rc_handle(MQTTErrorCode.MQTT_ERR_PROTOCOL)
            if not complete:
                break  # the remaining length itself is incomplete
            end = i + length
            if end > size:
                break  # the body is incomplete
            self._in_packet = {
                "command": buf[pos], "have_remaining": 1, "remaining_count": [], "remaining_mult": 1,
                "remaining_length": length, "packet": buf[i:end], "to_process": 0, "pos": 0,
            }
            pos = end
            try:
                rc = self._packet_handle()
            except mqtt.MalformedPacket as exc:
                self._easy_log(mqtt.MQTT_LOG_DEBUG, "Received malformed packet: %s", exc)
                rc = MQTTErrorCode.MQTT_ERR_PROTOCOL
            if rc or self._sock is not sock:
                break
        self._rbuf = buf[pos:]
        self._in_packet = {
            "command": 0, "have_remaining": 0, "remaining_count": [], "remaining_mult": 1,
            "remaining_length": 0, "packet": bytearray(b""), "to_process": 0, "pos": 0,
        }
        with self._msgtime_mutex:
            self._last_bytes_received = mqtt.time_func()
        if rc:
            return self._loop_rc_handle(rc)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _handle_publish(self) -> MQTTErrorCode:
        handler = self.on_publish_fast
        command = self._in_packet["command"]
        if handler is None or (command & 0x06) != 0x02 or not self._manual_ack:
            return super()._handle_publish()
        packet = self._in_packet["packet"]
        tlen = (packet[0] << 8) | packet[1]
        if tlen == 0:
            return super()._handle_publish()  # a topic alias: paho's path
        pos = 2 + tlen
        topic = packet[2:pos]
        mid = (packet[pos] << 8) | packet[pos + 1]
        pos += 2
        if self._protocol == MQTTProtocolVersion.MQTTv5:
            # Skip the properties: a variable byte integer length, then that many bytes.
            n = shift = 0
            while True:
                byte = packet[pos]
                pos += 1
                n |= (byte & 127) << shift
                if not byte & 128:
                    break
                shift += 7
                if shift > 21:
                    raise mqtt.MalformedPacket("properties length too long")
            pos += n
        try:
            text = topic.decode("utf-8")
        except UnicodeDecodeError:
            text = topic.decode("utf-8", "replace")  # matches no filter of ours: rejected as bad_topic
        handler(text, packet[pos:], mid)
        return MQTTErrorCode.MQTT_ERR_SUCCESS
