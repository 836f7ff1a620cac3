"""Alarm latency benchmark (``make bench-alarms``). Prints JSON; the last line is the result.

The real Mosquitto, InfluxDB and gateway (alarm engine on) run one ward. Every bed is
registered and has a patient admitted, so the engine evaluates every reading, as on a real
ward. A bench limits file sets the ``hr_high`` condition delay to ``--delay`` (default 2 s)
so that one alarm takes seconds. For each background load in ``--loads`` (default 1,000
then 5,000 readings/s, in one run), ``--devices`` background devices send normal vitals at
QoS 1 from a separate process (at most 900 unacknowledged, like ``throughput.py``'s backlog
publisher), and after ``--warmup`` s, for ``--seconds`` s:

- each of ``--probe-beds`` probe beds cycles: normal readings at 1 Hz; an onset reading
  (hr 140, ``ts`` = t0) and hr 140 every 0.5 s; at wall time t0 + delay the *triggering*
  reading (hr 142, ``ts`` = t0 + delay, the first that completes the delay); hr 143 at 1 Hz
  until the alarm is raised; then hr 80 until it clears (<= 115); a random 0.5-1.5 s gap;
- an MQTT subscriber takes ``wardwatch/v1/<ward>/alarms/events``; a ``raised`` event of
  code ``hr_high`` belongs to the cycle of its bed whose t0 is the event's ``since_ms``.

Alarm latency = receipt of that event minus the moment the triggering reading was published
(``time.time()`` just before its publish: t0 + delay plus the scheduler's overshoot, see
``publish_overshoot_max_ms``), so the configured delay is already subtracted. NEWS2 also
reacts to hr 140; only ``hr_high`` counts.

Figures: ``p50/p99/max_alarm_ms`` pooled over all loads; per load ``<l>`` (``1k``, ``5k``):
``p50/p99/max_alarm_ms_<l>``, ``alarms_measured_<l>``, ``alarms_lost_<l>`` (no ``raised``
within ``--lost-after`` s of the trigger; ``alarms_lost`` sums them), the two parts of each
latency, ``p50/p99_gateway_in_ms_<l>`` (publish -> the gateway's engine: the event's
``at_ms``, ms resolution) and ``p50/p99_gateway_out_ms_<l>`` (``at_ms`` -> received),
``background_rate_<l>`` (readings/s the broker acknowledged to the background publisher
while measuring), ``gateway_rate_<l>`` (readings/s the gateway stored, from /healthz), CPU
while measuring (100 = one core, from /proc) of the ``gateway``, ``broker``, ``influxdb``,
background ``publisher`` and this ``bench`` process, the ``host`` (all cores busy) and
``other`` (host minus those: whatever else ran; the gateway competes with it for CPU).
Checks: ``raised_by_other_reading`` (a raise whose value is not the triggering reading's),
``raised_unexpected`` (an hr_high raise matching no cycle), ``alarms_not_cleared_<l>``,
``other_alarms_raised`` (codes other than hr_high and news2*, as code@bed),
``readings_rejected``. ``--samples FILE`` writes every probe alarm as JSON lines.

Overload: after the fixed loads the background steps up through ``--ramp`` (default 8,000
to 20,000 readings/s, ``--ramp-seconds`` each) until alarms are late (p99 > 100 ms or one
lost) *and* the gateway has raised the ward's ``alarms_delayed`` alarm; then it stops and
the bench waits for that alarm to clear. ``max_rate_p99_le_100ms``: the highest background
rate (measured) of any step with p99 <= 100 ms and none lost; ``overload_rate``: the first
step at which the gateway stored less than 97 % of what the broker took (its backlog grows
from then on); ``overload_to_alarm_s``: from the start of that step to the ``alarms_delayed``
raised event; ``alarms_delayed_cleared``: it cleared once the load was gone.

Run: ``.venv/bin/python bench/alarm_latency.py [--loads 1000,5000] [--seconds 30]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from provisioning.stack.services import OPERATOR_USER, TESTER_USER, exit_on_sigterm, wait_until
from provisioning.stack.ward import Ward

# The bench scripts run as `python bench/<script>.py`, so their folder is on sys.path already.
from loadgen import LoadGen
from throughput import TICK, percentile, proc_cpu_s, progress, tester

WARD = "bench"
CODE = "hr_high"
HR_ONSET, HR_TRIGGER, HR_AFTER, HR_NORMAL = 140, 142, 143, 80  # limit 120, clear 115 (docs/clinical.md)


def reading(dev: str, seq: int, ts: int, hr: int) -> str:
    return (
        f'{{"v":1,"dev":"{dev}","seq":{seq},"ts":{ts},"tq":1,"hr":{hr},"spo2":97,"temp":36.8,'
        f'"pi":2.1,"sqi":0.9,"probe":"ok","sim":true}}'
    )


def label(rate: float) -> str:
    return f"{rate / 1000:g}k" if rate >= 1000 else f"{rate:g}"


# -- background load: bench/loadgen.py (a separate process, so its publishing does not share
# our GIL; the firmware's packet encoder on plain sockets) ---------------------------------


# -- alarm events ---------------------------------------------------------------------------


class Cycle:
    """One probe alarm: onset at t0, triggering reading published at ``t_pub`` (epoch s)."""

    __slots__ = ("load", "bed", "t0", "trigger_ts", "t_pub", "raised", "received", "raised_evt", "cleared")

    def __init__(self, load: str, bed: str, t0: int, trigger_ts: int):
        self.load, self.bed, self.t0, self.trigger_ts = load, bed, t0, trigger_ts
        self.t_pub = 0.0
        self.raised: dict | None = None
        self.received = 0.0
        self.raised_evt = threading.Event()
        self.cleared = threading.Event()

    def in_time(self, lost_after: float) -> bool:
        return self.raised is not None and self.received - self.t_pub <= lost_after


class Events:
    """Subscriber of the ward's alarm event stream; matches hr_high events to probe cycles."""

    def __init__(self, ward: Ward):
        self.lock = threading.Lock()
        self.cycles: dict[tuple[str, int], Cycle] = {}  # (bed, onset ts) -> probe cycle
        self.unexpected: list[dict] = []  # hr_high raised that no cycle of that bed expected
        self.other: Counter = Counter()  # raised events of other codes
        self.counts: Counter = Counter()
        self.delayed: list[tuple[str, float]] = []  # (event, received) of the ward's alarms_delayed
        self.ready = threading.Event()
        self.client = tester(ward, "bench-alarm-events")
        self.client.on_subscribe = lambda *a: self.ready.set()
        self.client.on_message = self._on_message
        self.client.subscribe(f"wardwatch/v1/{WARD}/alarms/events", qos=1)
        self.client.loop_start()
        if not self.ready.wait(10):
            raise TimeoutError("no SUBACK for the alarm event stream")

    def _on_message(self, client, userdata, msg) -> None:
        received = time.time()
        data = json.loads(msg.payload)
        event, code, bed = data.get("event"), data.get("code"), data.get("bed")
        with self.lock:
            self.counts[(code, event)] += 1
            if code == "alarms_delayed":
                self.delayed.append((event, received))
            if code != CODE:
                if event == "raised" and not str(code).startswith("news2"):
                    self.other[f"{code}@{bed}"] += 1
                return
            # Matched by onset: a late event of an earlier cycle is not taken for this one.
            cycle = self.cycles.get((bed, data.get("since_ms")))
            if event == "raised":
                if cycle is None or cycle.raised is not None:
                    self.unexpected.append(data)
                    return
                cycle.raised, cycle.received = data, received
                cycle.raised_evt.set()
            elif event == "cleared" and cycle is not None:
                cycle.cleared.set()

    def start(self, cycle: Cycle) -> None:
        with self.lock:
            self.cycles[(cycle.bed, cycle.t0)] = cycle

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# -- probe beds -----------------------------------------------------------------------------


