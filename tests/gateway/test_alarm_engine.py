"""The alarm engine and its rules, pure, from tables: time is passed in (epoch ms)."""

from __future__ import annotations

import pytest

from gateway.clinical.engine import Engine, EngineError, ManualObs, News2Update, _Track, step
from gateway.clinical.rules import RULES, Level, Limits, LimitsError, parse_overrides
from gateway.config import load_limits
from gateway.contract import Reading, Status
from gateway.registry import Placement, Registry

DEV = "dev-003"


def reading(t_s: float, **values) -> Reading:
    base = dict(v=1, dev=DEV, seq=int(t_s * 10), ts=int(t_s * 1000), tq=1, hr=80, spo2=97, temp=37.0, pi=2.0,
                sqi=0.9, probe="ok", sim=False, batt=None)
    base.update(values)
    return Reading(**base)


def engine(limits: Limits | None = None, **kw) -> Engine:
    e = Engine(limits or Limits(), Registry({DEV: Placement("w1", "03"), "dev-404": Placement("w1", "04")}), **kw)
    e.admit("w1", "03", "MRN-3", 1, {}, 0)
    return e


def feed(e: Engine, series, ward: str = "w1") -> list:
    """``series``: (t_s, {values}) pairs, one reading each, received 50 ms after ts."""
    out = []
    for t_s, values in series:
        out += [x for x in e.reading(ward, reading(t_s, **values), int(t_s * 1000) + 50) if not isinstance(x, News2Update)]
    return out


def names(events, code=None):
    return [(ev.event, ev.alarm.code) for ev in events if code is None or ev.alarm.code == code]


# -- step(): one rule's levels -------------------------------------------------------------

LOW = [Level("medium", 90, 92, 15, False)]
HIGH = [Level("medium", 120, 115, 10, False)]


@pytest.mark.parametrize(
    "op, lv, series, expected",
    [
        # below-limit rule, 15 s delay: on at exactly 15 s of persistence, not at 14.
        ("<", LOW, [(0, 86), (14, 86)], [0, 0]),
        ("<", LOW, [(0, 86), (15, 86)], [0, 1]),
        # a reading back at the limit (not below) restarts the delay
        ("<", LOW, [(0, 86), (10, 90), (20, 86), (34, 86), (35, 86)], [0, 0, 0, 0, 1]),
        # hysteresis: once on, 90 and 91 hold it, 92 clears
        ("<", LOW, [(0, 86), (15, 86), (16, 90), (17, 91), (18, 92)], [0, 1, 1, 1, 0]),
        # missing values (probe off): a pending delay restarts, an active level holds
        ("<", LOW, [(0, 86), (10, None), (20, 86), (30, 86)], [0, 0, 0, 0]),
        ("<", LOW, [(0, 86), (15, 86), (16, None), (60, None)], [0, 1, 1, 1]),
        # above-limit rule: 120 is not above 120; 115 clears, 116 holds
        (">", HIGH, [(0, 120), (10, 120)], [0, 0]),
        (">", HIGH, [(0, 121), (10, 125), (11, 116), (12, 115)], [0, 1, 1, 0]),
        # at-or-above with a second level (NEWS2: 5 medium, 7 high)
        (">=", [Level("medium", 5, 5, 0, False), Level("high", 7, 7, 0, True)], [(0, 4), (1, 5), (2, 7), (3, 6), (4, 4)],
         [0, 1, 2, 1, 0]),
    ],
)
def test_step(op, lv, series, expected):
    tr = _Track(len(lv))
    assert [step(op, lv, tr, v, int(t * 1000)) for t, v in series] == expected


# -- lifecycle -------------------------------------------------------------------------------


def test_spo2_low_raises_after_its_delay_not_before_and_clears_past_the_hysteresis():
    e = engine()
    ev = feed(e, [(t, {"spo2": 86}) for t in range(0, 15)])
    assert names(ev, "spo2_low") == []
    ev = feed(e, [(15, {"spo2": 86})])
    assert names(ev, "spo2_low") == [("raised", "spo2_low")]
    a = ev[0].alarm
    assert (a.priority, a.state, a.since_ms, a.raised_ms, a.message) == ("medium", "active", 0, 15_050, "SpO2 86 < 90")
    assert a.text() == "** w1/03 SpO2 86 < 90 since 00:00:00Z"
    assert names(feed(e, [(16, {"spo2": 91}), (17, {"spo2": 90})]), "spo2_low") == []
    ev = feed(e, [(18, {"spo2": 92})])
    assert names(ev, "spo2_low") == [("cleared", "spo2_low")]
    assert e.active() == [] or all(x.code != "spo2_low" for x in e.active())


