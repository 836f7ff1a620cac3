"""Gateway throughput benchmark (``make bench``). Prints JSON; the last line is the result.

The real Mosquitto, InfluxDB and gateway run on this host. The load is mostly the lean
publisher (``loadgen.py``: the firmware's packet encoder on plain sockets, ``--lean``
devices over 8 connections, QoS 1), plus ``--sim`` devices of the real firmware on the host
simulator (``wardwatch sim``, ``--sim-rate`` Hz each) and a paho probe device, so the real
firmware stays in the path. Every device is registered to a bed; no patient is admitted
(the alarm engine's cost with admitted beds is in ``alarm_latency.py``). Two wards, ``ga``
and ``gb``; one gateway owns both, or two gateway processes own one each (as the template
unit ``wardwatch-gateway@.service`` runs ward groups). Phases, in one run:

1. ``cpu``: one gateway, ``--rate`` readings/s (default 5,000) for ``--seconds`` (30):
   ``gateway_cpu_us_per_reading`` (the gateway's user+sys CPU from /proc over the readings
   it stored in that time, from /healthz; robust to other load on the host), CPU (100 = one
   core) of the gateway, ``publisher`` (the lean publisher plus the simulator), ``broker``,
   ``influxdb`` and the ``host``; ``lost`` / ``duplicates`` of this phase per device
   (checked in InfluxDB: every seq the devices made); ``p50/p99_store_ms``: publish ->
   visible in InfluxDB, from the probe publishing 20 readings/s and a poller querying
   every 10 ms (so each figure carries up to 10 ms of polling resolution).
2. ``lossless_rate_1``: one gateway, steps of ``--steps`` readings/s (``--step-seconds``
   each); a step passes when the publisher achieved >= 97 % of it and every reading
   published in the step is in InfluxDB within ``--deadline`` s of its end. The figure is
   the highest rate achieved in a passing step, up to the first failing one;
   ``lossless_limit_1`` says what failed (stored late: the gateway; publisher below 97 %:
   the host, the broker or the load generator) or that every step passed.
3. ``gateway_drain_rate`` and ``paho_drain_rate``: one backlog of ``--backlog`` readings is
   queued in the broker for the stopped gateway and for an offline bare paho subscriber
   (auto-ack, no work per message); each then drains it, timed. Their ratio is the
   gateway's capacity as a share of what paho alone can take on this machine.
4. ``lossless_rate_2``: as 2, with two gateway processes (one per ward, own client id,
   state directory and health port).

``--phases`` picks some (e.g. ``cpu``); ``--profile DIR`` records the gateway in phase 1
with py-spy (``flame.svg`` and ``raw.txt``, for ``profiles/topframes.py``). Options: ``--help``.
About 6 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
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

from provisioning.stack.gateway_proc import GatewayProcess, write_registry
from provisioning.stack.services import GATEWAY_USER, TESTER_USER, Stack, exit_on_sigterm, wait_until
from provisioning.stack.ward import SimProcess, sim_device_ids, write_credentials

# The bench scripts run as `python bench/<script>.py`, so their folder is on sys.path already.
from loadgen import LoadGen

PROBE = "bench-probe"
WARDS = ("ga", "gb")
TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def host_busy_s() -> float:
    """CPU seconds all cores spent busy (not idle or iowait), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / TICK


def tester(stack, client_id: str, clean: bool = True, inflight: int = 20) -> mqtt.Client:
    """A paho client as the stack's tester account; ``stack`` is a Stack or a Ward."""
    stack = getattr(stack, "stack", stack)
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(inflight)
    c.max_queued_messages_set(0)
    c.username_pw_set(TESTER_USER, stack.password(TESTER_USER))
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    c.connect("127.0.0.1", stack.mosquitto.port, clean_start=clean, properties=props)
    return c


