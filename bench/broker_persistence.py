"""What Mosquitto's persistence costs, and whether the gateway's session survives a crash:
``make bench-broker``. Progress on stderr; the last stdout line is one JSON object.

Mosquitto saves its whole in-memory database at each autosave; whatever changed since the
last one is gone after a SIGKILL, the gateway's persistent session and subscription
included. For each setting (time-based ``autosave_interval 30``, the old deployment value,
and ``autosave_on_changes`` after N changes) this runs a real Mosquitto with the deployment
ACL, a persistent QoS 1 subscriber acknowledging like the gateway (clean start off),
``--devices`` devices' retained status and watermark, and ``--rate`` readings/s for
``--seconds`` s, and reports per setting:

- ``cpu_pct``: the broker's CPU (100 = one core) and ``write_mb_s``: bytes it wrote to disk
  per second (``/proc/<pid>/io``), both over the loaded period;
- ``session_survives``: a subscriber subscribes while readings keep flowing, the broker is
  SIGKILLed 2 s later and restarted on the same persistence directory: does the session come back (MQTT v5
  ``session_present``) with its subscription (a message published after the restart is
  delivered without subscribing again)?

Run: ``.venv/bin/python bench/broker_persistence.py [--rate 2000] [--seconds 15]``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from provisioning.stack.services import GATEWAY_USER, TESTER_USER, Mosquitto, exit_on_sigterm, wait_until

# The bench scripts run as `python bench/<script>.py`, so their folder is on sys.path already.
from throughput import proc_cpu_s as cpu_s, progress

SETTINGS = {
    "interval_30s": ("autosave_interval 30",),
    "on_changes_1000": ("autosave_on_changes true", "autosave_interval 1000"),
    "on_changes_100": ("autosave_on_changes true", "autosave_interval 100"),
}


def written(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


class Subscriber:
    """Like the gateway: MQTT v5, clean start off, session expiry 1 h, QoS 1, manual ack."""

    def __init__(self, broker: Mosquitto, client_id: str = "bench-gateway"):
        self.received = 0
        self.session_present: bool | None = None
        self.connected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.username_pw_set(GATEWAY_USER, broker.users[GATEWAY_USER])
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda c, u, m: setattr(self, "received", self.received + 1)
        self.broker = broker

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        self.session_present = bool(flags.session_present)
        self.connected.set()

    def connect(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.connected.clear()
        self.client.connect("127.0.0.1", self.broker.port, clean_start=False, properties=props)
        self.client.loop_start()
        if not self.connected.wait(10):
            raise TimeoutError("subscriber did not connect")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def publisher(broker: Mosquitto) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-devices")
    c.username_pw_set(TESTER_USER, broker.users[TESTER_USER])
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    return c


def run(name: str, autosave: tuple[str, ...], workdir: Path, args) -> dict:
    broker = Mosquitto(workdir / name, autosave=autosave).start()
    try:
        sub = Subscriber(broker)
        sub.connect()
        sub.client.subscribe("wardwatch/v1/+/+/vitals", qos=1)
        pub = publisher(broker)
        for d in range(args.devices):
            for kind in ("status", "durable"):
                pub.publish(f"wardwatch/v1/w1/dev-{d:04d}/{kind}", b'{"v":1,"state":"online","seq":1}', 1, retain=True)
        time.sleep(2.0)  # the retained state settles (and the time-based autosave has not run)
        pid = broker.proc.pid
        c0, w0, t0 = cpu_s(pid), written(pid), time.monotonic()
        payload = b'{"v":1,"dev":"dev-0000","seq":1,"ts":1,"tq":1,"hr":70,"spo2":97,"temp":36.6,"pi":2.0,"sqi":0.9,"probe":"ok","sim":true}'
        n = int(args.rate * args.seconds)
        for i in range(n):
            pub.publish(f"wardwatch/v1/w1/dev-{i % args.devices:04d}/vitals", payload, qos=1)
            delay = t0 + (i + 1) / args.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        wait_until(lambda: sub.received >= n, 60, f"{n} readings at the subscriber")
        c1, w1, t1 = cpu_s(pid), written(pid), time.monotonic()
        sub.close()

        # Crash test: a fresh subscription while readings keep flowing, the broker killed
        # 2 s later and restarted on its persistence directory.
        crash = Subscriber(broker, "bench-gateway-crash")
        crash.connect()
        crash.client.subscribe("wardwatch/v1/+/+/status", qos=1)
        t2 = time.monotonic()
        for i in range(int(args.rate * 2)):
            pub.publish(f"wardwatch/v1/w1/dev-{i % args.devices:04d}/vitals", payload, qos=1)
            delay = t2 + (i + 1) / args.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        pub.loop_stop()
        crash.close()
        os.kill(pid, signal.SIGKILL)
        broker.proc.wait()
        broker.start()
        crash.connect()
        survives = bool(crash.session_present)
        probe = publisher(broker)
        probe.publish("wardwatch/v1/w1/dev-0000/status", b'{"v":1}', qos=1).wait_for_publish(10)
        try:
            wait_until(lambda: crash.received > 0, 5, "a message on the surviving subscription")
            delivered = True
        except TimeoutError:
            delivered = False
        probe.loop_stop()
        crash.close()
        result = {
            "cpu_pct": round(100 * (c1 - c0) / (t1 - t0), 1),
            "write_mb_s": round((w1 - w0) / (t1 - t0) / 1e6, 3),
            "rate": round(n / (t1 - t0), 1),
            "session_survives": survives and delivered,
        }
        progress(f"{name}: {result}")
        return result
    finally:
        broker.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=2000, help="readings/s through the broker")
    ap.add_argument("--seconds", type=float, default=15, help="seconds of load per setting")
    ap.add_argument("--devices", type=int, default=500, help="devices with retained status and watermark")
    args = ap.parse_args()
    exit_on_sigterm()
    out: dict = {"rate": args.rate, "seconds": args.seconds, "devices": args.devices}
    with tempfile.TemporaryDirectory(prefix="wardwatch-broker-") as tmp:
        for name, autosave in SETTINGS.items():
            progress(f"{name}: {' / '.join(autosave)}")
            out[name] = run(name, autosave, Path(tmp), args)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
