"""Every panel, annotation, variable and alert-rule query of dashboards/ runs on a real InfluxDB
holding what the real gateway wrote from a simulated ward, with Grafana's macros expanded by
``dashboards.influxql_macros``, and returns what its panel shows.

The ward (``dq``, 4 beds, patients admitted so NEWS2 is computed):
bed 01 desaturates to SpO2 78 from 3 s (spo2_desat high, spo2_low medium, NEWS2 SpO2 sub-score 3;
its desaturation alarm is acknowledged), bed 02 loses power at 5 s for good (last will
"offline", device_offline technical alarm after 30 s), beds 03 and 04 are stable. One malformed
reading gives a reject. A second ward ``old`` and a gateway instance ``gw-old`` stopped 10
minutes ago (their points written in the gateway's line format straight to InfluxDB), so the
silence queries have something to find. ``wardwatch provision influx`` makes the policies and the 1-minute
trend is filled by the continuous query's own SELECT INTO over the last hour (the stack's
InfluxDB runs no CQs). Grafana itself is not installed: the JSON is the proof of structure, the
queries are the proof of content.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
import urllib.request

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from dashboards.influxql_macros import Var, expand, variables_used
from gateway import lineproto
from gateway.contract import Reading
from provisioning import influx as influx_prov
from provisioning.stack.services import TESTER_USER, wait_until
from provisioning.stack.ward import Ward
from tests.dashboards import frames
from tests.dashboards.collect import REPO_ROOT, alert_rules, dashboards, targets

pytestmark = pytest.mark.services

WARD = "dq"
BEDS = ("01", "02", "03", "04")
SCENARIO = """
[[bed]]
beds = [1]
[[bed.phase]]
at_s = 3
spo2 = 78