def test_a_dip_shorter_than_the_delay_raises_nothing():
    e = engine()
    ev = feed(e, [(t, {"spo2": 85}) for t in range(0, 5)] + [(t, {"spo2": 97}) for t in range(5, 40)])
    assert names(ev, "spo2_low") == [] and names(ev, "spo2_desat") == []


def test_desaturation_latches_until_acknowledged():
    e = engine()
    ev = feed(e, [(t, {"spo2": 78}) for t in range(0, 6)])
    assert ("raised", "spo2_desat") in names(ev)
    desat = next(a for a in e.active() if a.code == "spo2_desat")
    assert desat.priority == "high"
    ev = feed(e, [(t, {"spo2": 97}) for t in range(6, 10)])
    assert ("latched", "spo2_desat") in names(ev) and ("cleared", "spo2_low") not in names(ev, "spo2_desat")
    assert next(a for a in e.active() if a.code == "spo2_desat").state == "latched"
    ev = e.ack(desat.id, "nurse.a", 11_000)
    assert [x.event for x in ev] == ["acked", "cleared"]
    assert ev[1].alarm.acked_by == "nurse.a"
    assert all(a.code != "spo2_desat" for a in e.active())


def test_a_latching_alarm_acknowledged_while_active_clears_by_itself():
    e = engine()
    feed(e, [(t, {"hr": 160}) for t in range(0, 6)])
    a = next(a for a in e.active() if a.code == "hr_extreme_high")
    assert [x.event for x in e.ack(a.id, "n", 6_500)] == ["acked"]
    ev = feed(e, [(t, {"hr": 100}) for t in range(7, 9)])
    assert ("cleared", "hr_extreme_high") in names(ev)


def test_acknowledged_alarm_reminds_every_two_minutes_and_re_alarms_on_escalation():
    e = engine()
    # Probe off: low after 10 s, medium after 60 s (one alarm that escalates).
    feed(e, [(t, {"probe": "off", "hr": None, "spo2": None, "sqi": 0.0}) for t in range(0, 11)])
    a = next(a for a in e.active() if a.code == "probe_off")
    assert (a.priority, a.kind, a.message) == ("low", "technical", "SpO2 probe off")
    e.ack(a.id, "nurse.a", 12_000)
    ev = feed(e, [(t, {"probe": "off", "hr": None, "spo2": None, "sqi": 0.0}) for t in range(11, 61)])
    assert names(ev, "probe_off") == [("escalated", "probe_off")]
    esc = ev[0].alarm
    assert (esc.priority, esc.state, esc.acked_by) == ("medium", "active", None)
    # Not acknowledged: no reminders. Acknowledged: a reminder every 120 s while it lasts.
    assert [x for x in e.tick(300_000) if x.event == "reminder"] == []
    e.ack(esc.id, "nurse.b", 300_000)
    e.reading("w1", reading(299, probe="off", hr=None, spo2=None, sqi=0.0), 300_000)  # keep it fresh
    assert [x.event for x in e.tick(419_999) if x.alarm.code == "probe_off"] == []
    e.reading("w1", reading(419, probe="off", hr=None, spo2=None, sqi=0.0), 419_999)
    assert [x.event for x in e.tick(420_000) if x.alarm.code == "probe_off"] == ["reminder"]
    ev = feed(e, [(421, {})])
    assert ("cleared", "probe_off") in names(ev)


def test_device_offline_by_timeout_and_by_last_will_clears_when_data_resumes():
    e = engine()
    feed(e, [(0, {})])
    assert e.tick(30_049) == []
    ev = e.tick(30_050)
    assert names(ev) == [("raised", "device_offline")]
    assert ev[0].alarm.message == "No data for 30 s" and ev[0].alarm.priority == "medium"
    assert names(feed(e, [(31, {})])) == [("cleared", "device_offline")]
    ev = e.status("w1", Status(v=1, dev=DEV, state="offline"), 32_000)
    assert names(ev) == [("raised", "device_offline")] and ev[0].alarm.message == "Device offline (status offline or last will)"
    assert e.tick(33_000) == []  # still offline, nothing new
    assert names(feed(e, [(40, {})])) == [("cleared", "device_offline")]


