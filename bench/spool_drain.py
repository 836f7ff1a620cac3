"""How fast the gateway catches up after a database outage: ``make bench`` (second result).

A 5-minute InfluxDB outage at 300 readings/s leaves the gateway's spool holding 90,000
readings in 6,000 batch files (one per 50 ms flush). This bench builds exactly that spool
with the gateway's own Spool and line protocol, starts the real gateway on it while InfluxDB
is still down (so its retry backoff is at its cap), then starts InfluxDB and measures:

- ``probe_delay_s``: InfluxDB answering -> the first spooled batch gone;
- ``drain_seconds``: InfluxDB answering -> the spool empty, and ``drain_rate`` (readings/s);
- ``stored`` / ``lost``: the readings InfluxDB holds afterwards, counted.

Progress goes to stderr; the last stdout line is one JSON object. ~1 min.
Run: ``.venv/bin/python bench/spool_drain.py [--outage-s 300] [--rate 300]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from gateway import lineproto
from gateway.contract import Reading
from gateway.sinks.spool import Spool
from provisioning.stack.gateway_proc import GatewayProcess
from provisioning.stack.services import Stack, exit_on_sigterm, wait_until

WARD = "drain"
DEVICES = 30


def progress(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def fill_spool(directory: Path, outage_s: int, rate: int, flush_ms: int) -> int:
    """The spool a ``outage_s`` outage at ``rate`` readings/s leaves; returns the readings."""
    spool = Spool(directory, max_bytes=2 * 1024**3)
    per_batch = max(1, rate * flush_ms // 1000)
    t0_ms = int(time.time() * 1000) - outage_s * 1000 - 60_000
    n = outage_s * rate
    seq = [0] * DEVICES
    lines: list[str] = []
    for i in range(n):
        d = i % DEVICES
        dev = f"bench-{d:02d}"
        ts = t0_ms + i * 1000 // rate
        r = Reading(v=1, dev=dev, seq=seq[d], ts=ts, tq=1, hr=60 + i % 40, spo2=90 + i % 10, temp=36.6, pi=2.0,
                    sqi=0.9, probe="ok", sim=True)
        seq[d] += 1
        lines.append(lineproto.vitals(r, WARD, f"{d:02d}", ts * 1_000_000 + r.seq % 1_000_000))
        if len(lines) == per_batch:
            spool.append("\n".join(lines).encode())
            lines = []
    if lines:
        spool.append("\n".join(lines).encode())
    return n


def ping(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1) as r:
            return r.status == 204
    except OSError:
        return False


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--outage-s", type=int, default=300, help="length of the outage the spool holds")
    ap.add_argument("--rate", type=int, default=300, help="readings/s during the outage")
    args = ap.parse_args()
    exit_on_sigterm()
    with tempfile.TemporaryDirectory(prefix="wardwatch-drain-") as tmp, Stack(Path(tmp) / "stack") as stack:
        flush_ms = 50
        state = Path(tmp) / "state"
        t = time.monotonic()
        n = fill_spool(state / "spool", args.outage_s, args.rate, flush_ms)
        files = len(list((state / "spool").glob("*.lp")))
        progress(f"spool holds {n} readings in {files} files ({time.monotonic() - t:.1f} s to build)")
        stack.influx.stop()
        with GatewayProcess(stack, Path(tmp) / "gw", state_dir=str(state), flush_interval_ms=flush_ms) as gw:
            progress("gateway up, InfluxDB down for 15 s more (the drainer's backoff reaches its cap)")
            time.sleep(15)
            stack.influx.start()
            up = time.monotonic()
            progress("InfluxDB answers; draining")
            wait_until(lambda: gw.health().get("spool_batches", files) < files, 120, "the first batch drained")
            first = time.monotonic() - up
            wait_until(lambda: gw.health().get("spool_batches", 1) == 0, 600, "the spool to empty", interval=0.1)
            drained = time.monotonic() - up
            health = gw.health()
        stored = stack.influx.rows(f"SELECT count(seq) FROM vitals WHERE ward='{WARD}'")
        stored_n = stored[0]["count"] if stored else 0
    result = {
        "outage_s": args.outage_s,
        "rate": args.rate,
        "spooled_readings": n,
        "spool_files": files,
        "probe_delay_s": round(first, 2),
        "drain_seconds": round(drained, 2),
        "drain_rate": round(n / drained, 1),
        "drained_batches": health["writer"]["drained_batches"],
        "stored": stored_n,
        "lost": n - stored_n,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
