"""The alarm load report's pure core, from tables: event sequences -> exact figures.

Window rules under test are those of gateway/clinical/alarmload.py's docstring: counts and shares
cover alarms raised inside [since, until); active time of every alarm overlapping the window
is clipped to it; bed "unassigned" is not a bed; top beds by alarms, time active, ward, bed.
"""

from __future__ import annotations

import argparse

import msgspec
import pytest
from rich.console import Console

from gateway.cli.report import main, parse_duration, render
from gateway.clinical.alarmload import AlarmEvent, compute, event_from_row

T0 = 1_763_800_000_000  # window start, epoch ms
H = 3_600_000
SINCE, UNTIL = T0, T0 + 24 * H
HALF_DAY = {("w1", "01"): 12 * H}  # 0.5 bed-days


def at(minute: float) -> int:
    return T0 + int(minute * 60_000)


def ev(aid: str, event: str, minute: float, bed: str = "01", ward: str = "w1", code: str = "spo2_low",
       priority: str = "medium", kind: str = "physiological", sim: bool = False) -> AlarmEvent:
    return AlarmEvent(time_ms=at(minute), alarm_id=aid, event=event, ward=ward, bed=bed, code=code,
                      priority=priority, kind=kind, simulated=sim)


def life(aid: str, raised: float, cleared: float | None = None, acked: float | None = None, **tags) -> list[AlarmEvent]:
    """One alarm's raised/acked/cleared events (minutes from the window start)."""
    out = [ev(aid, "raised", raised, **tags)]
    if acked is not None:
        out.append(ev(aid, "acked", acked, **tags))
    if cleared is not None:
        out.append(ev(aid, "cleared", cleared, **tags))
    return out


def pick(report, expect: dict) -> dict:
    return {k: getattr(report, k) for k in expect}


# (name, events, expected figures); window is one day, bed w1/01 monitored 12 h (0.5 bed-days).
SINGLE = [
    ("raised and cleared inside", life("a", 60, 70),
     dict(alarms=1, alarms_per_bed_day=2.0, time_active_s=600.0, mean_active_s=600.0, still_active=0,
          carried_over=0, share_acknowledged=0.0)),
    ("raised at the window start is inside", life("a", 0, 1),
     dict(alarms=1, time_active_s=60.0, carried_over=0)),
    ("still active at the window end", life("a", 24 * 60 - 30) + [ev("a", "reminder", 24 * 60 - 20)],
     dict(alarms=1, time_active_s=1800.0, mean_active_s=1800.0, still_active=1)),
    ("raised before, cleared inside: not counted, time clipped", life("a", -30, 20),
     dict(alarms=0, alarms_per_bed_day=0.0, carried_over=1, time_active_s=1200.0, mean_active_s=None,
          share_acknowledged=None, still_active=0)),
    ("raised before, active all window", life("a", -60) + [ev("a", "reminder", 600)],
     dict(alarms=0, carried_over=1, time_active_s=86400.0, still_active=1)),
    ("raised and cleared before the window: in no figure", life("a", -60, -10),
     dict(alarms=0, carried_over=0, time_active_s=0.0, still_active=0, beds=1, top_beds=[])),
    ("cleared at the window start: in no figure", life("a", -60, 0),
     dict(alarms=0, carried_over=0, time_active_s=0.0)),
    ("raised event unknown (before look-back): active from window start", [ev("a", "cleared", 30)],
     dict(alarms=0, carried_over=1, time_active_s=1800.0)),
    ("acknowledged", life("a", 0, 10, acked=5), dict(alarms=1, share_acknowledged=1.0)),
    ("not acknowledged", life("a", 0, 10), dict(alarms=1, share_acknowledged=0.0)),
    ("escalation, reminder, latch are not new alarms",
     [ev("a", "raised", 0), ev("a", "escalated", 1, priority="high"), ev("a", "reminder", 2, priority="high"),
      ev("a", "deescalated", 3), ev("a", "latched", 4), ev("a", "acked", 5), ev("a", "cleared", 6)],
     dict(alarms=1, by_priority={"high": 1, "medium": 0, "low": 0}, share_acknowledged=1.0,
          time_active_s=360.0)),
    ("events out of order", [ev("a", "cleared", 10), ev("a", "acked", 5), ev("a", "raised", 0)],
     dict(alarms=1, time_active_s=600.0, share_acknowledged=1.0)),
    ("raised at the window end is outside", life("a", 24 * 60), dict(alarms=0, time_active_s=0.0)),
    ("cleared at the window end: still active at it", life("a", 24 * 60 - 10, 24 * 60),
     dict(alarms=1, time_active_s=600.0, still_active=1)),
    ("acked after the window end does not count", life("a", 0, None, acked=24 * 60 + 5),
     dict(alarms=1, share_acknowledged=0.0)),
    ("bed unassigned is not a bed", life("a", 0, 10, bed="unassigned"),
     dict(alarms=0, beds=1, time_active_s=0.0, top_beds=[])),
    ("technical alarm by kind", life("a", 0, 10, kind="technical", code="probe_off", priority="low"),
     dict(by_kind={"physiological": 0, "technical": 1}, by_priority={"high": 0, "medium": 0, "low": 1})),
]


