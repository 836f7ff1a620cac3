"""The alarm shell over a real SQLite file: commands, audit, and state across a restart.

MQTT and InfluxDB are replaced by lists here (the shell's two output callbacks); the same
paths run against real Mosquitto and InfluxDB in tests/e2e/test_alarm_scenarios.py.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from gateway.clinical.rules import Limits
from gateway.sinks.alarms import AlarmService
from gateway.sinks.alarm_store import Store
from gateway.config import load_limits
from gateway.contract import Reading
from gateway.registry import Placement, Registry

REG = Registry({"dev-001": Placement("w1", "01")})


class Outputs:
    def __init__(self):
        self.lines: list[str] = []
        self.published: list[tuple[str, dict, bool]] = []

    def submit(self, line: str) -> None:
        self.lines.append(line)

    def publish(self, topic: str, payload: bytes, retain: bool) -> None:
        self.published.append((topic, json.loads(payload), retain))

    def replies(self) -> list[dict]:
        return [p for t, p, _ in self.published if t.endswith("/reply")]

    def events(self) -> list[dict]:
        return [p for t, p, _ in self.published if t.endswith("/alarms/events")]


def service(tmp_path, out: Outputs, limits: Limits | None = None, source: str = "") -> AlarmService:
    return AlarmService("wardwatch/v1", REG, tmp_path, limits or Limits(), out.submit, out.publish, limits_source=source)


def command(svc: AlarmService, out: Outputs, now_ms: int, **body) -> dict:
    svc.on_command("w1", "ward-station", json.dumps({"v": 1, "id": f"r{now_ms}", **body}).encode(), now_ms)
    reply = out.replies()[-1]
    assert reply["id"] in (f"r{now_ms}", "")
    return reply


def reading(t_s: int, **kw) -> Reading:
    base = dict(v=1, dev="dev-001", seq=t_s, ts=t_s * 1000, tq=1, hr=80, spo2=97, temp=37.0, pi=2.0, sqi=0.9,
                probe="ok", sim=False)
    return Reading(**{**base, **kw})


def test_a_latched_alarm_and_the_patient_survive_a_restart_and_every_action_is_audited(tmp_path):
    out = Outputs()
    svc = service(tmp_path, out)
    assert command(svc, out, 1_000, op="admit", user="nurse.a", bed="01", patient="MRN-1", limits=["spo2_low.limit=88",
                   "spo2_low.clear=90"])["ok"]
    for t in range(2, 9):
        svc.on_reading("w1", reading(t, spo2=75), t * 1000 + 20)
    for t in range(9, 12):
        svc.on_reading("w1", reading(t, spo2=97), t * 1000 + 20)
    desat = [e for e in out.events() if e["code"] == "spo2_desat"]
    assert [e["event"] for e in desat] == ["raised", "latched"]
    retained = [p for t, p, r in out.published if t == "wardwatch/v1/w1/alarms/active/01" and r][-1]
    assert ("spo2_desat", "latched") in [(a["code"], a["state"]) for a in retained["alarms"]]
    assert any(line.startswith("alarm,bed=01,code=spo2_desat,") and 'event="latched"' in line for line in out.lines)
    svc.close()

    out2 = Outputs()
    svc2 = service(tmp_path, out2)
    alarms = [a for a in svc2.engine.active("w1") if a.code == "spo2_desat"]
    assert [(a.code, a.state) for a in alarms] == [("spo2_desat", "latched")]
    assert svc2.engine.beds[("w1", "01")].settings["spo2_low"].limit == 88  # patient limits kept
    reply = command(svc2, out2, 20_000, op="ack", user="nurse.b", alarm=alarms[0].id)
    assert reply == {"v": 1, "id": "r20000", "ok": True, "result": {"acked": [alarms[0].id]}}
    assert [e["event"] for e in out2.events()] == ["acked", "cleared"]
    assert command(svc2, out2, 21_000, op="discharge", user="nurse.b", patient="MRN-1")["ok"]
    svc2.close()

    store = Store(tmp_path / "alarms.sqlite", readonly=True)
    rows = store.audit_rows()
    assert [(r.who, r.via, r.action, r.target) for r in rows] == [
        ("config", "gateway", "limits_file", "(built-in defaults)"),
        ("nurse.a", "ward-station", "admit", "MRN-1"),
        ("nurse.b", "ward-station", "ack", alarms[0].id),
        ("nurse.b", "ward-station", "discharge", "MRN-1"),
    ]
    assert rows[1].before is None and rows[1].after["bed"] == "01"
    assert rows[2].before == {"state": "latched"} and rows[2].after["state"] == "cleared"
    assert rows[3].before["limits"]["spo2_low"]["limit"] == 88 and rows[3].after is None
    assert store.patients() == [] and store.alarms() == []


def test_the_audit_trail_is_append_only(tmp_path):
    out = Outputs()
    service(tmp_path, out).close()
    db = sqlite3.connect(tmp_path / "alarms.sqlite")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE audit SET who = 'someone else'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM audit")


def test_a_changed_limits_file_is_audited_once(tmp_path):
    f = tmp_path / "limits.toml"
    f.write_text("[default.spo2_low]\nlimit = 88\nclear = 90\n")
    for _ in range(2):
        service(tmp_path, Outputs(), load_limits(f), str(f)).close()
    rows = Store(tmp_path / "alarms.sqlite", readonly=True).audit_rows()
    assert [r.action for r in rows] == ["limits_file"]
    assert rows[0].after["default"]["spo2_low"] == {"limit": 88.0, "clear": 90.0}


@pytest.mark.parametrize(
    "body, error",
    [
        ({"op": "ack", "user": "n"}, "exactly one of alarm or bed"),
        ({"op": "ack", "user": "n", "alarm": "w1/01/spo2_low/1"}, "no active alarm"),
        ({"op": "admit", "user": "n", "bed": "01"}, "missing required field `patient`"),
        ({"op": "admit", "user": "n", "bed": "01", "patient": "P", "limits": ["spo2_low.limit=95"]},
         "patient.spo2_low.clear: 92 must be >= limit 95"),
        ({"op": "discharge", "user": "n", "patient": "nobody"}, "not admitted"),
        ({"op": "obs", "user": "n", "bed": "07", "rr": 20}, "no patient admitted to w1/07"),
        ({"op": "obs", "user": "n", "bed": "01", "rr": -3}, "Expected `float` >= 0"),
        ({"op": "fly", "user": "n"}, "Invalid value 'fly'"),
        ({"op": "ack", "alarm": "x"}, "missing required field `user`"),
    ],
)
def test_bad_commands_get_a_reply_naming_the_problem(tmp_path, body, error):
    out = Outputs()
    svc = service(tmp_path, out)
    reply = command(svc, out, 5_000, **body)
    assert reply["ok"] is False and error in reply["error"]
    assert svc.counts["command_errors"] == 1


def test_observations_give_news2_on_the_retained_topic(tmp_path):
    out = Outputs()
    svc = service(tmp_path, out)
    command(svc, out, 1_000, op="admit", user="n", bed="01", patient="P", scale=2)
    reply = command(svc, out, 2_000, op="obs", user="nurse.c", bed="01", rr=26, sbp=100, acvpu="A", o2=True)
    assert reply["ok"] and reply["result"]["subscores"]["rr"] == 3 and reply["result"]["scale"] == 2
    news = [p for t, p, r in out.published if t == "wardwatch/v1/w1/news2/01"]
    assert news and news[-1]["score"] == reply["result"]["score"]
    assert any(line.startswith("news2,bed=01,ward=w1 score=") for line in out.lines)
    rows = Store(tmp_path / "alarms.sqlite", readonly=True).audit_rows()
    assert rows[-1].action == "observation" and rows[-1].after["rr"] == 26


def test_assign_and_limits_commands_move_the_patient_and_are_audited(tmp_path):
    out = Outputs()
    svc = service(tmp_path, out)
    command(svc, out, 1_000, op="admit", user="n", bed="01", patient="P")
    for t in range(2, 20):
        svc.on_reading("w1", reading(t, spo2=86), t * 1000)
    assert any(e["code"] == "spo2_low" and e["event"] == "raised" for e in out.events())
    reply = command(svc, out, 21_000, op="assign", user="nurse.d", patient="P", bed="02")
    assert reply["ok"] and reply["result"]["bed"] == "02"
    moved = [e for e in out.events() if e["event"] == "cleared" and e["code"] == "spo2_low"]
    assert moved and moved[-1]["reason"] == "moved to w1/02"
    assert command(svc, out, 22_000, op="limits", user="nurse.d", patient="P", limits=["hr_high.limit=130",
                   "hr_high.clear=125"], scale=2)["ok"]
    bed = svc.engine.beds[("w1", "02")]
    assert bed.settings["hr_high"].limit == 130 and bed.scale == 2
    assert command(svc, out, 23_000, op="patients", user="-")["result"] == [
        {"patient": "P", "ward": "w1", "bed": "02", "admitted_ms": 1_000, "scale": 2,
         "limits": {"hr_high": {"limit": 130.0, "clear": 125.0}}}
    ]
    rows = Store(tmp_path / "alarms.sqlite", readonly=True).audit_rows()
    assign, limits = rows[-2], rows[-1]
    assert (assign.action, assign.before["bed"], assign.after["bed"]) == ("assign", "01", "02")
    assert (limits.action, limits.before["limits"], limits.after["scale"]) == ("limits", {}, 2)


def test_the_limits_in_force_are_written_at_start_and_when_a_command_changes_them(tmp_path):
    def limits_lines(out: Outputs, bed: str) -> list[str]:
        return [line for line in out.lines if line.startswith(f"limits,bed={bed},ward=w1 ")]

    out = Outputs()
    svc = service(tmp_path, out)
    # At start: every registered bed, with the built-in limits (no patient yet).
    assert len(limits_lines(out, "01")) == 1
    assert "admitted=false," in limits_lines(out, "01")[0] and ",spo2_low=90.0," in limits_lines(out, "01")[0]
    command(svc, out, 1_000, op="admit", user="nurse.a", bed="01", patient="MRN-1",
            limits=["spo2_low.limit=85", "spo2_low.clear=87"])
    admitted = limits_lines(out, "01")[-1]
    assert "admitted=true," in admitted and ",spo2_low=85.0," in admitted and 'spo2_low_priority="medium"' in admitted
    command(svc, out, 2_000, op="limits", user="nurse.a", patient="MRN-1", limits=["hr_high.limit=130",
                                                                                     "hr_high.clear=125"])
    changed = limits_lines(out, "01")[-1]
    assert ",hr_high=130.0," in changed and ",spo2_low=90.0," in changed  # replaced, not merged
    command(svc, out, 3_000, op="assign", user="nurse.a", patient="MRN-1", bed="02")
    assert "admitted=false," in limits_lines(out, "01")[-1] and ",hr_high=130.0," in limits_lines(out, "02")[-1]
    command(svc, out, 4_000, op="discharge", user="nurse.a", patient="MRN-1")
    assert "admitted=false," in limits_lines(out, "02")[-1] and ",hr_high=120.0," in limits_lines(out, "02")[-1]
    # Each point is its own: a later change never lands on (and overwrites) an earlier one.
    times = [int(line.rsplit(" ", 1)[1]) for line in limits_lines(out, "01")]
    assert times == sorted(set(times))
    svc.close()
