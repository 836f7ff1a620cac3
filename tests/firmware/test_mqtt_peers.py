"""The bedside MQTT client against brokers that misbehave, played by the test on real
sockets (an asyncio server on the device loop): one that accepts and at once drops the
client, one that stops reading (so the client's drain() blocks), one that answers CONNECT
late, one that closes the connection on one particular message."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from bedside import mqttpacket as mp
from bedside.mqtt import MQTTClient

from . import brokerpackets as bp
from .conftest import wait
from .test_mqtt_micropython_streams import micropython_streams  # noqa: F401  (fixture)

BIG = b"x" * (1 << 20)  # 8 in flight = 8 MiB, past any loopback socket buffer (4 MiB max)


async def read_packet(r):
    """One packet from a StreamReader: ``(ptype, flags, body)``."""
    first = (await r.readexactly(1))[0]
    n = shift = 0
    while True:
        d = (await r.readexactly(1))[0]
        n |= (d & 0x7F) << shift
        if not d & 0x80:
            break
        shift += 7
    return first >> 4, first & 0x0F, await r.readexactly(n)


class Peer:
    """A broker played by ``handler(peer, reader, writer)`` on a real listening socket;
    ``connects`` holds the monotonic time of every accepted connection."""

    def __init__(self, handler, rcvbuf=None):
        self.handler = handler
        self.rcvbuf = rcvbuf
        self.connects: list[float] = []
        self.events: list[tuple[str, float]] = []  # (what, monotonic time)
        self.got: list[bytes] = []  # PUBLISH payloads, in arrival order
        self.server = None
        self.port = 0

    async def start(self):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)  # inherited by accept()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        self.server = await asyncio.start_server(self._conn, sock=s)
        return self

    async def _conn(self, r, w):
        self.connects.append(time.monotonic())
        try:
            await self.handler(self, r, w)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the client went, or the test is over
        finally:
            w.transport.abort()

    async def serve(self, r, w, poison=None):
        """Behave: PUBACK every QoS 1 PUBLISH, PINGRESP every PINGREQ; close the connection
        at once on a PUBLISH whose payload is ``poison``, as Mosquitto does on a bad one."""
        while True:
            ptype, flags, body = await read_packet(r)
            if ptype == mp.PUBLISH:
                topic, payload, qos, retain, dup, pid = mp.parse_publish(flags, body)
                if payload == poison:
                    self.events.append(("poison", time.monotonic()))
                    return
                self.got.append(payload)
                if qos:
                    w.write(mp.puback(pid))
            elif ptype == 12:  # PINGREQ
                self.events.append(("ping", time.monotonic()))
                w.write(bp.PINGRESP_PKT)
            await w.drain()

    async def close(self):
        self.server.close()


async def accept(peer, r, w, delay=0.0):
    ptype, _, body = await read_packet(r)
    assert ptype == bp.CONNECT
    peer.events.append(("connect", time.monotonic()))
    if delay:
        await asyncio.sleep(delay)
    w.write(bp.connack())
    await w.drain()


def client(port, **kw):
    kw.setdefault("keepalive", 5)
    kw.setdefault("backoff_min_ms", 100)
    kw.setdefault("backoff_max_ms", 800)
    kw.setdefault("timeout_ms", 2000)
    return MQTTClient("dev-01", "127.0.0.1", port, **kw)


def run_peer(aloop, handler, **kw):
    return aloop.run(Peer(handler, **kw).start())


def gaps(times):
    return [b - a for a, b in zip(times, times[1:])]


def test_a_broker_that_accepts_and_drops_is_retried_with_growing_backoff(aloop):
    """Issue 9 item 7: the backoff is not reset by a session that ends at once."""

    async def drop(peer, r, w):
        await accept(peer, r, w)

    peer = run_peer(aloop, drop)
    c = client(peer.port)
    aloop.call(c.start)
    wait(lambda: len(peer.connects) >= 7, 8, "seven connections")
    aloop.run(c.disconnect())
    aloop.run(peer.close())
    # attempt n waits in [d/2, d], d = min(100 * 2**(n-1), 800): 50, 100, 200, 400, 400, 400 ms at least
    for n, g in enumerate(gaps(peer.connects[:7]), 1):
        d = min(100 * 2 ** (n - 1), 800) / 1000
        assert d / 2 <= g <= d + 0.3, (n, g, gaps(peer.connects))
    assert c.connects >= 7 and c.failures == 0  # accepted every time: not connect failures


def test_backoff_starts_again_after_a_healthy_session(aloop):
    """A session that lasted a keepalive period (1 s here) resets the backoff: each drop
    after such a session is followed by a quick reconnect, however many there were."""

    async def hold_then_drop(peer, r, w):
        await accept(peer, r, w)
        try:
            await asyncio.wait_for(peer.serve(r, w), 1.3)
        except asyncio.TimeoutError:
            pass

    peer = run_peer(aloop, hold_then_drop)
    c = client(peer.port, keepalive=1)
    aloop.call(c.start)
    wait(lambda: len(peer.connects) >= 5, 9, "five sessions")
    aloop.run(c.disconnect())
    aloop.run(peer.close())
    for g in gaps(peer.connects[:5]):
        assert 1.3 <= g <= 1.3 + 0.1 + 0.3, gaps(peer.connects)  # session + at most backoff_min


@pytest.mark.parametrize("streams", ["cpython", "micropython"])
def test_a_peer_that_stops_reading_ends_the_session_by_the_write_timeout(aloop, streams, request):
    """Issue 9 item 8: the peer keeps sending (so keepalive sees traffic) but never reads:
    drain() blocks once the socket buffers are full. The bounded write ends the session."""
    if streams == "micropython":
        request.getfixturevalue("micropython_streams")

    async def deaf(peer, r, w):
        await accept(peer, r, w)
        w.transport.pause_reading()
        while True:
            w.write(bp.PINGRESP_PKT)
            await asyncio.sleep(0.2)

    peer = run_peer(aloop, deaf, rcvbuf=4096)
    c = client(peer.port, keepalive=2, timeout_ms=1500)
    aloop.call(c.start)
    wait(c.isconnected, 5, "connected")

    async def fill():
        for _ in range(8):
            await c.publish("t/big", BIG)

    t0 = time.monotonic()
    aloop.spawn(fill())
    wait(lambda: not c.isconnected(), 6, "the stuck write to end the session")
    assert "write stuck" in c.last_error, c.last_error
    assert time.monotonic() - t0 < 1.5 + 2  # the write timeout, after the buffers filled
    aloop.run(c.disconnect())
    aloop.run(peer.close())


def test_keepalive_fires_while_a_write_is_stuck(aloop):
    """Issue 9 item 8: a silent peer that never reads; the write timeout is long (10 s), so
    only the keepalive (1 s) can end the session, and it must not wait for the write lock."""

    async def dead(peer, r, w):
        await accept(peer, r, w)
        w.transport.pause_reading()
        await asyncio.sleep(60)

    peer = run_peer(aloop, dead, rcvbuf=4096)
    c = client(peer.port, keepalive=1, timeout_ms=10000)
    aloop.call(c.start)
    wait(c.isconnected, 5, "connected")

    async def fill():
        for _ in range(8):
            await c.publish("t/big", BIG)

    aloop.spawn(fill())
    wait(lambda: not c.isconnected(), 5, "keepalive to end the session")
    assert "keepalive" in c.last_error, c.last_error
    aloop.run(c.disconnect())
    aloop.run(peer.close())


def test_first_pingreq_is_due_from_connect_not_from_a_late_connack(aloop):
    """Issue 9 item 9 (MQTT-3.1.2-23): CONNACK comes 1.5 s after CONNECT, keepalive is 2 s:
    the first PINGREQ must still reach the broker within 2 s of CONNECT."""

    async def slow(peer, r, w):
        await accept(peer, r, w, delay=1.5)
        await peer.serve(r, w)

    peer = run_peer(aloop, slow)
    c = client(peer.port, keepalive=2, timeout_ms=5000)
    aloop.call(c.start)
    wait(lambda: any(e == "ping" for e, t in peer.events), 5, "first PINGREQ")
    times = dict(reversed(peer.events))  # the first of each
    assert times["ping"] - times["connect"] <= 2.0, peer.events
    aloop.run(c.disconnect())
    aloop.run(peer.close())


def test_a_message_the_broker_closes_the_connection_on_is_dropped_and_counted(aloop):
    """Issue 9 item 10, against a peer: it closes the connection on one message (as
    Mosquitto does on a topic it refuses). That message is dropped with its reason, counted,
    and everything published before and after it is delivered, in order."""

    async def picky(peer, r, w):
        await accept(peer, r, w)
        await peer.serve(r, w, poison=b"poison")

    peer = run_peer(aloop, picky)
    acked, refused = [], []
    c = client(peer.port, max_inflight=4, on_ack=acked.append, on_refused=lambda tag, why: refused.append((tag, why)))
    aloop.call(c.start)
    wait(c.isconnected, 5, "connected")

    async def burst():
        for i in range(8):
            await c.publish("t/v", b"poison" if i == 3 else b"m%d" % i, tag=i)

    aloop.run(burst())
    wait(lambda: len(acked) + len(refused) == 8, 8, "every message acknowledged or refused")
    assert acked == [0, 1, 2, 4, 5, 6, 7]
    assert [t for t, why in refused] == [3] and "closed the connection" in refused[0][1]
    assert c.msgs_refused == 1 and c.inflight == 0
    assert list(dict.fromkeys(peer.got)) == [b"m%d" % i for i in range(8) if i != 3]
    wait(c.isconnected, 5, "connected again, for good")
    aloop.run(c.disconnect())
    aloop.run(peer.close())


def test_a_broker_dropping_every_connection_does_not_make_messages_refused(aloop):
    """The other side of item 10: a broker that drops the client right after CONNACK, before
    it answers anything, is not refusing the message in flight; it stays in flight."""

    async def drop(peer, r, w):
        await accept(peer, r, w)
        await asyncio.sleep(0.05)

    peer = run_peer(aloop, drop)
    c = client(peer.port, backoff_max_ms=200)
    aloop.call(c.start)
    aloop.spawn(c.publish("t/v", b"m0", tag=0))
    wait(lambda: len(peer.connects) >= 8, 8, "eight connections")
    assert c.msgs_refused == 0 and c.inflight == 1
    aloop.run(c.disconnect())
    aloop.run(peer.close())