[[bed]]
beds = [2]
[[bed.phase]]
at_s = 5
power = "off"
"""


def publish_malformed(port: int, password: str) -> None:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.username_pw_set(TESTER_USER, password)
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        c.publish(f"wardwatch/v1/{WARD}/sim-{WARD}-03/vitals", b'{"v":1,"dev":"sim-dq-03"}', qos=1).wait_for_publish(10)
    finally:
        c.disconnect()
        c.loop_stop()


def write_stopped_ward_and_gateway(influx) -> None:
    """Ward ``old`` (one bed) and instance ``gw-old``: points from 15 to 10 minutes ago, in the
    gateway's own line format, straight to InfluxDB's /write (the default policy)."""
    now_ms = int(time.time() * 1000)
    lines = []
    for n in range(300):
        ts = now_ms - 900_000 + n * 1000
        r = Reading(v=1, dev="old-01", seq=n, ts=ts, tq=1, hr=70, spo2=97, temp=36.8, pi=2.0, sqi=0.9,
                    probe="ok", sim=True)
        lines.append(lineproto.vitals(r, "old", "01", ts * 1_000_000 + n))
        if n % 10 == 0:
            lines.append(lineproto.gateway({"received": n, "stored": n, "spool_batches": 0}, "gw-old", ts * 1_000_000))
    req = urllib.request.Request(f"http://127.0.0.1:{influx.http_port}/write?db={influx.database}&precision=ns",
                                 data="\n".join(lines).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 204


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dash-queries")
    scenario = tmp / "scenario.toml"
    scenario.write_text(SCENARIO)
    with Ward(tmp / "ward", WARD, beds=len(BEDS)) as ward:
        ward.admit_all()
        influx = ward.stack.influx
        ward.start_sim("--scenario", str(scenario), "--duration", "300", "--seed", "5")
        ward.wait_for_beds()
        publish_malformed(ward.stack.mosquitto.port, ward.stack.password(TESTER_USER))
        write_stopped_ward_and_gateway(influx)
        wait_until(lambda: influx.rows("SELECT alarm_id FROM alarm WHERE bed='01' AND code='spo2_desat' "
                                       "AND event='raised'"), 40, "spo2_desat raised on bed 01")
        alarm_id = influx.rows("SELECT alarm_id FROM alarm WHERE bed='01' AND code='spo2_desat'")[0]["alarm_id"]
        ward.gateway.cli("alarms", "ack", "--ward", WARD, alarm_id, "--user", "nurse.a", "--json")
        wait_until(lambda: influx.rows("SELECT alarm_id FROM alarm WHERE event='acked'"), 20, "the ack stored")
        wait_until(lambda: influx.rows("SELECT alarm_id FROM alarm WHERE bed='02' AND code='device_offline' "
                                       "AND event='raised'"), 60, "device_offline raised on bed 02")
        wait_until(lambda: influx.rows("SELECT * FROM news2 WHERE bed='01' AND spo2 = 3"), 20, "NEWS2 of bed 01")
        wait_until(lambda: len(influx.rows("SELECT received FROM gateway WHERE instance='gw1'")) >= 2, 30,
                   "two self-metrics of the gateway")
        # Bed 02 silent for longer than the $silent the tests use (15 s).
        wait_until(lambda: not influx.rows(f"SELECT count(seq) FROM vitals WHERE device='sim-{WARD}-02' "
                                           "AND time > now() - 16s"), 40, "bed 02 silent for 16 s")
        wait_until(lambda: influx.rows("SELECT count FROM rejected"), 10, "the reject stored")

        url = f"http://127.0.0.1:{influx.http_port}"
        env = {k: v for k, v in os.environ.items() if k != influx_prov.TOKEN_ENV}
        prov = subprocess.run([sys.executable, "-m", "gateway.cli.main", "provision", "influx", "--url", url,
                               "--database", influx.database], cwd=REPO_ROOT, env=env, capture_output=True,
                              text=True, timeout=60)
        assert prov.returncode == 0, prov.stderr
        now = dt.datetime.now(dt.timezone.utc)
        influx.query(influx_prov.backfill(influx.database, now - dt.timedelta(hours=1), now + dt.timedelta(minutes=1)),
                     method="POST")
        report = ward.gateway.cli("alarms", "report", "--since", "1h", "--ward", WARD, "--json", "--influx", url,
                                  "--database", influx.database)
        yield {"ward": ward, "influx": influx, "report": json.loads(report.stdout.splitlines()[-1])}


def run_query(influx, query: str) -> list[dict]:
    """Series of an expanded query (the InfluxQL reader raises on any InfluxDB error)."""
    return influx.query(query)


def columns(series: list[dict]) -> set[str]:
    return {c for s in series for c in s["columns"]}


def rows_by_bed(series: list[dict]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for s in series:
        for values in s["values"]:
            row = dict(zip(s["columns"], values))
            row.update(s.get("tags", {}))
            out.setdefault(row.get("bed"), {}).update(row)
    return out


ALL_BEDS = Var.many(*BEDS)
VARS_MULTI = {"ward": Var.many(WARD), "bed": ALL_BEDS, "instance": Var.many("gw1"), "silent": Var.single("15s")}
VARS_SINGLE = {"ward": Var.single(WARD), "bed": Var.single("01"), "instance": Var.single("gw1"),
               "silent": Var.single("15s")}
BOARDS = dashboards()


def expand_board(query: str, variables: dict, start: str = "now-1h") -> str:
    used = variables_used(query)
    assert not used - set(variables) - {"timeFilter", "__interval", "interval", "__interval_ms"}, used
    return expand(query, variables, start=start)


def test_every_target_runs_and_returns_its_columns(run):
    """Each target, expanded with multi-valued variables (all beds) over the last hour, runs; the
    empty ones are exactly the trend half of the bed-detail pairs (1 h reads raw) and the
    battery, which simulated boards do not report."""
    influx = run["influx"]
    empty = []
    count = 0
    for name, board in BOARDS.items():
        variables = VARS_SINGLE if name == "bed-detail" else VARS_MULTI
        for panel, t in targets(board):
            series = run_query(influx, expand_board(t["query"], variables))
            count += 1
            if not series:
                empty.append((name, panel["title"], t["refId"]))
            elif t.get("alias") and "$" not in t["alias"]:
                assert t["alias"] in columns(series), (name, panel["title"])
    assert count >= 40
    # The simulator's host board has no battery gauge: no device status carries batt.
    assert influx.query("SELECT count(batt) FROM device") == []
    assert sorted(empty) == sorted([("bed-detail", title, "B") for title in ("Pulse", "SpO2", "Temperature")]
                                   + [("fleet-health", "Battery", "A")])


def test_every_variable_query_lists_its_values(run):
    influx = run["influx"]
    found = {}
    for board in BOARDS.values():
        for var in board["templating"]["list"]:
            if var["type"] == "query":
                series = run_query(influx, expand_board(var["query"], VARS_MULTI))
                found[var["name"]] = {v[1] for s in series for v in s["values"]}
    assert found == {"ward": {WARD, "old"}, "bed": set(BEDS), "instance": {"gw1", "gw-old"}}


def panel(board: str, title: str) -> dict:
    return next(p for p in BOARDS[board]["panels"] if p["title"] == title)


def target(board: str, title: str, ref: str) -> str:
    return next(t["query"] for t in panel(board, title)["targets"] if t["refId"] == ref)


def pipeline(influx, board: str, title: str, variables: dict, start: str = "now-1h") -> list[dict]:
    """A panel as Grafana computes it: every target expanded and run, then its transformations."""
    p = panel(board, title)
    results = {t["refId"]: run_query(influx, expand_board(t["query"], variables, start)) for t in p["targets"]}
    return frames.apply(p, results)


def test_ward_overview_one_row_per_bed_with_vitals_news2_and_alarm_state(run):
    influx = run["influx"]
    table = pipeline(influx, "ward-overview", "Ward $ward: all beds", VARS_MULTI)
    by = {r["bed"]: r for r in table}
    assert len(table) == len(BEDS) and set(by) == set(BEDS)
    for bed in BEDS:
        assert {"pulse", "SpO2", "temp", "probe", "simulated", "NEWS2", "last seen"} <= set(by[bed]), bed
        assert by[bed]["simulated"] is True and "Time" not in by[bed]
    assert by["01"]["SpO2"] < 85 and by["01"]["high"] >= 1 and by["01"]["medium"] >= 1
    assert by["02"]["technical"] == 1
    assert "high" not in by["03"] and "technical" not in by["03"]
    # Bed 02 lost power: its last reading is the oldest, by more than the 16 s waited for.
    assert by["02"]["last seen"] < min(by[b]["last seen"] for b in ("01", "03", "04")) - 15_000
    # The tile of one bed (single value, as the repeat expands it) is one row of that bed.
    (tile,) = pipeline(influx, "ward-overview", "Bed $bed", VARS_SINGLE)
    assert "bed" not in tile and tile["SpO2"] == by["01"]["SpO2"] and tile["high"] >= 1
    # Active alarms: bed 01's desaturation (acked, high) and bed 02's offline alarm.
    active = run_query(influx, expand_board(target("ward-overview", "Active alarms", "A"), VARS_MULTI))
    rows = [dict(zip(s["columns"], v), **s["tags"]) for s in active for v in s["values"]]
    assert {("01", "spo2_desat", "high", "acked"), ("02", "device_offline", "medium", "active")} <= {
        (r["bed"], r["code"], r["priority"], r["state"]) for r in rows}


def test_bed_detail_raw_for_short_ranges_trend_for_long_and_limits(run):
    influx = run["influx"]
    for title, field in (("Pulse", "hr"), ("SpO2", "spo2"), ("Temperature", "temp")):
        raw, trend = target("bed-detail", title, "A"), target("bed-detail", title, "B")
        for start, answering in (("now-1h", raw), ("now-12h", raw), ("now-24h", trend), ("now-7d", trend)):
            for q in (raw, trend):
                series = run_query(influx, expand_board(q, VARS_SINGLE, start))
                assert bool(series) == (q is answering), (title, start, q is raw)
                if series:
                    assert series[0]["columns"] == ["time", title] and any(v[1] is not None for v in series[0]["values"])
        limits = rows_by_bed(run_query(influx, expand_board(target("bed-detail", title, "L"), VARS_SINGLE)))
        expected = {"hr": {"hr_high": 120.0}, "spo2": {"spo2_low": 90.0, "spo2_desat": 80.0},
                    "temp": {"temp_high": 39.0, "temp_low": 35.0}}[field]
        assert expected.items() <= limits["01"].items()
    news2 = run_query(influx, expand_board(target("bed-detail", "NEWS2", "A"), VARS_SINGLE))
    assert any(v[1] == 3 for v in news2[0]["values"])  # SpO2 78 alone scores 3
    events = run_query(influx, expand_board(target("bed-detail", "Alarm events of this bed", "A"), VARS_SINGLE))
    got = {(r[events[0]["columns"].index("event")], r[events[0]["columns"].index("code")]) for r in events[0]["values"]}
    assert {("raised", "spo2_desat"), ("acked", "spo2_desat"), ("raised", "spo2_low")} <= got
    (ann,) = BOARDS["bed-detail"]["annotations"]["list"]
    series = run_query(influx, expand_board(ann["query"], VARS_SINGLE))
    assert {ann["titleColumn"], ann["textColumn"]} <= set(series[0]["columns"])
    assert set(ann["tagsColumn"].split(",")) <= set(series[0]["columns"])


def test_alarm_load_matches_wardwatch_alarms_report(run):
    influx, report = run["influx"], run["report"]

    def one(ref: str, by: str) -> dict:
        q = target("alarms", "Alarm load per bed" if by == "bed" else "Alarms per bed-day", ref)
        return {(r.get("ward"), r.get("bed")): r for r in
                [dict(zip(s["columns"], v), **s.get("tags", {})) for s in run_query(influx, expand_board(q, VARS_MULTI))
                 for v in s["values"]]}

    raised, bed_days, acked = one("A", "ward"), one("B", "ward"), one("C", "ward")
    key = (WARD, None)
    assert raised[key]["raised"] == report["alarms"] >= 4  # desat, low, single3 on 01; offline on 02
    assert acked[key]["acked"] / raised[key]["raised"] == pytest.approx(report["share_acknowledged"])
    # The report ran a moment before: monitored time grows with the running ward (4 beds).
    assert bed_days[key]["bed_days"] == pytest.approx(report["bed_days"], abs=4 * 20 / 86400)
    # The stat panels and the per-bed table, transformations included.
    (per_day,) = pipeline(influx, "alarms", "Alarms per bed-day", VARS_MULTI)
    assert set(per_day) == {"ward", "alarms per bed-day"}
    assert per_day["alarms per bed-day"] == pytest.approx(report["alarms_per_bed_day"], rel=0.1)
    (share,) = pipeline(influx, "alarms", "Share acknowledged", VARS_MULTI)
    assert share["share acknowledged"] == pytest.approx(report["share_acknowledged"])
    per_bed = {(r["ward"], r["bed"]): r for r in pipeline(influx, "alarms", "Alarm load per bed", VARS_MULTI)}
    for b in report["top_beds"]:
        row = per_bed[(b["ward"], b["bed"])]
        assert row["raised"] == b["alarms"]
        assert row["bed_days"] == pytest.approx(b["bed_days"], abs=20 / 86400)
        assert row["alarms per bed-day"] == pytest.approx(b["per_bed_day"], rel=0.1)
        assert row["share acknowledged"] == pytest.approx(b["share_acknowledged"])
    history = run_query(influx, expand_board(target("alarms", "Alarm history", "A"), VARS_MULTI))
    cols = history[0]["columns"]
    assert ("02", "device_offline") in {(v[cols.index("bed")], v[cols.index("code")]) for v in history[0]["values"]}
    by_code = run_query(influx, expand_board(target("alarms", "Alarms by code", "A"), VARS_MULTI))
    assert {s["tags"]["code"] for s in by_code} >= {"spo2_desat", "spo2_low", "device_offline"}


def test_fleet_health_counts_and_the_silent_device(run):
    influx = run["influx"]
    online = run_query(influx, expand_board(target("fleet-health", "Devices online", "A"), VARS_MULTI))
    offline = run_query(influx, expand_board(target("fleet-health", "Devices offline", "A"), VARS_MULTI))
    assert online[0]["values"][0][1] == 3 and offline[0]["values"][0][1] == 1
    title = "Silent devices (no reading for more than $silent)"
    for variables, expected in ((VARS_MULTI, [f"sim-{WARD}-02"]),
                                ({**VARS_MULTI, "ward": Var.many(WARD, "old")}, ["old-01", f"sim-{WARD}-02"])):
        rows = pipeline(influx, "fleet-health", title, variables)
        assert sorted(r["device"] for r in rows) == expected
        assert all(set(r) == {"last reading", "ward", "bed", "device", "last seq"} for r in rows)
    devices = {s["tags"]["device"]: dict(zip(s["columns"], s["values"][0]))
               for s in run_query(influx, expand_board(target("fleet-health", "Devices", "A"), VARS_MULTI))}
    assert set(devices) == {f"sim-{WARD}-{b}" for b in BEDS}
    assert devices[f"sim-{WARD}-02"]["state"] == "offline" and devices[f"sim-{WARD}-01"]["state"] == "online"
    assert all(d["firmware"] and d["outbox"] is not None and d["dropped"] is not None for d in devices.values())


def test_gateway_health_per_instance(run):
    influx = run["influx"]
    rate = run_query(influx, expand_board(target("gateway-health", "Ingest rate (readings/s)", "A"), VARS_MULTI,
                                          "now-5m"))
    assert rate[0]["tags"] == {"instance": "gw1"}
    assert any(v[1] and v[1] > 0 for v in rate[0]["values"])  # a 4-bed ward at 1 Hz
    rejects = run_query(influx, expand_board(target("gateway-health", "Rejects by reason", "A"), VARS_MULTI))
    assert {s["tags"]["reason"] for s in rejects} and all(s["columns"] == ["time", "sum"] for s in rejects)
    # "last report" is the time of the instance's latest self-metrics point (the gateway writes
    # them every few seconds), not the start of the query range: several last() in one query
    # would stamp the row 24 h ago, a plausible wrong time.
    (row,) = pipeline(influx, "gateway-health", "Instances: last report", {**VARS_MULTI, "instance": Var.many("gw1")})
    assert time.time() * 1000 - row["last report"] < 60_000 and row["stored"] > 0
    latest = run_query(influx, "SELECT last(\"stored\") FROM gateway WHERE instance='gw1'")[0]["values"][0]
    assert row["stored"] <= latest[1]
    # Devices: the same several-last() row time is dropped rather than shown.
    for r in pipeline(influx, "fleet-health", "Devices", VARS_MULTI):
        assert "Time" not in r and r["state"] in ("online", "offline")


def alert_query(uid: str) -> str:
    rule = next(r for r in alert_rules() if r["uid"] == uid)
    return next(d["model"]["query"] for d in rule["data"] if d["refId"] == "A")


def firing(series: list[dict], op: str, value: float) -> set[tuple]:
    """Grafana's reduce(last, drop non-numbers) + threshold, per series (one per tag set and column)."""
    out = set()
    for s in series:
        for i, col in enumerate(s["columns"][1:], 1):
            vals = [v[i] for v in s["values"] if isinstance(v[i], (int, float)) and not isinstance(v[i], bool)]
            if vals and (vals[-1] > value if op == "gt" else vals[-1] < value):
                out.add((*sorted(s.get("tags", {}).items()), col))
    return out


