"""A small asyncio MQTT 3.1.1 client for a flaky network (after Peter Hinch's mqtt_as).

One supervisor task owns the connection and runs this state machine::

    LINK_DOWN --set_link(True)--> CONNECTING --CONNACK 0--> CONNECTED
        ^                             |   ^                    |
        |                  failure or |   | backoff            | EOF, write error,
        |                 CONNACK != 0|   | (capped, jitter)   | no traffic for keepalive,
        |                             v   |                    | set_link(False)
        +------ set_link(False) ---- BACKOFF <-----------------+
                 disconnect() / abort() from any state --> CLOSED

While CONNECTED a reader task parses incoming packets and a keepalive task sends PINGREQ
and declares the broker dead when nothing at all arrived for ``keepalive`` seconds (a
half-open TCP connection never reports an error by itself).

QoS 1 delivery: ``publish`` puts the message into an in-flight window of at most
``max_inflight`` messages and writes it at once when connected; it waits only when the
window is full, so throughput is not one round trip per message. A message stays in the
window until its PUBACK. After every reconnect all unacknowledged messages are written
again, in their original order and with the DUP flag, before anything new, so the broker
sees each topic's messages in order. ``on_ack(tag)`` is called in publish order (never out
of order, even if a broker acknowledged out of order) for messages published with a tag.

Writes from all tasks go through one lock: MicroPython's StreamWriter loses data when
``write`` is called while another task is inside ``drain``.

Who calls it: ``bedside.app`` (one client per device), and tests. Only the asyncio subset
that MicroPython shares with CPython is used.
"""

import asyncio

from . import mqttpacket as mp
from .clock import sleep_ms, ticks_diff, ticks_ms

try:
    from random import getrandbits  # pyright: ignore[reportAssignmentType]
except ImportError:  # a board build without random
    from os import urandom

    def getrandbits(n):
        return int.from_bytes(urandom(2), "big") & ((1 << n) - 1)


class MQTTError(Exception):
    pass


class Refused(MQTTError):
    """The broker answered CONNECT with a non-zero return code (``rc``)."""

    def __init__(self, rc):
        MQTTError.__init__(self, "connection refused: %s" % mp.CONNACK_TEXT.get(rc, rc))
        self.rc = rc


# in-flight entry fields
_PID = 0
_PKT = 1
_TAG = 2
_ACKED = 3
_SENT = 4  # written at least once (a later write is a retransmission: DUP)


