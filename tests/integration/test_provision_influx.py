"""``wardwatch provision influx`` against a real InfluxDB 1.6 (the ``stack`` fixture).

The command runs as a child process (``python -m gateway.cli.main provision influx``). The
stack's InfluxDB has continuous queries disabled (they run on a schedule); the downsampling test
runs the CQ's own SELECT ... INTO (``provisioning.influx.backfill``, built from the same
``downsample_select``) over a fixed past range of ``vitals`` points written in the gateway's
line format (``gateway.lineproto.vitals``) straight to InfluxDB's 1.x ``/write``.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from gateway import lineproto
from gateway.contract import Reading
from provisioning import influx
from provisioning.stack.services import free_port, wait_until

REPO = Path(__file__).resolve().parents[2]
S_NS = 1_000_000_000


def provision(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != influx.TOKEN_ENV}
    return subprocess.run([sys.executable, "-m", "gateway.cli.main", "provision", "influx", *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


def url_of(stack) -> str:
    return f"http://127.0.0.1:{stack.influx.http_port}"


def policies(stack, database: str) -> dict[str, tuple[str, str, bool]]:
    rows = stack.influx.rows(f"SHOW RETENTION POLICIES ON {influx.quote_ident(database)}")
    return {r["name"]: (r["duration"], r["shardGroupDuration"], r["default"]) for r in rows}


def cqs(stack, database: str) -> dict[str, str]:
    out = {}
    for series in stack.influx.query("SHOW CONTINUOUS QUERIES"):
        if series["name"] == database:
            out.update({name: q for name, q in series.get("values", [])})
    return out


def test_creates_database_policies_and_cq_then_changes_nothing(stack):
    r = provision("--url", url_of(stack), "--database", "ward_a")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "database ward_a: create",
        "retention policy autogen: 30d default: alter (was INF default)",
        "retention policy trend: 730d: create",
        "continuous query vitals_1m: create",
        "4 change(s)",
    ]
    assert policies(stack, "ward_a") == {"autogen": ("720h0m0s", "24h0m0s", True),
                                         "trend": ("17520h0m0s", "168h0m0s", False)}
    stored = cqs(stack, "ward_a")
    assert list(stored) == ["vitals_1m"]
    assert stored["vitals_1m"] == influx.create_cq("ward_a").replace('"', "")
    assert "INTO ward_a.trend.vitals_1m FROM ward_a.autogen.vitals GROUP BY time(1m), ward, bed" in stored["vitals_1m"]

    again = provision("--url", url_of(stack), "--database", "ward_a")
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [
        "database ward_a: exists",
        "retention policy autogen: 30d default: unchanged",
        "retention policy trend: 730d: unchanged",
        "continuous query vitals_1m: unchanged",
        "nothing to change",
    ]
    assert policies(stack, "ward_a") == {"autogen": ("720h0m0s", "24h0m0s", True),
                                         "trend": ("17520h0m0s", "168h0m0s", False)}


def test_existing_database_autogen_is_altered_and_durations_follow_options(stack):
    # The stack created "wardwatch" as the gateway finds it: autogen, infinite, default.
    assert policies(stack, "wardwatch")["autogen"][0] == "0s"
    r = provision("--url", url_of(stack))
    assert r.returncode == 0, r.stderr
    assert "retention policy autogen: 30d default: alter (was INF default)" in r.stdout.splitlines()

    r = provision("--url", url_of(stack), "--raw-days", "7", "--trend-days", "365")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[1:] == [
        "retention policy autogen: 7d default: alter (was 30d default)",
        "retention policy trend: 365d: alter (was 730d)",
        "continuous query vitals_1m: unchanged",
        "2 change(s)",
    ]
    assert policies(stack, "wardwatch") == {"autogen": ("168h0m0s", "24h0m0s", True),
                                            "trend": ("8760h0m0s", "168h0m0s", False)}


def write_1x(stack, lines: list[str]) -> None:
    """Straight to InfluxDB 1.x /write, no rp: the default policy, as the gateway's writes land."""
    req = urllib.request.Request(
        f"{url_of(stack)}/write?db=wardwatch&precision=ns", data="\n".join(lines).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 204


def reading(seq: int, ts_ms: int, hr, spo2, temp, pi, sqi, probe="ok") -> Reading:
    return Reading(v=1, dev=f"dev-{seq % 2}", seq=seq, ts=ts_ms, tq=1, hr=hr, spo2=spo2, temp=temp, pi=pi,
                   sqi=sqi, probe=probe, sim=True)


def test_downsampling_statement_gives_per_minute_mean_min_max_per_bed(stack):
    assert provision("--url", url_of(stack)).returncode == 0
    # A fixed range of 3 whole minutes starting 20 minutes ago (inside the 30-day raw policy).
    start = dt.datetime.fromtimestamp((int(time.time()) // 60 - 20) * 60, dt.timezone.utc)
    start_ns = int(start.timestamp()) * S_NS
    # (bed, minute, second, hr, spo2, temp, pi, sqi); values are exact binary fractions so that
    # the expected means below are exact. bed 02's minute 1 has a probe-off reading (nulls).
    samples = [
        ("01", 0, 0, 70, 96, 36.5, 2.5, 0.75), ("01", 0, 20, 72, 97, 37.0, 3.0, 1.0),
        ("01", 0, 40, 80, 98, 37.5, 3.5, 0.5),
        ("01", 1, 0, 90, 95, 38.0, 1.25, 0.25), ("01", 1, 30, 100, 93, 38.5, 1.75, 0.75),
        ("01", 2, 10, 60, 99, 36.0, 4.0, 1.0),
        ("02", 0, 5, 110, 88, 39.0, 0.5, 0.5), ("02", 0, 50, 120, 90, 39.5, 1.5, 0.75),
        ("02", 1, 15, 64, 94, 36.25, 2.25, 1.0), ("02", 1, 45, None, None, None, None, 0.0),
        ("02", 2, 59, 66, 100, 36.75, 2.75, 0.25),
    ]
    lines = []
    for seq, (bed, minute, second, hr, spo2, temp, pi, sqi) in enumerate(samples):
        t_ns = start_ns + (minute * 60 + second) * S_NS
        r = reading(seq, t_ns // 1_000_000, hr, spo2, temp, pi, sqi, probe="ok" if hr is not None else "off")
        lines.append(lineproto.vitals(r, "w1", bed, t_ns))
    # Outside the range: the minute before and the minute after are not aggregated.
    lines.append(lineproto.vitals(reading(90, 0, 200, 50, 44.0, 29.0, 0.0), "w1", "01", start_ns - 30 * S_NS))
    lines.append(lineproto.vitals(reading(91, 0, 200, 50, 44.0, 29.0, 0.0), "w1", "02", start_ns + 180 * S_NS))
    write_1x(stack, lines)
    wait_until(lambda: len(stack.influx.rows('SELECT "seq" FROM "wardwatch"."autogen"."vitals"')) == len(lines),
               10, "the vitals points to be readable")

    statement = influx.backfill("wardwatch", start, start + dt.timedelta(minutes=3))
    assert statement == influx.downsample_select("wardwatch", f"time >= '{start:%Y-%m-%dT%H:%M:%SZ}' AND "
                                                 f"time < '{start + dt.timedelta(minutes=3):%Y-%m-%dT%H:%M:%SZ}'")
    assert influx.downsample_select("wardwatch") in influx.create_cq("wardwatch")
    written = stack.influx.query(statement, method="POST")
    assert written[0]["values"][0][1] == 6  # 2 beds x 3 minutes

    expected = []
    for bed in ("01", "02"):
        for minute in range(3):
            row = {"time": int(start.timestamp()) * 1000 + minute * 60_000, "ward": "w1", "bed": bed}
            for i, field in enumerate(influx.FIELDS):
                values = [s[3 + i] for s in samples if s[0] == bed and s[1] == minute and s[3 + i] is not None]
                row[f"{field}_mean"] = sum(values) / len(values)
                row[f"{field}_min"] = min(values)
                row[f"{field}_max"] = max(values)
            expected.append(row)
    got = stack.influx.rows('SELECT * FROM "wardwatch"."trend"."vitals_1m" GROUP BY "ward", "bed"')
    assert sorted(got, key=lambda r: (r["bed"], r["time"])) == expected
    # The raw points' tags other than ward and bed are gone; nothing landed in the raw policy.
    tags = stack.influx.query('SHOW TAG KEYS FROM "wardwatch"."trend"."vitals_1m"')
    assert sorted(v[0] for v in tags[0]["values"]) == ["bed", "ward"]
    assert stack.influx.rows('SELECT * FROM "wardwatch"."autogen"."vitals_1m"') == []


def test_unreachable_database_is_one_line_naming_the_url():
    url = f"http://127.0.0.1:{free_port()}"
    r = provision("--url", url)
    assert r.returncode == 1
    assert r.stdout == ""
    assert len(r.stderr.splitlines()) == 1
    assert r.stderr.startswith(f"wardwatch provision influx: cannot reach InfluxDB at {url}: ")


def test_refused_statement_is_one_line_naming_it(stack):
    r = provision("--url", url_of(stack), "--database", "")
    assert r.returncode == 1
    assert len(r.stderr.splitlines()) == 1, r.stderr
    assert r.stderr.startswith(f'wardwatch provision influx: {url_of(stack)} refused CREATE DATABASE "": ')

    # Not an InfluxDB 1.x query API at all (the v2 write adapter): refused at the first statement.
    r = provision("--url", stack.influx.url)
    assert r.returncode == 1
    assert len(r.stderr.splitlines()) == 1, r.stderr
    assert r.stderr.startswith(f"wardwatch provision influx: {stack.influx.url} refused SHOW DATABASES: HTTP ")