def test_battery_low_escalates_below_ten_percent_and_clears_five_points_up():
    e = engine()
    assert names(feed(e, [(0, {"batt": 19})])) == [("raised", "battery_low")]
    assert names(feed(e, [(1, {"batt": 9})])) == [("escalated", "battery_low")]
    assert names(feed(e, [(2, {"batt": 14})])) == []
    assert names(feed(e, [(3, {"batt": 15})])) == [("deescalated", "battery_low")]
    assert names(feed(e, [(4, {"batt": 24})])) == []
    assert names(feed(e, [(5, {"batt": 25})])) == [("cleared", "battery_low")]
    ev = e.status("w1", Status(v=1, dev=DEV, state="online", batt=12), 6_000)
    assert names(ev) == [("raised", "battery_low")]


def test_clock_not_synced_for_five_minutes():
    e = engine()
    ev = []
    for t in range(0, 301, 10):
        ev += e.reading("w1", reading(t, tq=0, ts=t * 1000), t * 1000)
    assert names([x for x in ev if not isinstance(x, News2Update)]) == [("raised", "clock_unsynced")]
    assert names(feed(e, [(301, {})])) == [("cleared", "clock_unsynced")]


def test_misconfigured_device_publishing_for_another_ward():
    e = engine()
    ev = e.reading("w9", reading(0), 50)
    assert names(ev) == [("raised", "misconfigured")]
    assert ev[0].alarm.message == "Device dev-003 publishing on ward w9, registered to w1/03"
    assert (ev[0].alarm.ward, ev[0].alarm.bed) == ("w1", "03")
    assert names(feed(e, [(1, {})])) == [("cleared", "misconfigured")]


def test_unassigned_devices_and_empty_beds_raise_nothing():
    e = engine()
    stranger = Reading(v=1, dev="dev-999", seq=1, ts=0, tq=1, hr=200, spo2=60, temp=41.0, pi=1.0, sqi=0.9,
                       probe="ok", sim=False)
    assert all(e.reading("w1", msgspec_replace(stranger, ts=t * 1000), t * 1000) == [] for t in range(30))
    empty_bed = msgspec_replace(stranger, dev="dev-404")
    assert all(e.reading("w1", msgspec_replace(empty_bed, ts=t * 1000), t * 1000) == [] for t in range(30))
    assert [x.alarm.bed for x in e.tick(100_000)] == ["03"]  # only the admitted bed's device is missed


def msgspec_replace(r, **kw):
    import msgspec

    return msgspec.structs.replace(r, **kw)


def test_simulated_readings_mark_their_alarms():
    e = engine()
    ev = feed(e, [(t, {"spo2": 86, "sim": True}) for t in range(0, 16)])
    a = next(x.alarm for x in ev if x.alarm.code == "spo2_low")
    assert a.simulated and a.text().endswith("[SIMULATED]")


def test_discharge_ends_alarms_and_patient_limits_revert():
    e = engine()
    e.discharge("MRN-3", 0)
    e.admit("w1", "03", "MRN-3", 1, parse_overrides(["spo2_low.limit=85", "spo2_low.clear=87"]), 0)
    assert names(feed(e, [(t, {"spo2": 87}) for t in range(0, 20)]), "spo2_low") == []
    assert names(feed(e, [(t, {"spo2": 84}) for t in range(20, 36)]), "spo2_low") == [("raised", "spo2_low")]
    ev = e.discharge("MRN-3", 40_000)
    assert [(x.event, x.reason) for x in ev if x.alarm.code == "spo2_low"] == [("cleared", "discharged")]
    with pytest.raises(EngineError):
        e.discharge("MRN-3", 41_000)
    e.admit("w1", "03", "MRN-7", 1, {}, 50_000)
    assert names(feed(e, [(t, {"spo2": 87}) for t in range(50, 66)]), "spo2_low") == [("raised", "spo2_low")]


