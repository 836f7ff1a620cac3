"""The bedside app against a real Mosquitto: readings and retained status, outbox replay
over a broker restart, overflow accounting, scenarios (power off, network outage), config
topic, clean stop, seq wrap."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading

from bedside.app import App

from .conftest import DEVICES, WARD, first_occurrences, wait

PREFIX = f"wardwatch/v1/{WARD}"


def start_app(aloop, cfg):
    app = App(cfg)
    fut = aloop.spawn(app.run())
    return app, fut


def stop_app(aloop, app, fut, flush_timeout=5.0):
    flushed = aloop.run(app.stop(flush_timeout))
    fut.result(10)
    return flushed


class MosquittoSub:
    """``mosquitto_sub`` as a child process; lines are ``topic qos retain payload``."""

    def __init__(self, broker, topic):
        self.proc = subprocess.Popen(
            ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-u", "wardwatch-tester",
             "-P", broker.stack.password("wardwatch-tester"), "-t", topic, "-q", "1", "-F", "%t %q %r %p"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def messages(self):
        out = []
        for line in list(self.lines):
            topic, qos, retain, payload = line.split(" ", 3)
            out.append((topic, int(qos), retain == "1", json.loads(payload)))
        return out

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)


def test_mosquitto_sub_receives_qos1_readings_and_the_retained_online_status(broker, aloop, reading_schema, status_schema):
    # A retained config message tells us when mosquitto_sub's subscription is in place.
    broker.publish(f"{PREFIX}/dev-01/config", b"{}", retain=True)
    sub = MosquittoSub(broker, f"{PREFIX}/dev-01/#")
    try:
        wait(lambda: sub.lines, 10, "mosquitto_sub subscribed")
        app, fut = start_app(aloop, broker.device_cfg("dev-01"))
        wait(lambda: len([m for m in sub.messages() if m[0].endswith("/vitals")]) >= 20, 10, "20 readings")
        # The status is retained: a late subscriber still gets it, flagged retained.
        late = MosquittoSub(broker, f"{PREFIX}/dev-01/status")
        try:
            wait(lambda: late.lines, 10, "retained status")
            topic, qos, retain, doc = late.messages()[0]
            assert retain and doc["state"] == "online" and doc["dev"] == "dev-01"
        finally:
            late.close()
        stop_app(aloop, app, fut)
        msgs = sub.messages()
        readings = [m for m in msgs if m[0].endswith("/vitals")]
        assert all(qos == 1 and not retain for _, qos, retain, _ in readings)
        for *_, doc in readings:
            reading_schema.validate(doc)
        assert [doc["seq"] for *_, doc in readings][:20] == list(range(20))
        assert all(doc["sim"] is True and doc["dev"] == "dev-01" and doc["tq"] == 1 for *_, doc in readings)
        online = [m for m in msgs if m[0].endswith("/status")]
        assert online and online[0][1] == 1
        status_schema.validate(online[0][3])
        assert online[0][3]["state"] == "online" and online[0][3]["board"] == "host"
    finally:
        sub.close()
    # After a clean stop the retained status says offline.
    late = MosquittoSub(broker, f"{PREFIX}/dev-01/status")
    try:
        wait(lambda: late.lines, 10, "retained status after stop")
        topic, qos, retain, doc = late.messages()[0]
        assert retain and doc == {"v": 1, "dev": "dev-01", "state": "offline"}
    finally:
        late.close()


def test_broker_restart_outbox_replays_every_seq_in_order(broker, aloop):
    with broker.subscriber(f"{PREFIX}/dev-01/vitals", persistent=True, client_id="replay-sub") as sub:
        app, fut = start_app(aloop, broker.device_cfg("dev-01", outbox_cap=1000))
        wait(lambda: len(sub.seqs()) >= 10, 10, "first readings")
        broker.mosquitto.stop()
        # ~3 s of outage at 20 Hz: readings pile up in the outbox
        wait(lambda: app.outbox_len >= 60, 10, "60 readings waiting in the outbox")
        assert not app.connected()
        broker.mosquitto.start()
        wait(lambda: app.connected() and app.outbox_len < 5, 15, "reconnect and replay")
        assert stop_app(aloop, app, fut) is True
        stats = app.stats()
        assert stats["dropped"] == 0 and stats["outbox"] == 0 and stats["acked"] == stats["seq_next"]
        wait(lambda: len(set(sub.seqs())) == stats["seq_next"], 15, "subscriber to see every seq")
        assert first_occurrences(sub.seqs()) == list(range(stats["seq_next"]))


def test_outbox_overflow_drops_oldest_counts_and_reports_dropped(broker, aloop, status_schema):
    with broker.subscriber(f"{PREFIX}/dev-02/#", persistent=True, client_id="overflow-sub") as sub:
        app, fut = start_app(aloop, broker.device_cfg("dev-02", outbox_cap=20, rate_hz=50))
        wait(lambda: sub.payloads("/status") and len(sub.seqs()) >= 5, 10, "online and first readings")
        broker.mosquitto.stop()
        wait(lambda: app.dropped >= 30, 10, "outbox overflow")
        broker.mosquitto.start()
        wait(lambda: any(s.get("dropped", 0) > 0 for s in sub.payloads("/status")), 15, "status reporting dropped")
        status = [s for s in sub.payloads("/status") if s.get("dropped", 0) > 0][0]
        status_schema.validate(status)
        stop_app(aloop, app, fut)
        stats = app.stats()
        assert stats["outbox"] == 0 and stats["acked"] + stats["dropped"] == stats["seq_next"]
        wait(lambda: len(set(sub.seqs())) == stats["seq_next"] - stats["dropped"], 15, "every kept reading")
        seen = first_occurrences(sub.seqs())
        assert seen == sorted(seen)  # order kept across the gap
        missing = set(range(stats["seq_next"])) - set(seen)
        assert len(missing) == stats["dropped"]  # exactly the counted drops are missing


def test_power_off_scenario_fires_the_will_then_reboots_and_continues_seq(broker, aloop):
    cfg = broker.device_cfg("dev-03", scenario=[{"at_s": 0.5, "power": "off", "for_s": 1.0}])
    with broker.subscriber(f"{PREFIX}/dev-03/#") as sub:
        app, fut = start_app(aloop, cfg)
        states = lambda: [s["state"] for s in sub.payloads("/status")]
        # The will proves the socket died without DISCONNECT (the device may already be
        # back on by the time this thread looks, so app.powered is not asserted here).
        wait(lambda: "offline" in states(), 10, "last will at power off")
        wait(lambda: states()[-1] == "online" and states().count("online") >= 2, 10, "online again after reboot")
        wait(lambda: app.acked > 30, 10, "readings after the reboot")
        stop_app(aloop, app, fut)
        stats = app.stats()
        assert stats["acked"] + stats["lost"] + stats["dropped"] + stats["outbox"] == stats["seq_next"]
        seen = first_occurrences(sub.seqs())
        assert seen == sorted(seen) and len(set(seen)) >= stats["acked"]
        # the status after the reboot reports a fresh uptime
        after_reboot = [s for s in sub.payloads("/status") if s["state"] == "online"][-1]
        assert after_reboot["uptime_s"] <= 2


def test_network_outage_scenario_drops_the_link_and_replays_afterwards(broker, aloop):
    cfg = broker.device_cfg("dev-04", scenario=[{"at_s": 0.5, "network": "down", "for_s": 1.0}])
    with broker.subscriber(f"{PREFIX}/dev-04/#") as sub:
        app, fut = start_app(aloop, cfg)
        wait(lambda: any(s["state"] == "offline" for s in sub.payloads("/status")), 10, "last will when the link drops")
        wait(lambda: app.outbox_len >= 20, 10, "readings queued during the outage")
        wait(lambda: app.connected() and app.outbox_len < 5 and app.seq > 40, 15, "replay after the outage")
        stop_app(aloop, app, fut)
        stats = app.stats()
        assert stats["dropped"] == 0 and stats["acked"] == stats["seq_next"]
        assert app.client.drops >= 1
        wait(lambda: len(set(sub.seqs())) == stats["seq_next"], 10, "every seq")
        assert first_occurrences(sub.seqs()) == list(range(stats["seq_next"]))


def test_retained_config_changes_the_rate(broker, aloop):
    broker.publish(f"{PREFIX}/dev-01/config", b'{"rate_hz": 25}', retain=True)
    app, fut = start_app(aloop, broker.device_cfg("dev-01", rate_hz=1))
    wait(lambda: app.seq >= 20, 5, "readings at the configured 25 Hz")
    assert app._period_ms == 40
    stop_app(aloop, app, fut)
    broker.publish(f"{PREFIX}/dev-01/config", b"", retain=True)


def test_clean_stop_flushes_and_publishes_offline(broker, aloop, status_schema):
    with broker.subscriber(f"{PREFIX}/dev-02/#") as sub:
        app, fut = start_app(aloop, broker.device_cfg("dev-02"))
        wait(lambda: sub.payloads("/status") and app.seq >= 10, 10, "online and readings")
        assert stop_app(aloop, app, fut) is True
        n = app.seq
        broker.publish(f"{PREFIX}/dev-02/config", b'{"marker": 1}')
        wait(lambda: sub.payloads("/config"), 10, "marker")
        statuses = sub.payloads("/status")
        assert [s["state"] for s in statuses] == ["online", "offline"]
        assert status_schema.is_valid(statuses[-1])
        assert len(set(sub.seqs())) == n and app.seq == n  # flushed, and nothing made after stop


def test_seq_wraps_at_2_to_the_32(broker, aloop, reading_schema):
    with broker.subscriber(f"{PREFIX}/dev-03/vitals") as sub:
        app, fut = start_app(aloop, broker.device_cfg("dev-03", seq=2**32 - 3))
        wait(lambda: len(sub.seqs()) >= 6, 10, "six readings")
        stop_app(aloop, app, fut)
        assert sub.seqs()[:6] == [2**32 - 3, 2**32 - 2, 2**32 - 1, 0, 1, 2]
        for doc in sub.payloads("/vitals"):
            reading_schema.validate(doc)


def test_a_refused_device_reports_the_refusal_in_its_status_once_accepted(broker, aloop, status_schema):
    """Issue 9 item 11: while the broker refuses the device (bad password) it cannot publish
    a status; the refusal is kept and shows in the first status after it is let in. The
    status also carries ``refused`` (messages the broker refused), 0 here."""
    cfg = broker.device_cfg("dev-04", broker={"password": "wrong", "backoff_max_ms": 300})
    with broker.subscriber(f"{PREFIX}/dev-04/status") as sub:
        app, fut = start_app(aloop, cfg)
        wait(lambda: app.client is not None and app.client.refusing, 10, "refused connects")
        broker.mosquitto.add_users({"dev-04": "wrong"})
        try:
            broker.restart()
            wait(lambda: any("refusal" in s for s in sub.payloads("/status")), 15, "a status after the fix")
            status = [s for s in sub.payloads("/status") if "refusal" in s][0]
            status_schema.validate(status)
            assert status["state"] == "online" and status["refused"] == 0
            assert status["refusal"] in ("not authorized", "bad user name or password")
            assert not app.client.refusing
            stop_app(aloop, app, fut)
        finally:
            broker.mosquitto.add_users({"dev-04": DEVICES["dev-04"]})


def test_with_a_watermark_readings_stay_until_it_covers_them_and_gaps_are_sent_again(broker, aloop):
    # The gateway's side is played here: a retained watermark on the device's durable topic.
    durable = f"{PREFIX}/dev-03/durable"
    broker.publish(durable, b'{"v":1,"dev":"dev-03","seq":4294967295}', retain=True)  # nothing covered yet
    with broker.subscriber(f"{PREFIX}/dev-03/vitals", persistent=True, client_id="wm-sub") as sub:
        app, fut = start_app(aloop, broker.device_cfg("dev-03", rate_hz=20, outbox_cap=1000))
        # Distinct seqs: on a loaded host a reconnect may deliver a reading twice (QoS 1).
        wait(lambda: len(set(sub.seqs())) >= 30, 10, "30 readings at the broker")
        # PUBACKed, but no watermark covers them: they stay, and each says where the outbox starts.
        assert app.stats()["acked"] == 0 and app.outbox_len >= 30
        assert {p["low"] for p in sub.payloads("/vitals")} == {0}
        broker.publish(durable, b'{"v":1,"dev":"dev-03","seq":19}', retain=True)
        wait(lambda: app.stats()["acked"] == 20, 5, "the 20 covered readings to leave the outbox")
        assert app.outbox.seq(0) == 20
        wait(lambda: any(p["low"] == 20 for p in sub.payloads("/vitals")), 5, "low to move on")
        # The gateway has later readings than 21: 22..29 went missing on the way; sent again.
        before = app.resent
        broker.publish(durable, b'{"v":1,"dev":"dev-03","seq":21,"top":29}', retain=True)
        wait(lambda: app.resent > before, 5, "the readings after the watermark to be sent again")
        wait(lambda: sub.seqs().count(22) >= 2, 5, "reading 22 at the broker a second time")
        # A watermark for another device, or garbage, changes nothing.
        broker.publish(durable, b'{"v":1,"dev":"dev-99","seq":100000}')
        broker.publish(durable, b'not json')
        assert app.outbox.seq(0) == 22 and app.stats()["acked"] == 22
        broker.publish(durable, b'{"v":1,"dev":"dev-03","seq":%d}' % (app.seq + 100), retain=True)
        assert stop_app(aloop, app, fut, flush_timeout=5) is True
        assert app.stats()["outbox"] == 0 and app.stats()["acked"] == app.stats()["seq_next"]