@pytest.mark.parametrize("name,events,expect", SINGLE, ids=[c[0] for c in SINGLE])
def test_single_alarm_window_rules(name, events, expect):
    report = compute(events, HALF_DAY, SINCE, UNTIL)
    assert pick(report, expect) == expect


# (name, monitored ms per bed, events, expected figures)
BED_DAYS = [
    ("sum over beds, unassigned left out",
     {("w1", "01"): 12 * H, ("w1", "02"): 6 * H, ("w1", "unassigned"): 24 * H}, life("a", 0, 1),
     dict(beds=2, bed_days=0.75, alarms=1)),
    ("no monitored time: rate is null", {}, life("a", 0, 1),
     dict(beds=1, bed_days=0.0, alarms=1, alarms_per_bed_day=None)),
    ("no alarms, no beds", {}, [],
     dict(beds=0, bed_days=0.0, alarms=0, alarms_per_bed_day=None, share_acknowledged=None,
          mean_active_s=None, time_active_s=0.0, by_code=[], top_beds=[])),
    ("alarms on a bed without readings add a bed", HALF_DAY, life("a", 0, 1, bed="09"),
     dict(beds=2, bed_days=0.5, alarms_per_bed_day=2.0)),
]


@pytest.mark.parametrize("name,monitored,events,expect", BED_DAYS, ids=[c[0] for c in BED_DAYS])
def test_bed_days(name, monitored, events, expect):
    assert pick(compute(events, monitored, SINCE, UNTIL), expect) == expect


def ward_events() -> list[AlarmEvent]:
    return [
        *life("a1", 0, 5, acked=1, bed="01"),
        *life("a2", 60, 65, bed="01", code="hr_high"),
        *life("b1", 0, 10, bed="02"),  # ties with c1 on alarms and time: ward, bed decide
        *life("c1", 100, 110, bed="03", acked=101),
        *life("d1", 0, 20, ward="w2", bed="01", code="hr_high"),  # 1 alarm, more time than b1/c1
        *life("e1", -30, 30, bed="04"),  # carried over only: 0 alarms, 30 min
    ]


MONITORED = {("w1", "01"): 12 * H, ("w1", "02"): 6 * H, ("w1", "03"): 24 * H, ("w2", "01"): 6 * H}


def test_top_beds_order_and_figures():
    report = compute(ward_events(), MONITORED, SINCE, UNTIL, top=10)
    got = [(b.ward, b.bed, b.alarms, b.time_active_s, b.bed_days, b.per_bed_day, b.share_acknowledged)
           for b in report.top_beds]
    assert got == [
        # alarms desc, then time active desc, then (ward, bed) asc
        ("w1", "01", 2, 600.0, 0.5, 4.0, 0.5),
        ("w2", "01", 1, 1200.0, 0.25, 4.0, 0.0),
        ("w1", "02", 1, 600.0, 0.25, 4.0, 0.0),
        ("w1", "03", 1, 600.0, 1.0, 1.0, 1.0),
        ("w1", "04", 0, 1800.0, 0.0, None, None),
    ]
    assert report.beds == 5 and report.bed_days == 2.0 and report.alarms == 5 and report.carried_over == 1
    assert report.time_active_s == 600 + 1200 + 600 + 600 + 1800
    assert report.mean_active_s == (600 + 1200 + 600 + 600) / 5
    assert report.share_acknowledged == 2 / 5


@pytest.mark.parametrize("top,beds", [(0, []), (1, [("w1", "01")]), (3, [("w1", "01"), ("w2", "01"), ("w1", "02")])])
def test_top_limits_the_list(top, beds):
    report = compute(ward_events(), MONITORED, SINCE, UNTIL, top=top)
    assert [(b.ward, b.bed) for b in report.top_beds] == beds


def test_per_code_figures():
    report = compute(ward_events(), MONITORED, SINCE, UNTIL)
    got = [(c.code, c.alarms, c.per_bed_day, c.time_active_s, c.mean_active_s, c.share_acknowledged)
           for c in report.by_code]
    assert got == [
        # spo2_low: a1 5 min (acked), b1 10 min, c1 10 min (acked), e1 carried 30 min (time only)
        ("spo2_low", 3, 1.5, 3300.0, 500.0, 2 / 3),
        ("hr_high", 2, 1.0, 1500.0, 750.0, 0.0),
    ]


def test_per_code_rate_is_null_without_bed_days():
    report = compute(life("a", 0, 1), {}, SINCE, UNTIL)
    assert [(c.code, c.alarms, c.per_bed_day) for c in report.by_code] == [("spo2_low", 1, None)]


