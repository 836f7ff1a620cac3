"""The bedside MQTT client against a real Mosquitto: credentials, last will, refused
connects with backoff, dead-broker detection, in-flight window order, retransmission."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import time

import pytest

from bedside import mqttpacket as mp
from bedside.mqtt import MQTTClient

from .conftest import DEVICES, WARD, first_occurrences, wait

PREFIX = f"wardwatch/v1/{WARD}"


def make_client(broker, dev, password=None, **kw):
    kw.setdefault("keepalive", 5)
    kw.setdefault("backoff_min_ms", 100)
    kw.setdefault("backoff_max_ms", 500)
    kw.setdefault("timeout_ms", 2000)
    return MQTTClient(
        dev, "127.0.0.1", broker.port, dev, DEVICES[dev] if password is None else password,
        will=(f"{PREFIX}/{dev}/status", b'{"v":1,"dev":"%s","state":"offline"}' % dev.encode(), 1, True), **kw,
    )


def test_publishes_in_order_through_the_window_and_acks_in_order(broker, aloop):
    acked = []
    c = make_client(broker, "dev-01", max_inflight=8)
    c.on_ack = acked.append
    topic = f"{PREFIX}/dev-01/vitals"
    with broker.subscriber(topic) as sub:
        aloop.call(c.start)
        wait(c.isconnected, 10, "client connected")

        async def burst():
            peak = 0
            for i in range(2000):
                await c.publish(topic, b'{"seq":%d}' % i, tag=i)
                peak = max(peak, c.inflight)
            return peak

        t0 = time.monotonic()
        peak = aloop.run(burst())
        wait(lambda: len(acked) == 2000, 20, "2000 PUBACKs")
        elapsed = time.monotonic() - t0
        assert acked == list(range(2000))  # on_ack in publish order
        assert 1 < peak <= 8  # the window was used, and never exceeded
        wait(lambda: len(sub.seqs()) == 2000, 10, "subscriber to get 2000 messages")
        assert sub.seqs() == list(range(2000))
        assert elapsed < 15
        aloop.run(c.disconnect())


def test_abrupt_socket_death_makes_the_broker_publish_the_will(broker, aloop):
    c = make_client(broker, "dev-02")
    with broker.subscriber(f"{PREFIX}/dev-02/status") as sub:
        aloop.call(c.start)
        wait(c.isconnected, 10, "client connected")
        # Kill the TCP connection under the client, as a dying Wi-Fi link or a crash would:
        # no MQTT DISCONNECT is ever sent.
        sock = aloop.call(lambda: c._writer.transport.get_extra_info("socket"))
        with socket.socket(fileno=os.dup(sock.fileno())) as s:
            s.shutdown(socket.SHUT_RDWR)
        wait(lambda: any(m["state"] == "offline" for m in sub.payloads("/status")), 10, "last will")
        will = sub.payloads("/status")[-1]
        assert will == {"v": 1, "dev": "dev-02", "state": "offline"}
        # and the client notices and reconnects by itself
        wait(lambda: c.connects >= 2 and c.isconnected(), 10, "reconnect")
        assert c.drops == 1
        aloop.run(c.disconnect())


def test_wrong_password_is_refused_for_good_backs_off_to_the_cap_and_is_remembered(broker, aloop):
    """Issue 9 item 11: a permanent refusal (bad credentials) retries at backoff_max from the
    first attempt on, shows as ``refusing``, and ``last_refusal`` outlives the fix."""
    lines = []
    c = make_client(broker, "dev-03", password="wrong", backoff_min_ms=100, backoff_max_ms=400, log=lines.append)
    aloop.call(c.start)
    wait(lambda: c.refused >= 3, 15, "three refused connects")
    assert not c.isconnected() and c.connects == 0 and c.refusing
    assert not c._task.done()  # the supervisor keeps trying
    assert c.last_refusal in ("not authorized", "bad user name or password")
    assert c.last_refusal in c.last_error
    delays = [int(d) for d in re.findall(r"retry in (\d+) ms", "\n".join(lines))]
    # every retry waits in [cap/2, cap] with equal jitter: no quick first attempts
    assert len(delays) >= 2 and all(200 <= d <= 400 for d in delays), delays
    # fixing the credential on the broker lets the same client in on its next attempt
    broker.mosquitto.add_users({"dev-03": "wrong"})
    broker.restart()
    wait(c.isconnected, 10, "connect after the password was fixed")
    assert not c.refusing and c.last_refusal in ("not authorized", "bad user name or password")
    aloop.run(c.disconnect())
    broker.mosquitto.add_users({"dev-03": DEVICES["dev-03"]})


def test_a_server_that_is_not_there_is_retried_with_exponential_backoff(aloop):
    """A transient failure (nothing listening) grows the backoff from backoff_min."""
    lines = []
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: connection refused
    c = MQTTClient("dev-03", "127.0.0.1", port, backoff_min_ms=100, backoff_max_ms=400, log=lines.append)
    aloop.call(c.start)
    wait(lambda: c.failures >= 5, 10, "five failed connects")
    aloop.run(c.disconnect())
    delays = [int(d) for d in re.findall(r"retry in (\d+) ms", "\n".join(lines))]
    for n, d in enumerate(delays[:5], 1):
        cap = min(100 * 2 ** (n - 1), 400)
        assert cap // 2 <= d <= cap, (n, d)
    assert not c.refusing and c.last_refusal is None


def test_publish_and_subscribe_refuse_bad_topics_and_qos2_before_queueing():
    """Issue 9 items 10-11: nothing a broker would disconnect for is queued (it would be
    re-sent first after every reconnect and block everything behind it)."""
    c = MQTTClient("dev-01", "127.0.0.1", 1)

    async def attempt(coro):
        try:
            await coro
        except ValueError as e:
            return str(e)

    async def main():
        out = []
        for topic in ["", f"{PREFIX}/+/vitals", f"{PREFIX}/#", "a\x00b", b"a\xff", "a\x01"]:
            for qos in (0, 1):
                out.append(await attempt(c.publish(topic, b"x", qos=qos)))
        out.append(await attempt(c.publish(f"{PREFIX}/dev-01/vitals", b"x", qos=2)))
        out.append(await attempt(c.subscribe(f"{PREFIX}/dev-01/config", qos=2)))
        out.append(await attempt(c.subscribe(f"{PREFIX}/dev-01/co#")))
        return out

    errors = asyncio.run(main())
    assert all(errors), errors
    assert any("QoS 2" in e for e in errors)
    assert c.inflight == 0 and c._subs == []


@pytest.mark.parametrize("bad_topic", ["#", "a\x01b"])
def test_a_message_mosquitto_refuses_is_dropped_counted_and_blocks_nothing(broker, aloop, monkeypatch, bad_topic):
    """Issue 9 item 10 against the real broker: a topic Mosquitto refuses (it closes the
    connection) smuggled past publish's check. It is dropped with its reason and counted;
    the messages before and after it are all delivered, in order."""
    acked, refused = [], []
    c = make_client(broker, "dev-01", max_inflight=4)
    c.on_ack = acked.append
    c.on_refused = lambda tag, why: refused.append((tag, why))
    topic = f"{PREFIX}/dev-01/vitals"
    with broker.subscriber(topic) as sub:
        aloop.call(c.start)
        wait(c.isconnected, 10, "client connected")

        async def burst():
            for i in range(8):
                if i == 3:
                    with monkeypatch.context() as m:
                        m.setattr(mp, "topic_name", mp._b)  # skip the check
                        await c.publish(f"{PREFIX}/dev-01/{bad_topic}", b'{"seq":3}', tag=3)
                else:
                    await c.publish(topic, b'{"seq":%d}' % i, tag=i)

        aloop.run(burst())
        wait(lambda: len(acked) + len(refused) == 8, 10, "every message acknowledged or refused")
        assert acked == [0, 1, 2, 4, 5, 6, 7]
        assert [t for t, why in refused] == [3] and bad_topic in refused[0][1]
        assert c.msgs_refused == 1
        wait(lambda: len(set(sub.seqs())) == 7, 10, "the seven good messages")
        assert first_occurrences(sub.seqs()) == [0, 1, 2, 4, 5, 6, 7]
        wait(c.isconnected, 10, "connected again")
        aloop.run(c.disconnect())


def test_a_frozen_broker_is_detected_by_keepalive_and_nothing_is_lost(broker, aloop):
    """SIGSTOP leaves the TCP connection open but silent: only keepalive can tell. Messages
    written into the frozen connection are retransmitted (DUP) after the reconnect."""
    c = make_client(broker, "dev-04", keepalive=1, timeout_ms=1000)
    topic = f"{PREFIX}/dev-04/vitals"
    pid = broker.mosquitto.proc.pid
    with broker.subscriber(topic) as sub:
        aloop.call(c.start)
        wait(c.isconnected, 10, "client connected")
        for i in range(5):
            aloop.run(c.publish(topic, b'{"seq":%d}' % i))
        wait(lambda: c.inflight == 0, 5, "first acks")
        os.kill(pid, signal.SIGSTOP)
        try:
            for i in range(5, 10):
                aloop.run(c.publish(topic, b'{"seq":%d}' % i))
            wait(lambda: not c.isconnected(), 5, "keepalive to declare the broker dead")
            assert "keepalive" in c.last_error
            assert c.inflight == 5
        finally:
            os.kill(pid, signal.SIGCONT)
        wait(lambda: c.isconnected() and c.inflight == 0, 15, "reconnect and acks")
        assert c.retransmits >= 5
        wait(lambda: len(set(sub.seqs())) == 10, 10, "all 10 messages")
        assert first_occurrences(sub.seqs()) == list(range(10))
        aloop.run(c.disconnect())


def test_subscription_receives_retained_config_after_every_connect(broker, aloop):
    got = []
    c = make_client(broker, "dev-01")
    c.on_message = lambda t, p, r: got.append((t, json.loads(p), r))
    broker.publish(f"{PREFIX}/dev-01/config", b'{"rate_hz": 2}', retain=True)
    aloop.run(c.subscribe(f"{PREFIX}/dev-01/config"))
    aloop.call(c.start)
    wait(lambda: len(got) == 1, 10, "retained config")
    assert got[0] == (f"{PREFIX}/dev-01/config", {"rate_hz": 2}, True)
    broker.restart()
    wait(lambda: len(got) == 2, 15, "retained config again after a reconnect")
    aloop.run(c.disconnect())
    broker.publish(f"{PREFIX}/dev-01/config", b"", retain=True)


def test_disconnect_is_clean_and_publish_after_close_raises(broker, aloop):
    c = make_client(broker, "dev-02")
    with broker.subscriber(f"{PREFIX}/#") as sub:
        aloop.call(c.start)
        wait(c.isconnected, 10, "client connected")
        aloop.run(c.disconnect())
        assert not c.isconnected()
        # A marker published after the disconnect arrives after any will would have.
        broker.publish(f"{PREFIX}/dev-02/config", b'{"marker": 1}')
        wait(lambda: sub.payloads("/config"), 10, "marker")
        assert sub.payloads("/status") == []  # no last will after DISCONNECT

        async def late():
            try:
                await c.publish(f"{PREFIX}/dev-02/vitals", b"x")
            except Exception as e:
                return type(e).__name__

        assert aloop.run(late()) == "MQTTError"
