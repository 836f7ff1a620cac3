"""Readings sent, stored, lost and duplicated under the faults a ward has: ``make bench-faults``.

Progress on stderr; the last stdout line is one JSON object with, per fault, ``sent`` (the
broker acknowledged them, or for the ward the devices made them), ``stored`` (distinct
readings in InfluxDB), ``lost`` (sent - stored), ``duplicated`` (points beyond one per
reading) and ``healthz`` (the gateway's status once the fault is over):

- ``full_disk``: the gateway's state_dir on a 512 KiB tmpfs (root only), InfluxDB down,
  6,000 readings at 1,000/s (more than the disk holds), then InfluxDB back.
- ``small_spool``: a 400 kB spool, 300 readings/s for 60 s, InfluxDB down 45 s of it.
- ``broker_kill``: 30 simulated beds at 10 Hz for 30 s; Mosquitto, saving only hourly,
  SIGKILLed 10 s in and restarted 3 s later (it forgets what it acknowledged and the
  gateway's session).

It uses only the local stack's long-standing interfaces and edits the gateway's config file
itself, so the same script measures an older checkout for a before/after comparison.
Run: ``.venv/bin/python bench/faults.py [--only full_disk,small_spool,broker_kill]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from provisioning.stack.gateway_proc import GatewayProcess
from provisioning.stack.services import TESTER_USER, Stack, exit_on_sigterm, wait_until
from provisioning.stack.ward import Ward

DEV = "dev-fault"


def progress(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def set_config(gw: GatewayProcess, state_dir: str | None = None, spool_max_bytes: int | None = None) -> None:
    text = gw.config.read_text()
    if state_dir is not None:
        text = "\n".join(f'state_dir = "{state_dir}"' if line.startswith("state_dir") else line
                         for line in text.splitlines()) + "\n"
    if spool_max_bytes is not None and "[spool]" not in text:
        text += f"\n[spool]\nmax_bytes = {spool_max_bytes}\n"
    gw.config.write_text(text)


class Feed:
    """One device's readings at QoS 1 from a paho client; ``acked`` counts broker PUBACKs."""

    def __init__(self, stack: Stack):
        self.acked = 0
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-faults")
        self.client.username_pw_set(TESTER_USER, stack.password(TESTER_USER))
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.on_publish = lambda *a: setattr(self, "acked", self.acked + 1)
        self.client.connect("127.0.0.1", stack.mosquitto.port)
        self.client.loop_start()
        self.t0_ms = int(time.time() * 1000) - 3_600_000

    def run(self, count: int, rate: float) -> None:
        t0 = time.monotonic()
        for seq in range(count):
            doc = {"v": 1, "dev": DEV, "seq": seq, "ts": self.t0_ms + seq, "tq": 1, "hr": 70, "spo2": 97, "temp": 36.6,
                   "pi": 2.0, "sqi": 0.9, "probe": "ok", "sim": True}
            self.client.publish(f"wardwatch/v1/w1/{DEV}/vitals", json.dumps(doc).encode(), qos=1)
            delay = t0 + (seq + 1) / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def stored(stack: Stack, where: str) -> tuple[int, int]:
    """(points, distinct seqs per device summed) in vitals ``where``."""
    rows = stack.influx.rows(f"SELECT seq, device FROM vitals WHERE {where}")
    return len(rows), len({(r["device"], r["seq"]) for r in rows})


def settle(stack: Stack, where: str, target: int, timeout: float) -> tuple[int, int]:
    """Wait until ``target`` readings are stored, or nothing new arrived for 15 s."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        points, distinct = stored(stack, where)
        if distinct >= target:
            return points, distinct
        if distinct != last:
            last, since = distinct, time.monotonic()
        elif time.monotonic() - since > 15:
            break
        time.sleep(1)
    return stored(stack, where)


def figures(sent: int, points: int, distinct: int, health: dict) -> dict:
    return {"sent": sent, "stored": distinct, "lost": sent - distinct, "duplicated": points - distinct,
            "healthz": health.get("status", "unreachable")}


def full_disk(tmp: Path) -> dict:
    disk = tmp / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(disk)], check=True)
    try:
        with Stack(tmp / "stack") as stack:
            gw = GatewayProcess(stack, tmp / "gw")
            set_config(gw, state_dir=str(disk / "state"))
            with gw:
                stack.influx.stop()
                feed = Feed(stack)
                feed.run(6000, 1000)
                wait_until(lambda: feed.acked >= 6000, 30, "the broker to take every reading")
                time.sleep(5)
                stack.influx.start()
                points, distinct = settle(stack, f"device='{DEV}'", 6000, 90)
                health = gw.health()
                feed.close()
                return figures(feed.acked, points, distinct, health)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def small_spool(tmp: Path) -> dict:
    with Stack(tmp / "stack") as stack:
        gw = GatewayProcess(stack, tmp / "gw")
        set_config(gw, spool_max_bytes=400_000)
        with gw:
            feed = Feed(stack)
            feeder = threading.Thread(target=feed.run, args=(300 * 60, 300))
            feeder.start()
            time.sleep(5)
            stack.influx.stop()
            time.sleep(45)
            stack.influx.start()
            feeder.join()
            wait_until(lambda: feed.acked >= 300 * 60, 60, "the broker to take every reading")
            points, distinct = settle(stack, f"device='{DEV}'", 300 * 60, 120)
            health = gw.health()
            feed.close()
            return figures(feed.acked, points, distinct, health)


def broker_kill(tmp: Path) -> dict:
    ward = Ward(tmp / "ward", "kill", beds=30)
    ward.stack.mosquitto.autosave = ("autosave_interval 3600",)  # ignored by an older stack
    with ward:
        sim = ward.start_sim("--duration", "30", "--rate", "10", "--flush-timeout", "40")
        ward.wait_for_beds()
        time.sleep(8)
        ward.stack.mosquitto.stop(kill=True)
        time.sleep(3)
        ward.stack.mosquitto.start()
        sim.wait(timeout=150)
        made = sum(s["seq_next"] for s in sim.summary().values())
        points, distinct = settle(ward.stack, "ward='kill'", made, 90)
        return figures(made, points, distinct, ward.gateway.health())


FAULTS = {"full_disk": full_disk, "small_spool": small_spool, "broker_kill": broker_kill}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(FAULTS), help="faults to run, comma-separated")
    args = ap.parse_args()
    exit_on_sigterm()
    out = {}
    for name in [n.strip() for n in args.only.split(",") if n.strip()]:
        progress(f"{name} ...")
        with tempfile.TemporaryDirectory(prefix=f"wardwatch-{name}-") as tmp:
            out[name] = FAULTS[name](Path(tmp))
        progress(f"{name}: {out[name]}")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
