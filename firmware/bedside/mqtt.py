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
half-open TCP connection never reports an error by itself). The keepalive clock starts when
CONNECT is written (MQTT-3.1.2-23), not at CONNACK, so a slow CONNACK cannot make the first
PINGREQ late. Every network wait is bounded: connect, CONNACK and each write's drain by
``timeout_ms`` (a write stuck behind a peer that stopped reading ends the session), reads by
the keepalive (never blocked by a stuck write: it does not wait for the write lock).

Backoff: attempt n waits ``min(backoff_min << (n-1), backoff_max)`` with equal jitter. It
starts again from 1 only after a healthy session, one that lasted at least a keepalive
period (30 s with keepalive 0); a broker that accepts and at once drops the client is
retried ever more slowly, as a failed connect would be. A permanent refusal (CONNACK 1, 2,
4 or 5: protocol, client id, credentials, authorisation) goes to ``backoff_max`` at once;
``refusing`` is True until a connect gets past it, and ``last_refusal`` keeps its text.

Topics are checked at ``publish``/``subscribe`` (ValueError), QoS 2 is refused (ValueError:
not implemented). A message the broker refuses anyway makes it close the connection (MQTT
3.1.1 has no negative PUBACK), and the message would be re-sent first after every reconnect,
blocking all behind it. So after the broker closed a connection with messages unacknowledged,
those are suspects: the next connections first await a PINGRESP (the broker is up and
reading) and then write suspects one at a time. A suspect written alone that way, and
unacknowledged when the broker closes the connection ``REFUSE_STRIKES`` times, is dropped:
``msgs_refused`` counts it, ``on_refused(tag, why)`` is called in its place in publish order.

QoS 1 delivery: ``publish`` puts the message into an in-flight window of at most
``max_inflight`` messages and writes it at once when connected; it waits only when the
window is full, so throughput is not one round trip per message. A message stays in the
window until its PUBACK. After every reconnect all unacknowledged messages are written
again, in their original order and with the DUP flag, before anything new, so the broker
sees each topic's messages in order. ``on_ack(tag)`` is called in publish order (never out
of order, even if a broker acknowledged out of order) for messages published with a tag;
``on_refused(tag, why)`` likewise for a tagged message dropped as refused.

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


# CONNACK codes that retrying will not change (unlike 3, server unavailable)
PERMANENT = (1, 2, 4, 5)
REFUSE_STRIKES = 3  # lone-suspect broker closes before a message counts as refused


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
_SUSPECT = 5  # unacknowledged when the broker closed a connection
_STRIKES = 6  # broker closes while it was the lone suspect in flight
_WHY = 7  # None, or why it was dropped as refused