def test_admit_assign_refuse_conflicts():
    e = engine()
    with pytest.raises(EngineError, match="already admitted"):
        e.admit("w1", "04", "MRN-3", 1, {}, 0)
    with pytest.raises(EngineError, match="occupied"):
        e.admit("w1", "03", "MRN-9", 1, {}, 0)
    feed(e, [(t, {"spo2": 86}) for t in range(0, 16)])
    ev = e.assign("MRN-3", "w1", "04", 20_000)
    assert {(x.event, x.reason) for x in ev} == {("cleared", "moved to w1/04")}
    assert e.patients["MRN-3"] == ("w1", "04") and ("w1", "03") not in e.beds


def test_news2_from_devices_and_manual_observations_raises_and_escalates():
    e = engine()
    feed(e, [(t, {"hr": 95, "spo2": 95, "temp": 38.5}) for t in range(0, 6)])
    # pulse 95 -> 1, SpO2 95 -> 1, temp 38.5 -> 1: 3, partial (no RR, BP, ACVPU, O2)
    upd = e.observe("w1", "03", ManualObs(rr=22, at_ms=6_000, user="n"), 6_000)
    news = [x for x in upd if isinstance(x, News2Update)][-1].result
    assert (news.score, news.band, news.partial) == (5, "medium", True)
    raised = [x for x in upd if not isinstance(x, News2Update)]
    assert names(raised) == [("raised", "news2")]
    assert raised[0].alarm.message == "NEWS2 5 (medium, partial: no o2, sbp, acvpu)"
    e.ack(raised[0].alarm.id, "nurse.a", 7_000)
    upd = e.observe("w1", "03", ManualObs(sbp=95, acvpu="A", o2=False, at_ms=8_000, user="n"), 8_000)
    news = [x for x in upd if isinstance(x, News2Update)][-1].result
    assert (news.score, news.band, news.partial) == (7, "high", False)
    esc = [x for x in upd if not isinstance(x, News2Update)]
    assert names(esc) == [("escalated", "news2")] and esc[0].alarm.priority == "high" and esc[0].alarm.acked_by is None


def test_news2_single_parameter_three():
    e = engine()
    upd = e.observe("w1", "03", ManualObs(acvpu="V", at_ms=0, user="n"), 0)
    ev = [x for x in upd if not isinstance(x, News2Update)]
    assert names(ev) == [("raised", "news2_single3")]
    assert ev[0].alarm.message == "NEWS2 parameter scoring 3: acvpu" and ev[0].alarm.priority == "low"


def test_manual_observations_expire():
    e = engine(obs_valid_s=3600)
    e.observe("w1", "03", ManualObs(rr=30, at_ms=0, user="n"), 0)
    feed(e, [(3600 + t, {}) for t in range(0, 12, 6)])
    news = e.beds[("w1", "03")].news2_last[3]
    assert "rr" in news.missing


# -- limits ------------------------------------------------------------------------------


def test_defaults_are_clinical_md():
    s = Limits().settings_for("w1", "01")
    table = {code: (x.limit, x.clear, x.delay_s, x.priority) for code, x in s.items()}
    assert table["spo2_low"] == (90, 92, 15, "medium")
    assert table["spo2_desat"] == (80, 85, 5, "high")
    assert table["hr_high"] == (120, 115, 10, "medium")
    assert table["hr_low"] == (50, 55, 10, "medium")
    assert table["hr_extreme_high"] == (150, 145, 5, "high")
    assert table["hr_extreme_low"] == (40, 45, 5, "high")
    assert table["temp_high"] == (39.0, 38.8, 60, "low")
    assert table["temp_low"] == (35.0, 35.2, 60, "low")
    assert table["sqi_low"] == (0.5, 0.6, 30, "low")
    assert table["clock_unsynced"][2] == 300
    assert s["probe_off"].escalate_s == 60 and s["probe_off"].escalate_priority == "medium"


def test_layers_ward_bed_patient(tmp_path):
    f = tmp_path / "limits.toml"
    f.write_text(
        "[default.spo2_low]\nlimit = 88\nclear = 90\n\n[ward.w1.spo2_low]\nlimit = 86\n\n"
        "[ward.w1.bed.03.spo2_low]\ndelay_s = 30\n\n[ward.w1.bed.03.temp_high]\nenabled = false\n"
    )
    limits = load_limits(f)
    assert limits.settings_for("w2", "01")["spo2_low"].limit == 88
    w1 = limits.settings_for("w1", "01")["spo2_low"]
    assert (w1.limit, w1.clear, w1.delay_s) == (86, 90, 15)
    bed = limits.settings_for("w1", "03")
    assert (bed["spo2_low"].limit, bed["spo2_low"].delay_s) == (86, 30) and "temp_high" not in bed
    patient = limits.settings_for("w1", "03", parse_overrides(["spo2_low.limit=84", "spo2_low.clear=88"]))
    assert (patient["spo2_low"].limit, patient["spo2_low"].clear, patient["spo2_low"].delay_s) == (84, 88, 30)