class Probes:
    """One thread per probe bed; cycles only while ``active`` is set (one load at a time)."""

    def __init__(self, ward: Ward, beds: list[tuple[str, str]], events: Events, delay_s: float, lost_after: float):
        self.ward, self.beds, self.events = ward, beds, events
        self.delay_ms = int(round(delay_s * 1000))
        self.lost_after = lost_after
        self.client = tester(ward, "bench-alarm-probe", inflight=200)
        self.client.loop_start()
        self.active = threading.Event()
        self.load = ""
        self.stop = threading.Event()
        self.cycles: list[Cycle] = []
        self.not_cleared: Counter = Counter()
        self.busy = 0
        self.idle = threading.Condition()
        self.threads = [threading.Thread(target=self._run, args=(dev, bed), daemon=True) for dev, bed in beds]
        self.seq: dict[str, int] = {dev: 0 for dev, _ in beds}

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def _publish(self, dev: str, ts: int, hr: int) -> None:
        self.client.publish(f"wardwatch/v1/{WARD}/{dev}/vitals", reading(dev, self.seq[dev], ts, hr), qos=1)
        self.seq[dev] += 1

    def _sleep_until(self, t: float) -> bool:
        """Sleep until epoch second ``t``; False if we are stopping."""
        while True:
            left = t - time.time()
            if left <= 0:
                return not self.stop.is_set()
            if self.stop.wait(min(left, 0.5)):
                return False

    def _normal(self, dev: str, seconds: float) -> bool:
        """Normal readings at 1 Hz for ``seconds``."""
        end = time.time() + seconds
        while time.time() < end:
            self._publish(dev, int(time.time() * 1000), HR_NORMAL)
            if not self._sleep_until(min(end, time.time() + 1.0)):
                return False
        return not self.stop.is_set()

    def _run(self, dev: str, bed: str) -> None:
        rng = random.Random(dev)
        if not self._normal(dev, rng.uniform(0, 1.5)):
            return
        while not self.stop.is_set():
            if not self.active.is_set():
                if not self._normal(dev, 1.0):
                    return
                continue
            with self.idle:
                if not self.active.is_set():
                    continue
                self.busy += 1
                load = self.load
            try:
                self._cycle(dev, bed, load)
            finally:
                with self.idle:
                    self.busy -= 1
                    self.idle.notify_all()
            if not self._normal(dev, rng.uniform(0.5, 1.5)):
                return

    def _cycle(self, dev: str, bed: str, load: str) -> None:
        t0 = int(time.time() * 1000)
        cycle = Cycle(load, bed, t0, t0 + self.delay_ms)
        self.events.start(cycle)
        self._publish(dev, t0, HR_ONSET)
        step = 500
        for k in range(1, (self.delay_ms - 1) // step + 1):
            if not self._sleep_until((t0 + k * step) / 1000):
                return
            self._publish(dev, t0 + k * step, HR_ONSET)
        if not self._sleep_until(cycle.trigger_ts / 1000):
            return
        cycle.t_pub = time.time()
        self._publish(dev, cycle.trigger_ts, HR_TRIGGER)
        self.cycles.append(cycle)
        # Still abnormal (1 Hz, as a device would) until the raise arrives or counts as lost.
        deadline = cycle.t_pub + self.lost_after
        ts = cycle.trigger_ts
        while not cycle.raised_evt.wait(max(0.0, min(1.0, deadline - time.time()))):
            if time.time() >= deadline or self.stop.is_set():
                break
            ts += 1000
            self._publish(dev, ts, HR_AFTER)
        # Back to normal until the alarm clears (or for lost_after seconds).
        deadline = time.time() + self.lost_after
        while not cycle.cleared.is_set() and time.time() < deadline and not self.stop.is_set():
            self._publish(dev, max(ts + 1, int(time.time() * 1000)), HR_NORMAL)
            cycle.cleared.wait(1.0)
        if cycle.raised is not None and not cycle.cleared.is_set():
            self.not_cleared[load] += 1

    def run_load(self, load: str, seconds: float) -> None:
        """Cycle for ``seconds``, then wait until every cycle begun has finished."""
        with self.idle:
            self.load = load
            self.active.set()
        if self.stop.wait(seconds):
            return
        with self.idle:
            self.active.clear()
            self.idle.wait_for(lambda: self.busy == 0, timeout=2 * self.lost_after + self.delay_ms / 1000 + 10)

    def close(self) -> None:
        self.stop.set()
        self.active.clear()
        for t in self.threads:
            t.join(timeout=5)
        self.client.disconnect()
        self.client.loop_stop()


# -- set-up -------------------------------------------------------------------------------


def admit_all(ward: Ward, beds: list[str], timeout: float = 30) -> None:
    """Admit a patient to every bed through the operator account's command topic."""
    topic = f"wardwatch/v1/{WARD}/cmd/{OPERATOR_USER}"
    replies: dict[str, dict] = {}
    subscribed = threading.Event()
    lock = threading.Lock()

    def on_message(client, userdata, msg):
        data = json.loads(msg.payload)
        with lock:
            replies[data.get("id", "")] = data

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-alarm-operator", protocol=mqtt.MQTTv5)
    c.username_pw_set(OPERATOR_USER, ward.stack.password(OPERATOR_USER))
    c.on_message = on_message
    c.on_subscribe = lambda *a: subscribed.set()
    c.connect("127.0.0.1", ward.stack.mosquitto.port)
    c.loop_start()
    try:
        c.subscribe(topic + "/reply", qos=1)
        if not subscribed.wait(10):
            raise TimeoutError("no SUBACK for the operator's reply topic")

        # The gateway subscribes to the command topics just after it connects: ask until it answers.
        def answered(n=[0]):
            n[0] += 1
            c.publish(topic, json.dumps({"v": 1, "id": f"ping-{n[0]}", "op": "patients", "user": "bench"}), qos=1)
            time.sleep(0.2)
            return any(k.startswith("ping-") for k in replies)

        wait_until(answered, timeout, "the gateway to answer commands", interval=0.3)
        for bed in beds:
            cmd = {"v": 1, "id": f"admit-{bed}", "op": "admit", "user": "bench", "bed": bed, "patient": f"BENCH-{bed}"}
            c.publish(topic, json.dumps(cmd), qos=1)
        wait_until(lambda: all(f"admit-{b}" in replies for b in beds), timeout, f"admit replies for {len(beds)} beds")
        failed = [replies[f"admit-{b}"] for b in beds if not replies[f"admit-{b}"].get("ok")]
        if failed:
            raise RuntimeError(f"admit refused: {failed[0]}")
    finally:
        c.disconnect()
        c.loop_stop()


def host_busy_s() -> float:
    """CPU seconds all cores spent busy (not idle or iowait), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / TICK


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far of each named process, and of the whole host (``host``)."""
    return {"host": host_busy_s(), **{name: proc_cpu_s(pid) for name, pid in pids.items()}}


def gateway_stored(ward: Ward) -> int:
    return int(ward.gateway.health().get("counts", {}).get("stored", 0))


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def stats(values: list[float]) -> tuple[float, float, float]:
    v = sorted(values)
    return round(percentile(v, 50), 1), round(percentile(v, 99), 1), round(v[-1], 1) if v else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loads", default="1000,5000", help="background readings/s, one measurement per load")
    ap.add_argument("--ramp", default="8000,11000,14000,17000,20000",
                    help="then higher loads, until alarms are late (p99 > 100 ms) and the gateway said so")
    ap.add_argument("--ramp-seconds", type=float, default=15, help="seconds of alarm cycles per ramp step")
    ap.add_argument("--devices", type=int, default=100, help="background devices (each publishes load/devices Hz)")
    ap.add_argument("--probe-beds", type=int, default=40, help="beds that cycle through hr_high alarms")
    ap.add_argument("--seconds", type=float, default=30, help="seconds of alarm cycles per load")
    ap.add_argument("--warmup", type=float, default=5, help="seconds at each load before measuring")
    ap.add_argument("--delay", type=float, default=2, help="hr_high condition delay (s) in the bench limits file")
    ap.add_argument("--lost-after", type=float, default=10, help="an alarm with no raised event this long after its trigger is lost")
    ap.add_argument("--samples", type=Path, help="also write every probe alarm (times in epoch ms) to this JSON-lines file")
    args = ap.parse_args()
    exit_on_sigterm()
    started = time.monotonic()
    loads = [float(x) for x in args.loads.split(",") if x.strip()]
    ramp = [float(x) for x in args.ramp.split(",") if x.strip()]
    if not loads or len({label(r) for r in loads + ramp}) != len(loads + ramp) or min(loads + ramp) <= 0:
        ap.error("--loads, --ramp: distinct positive rates, e.g. 1000,5000")
    if args.devices < 1 or args.probe_beds < 1 or args.delay <= 0:
        ap.error("--devices and --probe-beds must be >= 1, --delay > 0")
    n_beds = args.devices + args.probe_beds

    with tempfile.TemporaryDirectory(prefix="wardwatch-bench-alarms-") as tmp:
        limits = Path(tmp) / "limits.toml"
        limits.write_text(f"[default.{CODE}]\ndelay_s = {args.delay}\n")
        # Ward registers sim-bench-NN as bed NN for every NN; we publish as those devices.
        with Ward(Path(tmp) / "ward", WARD, n_beds, gateway_settings={"limits_file": str(limits)}) as ward:
            devices = [f"sim-{WARD}-{n:02d}" for n in range(1, n_beds + 1)]
            beds = [f"{n:02d}" for n in range(1, n_beds + 1)]
            progress(f"stack and gateway up; admitting {n_beds} patients")
            admit_all(ward, beds)
            events = Events(ward)
            background = LoadGen(ward.stack.mosquitto.port, TESTER_USER, ward.stack.password(TESTER_USER),
                                 {d: WARD for d in devices[: args.devices]}, Path(tmp) / "background.log",
                                 connections=2, client_prefix="bench-alarm-background")
            probes = Probes(ward, list(zip(devices[args.devices :], beds[args.devices :])), events, args.delay,
                            args.lost_after)
            pids = {"gateway": ward.gateway.proc.pid, "broker": ward.stack.mosquitto.proc.pid,
                    "influxdb": ward.stack.influx.proc.pid, "publisher": background.proc.pid, "bench": os.getpid()}
            result: dict = {}
            try:
                probes.start()
                per_load: dict[str, dict] = {}
                steps = [(rate, args.seconds, False) for rate in loads] + [(rate, args.ramp_seconds, True) for rate in ramp]
                for rate, seconds, ramping in steps:
                    name = label(rate)
                    background.set_rate(rate)
                    started_at = time.time()
                    progress(f"background {rate:.0f} readings/s ({args.devices} devices at {rate / args.devices:g} Hz); "
                             f"warming up {args.warmup:g} s")
                    time.sleep(args.warmup)
                    b0, s0, c0, t0 = background.snapshot(), gateway_stored(ward), cpu_seconds(pids), time.monotonic()
                    progress(f"{args.probe_beds} probe beds cycling hr_high (delay {args.delay:g} s) for {seconds:g} s")
                    probes.run_load(name, seconds)
                    b1, s1, c1, t1 = background.snapshot(), gateway_stored(ward), cpu_seconds(pids), time.monotonic()
                    per_load[name] = {
                        "rate": rate,
                        "started_at": started_at,
                        "ramp": ramping,
                        "background_rate": (b1["acked"] - b0["acked"]) / (b1["t"] - b0["t"]),
                        "gateway_rate": (s1 - s0) / (t1 - t0),
                        "cpu_pct": {k: 100 * (c1[k] - c0[k]) / (t1 - t0) for k in c0},
                    }
                    cpu = per_load[name]["cpu_pct"]
                    # Whatever else ran on this host meanwhile (it competes with the gateway).
                    cpu["other"] = max(0.0, cpu["host"] - sum(v for k, v in cpu.items() if k != "host"))
                    if cpu["other"] > 25:
                        progress(f"warning: other processes took {cpu['other']:.0f} % CPU while measuring {name}; "
                                 "the figures include that contention")
                    done = [c for c in probes.cycles if c.load == name]
                    lost = sum(1 for c in done if not c.in_time(args.lost_after))
                    progress(f"{name}: {len(done)} alarms, {lost} lost; background "
                             f"{per_load[name]['background_rate']:.0f}/s, gateway {per_load[name]['gateway_rate']:.0f}/s "
                             f"at {per_load[name]['cpu_pct']['gateway']:.0f} % CPU; host busy "
                             f"{per_load[name]['cpu_pct']['host']:.0f} % of {os.cpu_count()}00 %")
                    late = stats([(c.received - c.t_pub) * 1000 for c in done if c.in_time(args.lost_after)])[1]
                    with events.lock:
                        announced = any(e == "raised" for e, _ in events.delayed)
                    if ramping and (lost or not late <= 100) and announced:
                        progress(f"{name}: alarms late (p99 {late:.0f} ms) and the gateway raised alarms_delayed; "
                                 "ramp ends")
                        break
                background.set_rate(0)
                with events.lock:
                    delayed_raised = any(e == "raised" for e, _ in events.delayed)
                cleared = None  # never raised: nothing to clear
                if delayed_raised:
                    progress("background stopped; waiting for alarms_delayed to clear")
                    cleared = wait_for(lambda: any(e == "cleared" for e, _ in events.delayed), 120)
            finally:
                probes.close()
                background.close()
                events.close()
            health = ward.gateway.health()

            all_lat: list[float] = []
            overshoot: list[float] = []
            other_reading = 0
            result = {
                "condition_delay_s": args.delay,
                "host_cores": os.cpu_count(),
                "background_devices": args.devices,
                "probe_beds": args.probe_beds,
                "seconds_per_load": args.seconds,
            }
            per: dict = {}
            for name, figures in per_load.items():
                done = [c for c in probes.cycles if c.load == name]
                got = [c for c in done if c.in_time(args.lost_after)]
                lat = [(c.received - c.t_pub) * 1000 for c in got]
                g_in = [c.raised["at_ms"] - c.t_pub * 1000 for c in got]
                g_out = [c.received * 1000 - c.raised["at_ms"] for c in got]
                overshoot += [c.t_pub * 1000 - c.trigger_ts for c in done]
                other_reading += sum(1 for c in done if c.raised is not None and c.raised.get("value") != HR_TRIGGER)
                all_lat += lat
                p50, p99, mx = stats(lat)
                per.update({
                    f"p50_alarm_ms_{name}": p50,
                    f"p99_alarm_ms_{name}": p99,
                    f"max_alarm_ms_{name}": mx,
                    f"alarms_measured_{name}": len(got),
                    f"alarms_lost_{name}": len(done) - len(got),
                    f"background_target_{name}": figures["rate"],
                    f"background_rate_{name}": round(figures["background_rate"], 1),
                    f"gateway_rate_{name}": round(figures["gateway_rate"], 1),
                    **{f"{k}_cpu_pct_{name}": round(v, 1) for k, v in figures["cpu_pct"].items()},
                    f"p50_gateway_in_ms_{name}": stats(g_in)[0],
                    f"p99_gateway_in_ms_{name}": stats(g_in)[1],
                    f"p50_gateway_out_ms_{name}": stats(g_out)[0],
                    f"p99_gateway_out_ms_{name}": stats(g_out)[1],
                    f"alarms_not_cleared_{name}": probes.not_cleared[name],
                })
            if args.samples:
                with open(args.samples, "w") as f:
                    for c in probes.cycles:
                        f.write(json.dumps({
                            "load": c.load, "bed": c.bed, "t0": c.t0, "trigger_ts": c.trigger_ts,
                            "published_ms": round(c.t_pub * 1000, 3),
                            "gateway_ms": c.raised["at_ms"] if c.raised else None,
                            "received_ms": round(c.received * 1000, 3) if c.raised else None,
                            "value": c.raised.get("value") if c.raised else None,
                        }) + "\n")
            # Overload: the first step at which the gateway stored less than the broker took
            # (the backlog grows from then on); how long until the gateway said so.
            ok_rates = [figures["background_rate"] for name, figures in per_load.items()
                        if per[f"alarms_lost_{name}"] == 0 and per[f"p99_alarm_ms_{name}"] <= 100]
            overloaded = [f for f in per_load.values() if f["gateway_rate"] < 0.97 * f["background_rate"]]
            raised_at = [t for e, t in events.delayed if e == "raised"]
            onset = overloaded[0]["started_at"] if overloaded else None
            after = [t - onset for t in raised_at if onset is not None and t >= onset]
            result.update({
                "max_rate_p99_le_100ms": round(max(ok_rates), 1) if ok_rates else None,
                "overload_rate": overloaded[0]["rate"] if overloaded else None,
                "overload_to_alarm_s": round(after[0], 1) if after else None,
                "alarms_delayed_raised": len(raised_at),
                "alarms_delayed_cleared": cleared,
            })
            p50, p99, mx = stats(all_lat)
            result.update({
                "p50_alarm_ms": p50,
                "p99_alarm_ms": p99,
                "max_alarm_ms": mx,
                "alarms_measured": len(all_lat),
                "alarms_lost": sum(1 for c in probes.cycles if not c.in_time(args.lost_after)),
                **per,
                "raised_by_other_reading": other_reading,
                "raised_unexpected": len(events.unexpected),
                "other_alarms_raised": dict(events.other),
                "publish_overshoot_max_ms": round(max(overshoot), 1) if overshoot else None,
                "readings_rejected": sum(health.get("rejected", {}).values()),
                "run_seconds": round(time.monotonic() - started, 1),
            })
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
