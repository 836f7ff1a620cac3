"""``python -m gateway.cli.report`` against a real InfluxDB 1.6: figures, human output, outage.

Points are written straight to InfluxDB's 1.x ``/write`` (``stack.influx.url`` is the v2
write adapter, which serves neither ``/write`` nor ``/query``), with times relative to now so
``--since 24h`` covers them. Alarm points use the alarm engine's line format verbatim.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from provisioning.stack.services import free_port

REPO = Path(__file__).resolve().parents[2]
MIN_NS = 60 * 1_000_000_000
H_NS = 60 * MIN_NS


def write(influx, lines: list[str]) -> None:
    req = urllib.request.Request(
        f"http://127.0.0.1:{influx.http_port}/write?db={influx.database}&precision=ns",
        data="\n".join(lines).encode(),
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 204


def vitals(ward: str, bed: str, device: str, seq: int, t_ns: int) -> str:
    return (f"vitals,bed={bed},device={device},ward={ward} seq={seq}i,sqi=0.9,probe=\"ok\",tq=1i,sim=true,"
            f"hr=72i,spo2=97i {t_ns}")


def alarm(ward, bed, device, code, priority, kind, event, state, aid, t_ns, sim, acked=False, value=None,
          limit=None) -> str:
    fields = [f'event="{event}"', f'state="{state}"', f'alarm_id="{aid}"']
    if value is not None:
        fields += [f"value={value}", f"limit={limit}"]
    fields += [f'message="{code} {value}"', f"since_ms={t_ns // 1_000_000 - 15_000}i",
               f"acked={'true' if acked else 'false'}", f'acked_by="{"nurse-a" if acked else ""}"',
               f"simulated={'true' if sim else 'false'}"]
    return (f"alarm,ward={ward},bed={bed},device={device},code={code},priority={priority},kind={kind} "
            f"{','.join(fields)} {t_ns}")


def seed(influx, now_ns: int) -> None:
    """3 beds (5 h, 3 h, 1 h monitored), an unassigned device, 7 alarms (see the asserts)."""
    ago = lambda minutes: now_ns - minutes * MIN_NS  # noqa: E731
    write(influx, [
        vitals("w1", "01", "sim-w1-01", 0, ago(30 * 60)),  # before the window
        vitals("w1", "01", "sim-w1-01", 1, ago(6 * 60)),
        vitals("w1", "01", "sim-w1-01", 2, ago(3 * 60)),
        vitals("w1", "01", "sim-w1-01", 3, ago(60)),
        vitals("w1", "02", "sim-w1-02", 0, ago(4 * 60)),
        vitals("w1", "02", "sim-w1-02", 1, ago(60)),
        vitals("w2", "07", "dev-w2-07", 0, ago(2 * 60)),
        vitals("w2", "07", "dev-w2-07", 1, ago(60)),
        vitals("w1", "unassigned", "spare-01", 0, ago(20 * 60)),
        vitals("w1", "unassigned", "spare-01", 1, ago(60)),
    ])
    a1 = ("w1", "01", "sim-w1-01", "spo2_low")
    a2 = ("w1", "01", "sim-w1-01", "hr_high")
    a3 = ("w1", "02", "sim-w1-02", "spo2_low")
    a6 = ("w2", "07", "dev-w2-07", "probe_off")
    write(influx, [
        # A1: raised, escalated to high, acked, cleared: 20 min, simulated.
        alarm(*a1, "medium", "physiological", "raised", "active", "A1", ago(300), True, value=86.0, limit=90.0),
        alarm(*a1, "high", "physiological", "escalated", "active", "A1", ago(295), True, value=84.0, limit=90.0),
        alarm(*a1, "high", "physiological", "acked", "acked", "A1", ago(290), True, acked=True, value=85.0, limit=90.0),
        alarm(*a1, "high", "physiological", "cleared", "cleared", "A1", ago(280), True, acked=True, value=93.0, limit=90.0),
        # A2: 1 h, not acked, simulated.
        alarm(*a2, "low", "physiological", "raised", "active", "A2", ago(180), True, value=131.0, limit=130.0),
        alarm(*a2, "low", "physiological", "cleared", "cleared", "A2", ago(120), True, value=110.0, limit=130.0),
        # A3: still active at the window end, simulated.
        alarm(*a3, "medium", "physiological", "raised", "active", "A3", ago(120), True, value=87.0, limit=90.0),
        alarm(*a3, "medium", "physiological", "reminder", "active", "A3", ago(60), True, value=87.0, limit=90.0),
        # A4: bed unassigned: in no figure.
        alarm("w1", "unassigned", "spare-01", "spo2_low", "medium", "physiological", "raised", "active", "A4",
              ago(60), True, value=85.0, limit=90.0),
        alarm("w1", "unassigned", "spare-01", "spo2_low", "medium", "physiological", "cleared", "cleared", "A4",
              ago(30), True, value=95.0, limit=90.0),
        # A5: raised 25 h ago, cleared 23 h ago: carried over, ~1 h inside the window.
        alarm(*a3, "medium", "physiological", "raised", "active", "A5", ago(25 * 60), False, value=88.0, limit=90.0),
        alarm(*a3, "medium", "physiological", "cleared", "cleared", "A5", ago(23 * 60), False, value=92.0, limit=90.0),
        # A6: technical, acked, 10 min, real device.
        alarm(*a6, "low", "technical", "raised", "active", "A6", ago(90), False),
        alarm(*a6, "low", "technical", "acked", "acked", "A6", ago(85), False, acked=True),
        alarm(*a6, "low", "technical", "cleared", "cleared", "A6", ago(80), False, acked=True),
        # A7: raised and cleared before the window on a bed with no readings: in no figure.
        alarm("w1", "03", "sim-w1-03", "spo2_low", "medium", "physiological", "raised", "active", "A7",
              ago(30 * 60), True, value=85.0, limit=90.0),
        alarm("w1", "03", "sim-w1-03", "spo2_low", "medium", "physiological", "cleared", "cleared", "A7",
              ago(29 * 60), True, value=95.0, limit=90.0),
    ])


def report(url: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "WARDWATCH_INFLUX_TOKEN"}
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli.report", "--influx", url, "--since", "24h", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )


@pytest.fixture
def seeded(stack):
    # Whole milliseconds: the report reads times back as epoch ms.
    now_ns = time.time_ns() // 1_000_000 * 1_000_000
    seed(stack.influx, now_ns)
    return f"http://127.0.0.1:{stack.influx.http_port}", now_ns // 1_000_000


@pytest.mark.services
def test_json_figures_from_influxdb(seeded):
    url, now_ms = seeded
    out = report(url, "--json")
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.splitlines()) == 1
    r = json.loads(out.stdout)
    drift_s = (r["until_ms"] - now_ms) / 1000  # the report's "now" is a little later than ours
    assert 0 <= drift_s < 60 and r["hours"] == 24.0
    assert (r["beds"], r["bed_days"], r["alarms"]) == (3, 9 / 24, 4)
    assert r["alarms_per_bed_day"] == pytest.approx(4 / (9 / 24))
    assert (r["carried_over"], r["still_active"], r["share_acknowledged"]) == (1, 1, 0.5)
    # A3 grows with the drift and A5 (clipped at the window start) shrinks by the same.
    assert r["time_active_s"] == pytest.approx(1200 + 3600 + 7200 + 3600 + 600)
    assert r["mean_active_s"] == pytest.approx((1200 + 3600 + 7200 + drift_s + 600) / 4)
    assert r["by_priority"] == {"high": 1, "medium": 1, "low": 2}
    assert r["by_kind"] == {"physiological": 3, "technical": 1}
    assert (r["simulated_alarms"], r["includes_simulated"]) == (3, True)
    codes = [(c["code"], c["alarms"], round(c["time_active_s"], 3), c["share_acknowledged"]) for c in r["by_code"]]
    assert codes == [("spo2_low", 2, 12000.0, 0.5), ("hr_high", 1, 3600.0, 0.0), ("probe_off", 1, 600.0, 1.0)]
    beds = [(b["ward"], b["bed"], b["alarms"], round(b["time_active_s"], 3), b["share_acknowledged"], b["simulated"])
            for b in r["top_beds"]]
    assert beds == [("w1", "01", 2, 4800.0, 0.5, True), ("w1", "02", 1, 10800.0, 0.0, True),
                    ("w2", "07", 1, 600.0, 1.0, False)]
    assert [b["per_bed_day"] for b in r["top_beds"]] == pytest.approx([2 / (5 / 24), 1 / (3 / 24), 1 / (1 / 24)])
    assert "bed_days" in r["definitions"]


@pytest.mark.services
def test_ward_filter_and_top(seeded):
    url, _ = seeded
    r = json.loads(report(url, "--json", "--ward", "w2").stdout)
    assert (r["ward"], r["beds"], r["bed_days"], r["alarms"], r["simulated_alarms"], r["includes_simulated"]) == (
        "w2", 1, 1 / 24, 1, 0, False)
    assert [(b["ward"], b["bed"]) for b in r["top_beds"]] == [("w2", "07")]
    r = json.loads(report(url, "--json", "--top", "1").stdout)
    assert [(b["ward"], b["bed"]) for b in r["top_beds"]] == [("w1", "01")]


@pytest.mark.services
def test_human_output_names_beds_and_simulated(seeded):
    url, _ = seeded
    out = report(url)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "not a medical device" in text and "(includes 3 simulated alarms)" in text
    assert "4 raised" in text and "0.38 bed-days" in text
    rows = [line.replace("│", " ").split() for line in text.splitlines()]
    assert [r[:3] for r in rows if r[:2] in (["w1", "01"], ["w1", "02"], ["w2", "07"])] == [
        ["w1", "01", "2"], ["w1", "02", "1"], ["w2", "07", "1"]]
    assert "unassigned" not in text


@pytest.mark.services
def test_unknown_database_exits_1(stack):
    out = report(f"http://127.0.0.1:{stack.influx.http_port}", "--database", "nope")
    assert out.returncode == 1 and out.stdout == ""
    assert "database not found" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_unreachable_database_exits_1_with_one_line():
    url = f"http://127.0.0.1:{free_port()}"
    out = report(url, "--json")
    assert out.returncode == 1 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and f"cannot read InfluxDB at {url}" in lines[0]