SIMULATED = [
    ("none simulated", life("a", 0, 1), dict(simulated_alarms=0, includes_simulated=False)),
    ("two of three simulated", life("a", 0, 1, sim=True) + life("b", 2, 3, sim=True) + life("c", 4, 5),
     dict(simulated_alarms=2, includes_simulated=True, alarms=3)),
    ("one simulated event marks the alarm", [ev("a", "raised", 0), ev("a", "cleared", 1, sim=True)],
     dict(simulated_alarms=1, includes_simulated=True)),
    ("carried over simulated: not counted, still marked", life("a", -5, 5, sim=True),
     dict(simulated_alarms=0, includes_simulated=True, alarms=0)),
]


@pytest.mark.parametrize("name,events,expect", SIMULATED, ids=[c[0] for c in SIMULATED])
def test_simulated_alarms_stay_marked(name, events, expect):
    assert pick(compute(events, HALF_DAY, SINCE, UNTIL), expect) == expect


def test_simulated_flag_per_bed_and_code():
    events = life("a", 0, 1, sim=True) + life("b", 0, 1, bed="02", code="hr_high")
    report = compute(events, HALF_DAY, SINCE, UNTIL)
    assert {(b.bed, b.simulated) for b in report.top_beds} == {("01", True), ("02", False)}
    assert {(c.code, c.simulated_alarms) for c in report.by_code} == {("spo2_low", 1), ("hr_high", 0)}


def test_window_and_json():
    report = compute([], {}, SINCE, UNTIL, ward="w1")
    doc = msgspec.json.decode(msgspec.json.encode(report))
    assert doc["since"] == "2025-11-22T08:26:40+00:00" and doc["hours"] == 24.0 and doc["ward"] == "w1"
    assert doc["alarms_per_bed_day"] is None and "bed_days" in doc["definitions"]


def test_empty_window_is_refused():
    with pytest.raises(ValueError):
        compute([], {}, UNTIL, UNTIL)


DURATIONS_OK = [("90m", 90 * 60_000), ("24h", 24 * H), ("7d", 7 * 24 * H), ("1w", 7 * 24 * H),
                ("30s", 30_000), ("1d12h", 36 * H), (" 24H ", 24 * H)]
DURATIONS_BAD = ["", "24", "h", "24x", "-1h", "0h", "0d0h", "1.5h", "24 h", "h24", "1h-", "yesterday"]


@pytest.mark.parametrize("text,ms", DURATIONS_OK)
def test_parse_duration(text, ms):
    assert parse_duration(text) == ms


@pytest.mark.parametrize("text", DURATIONS_BAD)
def test_parse_duration_refuses_garbage(text):
    with pytest.raises(argparse.ArgumentTypeError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize("argv,message", [
    (["--since", "soon"], "invalid duration 'soon'"),
    (["--top", "0"], "invalid count '0'"),
])
def test_command_line_errors_are_clear(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


ROW = {"time": at(1), "alarm_id": "w1/03/spo2_low/1", "event": "raised", "ward": "w1", "bed": "03",
       "device": "sim-w1-03", "code": "spo2_low", "priority": "medium", "kind": "physiological",
       "state": "active", "value": None, "limit": None, "acked": False, "acked_by": "", "simulated": True}


@pytest.mark.parametrize("row,expect", [
    (ROW, AlarmEvent(time_ms=at(1), alarm_id="w1/03/spo2_low/1", event="raised", ward="w1", bed="03",
                     code="spo2_low", priority="medium", kind="physiological", device="sim-w1-03",
                     state="active", simulated=True)),
    ({**ROW, "alarm_id": None}, None),
    ({**ROW, "event": ""}, None),
    ({k: v for k, v in ROW.items() if k != "bed"}, None),
    ({**ROW, "simulated": None}, AlarmEvent(time_ms=at(1), alarm_id="w1/03/spo2_low/1", event="raised",
                                            ward="w1", bed="03", code="spo2_low", priority="medium",
                                            kind="physiological", device="sim-w1-03", state="active")),
])
def test_event_from_row(row, expect):
    assert event_from_row(row) == expect


def text_of(renderable) -> str:
    console = Console(width=140, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_render_marks_simulated_and_lists_beds():
    events = life("a", 0, 1, sim=True) + life("b", 0, 1, bed="02")
    out = text_of(render(compute(events, HALF_DAY, SINCE, UNTIL)))
    assert "not a medical device" in out and "(includes 1 simulated alarms)" in out
    assert "2 raised, 4.0 per bed-day" in out and "0.50 bed-days" in out
    row = next(line for line in out.splitlines() if line.replace("│", " ").split()[:2] == ["w1", "01"])
    assert "SIM" in row
    out = text_of(render(compute(life("a", 0, 1), {}, SINCE, UNTIL)))
    assert "simulated" not in out and "-- per bed-day" in out
