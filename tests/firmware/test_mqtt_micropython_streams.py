"""The MQTT client over streams that behave like MicroPython's (extmod/asyncio/stream.py),
against the real broker: ``close()`` does nothing and ``wait_closed()`` closes the socket;
``write()`` appends to a buffer that ``drain()`` sends and then empties, so bytes written
while another task is inside ``drain()`` are lost. The client must close sockets through
``wait_closed()`` and never write during a drain (its write lock)."""

from __future__ import annotations

import asyncio

import pytest

from .conftest import wait
from .test_mqtt_client import PREFIX, make_client


class MicroPythonStream:
    """One object for both directions, as in MicroPython (StreamReader = StreamWriter)."""

    def __init__(self, reader, writer):
        self._r = reader
        self._w = writer
        self.out_buf = b""
        self.socket_closed = False

    async def read(self, n=-1):
        return await self._r.read(n)

    async def readexactly(self, n):
        try:
            return await self._r.readexactly(n)
        except asyncio.IncompleteReadError:
            raise EOFError from None

    def write(self, buf):
        self.out_buf += buf

    async def drain(self):
        if not self.out_buf:
            await asyncio.sleep(0)
            return
        data = self.out_buf
        self._w.write(data)
        await asyncio.sleep(0)  # MicroPython yields to the poller while sending
        await self._w.drain()
        self.out_buf = b""  # whatever was written meanwhile is gone, as on MicroPython

    def close(self):
        pass

    async def wait_closed(self):
        self.socket_closed = True
        self._w.transport.abort()


@pytest.fixture
def micropython_streams(monkeypatch):
    opened = []
    real = asyncio.open_connection

    async def open_connection(host, port, ssl=None):
        r, w = await real(host, port, ssl=ssl)
        s = MicroPythonStream(r, w)
        opened.append(s)
        return s, s

    monkeypatch.setattr(asyncio, "open_connection", open_connection)
    return opened


def test_order_and_completeness_with_micropython_stream_semantics(broker, aloop, micropython_streams):
    acked = []
    c = make_client(broker, "dev-01", max_inflight=8)
    c.on_ack = acked.append
    topic = f"{PREFIX}/dev-01/vitals"
    with broker.subscriber(topic) as sub:
        aloop.call(c.start)
        wait(c.isconnected, 10, "client connected")

        async def burst():
            # a second task publishing and pinging concurrently, to contend for the writer
            async def other():
                for _ in range(200):
                    await c._send(b"\xc0\x00")  # PINGREQ
                    await asyncio.sleep(0)

            t = asyncio.create_task(other())
            for i in range(1000):
                await c.publish(topic, b'{"seq":%d}' % i, tag=i)
            await t

        aloop.run(burst())
        wait(lambda: len(acked) == 1000, 20, "1000 PUBACKs")
        wait(lambda: len(sub.seqs()) == 1000, 10, "1000 messages")
        assert sub.seqs() == list(range(1000))
        aloop.run(c.disconnect())
    assert micropython_streams[-1].socket_closed  # closed through wait_closed()


def test_link_down_really_closes_the_socket_so_the_will_fires(broker, aloop, micropython_streams):
    c = make_client(broker, "dev-02")
    with broker.subscriber(f"{PREFIX}/dev-02/status") as sub:
        aloop.call(c.start)
        wait(c.isconnected, 10, "client connected")
        aloop.call(c.set_link, False)
        wait(lambda: micropython_streams[0].socket_closed, 5, "socket closed via wait_closed()")
        wait(lambda: any(m["state"] == "offline" for m in sub.payloads("/status")), 10, "last will")
        aloop.call(c.set_link, True)
        wait(lambda: c.isconnected() and c.connects == 2, 10, "reconnect")
        aloop.run(c.disconnect())