def progress(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


class Probe:
    """Publishes ``rate`` readings/s as device PROBE and times each until InfluxDB has it."""

    def __init__(self, stack: Stack, ward: str, rate: float = 20.0):
        self.stack, self.ward = stack, ward
        self.rate = rate
        self.sent: dict[int, float] = {}
        self.seen: dict[int, float] = {}
        self.stop = threading.Event()
        self.deadline = float("inf")
        self.seq0 = int(time.time())  # a fresh range per probe run
        self.client = tester(stack, "bench-probe")
        self.client.loop_start()
        self.threads = [threading.Thread(target=self.publish_loop), threading.Thread(target=self.poll_loop)]
        for t in self.threads:
            t.start()

    def publish_loop(self) -> None:
        seq, t0 = 0, time.monotonic()
        while not self.stop.is_set():
            s = self.seq0 + seq
            doc = {"v": 1, "dev": PROBE, "seq": s, "ts": int(time.time() * 1000), "tq": 1, "hr": 70, "spo2": 97,
                   "temp": 36.6, "pi": 2.0, "sqi": 0.9, "probe": "ok", "sim": True}
            self.sent[s] = time.monotonic()
            self.client.publish(f"wardwatch/v1/{self.ward}/{PROBE}/vitals", json.dumps(doc), qos=1)
            seq += 1
            time.sleep(max(0.0, t0 + seq / self.rate - time.monotonic()))

    def poll_loop(self) -> None:
        while not self.stop.is_set() or len(self.seen) < len(self.sent):
            for row in self.stack.influx.rows(f"SELECT seq FROM vitals WHERE device='{PROBE}' AND seq >= {self.seq0}"):
                self.seen.setdefault(row["seq"], time.monotonic())
            if self.stop.is_set() and time.monotonic() > self.deadline:
                break
            if self.stop.is_set() and self.deadline == float("inf"):
                self.deadline = time.monotonic() + 5
            time.sleep(0.01)

    def close(self) -> list[float]:
        """Stop; the publish -> stored latencies in ms, sorted."""
        self.stop.set()
        for t in self.threads:
            t.join()
        self.client.disconnect()
        self.client.loop_stop()
        return sorted((self.seen[s] - self.sent[s]) * 1000 for s in self.seen if s in self.sent)


class Bench:
    """The stack, the devices and their registry, and the gateways of one run."""

    def __init__(self, tmp: Path, args):
        self.tmp, self.args = tmp, args
        self.lean = {f"load-{WARDS[i % 2]}-{i:03d}": WARDS[i % 2] for i in range(args.lean)}
        self.sim = sim_device_ids(WARDS[0], args.sim)
        self.backlog_devices = [f"backlog-{i:03d}" for i in range(100)]
        creds = write_credentials(tmp / "devices.credentials", self.sim)
        self.registry = write_registry(tmp / "devices.toml", WARDS[0], args.sim)
        with open(self.registry, "a") as f:
            for n, (dev, ward) in enumerate(sorted(self.lean.items())):
                f.write(f'[devices.{dev}]\nward = "{ward}"\nbed = "L{n:03d}"\n\n')
            for n, dev in enumerate(self.backlog_devices):
                f.write(f'[devices.{dev}]\nward = "gc"\nbed = "B{n:03d}"\n\n')
        self.stack = Stack(tmp / "stack", users=creds)
        self.gateways: list[GatewayProcess] = []

    def start_gateways(self, groups: list[list[str]], name: str) -> list[GatewayProcess]:
        self.gateways = [
            GatewayProcess(self.stack, self.tmp / f"gw-{name}-{k}", self.registry, wards=wards, instance=f"{name}{k}",
                           client_id=f"bench-gw-{name}{k}").start()
            for k, wards in enumerate(groups)
        ]
        return self.gateways

    def stop_gateways(self, forget_sessions: bool = True) -> None:
        for gw in self.gateways:
            gw.stop()
            if forget_sessions:
                # The broker would keep queueing this ward group for a gateway that is gone.
                c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-gw-{gw.settings['instance']}",
                                protocol=mqtt.MQTTv5)
                c.username_pw_set(GATEWAY_USER, self.stack.password(GATEWAY_USER))
                c.connect("127.0.0.1", self.stack.mosquitto.port, clean_start=True)
                c.loop(1.0)
                c.disconnect()
        self.gateways = []

    def loadgen(self, devices: dict[str, str], name: str) -> LoadGen:
        return LoadGen(self.stack.mosquitto.port, TESTER_USER, self.stack.password(TESTER_USER), devices,
                       self.tmp / f"{name}.log", client_prefix=f"bench-{name}")

    def count(self, where: str) -> int:
        rows = self.stack.influx.rows(f"SELECT count(seq) FROM vitals WHERE {where}")
        return rows[0]["count"] if rows else 0

    def pids(self) -> dict[str, int]:
        out = {f"gateway{k}": gw.proc.pid for k, gw in enumerate(self.gateways)}
        return {**out, "broker": self.stack.mosquitto.proc.pid, "influxdb": self.stack.influx.proc.pid}

    def stored(self) -> int:
        return sum(int(gw.health().get("counts", {}).get("stored", 0)) for gw in self.gateways)


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    return {"host": host_busy_s(), **{name: proc_cpu_s(pid) for name, pid in pids.items()}}