def test_alert_rule_queries(run):
    influx = run["influx"]
    rules = {r["uid"]: r for r in alert_rules()}

    def threshold(uid):
        (c,) = [d for d in rules[uid]["data"] if d["refId"] == "C"]
        ev = c["model"]["conditions"][0]["evaluator"]
        return ev["type"], ev["params"][0]

    def fire(uid, query=None):
        return firing(run_query(influx, query or alert_query(uid)), *threshold(uid))

    # The live ward and gateway average readings above 0 over their last minutes; the stopped
    # ward and instance average 0 and fire.
    assert fire("ww-ward-no-data") == {(("ward", "old"), "readings_per_min")}
    assert fire("ww-gateway-down") == {(("instance", "gw-old"), "reports_per_min")}
    spool = run_query(influx, alert_query("ww-gateway-spooling"))
    assert spool[0]["tags"] == {"instance": "gw1"} and fire("ww-gateway-spooling") == set()
    news2 = run_query(influx, alert_query("ww-news2-high"))
    assert {s["tags"]["bed"] for s in news2} >= {"01", "03", "04"} and fire("ww-news2-high") == set()
    assert fire("ww-news2-single3") == {(("bed", "01"), ("ward", WARD), "spo2")}
    offline = run_query(influx, alert_query("ww-devices-offline"))
    assert offline[0]["tags"] == {"ward": WARD} and offline[0]["values"][0][1] == 1
    assert fire("ww-devices-offline") == set()  # 1 offline, the rule wants 3