@pytest.mark.parametrize(
    "text, error",
    [
        ("[default.spo2_low]\nlimit = 90\nclear = 88\n", "limits.toml:3: default.spo2_low.clear: 88 must be >= limit 90"),
        ("[default.hr_high]\nlimit = 120\nclear = 125\n", "limits.toml:3: default.hr_high.clear: 125 must be <= limit 120"),
        ("\n[ward.w1.spo2_lo]\nlimit = 90\n", "limits.toml:2: ward.w1.spo2_lo: unknown alarm code"),
        ("[ward.w1.bed.03.hr_low]\nlimit = 50\nspeed = 3\n", "limits.toml:3: ward.w1.bed.03.hr_low.speed:"),
        ("[default.hr_low]\n\npriority = \"urgent\"\n", "limits.toml:3: default.hr_low.priority:"),
        ("[default.hr_low]\nescalate_s = 5\n", "limits.toml:1: default.hr_low: hr_low has no escalation level"),
        ("[defaults.hr_low]\nlimit = 4\n", "limits.toml:1: defaults: unknown section"),
        ("[default.spo2_low]\nlimit = 90\n\n[ward.w1.spo2_low]\nclear = 89\n",
         "limits.toml:5: ward.w1.spo2_low.clear: 89 must be >= limit 90"),
    ],
)
def test_limits_file_errors_name_the_line_and_key(tmp_path, text, error):
    f = tmp_path / "limits.toml"
    f.write_text(text)
    with pytest.raises(LimitsError) as exc:
        load_limits(f)
    assert str(exc.value).startswith(f"{tmp_path}/{error}")


@pytest.mark.parametrize(
    "items, error",
    [
        (["spo2_low=88"], "expected code.key=value"),
        (["spo2_low.limit=93"], "patient.spo2_low.clear: 92 must be >= limit 93"),
        (["nope.limit=1"], "patient.nope: unknown alarm code"),
        (["spo2_low.limit=abc"], "patient.spo2_low.limit"),
    ],
)
def test_patient_override_errors(items, error):
    with pytest.raises(LimitsError, match=error.replace(".", r"\.")):
        parse_overrides(items)


def test_every_rule_has_a_working_default():
    for code, rule in RULES.items():
        s = Limits().settings_for("w", "b")[code]
        assert s.limit is not None and s.clear is not None and s.priority in ("low", "medium", "high"), code


def test_the_example_files_load():
    from pathlib import Path

    from gateway import config

    repo = Path(__file__).resolve().parents[2]
    limits = load_limits(repo / "gateway" / "limits.example.toml")
    assert limits.settings_for("resp", "01")["spo2_low"].limit == 85
    assert limits.settings_for("w1", "03")["probe_off"].escalate_s == 30
    cfg = config.load(repo / "gateway" / "gateway.example.toml", env={})
    assert cfg.alarms.enabled and cfg.alarms.remind_s == 120