def phase_cpu(b: Bench, out: dict) -> None:
    args = b.args
    b.start_gateways([list(WARDS) + ["gc"]], "one")
    gw = b.gateways[0]
    load = b.loadgen(b.lean, "load-cpu")
    sim_rate = args.sim_rate
    lean_rate = args.rate - args.sim * sim_rate - 20
    probe = Probe(b.stack, WARDS[0])
    seconds = args.seconds
    sim = SimProcess(b.stack, b.tmp, WARDS[0], args.sim, b.tmp / "devices.credentials", "--rate", f"{sim_rate}",
                     "--duration", str(seconds + 10), "--outbox", "100000").start()
    t_start = time.time()
    load.set_rate(lean_rate)
    progress(f"phase cpu: {args.rate:.0f} readings/s ({len(b.lean)} lean devices, {args.sim} simulated at {sim_rate:g} Hz, "
             f"probe 20/s) for {seconds:.0f} s, measuring after 5 s")
    time.sleep(5)
    pids = {**b.pids(), "loadgen": load.proc.pid, "sim": sim.proc.pid}
    c0, s0, l0, m0 = cpu_seconds(pids), b.stored(), load.snapshot(), time.monotonic()
    spy = None
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
        spy = subprocess.Popen(
            [shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"), "record", "--pid",
             str(gw.proc.pid), "--rate", "200", "--duration", str(int(seconds - 5)), "--nonblocking",
             "-o", str(args.profile / "flame.svg")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        spy_raw = subprocess.Popen(
            [shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"), "record", "--pid",
             str(gw.proc.pid), "--rate", "200", "--duration", str(int(seconds - 5)), "--nonblocking",
             "--format", "raw", "-o", str(args.profile / "raw.txt")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(seconds - 5)
    c1, s1, l1, m1 = cpu_seconds(pids), b.stored(), load.snapshot(), time.monotonic()
    load.set_rate(0)
    if spy is not None:
        spy.wait(60)
        spy_raw.wait(60)
    sim.wait(timeout=60)
    final = load.finish()
    lat = probe.close()
    stored = s1 - s0
    cpu = {k: 100 * (c1[k] - c0[k]) / (m1 - m0) for k in c0}
    made = {**final["next"], **{d: s["seq_next"] for d, s in sim.summary().items()}}
    since = f"time >= {int(t_start * 1e9) - 10**9}"
    wait_until(lambda: b.count(f"{since} AND device != '{PROBE}'") >= sum(made.values()), 120,
               "the cpu phase's readings in InfluxDB", 0.5)
    lost = duplicates = 0
    rows = b.stack.influx.rows(f"SELECT count(seq) FROM vitals WHERE {since} GROUP BY device")
    stored_per_device = Counter({row["device"]: row["count"] for row in rows})
    for dev, n in made.items():
        lost += max(0, n - stored_per_device.get(dev, 0))
    health = gw.health()
    duplicates = int(health.get("counts", {}).get("duplicate", 0))
    out.update({
        "rate": args.rate,
        "seconds": seconds,
        "achieved_rate": round((l1["acked"] - l0["acked"]) / (l1["t"] - l0["t"]) + args.sim * sim_rate + 20, 1),
        "gateway_stored_rate": round(stored / (m1 - m0), 1),
        "gateway_cpu_us_per_reading": round(1e6 * (c1["gateway0"] - c0["gateway0"]) / max(1, stored), 1),
        "gateway_cpu_pct": round(cpu["gateway0"], 1),
        "publisher_cpu_pct": round(cpu["loadgen"] + cpu["sim"], 1),
        "loadgen_cpu_pct": round(cpu["loadgen"], 1),
        "sim_cpu_pct": round(cpu["sim"], 1),
        "broker_cpu_pct": round(cpu["broker"], 1),
        "influxdb_cpu_pct": round(cpu["influxdb"], 1),
        "host_cpu_pct": round(cpu["host"], 1),
        "readings": sum(made.values()),
        "lost": lost,
        "duplicates_seen_by_gateway": duplicates,
        "p50_store_ms": round(percentile(lat, 50), 1),
        "p99_store_ms": round(percentile(lat, 99), 1),
        "latency_samples": len(lat),
        "gateway_rss_mb": round(proc_rss_mb(gw.proc.pid), 1),
    })
    progress(f"phase cpu: {json.dumps(out)}")


def lossless(b: Bench, name: str, groups: list[list[str]], out: dict) -> None:
    """Step the offered rate up; the highest rate stored completely within the deadline."""
    args = b.args
    b.start_gateways(groups, name)
    load = b.loadgen(b.lean, f"load-{name}")
    best = 0.0
    steps = []
    try:
        for rate in args.steps:
            s0 = load.snapshot()
            t0 = time.time() - 0.05  # every reading of this step has ts >= t0
            pids = {**b.pids(), "publisher": load.proc.pid}
            c0, m0, g0 = cpu_seconds(pids), time.monotonic(), b.stored()
            load.set_rate(rate)
            time.sleep(args.step_seconds)
            load.set_rate(0)
            c1, m1, g1 = cpu_seconds(pids), time.monotonic(), b.stored()
            wait_until(lambda: (s := load.snapshot())["acked"] >= s["sent"], 30, "the broker to acknowledge the step")
            s1 = load.snapshot()
            n = s1["sent"] - s0["sent"]
            achieved = (s1["acked"] - s0["acked"]) / args.step_seconds
            where = f"time >= {int(t0 * 1e9)} AND device =~ /^load-/"
            end = time.monotonic()
            deadline = end + args.deadline
            got = 0
            while time.monotonic() < deadline:
                got = b.count(where)
                if got >= n:
                    break
                time.sleep(0.25)
            in_time = got >= n
            late_s = round(time.monotonic() - end, 2)
            if not in_time:
                wait_until(lambda: b.count(where) >= n, 300, "the step's backlog to drain", 1.0)
            cpu = {k: round(100 * (c1[k] - c0[k]) / (m1 - m0), 1) for k in c0}
            gw_us = sum(c1[k] - c0[k] for k in c0 if k.startswith("gateway")) * 1e6 / max(1, g1 - g0)
            ok = in_time and achieved >= 0.97 * rate
            # A step fails on the gateway's side (stored late) or on the publisher's (it could
            # not offer the rate: the host is full, and the figure says so).
            limit = "" if ok else ("stored late" if not in_time else "publisher below 97 %")
            steps.append({"rate": rate, "achieved": round(achieved, 1), "stored_within_deadline": in_time,
                          "stored_after_s": late_s, "gateway_cpu_us_per_reading": round(gw_us, 1), "cpu_pct": cpu,
                          **({"failed": limit} if limit else {})})
            progress(f"{name} step {rate:.0f}/s: achieved {achieved:.0f}/s, all stored {late_s} s after the end "
                     f"({'ok' if ok else 'FAILED'}); cpu {cpu}")
            if not ok:
                out[f"lossless_limit_{len(groups)}"] = f"{limit} at {rate:.0f}/s"
                break
            best = achieved
        else:
            out[f"lossless_limit_{len(groups)}"] = "none found: every step passed"
    finally:
        load.finish()
        b.stop_gateways()
    out[f"lossless_rate_{len(groups)}"] = round(best, 1)
    out[f"steps_{len(groups)}"] = steps


def phase_drain(b: Bench, out: dict) -> None:
    """Queue a backlog for the stopped gateway and an offline bare paho subscriber, then time
    each draining the same backlog."""
    n = b.args.backlog
    b.start_gateways([list(WARDS) + ["gc"]], "one")
    bare = tester(b.stack, "bench-paho-drain", clean=True)
    bare.subscribe("wardwatch/v1/gc/+/vitals", qos=1)
    bare.loop(1.0)
    bare.disconnect()
    gw = b.gateways[0]
    gw.stop()
    progress(f"gateway stopped; queueing {n} readings")
    load = b.loadgen({d: "gc" for d in b.backlog_devices}, "load-backlog")
    load.set_rate(20000)
    wait_until(lambda: load.snapshot()["acked"] >= n, 300, f"the broker to accept the backlog of {n}", 0.1)
    load.set_rate(0)
    total = load.finish()["acked"]
    progress(f"backlog of {total} queued; starting the gateway")
    where = "ward='gc'"
    t0 = time.monotonic()
    gw.start(wait=False)
    wait_until(lambda: b.count(where) >= total, 300, "the gateway to drain the backlog", 0.1)
    gateway_rate = total / (time.monotonic() - t0)
    progress(f"gateway drained the backlog at {gateway_rate:.0f}/s; now the bare paho subscriber")
    got = [0]
    done = threading.Event()

    def on_message(client, userdata, msg):
        got[0] += 1
        if got[0] >= total:
            done.set()

    bare = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-paho-drain", protocol=mqtt.MQTTv5)
    bare.username_pw_set(TESTER_USER, b.stack.password(TESTER_USER))
    bare.on_message = on_message
    t0 = time.monotonic()
    bare.connect("127.0.0.1", b.stack.mosquitto.port, clean_start=False)
    bare.loop_start()
    done.wait(300)
    paho_rate = got[0] / (time.monotonic() - t0)
    bare.loop_stop()
    b.stop_gateways()
    out.update({"backlog": total, "gateway_drain_rate": round(gateway_rate, 1), "paho_drain_rate": round(paho_rate, 1),
                "gateway_vs_paho_drain": round(gateway_rate / paho_rate, 3)})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--phases", default="cpu,lossless1,drain,lossless2", help="which phases, in this order")
    ap.add_argument("--lean", type=int, default=100, help="lean publisher devices (half per ward)")
    ap.add_argument("--sim", type=int, default=10, help="simulated firmware devices (ward ga)")
    ap.add_argument("--sim-rate", type=float, default=5, help="readings/s of each simulated device")
    ap.add_argument("--rate", type=float, default=5000, help="total readings/s offered in phase cpu")
    ap.add_argument("--seconds", type=float, default=30, help="duration of phase cpu")
    ap.add_argument("--steps", default="4000,8000,12000,16000,20000,24000,28000,32000,36000",
                    help="offered rates of the lossless search, up to the first failing step")
    ap.add_argument("--step-seconds", type=float, default=20)
    ap.add_argument("--deadline", type=float, default=5, help="s after a step within which all must be stored")
    ap.add_argument("--backlog", type=int, default=100_000, help="queued readings for the drain comparison")
    ap.add_argument("--profile", type=Path, help="record the gateway with py-spy in phase cpu into this folder")
    args = ap.parse_args()
    args.steps = [float(x) for x in args.steps.split(",")]
    phases = args.phases.split(",")
    exit_on_sigterm()
    started = time.monotonic()
    out: dict = {"host_cores": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="wardwatch-bench-") as tmp:
        b = Bench(Path(tmp), args)
        with b.stack:
            try:
                for phase in phases:
                    if phase == "cpu":
                        phase_cpu(b, out)
                    elif phase == "lossless1":
                        lossless(b, "one", [list(WARDS)], out)
                    elif phase == "lossless2":
                        lossless(b, "two", [[w] for w in WARDS], out)
                    elif phase == "drain":
                        phase_drain(b, out)
                    else:
                        ap.error(f"unknown phase {phase!r}")
                    b.stop_gateways()
            finally:
                b.stop_gateways(forget_sessions=False)
    out["run_seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