class MQTTClient:
    """MQTT 3.1.1 client. Times are in ms unless the name says otherwise.

    ``will``: ``(topic, payload, qos, retain)`` or None. ``ssl``: an SSL context passed to
    ``asyncio.open_connection`` (None: plain TCP). ``on_connect(client)``: called after
    every CONNACK (sync; schedule work, do not block). ``on_ack(tag)``: see module doc.
    ``on_message(topic, payload, retained)``: for subscriptions. ``log(msg)``: optional.
    """

    def __init__(self, client_id, host, port=1883, user=None, password=None, keepalive=30,
                 ssl=None, will=None, clean=True, max_inflight=8, backoff_min_ms=500,
                 backoff_max_ms=5000, timeout_ms=10000, on_connect=None, on_ack=None,
                 on_message=None, log=None):
        if max_inflight < 1:
            raise ValueError("max_inflight must be >= 1")
        self.client_id = client_id
        self.host = host
        self.port = port
        self._connect_pkt = mp.connect(client_id, keepalive, clean, user, password, will)
        self._keepalive_ms = keepalive * 1000
        self._ssl = ssl
        self._window = max_inflight
        self._backoff_min = max(1, int(backoff_min_ms))
        self._backoff_max = int(backoff_max_ms)
        self._timeout = timeout_ms / 1000
        self.on_connect = on_connect
        self.on_ack = on_ack
        self.on_message = on_message
        self._log = log

        self._inflight = []  # [pid, packet, tag, acked, sent], publish order
        self._cursor = 0  # _inflight[:_cursor] are written on the current connection
        self._pid = 0
        self._subs = []  # [(topic, qos)], re-sent after every connect
        self._sub_pid = 0
        self._lock = asyncio.Lock()
        self._window_ev = asyncio.Event()  # set when a window slot frees (or on close)
        self._down = asyncio.Event()  # set when the current connection is finished
        self._wake = asyncio.Event()  # interrupts backoff and link waits
        self._reader = None
        self._writer = None
        self._connected = False
        self._link = True
        self._closed = False
        self._task = None
        self._last_rx = self._last_tx = ticks_ms()

        # counters, for status and tests
        self.connects = 0  # successful CONNACKs
        self.failures = 0  # connect attempts that failed, refusals included
        self.refused = 0  # CONNACK with a non-zero return code
        self.drops = 0  # established connections lost (not by disconnect())
        self.retransmits = 0
        self.last_error = None

    # -- public API ------------------------------------------------------------------

    def start(self):
        """Start the supervisor task (connect, and reconnect for ever)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    def isconnected(self):
        return self._connected

    @property
    def inflight(self):
        """Messages published at QoS 1 and not yet acknowledged."""
        return len(self._inflight)

    async def publish(self, topic, msg, retain=False, qos=1, tag=None):
        """Publish ``msg`` (bytes) on ``topic`` (str or bytes).

        QoS 1: waits while the in-flight window is full, then queues the message (written
        at once when connected, else after the next connect) and returns its packet id;
        the message is delivered at least once unless the client is closed.
        QoS 0: written only when connected (returns True), else dropped (returns False).
        Raises MQTTError once the client is closed.
        """
        if qos == 0:
            if not self._connected:
                return False
            return await self._send(mp.publish(topic, msg, 0, retain))
        while len(self._inflight) >= self._window:
            if self._closed:
                break
            self._window_ev.clear()
            await self._window_ev.wait()
        if self._closed:
            raise MQTTError("client closed")
        pid = self._next_pid()
        self._inflight.append([pid, mp.publish(topic, msg, 1, retain, False, pid), tag, False, False])
        if self._connected:
            await self._pump()
        return pid

    async def subscribe(self, topic, qos=1):
        """Subscribe now (when connected) and after every reconnect. Messages arrive
        through ``on_message``; incoming QoS 1 messages are acknowledged."""
        self._subs.append((topic, qos))
        if self._connected:
            self._sub_pid = self._next_pid()
            await self._send(mp.subscribe(self._sub_pid, [(topic, qos)]))

    def set_link(self, up):
        """Tell the client whether the network link (Wi-Fi) is up. Going down drops the
        connection at once, without DISCONNECT (the broker will publish the will), and
        no connect is tried until the link is up again."""
        self._link = bool(up)
        if not up and self._connected:
            self._fail("network down")
        self._wake.set()

    async def disconnect(self):
        """Close cleanly: send DISCONNECT (so the broker discards the will), close the
        socket and stop the supervisor. Unacknowledged messages are abandoned."""
        if self._closed:
            return
        self._closed = True
        if self._connected:
            try:
                await asyncio.wait_for(self._send(mp.DISCONNECT_PKT, True), self._timeout)
            except Exception:
                pass
        self._stop("disconnected")
        if self._task is not None:
            self._task.cancel()  # also ends a connect attempt in progress
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._close_writer(False)

    def abort(self):
        """Drop the socket without DISCONNECT and stop (power loss): the broker sees the
        connection vanish and publishes the will."""
        if self._closed:
            return
        self._closed = True
        # The owner's state (its outbox) is gone with the power: no more callbacks.
        self.on_ack = self.on_connect = self.on_message = None
        self._close_writer(True)
        self._stop("aborted")
        if self._task is not None:
            self._task.cancel()

    # -- connection supervisor ----------------------------------------------------------

    def _say(self, msg):
        if self._log is not None:
            self._log("%s: %s" % (self.client_id, msg))

    def _stop(self, why):
        self._fail(why)
        self._window_ev.set()  # publishers waiting for a slot see _closed
        self._wake.set()

    def _fail(self, why):
        """End the current connection (idempotent); the supervisor closes the socket."""
        if self._connected:
            self._connected = False
            self.last_error = why
            if self._closed:
                self._say(why)
            else:
                self.drops += 1
                self._say("connection lost: %s" % why)
        self._down.set()

    async def _wait(self, ms):
        """Sleep ``ms``, or less if woken by set_link()/disconnect()."""
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), ms / 1000)
        except asyncio.TimeoutError:
            pass

    def _backoff_ms(self, attempt):
        d = self._backoff_min << min(attempt - 1, 16)
        if d > self._backoff_max:
            d = self._backoff_max
        # Equal jitter: half fixed, half random, so that a ward of devices does not
        # reconnect in lockstep after a broker restart.
        return d // 2 + (d // 2) * getrandbits(16) // 65536

    async def _run(self):
        attempt = 0
        while not self._closed:
            if not self._link:
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                await self._connect()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self.failures += 1
                self.last_error = repr(e) if not isinstance(e, MQTTError) else str(e)
                attempt += 1
                d = self._backoff_ms(attempt)
                self._say("connect failed (%s); retry in %d ms" % (self.last_error, d))
                await self._wait(d)
                continue
            await self._session()
            # The first reconnect also waits a (jittered) moment: the broker may be
            # restarting, and every device on the ward lost its connection at once.
            attempt = 1
            if not self._closed and self._link:
                await self._wait(self._backoff_ms(attempt))

    async def _connect(self):
        self._close_writer(True)
        if self._ssl is None:
            opening = asyncio.open_connection(self.host, self.port)
        else:
            opening = asyncio.open_connection(self.host, self.port, ssl=self._ssl)
        reader, writer = await asyncio.wait_for(opening, self._timeout)
        self._writer = writer
        try:
            writer.write(self._connect_pkt)
            await asyncio.wait_for(writer.drain(), self._timeout)
            first, body = await asyncio.wait_for(_read_packet(reader), self._timeout)
            if first >> 4 != mp.CONNACK:
                raise MQTTError("expected CONNACK, got packet type %d" % (first >> 4))
            rc = mp.parse_connack(body)[1]
            if rc:
                self.refused += 1
                raise Refused(rc)
            if not self._link:
                raise MQTTError("network went down while connecting")
        except BaseException:
            self._close_writer(True)
            raise
        self._reader = reader

    async def _session(self):
        """Run one established connection until it ends."""
        self.connects += 1
        self._say("connected to %s:%d" % (self.host, self.port))
        now = ticks_ms()
        self._last_rx = self._last_tx = now
        self._down.clear()
        self._cursor = 0  # everything unacknowledged goes out again, in order
        self._connected = True
        tasks = [asyncio.create_task(self._read_loop(self._reader))]
        if self._keepalive_ms:
            tasks.append(asyncio.create_task(self._keepalive()))
        try:
            if self._subs:
                self._sub_pid = self._next_pid()
                await self._send(mp.subscribe(self._sub_pid, self._subs))
            await self._pump()
            if self.on_connect is not None and self._connected:
                try:
                    self.on_connect(self)
                except Exception as e:
                    self._say("on_connect failed: %r" % (e,))
            await self._down.wait()
        finally:
            self._connected = False
            for t in tasks:
                t.cancel()
            # Graceful only after our DISCONNECT; a dead connection is not flushed.
            self._close_writer(not self._closed)

    def _close_writer(self, abrupt):
        """Close the socket now (sync, so abort() can use it). ``abrupt``: drop unsent data."""
        w = self._writer
        self._writer = None
        self._reader = None
        if w is None:
            return
        try:
            t = getattr(w, "transport", None)
            if t is None:
                # MicroPython: Stream.close() does nothing; wait_closed() closes the socket.
                asyncio.create_task(_wait_closed(w))
            elif abrupt:
                t.abort()  # CPython: no flush of a buffer a dead peer will never take
            else:
                w.close()
        except Exception:
            pass

    # -- writing --------------------------------------------------------------------------

    async def _send(self, pkt, closing=False):
        """Write one control packet under the write lock. False if not connected."""
        async with self._lock:
            w = self._writer
            if w is None or not (self._connected or closing):
                return False
            try:
                w.write(pkt)
                await w.drain()
            except Exception as e:
                self._fail("write failed: %r" % (e,))
                return False
            self._last_tx = ticks_ms()
            return True

    async def _pump(self):
        """Write every in-flight message not yet written on this connection, in order."""
        async with self._lock:
            w = self._writer
            if w is None or not self._connected:
                return
            inflight = self._inflight
            try:
                while self._cursor < len(inflight):
                    e = inflight[self._cursor]
                    self._cursor += 1
                    if e[_ACKED]:
                        continue
                    if e[_SENT]:
                        self.retransmits += 1
                        w.write(mp.set_dup(e[_PKT]))
                    else:
                        e[_SENT] = True
                        w.write(e[_PKT])
                await w.drain()
            except Exception as e:
                self._fail("write failed: %r" % (e,))
                return
            self._last_tx = ticks_ms()

    def _next_pid(self):
        used = [e[_PID] for e in self._inflight]
        pid = self._pid
        while True:
            pid = pid % 65535 + 1
            if pid not in used and pid != self._sub_pid:
                self._pid = pid
                return pid

    # -- reading --------------------------------------------------------------------------

    async def _read_loop(self, reader):
        buf = b""
        try:
            while True:
                data = await reader.read(2048)
                if not data:
                    raise MQTTError("connection closed by broker")
                self._last_rx = ticks_ms()
                buf = buf + data if buf else data
                pos = 0
                while True:
                    r = mp.split(buf, pos)
                    if r is None:
                        break
                    ptype, flags, start, end = r
                    self._dispatch(ptype, flags, buf[start:end])
                    pos = end
                buf = buf[pos:]
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self._fail(str(e) if isinstance(e, MQTTError) else "read failed: %r" % (e,))

    def _dispatch(self, ptype, flags, body):
        if ptype == mp.PUBACK:
            self._acked(mp.parse_pid(body))
        elif ptype == mp.PUBLISH:
            topic, payload, qos, retain, dup, pid = mp.parse_publish(flags, body)
            if qos:
                asyncio.create_task(self._send(mp.puback(pid)))
            if self.on_message is not None:
                try:
                    self.on_message(topic, payload, retain)
                except Exception as e:
                    self._say("on_message failed: %r" % (e,))
        elif ptype == mp.SUBACK:
            pid, codes = mp.parse_suback(body)
            if 0x80 in codes:
                self._say("subscription refused by the broker")
        # PINGRESP: receiving it already refreshed _last_rx.

    def _acked(self, pid):
        inflight = self._inflight
        for e in inflight:
            if e[_PID] == pid:
                e[_ACKED] = True
                break
        else:
            return  # a late PUBACK for a message released already: harmless
        released = False
        while inflight and inflight[0][_ACKED]:
            e = inflight.pop(0)
            if self._cursor:
                self._cursor -= 1
            released = True
            if e[_TAG] is not None and self.on_ack is not None:
                self.on_ack(e[_TAG])
        if released:
            self._window_ev.set()

    async def _keepalive(self):
        ka = self._keepalive_ms
        tick = ka // 4 if ka < 4000 else 1000
        while True:
            await sleep_ms(tick)
            now = ticks_ms()
            if ticks_diff(now, self._last_rx) > ka:
                self._fail("no traffic from broker for %d s (keepalive)" % (ka // 1000))
                return
            if ticks_diff(now, self._last_rx) >= ka // 2 or ticks_diff(now, self._last_tx) >= ka // 2:
                await self._send(mp.PINGREQ_PKT)


async def _wait_closed(writer):
    try:
        await writer.wait_closed()
    except Exception:
        pass


async def _read_packet(reader):
    """Read one whole packet: ``(first_byte, body)``. Used for CONNACK only."""
    first = (await reader.readexactly(1))[0]
    n = 0
    shift = 0
    while True:
        d = (await reader.readexactly(1))[0]
        n |= (d & 0x7F) << shift
        if not d & 0x80:
            break
        shift += 7
        if shift > 21:
            raise mp.MalformedPacket("remaining length longer than 4 bytes")
    body = await reader.readexactly(n) if n else b""
    return first, body
