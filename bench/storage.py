"""Disk per reading in InfluxDB, raw and downsampled (``make bench-storage``). Prints JSON.

For the sizing in docs/scaling.md: how many bytes a stored reading costs once InfluxDB has
compacted it, and what the 1-minute trend costs per bed. B beds at 1 Hz for H hours of
simulated vitals (``bedside.simvitals``, the firmware's own patient model, so the values
wander and compress as real ones do, not as constants) are written in the gateway's line
format (``gateway.lineproto.vitals``) to a real InfluxDB set up by ``wardwatch provision
influx``; the trend policy is filled by the continuous query's own statement. InfluxDB is
told to snapshot and fully compact cold shards after seconds, not hours, and the bench waits
until the WAL is empty and the TSM files stop changing before it measures them.

Output: ``raw_bytes_per_reading`` (TSM bytes of the raw policy / readings),
``trend_bytes_per_bed_minute``, and the same extrapolated to a day of one bed at 1 Hz.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bedside.simvitals import Patient
from gateway import lineproto
from gateway.contract import Reading
from provisioning import influx as influx_prov
from provisioning.stack.services import InfluxDB, exit_on_sigterm, wait_until


class CompactingInfluxDB(InfluxDB):
    """The stack's InfluxDB, told to snapshot the cache and fully compact a shard once it has
    been cold for seconds (defaults: 10 min and 4 h), so the bench measures compacted TSM."""

    def _write_config(self) -> None:
        super()._write_config()
        text = self.conf.read_text().replace(
            '  wal-fsync-delay = "0s"\n',
            '  wal-fsync-delay = "0s"\n  cache-snapshot-write-cold-duration = "2s"\n'
            '  compact-full-write-cold-duration = "5s"\n')
        self.conf.write_text(text)


def write(db: InfluxDB, lines: list[str]) -> None:
    req = urllib.request.Request(f"http://127.0.0.1:{db.http_port}/write?db={db.database}&precision=ns",
                                 data="\n".join(lines).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=120) as r:
        assert r.status == 204


def files(root: Path, suffix: str) -> dict[str, int]:
    return {str(p): p.stat().st_size for p in root.rglob(f"*{suffix}") if p.is_file()}


def settled(db: InfluxDB, last: list) -> bool:
    """WAL segments empty and the TSM file set unchanged since the previous look."""
    wal = sum(files(db.workdir / "wal", ".wal").values())
    tsm = files(db.workdir / "data", ".tsm")
    tmp = files(db.workdir / "data", ".tmp")
    same = tsm == last[0]
    last[0] = tsm
    return wal == 0 and not tmp and same and bool(tsm)


def main() -> int:
    exit_on_sigterm()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--beds", type=int, default=100)
    ap.add_argument("--hours", type=float, default=2.0)
    args = ap.parse_args()
    n_seconds = int(args.hours * 3600)
    with tempfile.TemporaryDirectory(prefix="wardwatch-bench-storage-") as tmp:
        db = CompactingInfluxDB(Path(tmp) / "influxdb")
        db.start()
        try:
            url = f"http://127.0.0.1:{db.http_port}"
            prov = subprocess.run([sys.executable, "-m", "gateway.cli", "provision", "influx", "--url", url,
                                   "--database", db.database], capture_output=True, text=True, timeout=120)
            if prov.returncode != 0:
                raise SystemExit(prov.stderr)
            # Whole minutes, ending an hour ago: inside the raw policy, outside the CQ's reach.
            end = (int(time.time()) // 60 - 60) * 60
            start = end - n_seconds
            patients = [Patient(seed=b) for b in range(args.beds)]
            t0 = time.monotonic()
            readings = 0
            for chunk in range(0, n_seconds, 600):
                lines = []
                for s in range(chunk, min(chunk + 600, n_seconds)):
                    ts = (start + s) * 1000
                    for b, p in enumerate(patients):
                        v = p.sample(s)
                        r = Reading(v=1, dev=f"bed-{b:03d}", seq=s, ts=ts, tq=1, hr=v["hr"] and int(v["hr"]),
                                    spo2=v["spo2"] and int(v["spo2"]), temp=v["temp"] and round(v["temp"], 1),
                                    pi=v["pi"] and round(v["pi"], 2), sqi=round(v["sqi"], 2), probe=v["probe"],
                                    sim=True)
                        lines.append(lineproto.vitals(r, "w1", f"{b:03d}", ts * 1_000_000))
                write(db, lines)
                readings += len(lines)
            write_s = time.monotonic() - t0
            db.query(influx_prov.backfill(db.database, dt.datetime.fromtimestamp(start, dt.timezone.utc),
                                          dt.datetime.fromtimestamp(end, dt.timezone.utc)), method="POST")
            last: list = [None]
            wait_until(lambda: settled(db, last), 600, "InfluxDB to snapshot and compact", interval=3)
            data = db.workdir / "data" / db.database
            raw = sum(files(data / influx_prov.RAW_POLICY, ".tsm").values())
            trend = sum(files(data / influx_prov.TREND_POLICY, ".tsm").values())
            trend_rows = db.rows(f'SELECT count("hr_mean") FROM "{influx_prov.TREND_POLICY}"."vitals_1m"')
            bed_minutes = trend_rows[0]["count"] if trend_rows else 0
        finally:
            db.close()
    raw_per = raw / readings
    trend_per = trend / bed_minutes if bed_minutes else None
    print(json.dumps({
        "beds": args.beds, "hours": args.hours, "readings": readings, "write_seconds": round(write_s, 1),
        "raw_tsm_bytes": raw, "raw_bytes_per_reading": round(raw_per, 2),
        "raw_bytes_per_bed_day_1hz": round(raw_per * 86400),
        "trend_bed_minutes": bed_minutes, "trend_tsm_bytes": trend,
        "trend_bytes_per_bed_minute": trend_per and round(trend_per, 1),
        "trend_bytes_per_bed_day": trend_per and round(trend_per * 1440),
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