def test_the_gateway_refuses_to_start_with_a_bad_limits_file(tmp_path):
    import subprocess
    import sys

    limits = tmp_path / "limits.toml"
    limits.write_text("[ward.w1.hr_high]\nlimit = 120\nclear = 130\n")
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(f'state_dir = "{tmp_path / "state"}"\n\n[alarms]\nlimits_file = "{limits}"\n')
    proc = subprocess.run([sys.executable, "-m", "gateway.cli", "gateway", "--config", str(cfg)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert f"alarms.limits_file: {limits}:3: ward.w1.hr_high.clear: 130 must be <= limit 120" in proc.stderr


def test_a_wards_ingest_lag_raises_alarms_delayed_and_clears_past_the_hysteresis():
    e = engine()
    assert e.ward_lag("w1", None, False, 0) == []  # nothing known, nothing held
    assert e.ward_lag("w1", 4.9, False, 1_000) == []
    raised = e.ward_lag("w1", 7.5, False, 2_000)
    assert names(raised) == [("raised", "alarms_delayed")]
    a = raised[0].alarm
    assert (a.ward, a.bed, a.kind, a.priority) == ("w1", "-", "technical", "medium")
    assert a.message == "Alarms delayed: readings reach the gateway 7.5 s after they are measured (> 5 s)"
    assert [x.code for x in e.active("w1")] == ["alarms_delayed"]  # listed with the ward's alarms
    assert e.ward_lag("w1", None, False, 3_000) == []  # no value: the alarm holds
    assert e.ward_lag("w1", 3.0, False, 4_000) == []  # inside the hysteresis (clears at <= 2 s)
    assert names(e.ward_lag("w1", 1.5, False, 5_000)) == [("cleared", "alarms_delayed")]
    assert e.active("w1") == []


def test_a_ward_level_alarm_is_acknowledged_and_reminds_like_any_other():
    e = engine(remind_s=120)
    alarm_id = e.ward_lag("w1", 9.0, True, 0)[0].alarm.id
    assert names(e.ack(alarm_id, "nurse", 1_000)) == [("acked", "alarms_delayed")]
    assert names(e.tick(121_000), "alarms_delayed") == [("reminder", "alarms_delayed")]
    assert names(e.ack_bed("w1", "-", "nurse", 122_000)) == []  # already acknowledged


# -- a device's clock cannot suppress or delay an alarm ------------------------------------

T0 = 1_800_000_000_000  # gateway epoch ms when the condition starts


def received(e: Engine, ts_ms: int, now_ms: int, **values) -> list:
    r = reading(0, ts=ts_ms, seq=(now_ms - T0) // 100, **values)
    return [x for x in e.reading("w1", r, now_ms) if not isinstance(x, News2Update)]


def raised_at(events, code) -> list[int]:
    return [ev.at_ms for ev in events if ev.alarm.code == code and ev.event == "raised"]


@pytest.mark.parametrize(
    "case,ts_of",
    [
        ("correct clock", lambda k: T0 + k * 1000),
        ("first reading 240 s ahead", lambda k: T0 + 240_000 if k == 0 else T0 + k * 1000),
        ("clock one hour behind", lambda k: T0 - 3_600_000 + k * 1000),
        ("clock stuck", lambda k: T0),
        ("clock jumps back an hour after 3 readings", lambda k: T0 + k * 1000 - (3_600_000 if k >= 3 else 0)),
        ("clock 20 s ahead", lambda k: T0 + 20_000 + k * 1000),
    ],
)
def test_spo2_low_is_raised_15_s_after_its_first_receipt_whatever_the_clock(case, ts_of):
    e = engine()
    events = []
    for k in range(40):  # SpO2 85 once a second, received 50 ms after it was due
        events += received(e, ts_of(k), T0 + k * 1000 + 50, spo2=85)
    at = raised_at(events, "spo2_low")
    assert len(at) == 1 and T0 + 15_000 <= at[0] <= T0 + 16_050, (case, at)
    for ev in events:  # nothing the engine says happened later than it said it
        assert ev.alarm.since_ms <= ev.at_ms, (case, ev.alarm.code)


def test_replayed_history_can_shorten_a_delay():
    # 20 s of SpO2 85 measured during an outage, replayed in one second: the delay is over.
    e = engine()
    events = []
    for k in range(20):
        events += received(e, T0 + k * 1000, T0 + 30_000 + k * 50, spo2=85)
    assert raised_at(events, "spo2_low") == [T0 + 30_000 + 15 * 50]


def test_a_clock_far_off_raises_clock_wrong_and_alarms_run_on_receipt():
    e = engine()
    ahead = received(e, T0 + 20_000, T0, spo2=97)
    assert names(ahead, "clock_wrong") == [("raised", "clock_wrong")]
    assert ahead[0].alarm.message == "Device clock wrong: +20 s against the gateway"
    assert names(received(e, T0 + 1_000, T0 + 1_000), "clock_wrong") == [("cleared", "clock_wrong")]
    # Behind by an hour: like a replay for a minute, then a wrong clock.
    events = []
    for k in range(2, 75):
        events += received(e, T0 - 3_600_000 + k * 1000, T0 + k * 1000)
    assert raised_at(events, "clock_wrong") == [T0 + 62_000]