class MQTTClient:
    """MQTT 3.1.1 client. Times are in ms unless the name says otherwise.

    ``will``: ``(topic, payload, qos, retain)`` or None. ``ssl``: an SSL context passed to
    ``asyncio.open_connection`` (None: plain TCP). ``on_connect(client)``: called after
    every CONNACK (sync; schedule work, do not block). ``on_ack(tag)``: see module doc.
    ``on_message(topic, payload, retained)``: for subscriptions. ``on_refused(tag, why)``:
    see module doc. ``log(msg)``: optional.
    """

    def __init__(self, client_id, host, port=1883, user=None, password=None, keepalive=30,
                 ssl=None, will=None, clean=True, max_inflight=8, backoff_min_ms=500,
                 backoff_max_ms=5000, timeout_ms=10000, on_connect=None, on_ack=None,
                 on_message=None, log=None, on_refused=None):
        if max_inflight < 1:
            raise ValueError("max_inflight must be >= 1")
        self.client_id = client_id
        self.host = host
        self.port = port
        self._connect_pkt = mp.connect(client_id, keepalive, clean, user, password, will)
        self._keepalive_ms = keepalive * 1000
        self._healthy_ms = self._keepalive_ms or 30000
        self._ssl = ssl
        self._window = max_inflight
        self._backoff_min = max(1, int(backoff_min_ms))
        self._backoff_max = int(backoff_max_ms)
        self._timeout = timeout_ms / 1000
        self.on_connect = on_connect
        self.on_ack = on_ack
        self.on_message = on_message
        self.on_refused = on_refused
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
        self._peer_closed = False  # the current session ended by the broker closing it
        self._ponged = False  # a PINGRESP arrived on this connection (gates suspect writes)

        # counters, for status and tests
        self.connects = 0  # successful CONNACKs
        self.failures = 0  # connect attempts that failed, refusals included
        self.refused = 0  # CONNACK with a non-zero return code
        self.drops = 0  # established connections lost (not by disconnect())
        self.retransmits = 0
        self.last_error = None
        self.msgs_refused = 0  # messages dropped as refused by the broker
        self.refusing = False  # the latest connect attempt was refused for good (PERMANENT)
        self.last_refusal = None  # text of the latest CONNACK refusal, kept after success

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
        Raises MQTTError once the client is closed; ValueError for QoS 2 (not implemented)
        or an invalid topic name (``mqttpacket.topic_name``), before anything is queued.
        """
        if qos is True or qos is False or qos not in (0, 1):
            raise ValueError("QoS %r not supported (0 or 1)" % (qos,))
        topic = mp.topic_name(topic)
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
        self._inflight.append([pid, mp.publish(topic, msg, 1, retain, False, pid), tag, False, False, False, 0, None])
        if self._connected:
            await self._pump()
        return pid

    async def subscribe(self, topic, qos=1):
        """Subscribe now (when connected) and after every reconnect. Messages arrive
        through ``on_message``; incoming QoS 1 messages are acknowledged. ValueError for
        QoS 2 (not implemented) or an invalid topic filter."""
        if qos is True or qos is False or qos not in (0, 1):
            raise ValueError("QoS %r not supported (0 or 1)" % (qos,))
        mp.topic_filter(topic)
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

    def _fail(self, why, by_peer=False):
        """End the current connection (idempotent); the supervisor closes the socket.
        ``by_peer``: the broker closed or reset it (it may have refused a message)."""
        if self._connected:
            self._connected = False
            self._peer_closed = by_peer
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
                self.refusing = isinstance(e, Refused) and e.rc in PERMANENT
                # Retrying soon cannot fix a password or an ACL; the cap spares the broker.
                attempt = 17 if self.refusing else min(attempt + 1, 17)
                d = self._backoff_ms(attempt)
                self._say("connect failed (%s); retry in %d ms" % (self.last_error, d))
                await self._wait(d)
                continue
            self.refusing = False
            began = ticks_ms()
            await self._session()
            lasted = ticks_diff(ticks_ms(), began)
            if self._peer_closed:
                self._judge()
            # Even after a healthy session the first reconnect waits a (jittered) moment:
            # the broker may be restarting, and every device on the ward lost it at once.
            attempt = 1 if lasted >= self._healthy_ms else min(attempt + 1, 17)
            if not self._closed and self._link:
                d = self._backoff_ms(attempt)
                self._say("session lasted %d ms; reconnect in %d ms" % (lasted, d))
                await self._wait(d)

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
            # The keepalive clock runs from CONNECT (MQTT-3.1.2-23), however late CONNACK is.
            self._last_tx = ticks_ms()
            await self._drain(writer)
            first, body = await asyncio.wait_for(_read_packet(reader), self._timeout)
            self._last_rx = ticks_ms()
            if first >> 4 != mp.CONNACK:
                raise MQTTError("expected CONNACK, got packet type %d" % (first >> 4))
            rc = mp.parse_connack(body)[1]
            if rc:
                self.refused += 1
                self.last_refusal = mp.CONNACK_TEXT.get(rc, "return code %d" % rc)
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
        self._down.clear()
        self._cursor = 0  # everything unacknowledged goes out again, in order
        self._peer_closed = False
        self._ponged = False
        self._connected = True
        tasks = [asyncio.create_task(self._read_loop(self._reader))]
        if self._keepalive_ms:
            tasks.append(asyncio.create_task(self._keepalive()))
        try:
            if self._subs:
                self._sub_pid = self._next_pid()
                await self._send(mp.subscribe(self._sub_pid, self._subs))
            if self._probing():
                await self._send(mp.PINGREQ_PKT)  # suspects wait for its PINGRESP
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

    async def _drain(self, w):
        """``w.drain()`` bounded by ``timeout_ms``: a peer that stopped reading must not
        hold the write lock (and the session) for ever."""
        try:
            await asyncio.wait_for(w.drain(), self._timeout)
        except asyncio.TimeoutError:
            raise MQTTError("write stuck for %d ms (peer not reading)" % int(self._timeout * 1000))

    def _write_failed(self, e):
        if isinstance(e, MQTTError):
            self._fail(str(e))
        else:  # EPIPE / ECONNRESET: the broker closed the connection
            self._fail("write failed: %r" % (e,), isinstance(e, OSError))

    async def _send(self, pkt, closing=False):
        """Write one control packet under the write lock. False if not connected."""
        async with self._lock:
            w = self._writer
            if w is None or not (self._connected or closing):
                return False
            try:
                w.write(pkt)
                await self._drain(w)
            except Exception as e:
                self._write_failed(e)
                return False
            self._last_tx = ticks_ms()
            return True

    def _probing(self):
        for e in self._inflight:
            if e[_SUSPECT]:
                return True
        return False

    async def _pump(self):
        """Write every in-flight message not yet written on this connection, in order.
        While suspects are in flight (module doc): nothing before a PINGRESP, then one
        unacknowledged message at a time."""
        async with self._lock:
            w = self._writer
            if w is None or not self._connected:
                return
            inflight = self._inflight
            probing = self._probing()
            if probing:
                if not self._ponged:
                    return
                for i in range(min(self._cursor, len(inflight))):
                    if not inflight[i][_ACKED]:
                        return  # one outstanding already
            wrote = False
            try:
                while self._cursor < len(inflight):
                    e = inflight[self._cursor]
                    self._cursor += 1
                    if e[_ACKED]:
                        continue
                    wrote = True
                    if e[_SENT]:
                        self.retransmits += 1
                        w.write(mp.set_dup(e[_PKT]))
                    else:
                        e[_SENT] = True
                        w.write(e[_PKT])
                    if probing:
                        break
                if not wrote:
                    return  # nothing sent: the keepalive clock runs on
                await self._drain(w)
            except Exception as e:
                self._write_failed(e)
                return
            self._last_tx = ticks_ms()

    def _judge(self):
        """After the broker closed a connection: every unacknowledged message written on it
        becomes a suspect; a suspect that was written alone after a PINGRESP (so the broker
        was up and reading) takes a strike, and is dropped as refused at REFUSE_STRIKES."""
        inflight = self._inflight
        out = [e for e in inflight[: self._cursor] if not e[_ACKED]]
        if len(out) == 1 and out[0][_SUSPECT] and self._ponged:
            e = out[0]
            e[_STRIKES] += 1
            if e[_STRIKES] >= REFUSE_STRIKES:
                topic = mp.parse_publish(e[_PKT][0] & 0x0F, e[_PKT][mp.split(e[_PKT])[2]:])[0]
                e[_WHY] = "broker closed the connection on it %d times (topic %s)" % (e[_STRIKES], topic)
                e[_ACKED] = True
                self.msgs_refused += 1
                self._say("message %d refused by the broker, dropped: %s" % (e[_PID], e[_WHY]))
                self._release()
                return
        for e in out:
            e[_SUSPECT] = True

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
        except MQTTError as e:  # EOF: the broker closed the connection
            self._fail(str(e), True)
        except Exception as e:
            self._fail("read failed: %r" % (e,), isinstance(e, OSError))

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
        elif ptype == mp.PINGRESP and not self._ponged:  # it already refreshed _last_rx
            self._ponged = True
            if self._probing():
                asyncio.create_task(self._pump())

    def _acked(self, pid):
        inflight = self._inflight
        for e in inflight:
            if e[_PID] == pid:
                e[_ACKED] = True
                break
        else:
            return  # a late PUBACK for a message released already: harmless
        probing = self._probing()
        self._release()
        if probing and self._connected:
            asyncio.create_task(self._pump())  # the next suspect, or the rest at full speed

    def _release(self):
        """Pop acknowledged (or refused) messages off the head, calling back in order."""
        inflight = self._inflight
        released = False
        while inflight and inflight[0][_ACKED]:
            e = inflight.pop(0)
            if self._cursor:
                self._cursor -= 1
            released = True
            if e[_TAG] is not None:
                if e[_WHY] is None:
                    if self.on_ack is not None:
                        self.on_ack(e[_TAG])
                elif self.on_refused is not None:
                    self.on_refused(e[_TAG], e[_WHY])
        if released:
            self._window_ev.set()

    async def _keepalive(self):
        # Checks at once (a late CONNACK may already have used half the keepalive), then
        # every quarter keepalive at most: a PINGREQ goes out within 3/4 keepalive of the
        # last write, however long CONNACK took.
        ka = self._keepalive_ms
        tick = ka // 4 if ka < 4000 else 1000
        while True:
            now = ticks_ms()
            if ticks_diff(now, self._last_rx) > ka:
                self._fail("no traffic from broker for %d s (keepalive)" % (ka // 1000))
                return
            # A write in progress holds the lock: waiting for it would stall this check
            # behind a stuck drain; that write refreshes _last_tx when it ends anyway.
            if not self._lock.locked() and (
                ticks_diff(now, self._last_rx) >= ka // 2 or ticks_diff(now, self._last_tx) >= ka // 2
            ):
                asyncio.create_task(self._send(mp.PINGREQ_PKT))
            await sleep_ms(tick)


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
