"""End-to-end throughput benchmark (``make bench``). Prints JSON; the last line is the result.

D simulated devices (the real firmware on the host simulator) publish at a total rate R
through the real Mosquitto and gateway into InfluxDB. Measured in one run:

- ``offered_rate``: readings the devices made per second; ``stored_rate``: readings stored
  per second, from the first publish until the last one is visible in InfluxDB;
- ``lost`` / ``duplicates``: per device, every ``seq`` the simulator made, checked in InfluxDB;
- ``p50_store_ms`` / ``p99_store_ms``: publish -> visible in InfluxDB, from a probe device
  publishing 20 readings/s inside the same stream and a poller querying every 10 ms
  (so each figure carries up to 10 ms of polling resolution);
- ``gateway_cpu_pct`` (100 = one core) and ``gateway_rss_mb`` from /proc;
- ``gateway_drain_rate`` and ``paho_drain_rate``: one backlog of ``--backlog`` readings is
  queued in the broker for the stopped gateway and for an offline bare paho subscriber
  (auto-ack, no work per message); each then drains it, timed. Their ratio is the gateway's
  capacity as a share of what paho alone can take on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from provisioning.stack.services import TESTER_USER, exit_on_sigterm, wait_until
from provisioning.stack.ward import Ward

PROBE = "bench-probe"
TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def tester(ward: Ward, client_id: str, clean: bool = True, inflight: int = 20) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(inflight)
    c.max_queued_messages_set(0)
    c.username_pw_set(TESTER_USER, ward.stack.password(TESTER_USER))
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    c.connect("127.0.0.1", ward.stack.mosquitto.port, clean_start=clean, properties=props)
    return c


class Probe:
    """Publishes ``rate`` readings/s as device PROBE and times each until InfluxDB has it."""

    def __init__(self, ward: Ward, rate: float = 20.0):
        self.ward = ward
        self.rate = rate
        self.sent: dict[int, float] = {}
        self.seen: dict[int, float] = {}
        self.stop = threading.Event()
        self.deadline = float("inf")
        self.client = tester(ward, "bench-probe")
        self.client.loop_start()

    def publish_loop(self) -> None:
        seq, t0 = 0, time.monotonic()
        base_ms = int(time.time() * 1000)
        while not self.stop.is_set():
            doc = {"v": 1, "dev": PROBE, "seq": seq, "ts": base_ms + seq, "tq": 1, "hr": 70, "spo2": 97, "temp": 36.6,
                   "pi": 2.0, "sqi": 0.9, "probe": "ok", "sim": True}
            self.sent[seq] = time.monotonic()
            self.client.publish(f"wardwatch/v1/{self.ward.ward}/{PROBE}/vitals", json.dumps(doc), qos=1)
            seq += 1
            time.sleep(max(0.0, t0 + seq / self.rate - time.monotonic()))

    def poll_loop(self) -> None:
        influx = self.ward.stack.influx
        while not self.stop.is_set() or len(self.seen) < len(self.sent):
            for row in influx.rows(f"SELECT seq FROM vitals WHERE device='{PROBE}' AND time > now() - 2h"):
                self.seen.setdefault(row["seq"], time.monotonic())
            if self.stop.is_set() and time.monotonic() > self.deadline:
                break
            if self.stop.is_set() and self.deadline == float("inf"):
                self.deadline = time.monotonic() + 5
            time.sleep(0.01)

    def latencies_ms(self) -> list[float]:
        return sorted((self.seen[s] - self.sent[s]) * 1000 for s in self.seen if s in self.sent)


def count_stored(influx, ward: str) -> int:
    rows = influx.rows(f"SELECT count(seq) FROM vitals WHERE ward='{ward}' AND device!='{PROBE}'")
    return rows[0]["count"] if rows else 0


def progress(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def backlog_drains(ward: Ward, n: int) -> tuple[float, float]:
    """Queue ``n`` readings for the stopped gateway and an offline bare paho subscriber,
    then time each draining the same backlog. Returns (gateway rate, paho rate) per second."""
    bare = tester(ward, "bench-paho-drain", clean=True)
    bare.subscribe("wardwatch/v1/+/+/vitals", qos=1)
    bare.loop(1.0)
    bare.disconnect()
    progress("bare paho session subscribed; stopping the gateway")
    ward.gateway.stop()
    progress(f"gateway stopped; queueing {n} readings")

    pub = tester(ward, "bench-backlog", inflight=1000)
    acked = [0]
    room = threading.Condition()

    def on_publish(*_):
        with room:
            acked[0] += 1
            room.notify()

    pub.on_publish = on_publish
    pub.loop_start()
    devices = [f"backlog-{i:03d}" for i in range(100)]
    base_ms = int(time.time() * 1000) - 7_200_000
    for i in range(n):
        dev = devices[i % len(devices)]
        seq = i // len(devices)
        doc = (
            f'{{"v":1,"dev":"{dev}","seq":{seq},"ts":{base_ms + seq},"tq":1,"hr":{60 + i % 50},"spo2":{90 + i % 10},'
            f'"temp":36.{i % 10},"pi":2.5,"sqi":0.9,"probe":"ok","batt":null,"rssi":null,"sim":true}}'
        )
        # Stay within paho's in-flight window: its queue behind the window is scanned on
        # every PUBACK, which turns a 100k-message burst quadratic.
        with room:
            room.wait_for(lambda: i - acked[0] < 900, timeout=60)
        pub.publish(f"wardwatch/v1/backlog/{dev}/vitals", doc, qos=1)
    wait_until(lambda: acked[0] >= n, 300, f"the broker to accept the backlog of {n}", 0.1)
    pub.loop_stop()
    pub.disconnect()
    progress(f"backlog of {n} queued; starting the gateway")

    t0 = time.monotonic()
    ward.gateway.start(wait=False)
    wait_until(lambda: count_stored(ward.stack.influx, "backlog") >= n, 300, "the gateway to drain the backlog", 0.1)
    gateway_rate = n / (time.monotonic() - t0)
    progress(f"gateway drained the backlog at {gateway_rate:.0f}/s; now the bare paho subscriber")

    got = [0]
    done = threading.Event()

    def on_message(client, userdata, msg):
        got[0] += 1
        if got[0] >= n:
            done.set()

    bare = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-paho-drain", protocol=mqtt.MQTTv5)
    bare.username_pw_set(TESTER_USER, ward.stack.password(TESTER_USER))
    bare.on_message = on_message
    t0 = time.monotonic()
    bare.connect("127.0.0.1", ward.stack.mosquitto.port, clean_start=False)
    bare.loop_start()
    done.wait(300)
    paho_rate = got[0] / (time.monotonic() - t0)
    bare.loop_stop()
    return gateway_rate, paho_rate


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=100, help="simulated devices (D)")
    ap.add_argument("--rate", type=float, default=5000, help="total readings/s offered (R)")
    ap.add_argument("--seconds", type=float, default=30, help="how long the devices publish")
    ap.add_argument("--backlog", type=int, default=100_000, help="queued readings for the drain comparison")
    args = ap.parse_args()
    exit_on_sigterm()
    per_device = args.rate / args.devices

    with tempfile.TemporaryDirectory(prefix="wardwatch-bench-") as tmp, Ward(Path(tmp), "bench", args.devices) as ward:
        influx = ward.stack.influx

        # Phase A: the live stream from the simulated devices.
        pid = ward.gateway.proc.pid
        cpu0, t0 = proc_cpu_s(pid), time.monotonic()
        probe = Probe(ward)
        threads = [threading.Thread(target=probe.publish_loop), threading.Thread(target=probe.poll_loop)]
        for t in threads:
            t.start()
        progress(f"{args.devices} devices at {args.rate:.0f} readings/s for {args.seconds:.0f} s")
        sim = ward.start_sim("--rate", f"{per_device}", "--duration", str(args.seconds), "--outbox", "100000")
        sim.wait(timeout=args.seconds + 120)
        publish_end = time.monotonic()
        summary = sim.summary()
        made = {dev: s["seq_next"] for dev, s in summary.items()}
        total_made = sum(made.values())
        wait_until(lambda: count_stored(influx, "bench") >= total_made, 300, "every reading in InfluxDB", interval=0.2)
        stored_at = time.monotonic()
        cpu1, rss_mb = proc_cpu_s(pid), proc_rss_mb(pid)
        probe.stop.set()
        for t in threads:
            t.join()

        lost = duplicates = 0
        for dev, n in made.items():
            counts = Counter(r["seq"] for r in influx.rows(f"SELECT seq FROM vitals WHERE device='{dev}'"))
            lost += sum(1 for s in range(n) if s not in counts)
            duplicates += sum(c - 1 for c in counts.values())

        progress(f"live phase: {total_made} readings, {lost} lost, {duplicates} duplicates; queueing the backlog")
        # Phase B: one backlog, drained by the gateway and by a bare paho subscriber.
        gateway_drain, paho_drain = backlog_drains(ward, args.backlog)

        lat = probe.latencies_ms()
        result = {
            "devices": args.devices,
            "seconds": args.seconds,
            "target_rate": args.rate,
            "offered_rate": round(total_made / (publish_end - t0), 1),
            "stored_rate": round(total_made / (stored_at - t0), 1),
            "readings": total_made,
            "lost": lost,
            "duplicates": duplicates,
            "dropped_by_devices": sum(s["dropped"] for s in summary.values()),
            "p50_store_ms": round(percentile(lat, 50), 1),
            "p99_store_ms": round(percentile(lat, 99), 1),
            "latency_samples": len(lat),
            "gateway_cpu_pct": round(100 * (cpu1 - cpu0) / (stored_at - t0), 1),
            "gateway_rss_mb": round(rss_mb, 1),
            "backlog": args.backlog,
            "gateway_drain_rate": round(gateway_drain, 1),
            "paho_drain_rate": round(paho_drain, 1),
            "gateway_vs_paho_drain": round(gateway_drain / paho_drain, 3),
        }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
